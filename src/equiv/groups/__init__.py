"""equiv.groups: group actions as objects.

Each group is a matrix group with a defining representation (``3 x 3`` orthogonal matrices for
rotations and reflections, ``s I`` for scalings, homogeneous ``4 x 4`` for translations and E(3),
permutation matrices for S_N). A group can

- :meth:`~Group.sample` elements (Haar for compact groups), :meth:`~Group.compose`,
  :meth:`~Group.inverse`, test membership with :meth:`~Group.contains`;
- :meth:`~Group.act` on typed inputs: ``"cartesian_points"``, ``"cartesian_vectors"``, irreps /
  :class:`Rep` features, ``"image"`` (resampled), node axes, ``None``;
- give a regular :meth:`~Group.orbit` grid (orbit evaluation, :func:`equiv.symmetry.orbit_evaluation`);
- give finite and Lie-algebra generators, in any :class:`Rep` (:meth:`~Group.rep_generators`), which
  is what the equivariant-weight projector of :mod:`equiv.symmetry` needs.

>>> import torch
>>> from equiv.groups import SO3, O2, Rep
>>> R = SO3().sample(2, dtype=torch.float64)
>>> D, L = O2("z").rep_generators(Rep("1x1o"))
>>> D.shape, L.shape
(torch.Size([1, 3, 3]), torch.Size([1, 3, 3]))
"""

from ._affine import E3, Scaling, Translations
from ._base import INPUT_KINDS, Group, OrbitGrid
from ._permutations import Permutations
from ._reps import IrrepRep, Rep, TensorRep, as_rep
from ._rotations import O2, O3, SO2, SO3, axis_vector, cross_matrix, rotation_about

__all__ = [
    "Group",
    "OrbitGrid",
    "INPUT_KINDS",
    "SO2",
    "O2",
    "SO3",
    "O3",
    "E3",
    "Translations",
    "Scaling",
    "Permutations",
    "Rep",
    "TensorRep",
    "IrrepRep",
    "as_rep",
    "rotation_about",
    "cross_matrix",
    "axis_vector",
    "get_group",
]


def get_group(name) -> Group:
    """A group from a short name (what the ``equiv nero --group`` option accepts).

    ``so2`` / ``so2_z`` / ``so2_x`` ..., ``o2_z`` ..., ``so3``, ``o3``, ``e3``, ``translations`` /
    ``translations_xy`` ..., ``scaling``, ``s5`` (permutations of 5 nodes). A :class:`Group` is
    returned unchanged.

    >>> get_group("so2_x")
    SO(2)_x
    """
    if isinstance(name, Group):
        return name
    if not isinstance(name, str):
        raise TypeError(f"group={name!r}: expected a Group or a name such as 'so3'")
    key = name.lower().replace("(", "").replace(")", "").replace("-", "_")
    base, _, arg = key.partition("_")
    if base == "so2":
        return SO2(arg or "z")
    if base == "o2":
        return O2(arg or "z")
    if key == "so3":
        return SO3()
    if key == "o3":
        return O3()
    if key == "e3":
        return E3()
    if base in ("translation", "translations", "t"):
        return Translations(arg or "xyz")
    if key in ("scaling", "scale"):
        return Scaling()
    if base.startswith("s") and base[1:].isdigit():
        return Permutations(int(base[1:]))
    raise ValueError(
        f"group={name!r}: expected one of so2[_x|_y|_z], o2[_x|_y|_z], so3, o3, e3, translations[_xy...], scaling, s<N>"
    )
