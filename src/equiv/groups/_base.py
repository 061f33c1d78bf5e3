"""The :class:`Group` interface and the action of a group element on typed inputs.

Every group in :mod:`equiv.groups` is a *matrix group*: an element is a ``(d, d)`` tensor in the
group's defining representation, a batch of elements is ``(n, d, d)``. Rotations, reflections and
scalings of space use ``d = 3``; groups with translations (:class:`~equiv.groups.Translations`,
:class:`~equiv.groups.E3`) use homogeneous ``4 x 4`` matrices

.. math:: g = \\begin{pmatrix} L & t \\\\ 0 & 1 \\end{pmatrix}, \\qquad g\\cdot x = L x + t ,

and :class:`~equiv.groups.Permutations` uses ``N x N`` permutation matrices. Composition is the matrix
product, the inverse the matrix inverse, so generic code never needs to know which group it holds.

Input kinds (the same vocabulary as :func:`equiv.symmetry.assert_equivariant`)
-------------------------------------------------------------------------------
``"cartesian_points"``
    positions ``(..., 3)``: :math:`x \\mapsto L x + t`.
``"cartesian_vectors"``
    displacements, velocities, forces ``(..., 3)``: :math:`v \\mapsto L v` (not translated).
an irreps string, :class:`equiv.so3.Irreps` or :class:`equiv.groups.Rep`
    features on the last axis: :math:`f \\mapsto \\rho(L) f` (irreps need an orthogonal ``L``).
:class:`equiv.so3.CartesianTensor`
    Cartesian tensors ``(..., 3, ..., 3)``: :math:`T \\mapsto L^{\\otimes n} T` (every index).
``"image"``
    images ``(..., H, W)`` with pixel coordinates centred on the image, ``x`` to the right, ``y`` up,
    one unit per pixel: :math:`I \\mapsto I \\circ g^{-1}` restricted to the image plane, resampled
    bilinearly (zeros outside). Rotations by multiples of 90 degrees are exact pixel permutations.
``"nodes"`` / ``"node_index"``
    for :class:`~equiv.groups.Permutations`: tensors with the node axis, and integer tensors whose
    values are node indices.
``None``
    untouched (invariant scalars, masks, charges, labels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from equiv.so3 import CartesianTensor

from ._reps import Rep, _is_irreps, as_rep

__all__ = ["Group", "OrbitGrid", "INPUT_KINDS"]

#: the string kinds :meth:`Group.act` understands (plus irreps strings, ``Irreps``, ``Rep`` and ``None``)
INPUT_KINDS = ("cartesian_points", "cartesian_vectors", "image", "nodes", "node_index")


@dataclass
class OrbitGrid:
    """A grid of group elements to evaluate a model on (see :meth:`Group.orbit`).

    Attributes
    ----------
    elements : Tensor ``(G, d, d)``
        the group elements, flattened in C order from ``shape``.
    coords : dict[str, Tensor]
        plotting coordinates per element, e.g. ``{"angle": (G,)}`` for SO(2) or
        ``{"alpha": (G,), "beta": (G,), "gamma": (G,)}`` for SO(3).
    shape : tuple[int, ...]
        the grid's structure (``G = prod(shape)``), e.g. ``(n_beta, n_alpha, n_gamma)``.
    layout : str
        ``"circle"`` (one periodic parameter), ``"sphere"``, ``"plane"``, ``"line"`` or ``"cube"``.
    weights : Tensor ``(G,)``
        quadrature weights summing to 1: the weighted mean over the grid approximates the average over
        the (compact part of the) group.

    Examples
    --------
    >>> from equiv.groups import SO2
    >>> grid = SO2("z").orbit(8)
    >>> len(grid), grid.shape, grid.layout, grid.elements.shape, grid.coords["angle"].shape
    (8, (8,), 'circle', torch.Size([8, 3, 3]), torch.Size([8]))
    >>> mean = torch.einsum("g,gij->ij", grid.weights, grid.elements)  # average rotation about z
    >>> torch.allclose(mean, torch.diag(torch.tensor([0.0, 0.0, 1.0])), atol=1e-6)
    True
    """

    elements: torch.Tensor
    coords: dict[str, torch.Tensor]
    shape: tuple[int, ...]
    layout: str
    weights: torch.Tensor
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.elements.shape[0]


class Group:
    """Base class of the groups in :mod:`equiv.groups` (see the module docstring).

    Subclasses set ``name`` and ``d`` and implement :meth:`sample`, :meth:`orbit`,
    :meth:`discrete_generators`, :meth:`lie_generators` and :meth:`contains`.

    Examples
    --------
    Generic code through a concrete group (here O(3), from :func:`equiv.groups.get_group`):

    >>> from equiv.groups import get_group
    >>> G = get_group("o3")
    >>> g = G.sample(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> G, g.shape, bool(G.contains(g).all())
    (O(3), torch.Size([2, 3, 3]), True)
    >>> torch.allclose(G.compose(g, G.inverse(g)), G.identity(2, dtype=torch.float64))
    True
    >>> x = torch.randn(2, 3, dtype=torch.float64)  # one vector per element of the batch
    >>> torch.allclose(G.act(g, x, "1o"), G.act(g, x, "cartesian_vectors"))  # 1o is (x, y, z)
    True
    """

    name: str = "group"
    #: size of the defining representation (element matrices are d x d)
    d: int = 3
    #: True for groups written as homogeneous 4 x 4 matrices (a linear part and a translation)
    homogeneous: bool = False

    # elements ----------------------------------------------------------------------------------
    def sample(self, n: int = 1, *, generator=None, dtype=None, device=None) -> torch.Tensor:
        """``n`` random elements ``(n, d, d)`` (Haar measure for compact groups)."""
        raise NotImplementedError

    def identity(self, n: int = 1, *, dtype=None, device=None) -> torch.Tensor:
        """``n`` copies of the identity, ``(n, d, d)``."""
        dtype = dtype or torch.get_default_dtype()
        return torch.eye(self.d, dtype=dtype, device=device).expand(n, self.d, self.d).clone()

    def compose(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a`` after ``b``: the matrix product ``a @ b``."""
        return a @ b

    def inverse(self, g: torch.Tensor) -> torch.Tensor:
        """The inverse element(s); exact transposes for orthogonal groups."""
        return torch.linalg.inv(g)

    def contains(self, g: torch.Tensor, atol: float = 1e-6) -> torch.Tensor:
        """Boolean ``(...)``: whether each ``g`` belongs to the group (up to ``atol``)."""
        raise NotImplementedError

    # Lie theory, for projectors ----------------------------------------------------------------
    def discrete_generators(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Finite generators ``(k, d, d)``: together with :meth:`lie_generators` they generate the group."""
        return torch.zeros(0, self.d, self.d, dtype=dtype, device=device)

    def lie_generators(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """A basis ``(m, d, d)`` of the Lie algebra (generators of the identity component)."""
        return torch.zeros(0, self.d, self.d, dtype=dtype, device=device)

    def rep_generators(self, rep, dtype=torch.float64, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Generators in the representation ``rep``: ``(rho(h) for h in discrete, d rho(A) for A in lie)``.

        Returns two tensors of shapes ``(k, dim, dim)`` and ``(m, dim, dim)``. A matrix ``W`` is
        equivariant from ``rep_in`` to ``rep_out`` iff
        :math:`\\rho_{out}(h) W = W \\rho_{in}(h)` for every finite generator and
        :math:`d\\rho_{out}(A) W = W d\\rho_{in}(A)` for every Lie-algebra generator.
        """
        rep = as_rep(rep)
        disc = self.discrete_generators(dtype, device)
        lie = self.lie_generators(dtype, device)
        lin = self._linear_part
        D = rep.matrix(lin(disc)) if len(disc) else torch.zeros(0, rep.dim, rep.dim, dtype=dtype, device=device)
        if len(lie):
            L = torch.stack([rep.lie(lin(A[None])[0]) for A in lie])
        else:
            L = torch.zeros(0, rep.dim, rep.dim, dtype=dtype, device=device)
        return D, L

    # orbits ------------------------------------------------------------------------------------
    def orbit(self, num_points: int, **kwargs) -> OrbitGrid:
        """A regular grid of ``about num_points`` elements covering the group (or a window of it)."""
        raise NotImplementedError

    # action ------------------------------------------------------------------------------------
    def _linear_part(self, g: torch.Tensor) -> torch.Tensor:
        return g[..., :3, :3] if self.homogeneous else g

    def _translation_part(self, g: torch.Tensor) -> torch.Tensor | None:
        return g[..., :3, 3] if self.homogeneous else None

    def act(self, g: torch.Tensor, x: torch.Tensor, kind) -> torch.Tensor:
        """Apply ``g`` to ``x`` of the given ``kind`` (see the module docstring).

        Parameters
        ----------
        g : Tensor ``(d, d)`` or ``(B, d, d)``
            one element (applied to all of ``x``) or one per entry of ``x``'s leading axis.
        x : Tensor
        kind : str, Irreps, Rep or None

        >>> import torch
        >>> from equiv.groups import SO2
        >>> R = SO2("z").element(torch.tensor(math.pi / 2))
        >>> SO2("z").act(R, torch.tensor([1.0, 0.0, 0.0]), "cartesian_points").round(decimals=6)
        tensor([0., 1., 0.])
        """
        if kind is None:
            return x
        if not isinstance(g, torch.Tensor) or g.shape[-2:] != (self.d, self.d) or g.ndim not in (2, 3):
            shape = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
            raise ValueError(f"{self.name}.act: g has shape {shape}; expected ({self.d}, {self.d}) or (B, {self.d}, {self.d})")
        if g.ndim == 3 and (x.ndim == 0 or g.shape[0] != x.shape[0]):
            raise ValueError(
                f"{self.name}.act: a batch of {g.shape[0]} elements needs x with leading axis {g.shape[0]}, "
                f"got x of shape {tuple(x.shape)}"
            )
        g = g.to(dtype=x.dtype) if x.is_floating_point() else g
        if kind == "image":
            return _act_image(self, g, x)
        if isinstance(kind, str) and kind in ("nodes", "node_index"):
            raise ValueError(f"{self.name}.act: kind={kind!r} is only defined for Permutations")
        L = self._linear_part(g)
        if kind in ("cartesian_points", "cartesian_vectors"):
            _check_last(x, 3, kind)
            y = _apply_matrix(L, x)
            t = self._translation_part(g)
            if kind == "cartesian_points" and t is not None:
                y = y + (t if g.ndim == 2 else t.reshape(t.shape[0], *([1] * (x.ndim - 2)), 3))
            return y
        if isinstance(kind, CartesianTensor):  # (..., 3, ..., 3): T -> L^{(x) n} T, index by index
            n = len(kind.indices)
            if x.ndim < n + (g.ndim == 3) or x.shape[x.ndim - n:] != (3,) * n:
                raise ValueError(f"{self.name}.act: CartesianTensor({kind.formula!r}) needs x of shape "
                                 f"(..., {', '.join(['3'] * n)}), got {tuple(x.shape)}")
            for axis in range(x.ndim - n, x.ndim):
                x = torch.movedim(_apply_matrix(L, torch.movedim(x, axis, -1)), -1, axis)
            return x
        if isinstance(kind, (Rep, str)) or _is_irreps(kind):
            try:
                rep = as_rep(kind)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"{self.name}.act: kind={kind!r} is neither one of {INPUT_KINDS}, None, nor a representation ({exc})"
                ) from exc
            _check_last(x, rep.dim, f"kind={kind!r}")
            return _apply_matrix(rep.matrix(L), x)
        raise TypeError(f"{self.name}.act: kind={kind!r} of type {type(kind).__name__}; expected one of {INPUT_KINDS}, None, irreps or Rep")

    def __repr__(self) -> str:
        return self.name


def _check_last(x: torch.Tensor, n: int, what: str) -> None:
    if x.ndim == 0 or x.shape[-1] != n:
        raise ValueError(f"input of {what} has shape {tuple(x.shape)}: expected last axis of size {n}")


def _apply_matrix(M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``M @ x`` on the last axis; ``M`` is ``(n, n)`` or ``(B, n, n)`` aligned with x's leading axis."""
    if M.ndim == 2:
        return x @ M.transpose(-1, -2)
    shape = x.shape
    xf = x.reshape(shape[0], -1, shape[-1])
    return (xf @ M.transpose(-1, -2)).reshape(shape)


def _act_image(group: Group, g: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Resample images ``(..., H, W)`` so that the content moves by ``g`` (pixel units, y up)."""
    if x.ndim < 2 or not x.is_floating_point():
        raise ValueError(f"{group.name}.act: an image must be a float tensor (..., H, W), got {tuple(x.shape)} {x.dtype}")
    L = group._linear_part(g)
    t = group._translation_part(g)
    off_plane = torch.cat([L[..., :2, 2].reshape(-1), L[..., 2, :2].reshape(-1)])
    if off_plane.numel() and off_plane.abs().max() > 1e-6 or (t is not None and t[..., 2].abs().max() > 1e-6):
        raise ValueError(f"{group.name}.act: kind='image' needs elements that map the image (x, y) plane to itself")
    H, W = x.shape[-2], x.shape[-1]
    A = L[..., :2, :2]
    tt = t[..., :2] if t is not None else torch.zeros(*A.shape[:-2], 2, dtype=A.dtype, device=A.device)
    # pixel coordinates (y up) -> affine_grid's normalised coordinates (y down, [-1, 1] over W/H pixels)
    S = torch.diag(torch.tensor([2.0 / W, -2.0 / H], dtype=A.dtype, device=A.device))
    Sinv = torch.diag(torch.tensor([W / 2.0, -H / 2.0], dtype=A.dtype, device=A.device))
    Ainv = torch.linalg.inv(A)
    # output pixel p samples the input at g^{-1} p = A^{-1} (p - t)
    M = S @ Ainv @ Sinv
    c = -(S @ (Ainv @ tt.unsqueeze(-1))).squeeze(-1)
    theta = torch.cat([M, c.unsqueeze(-1)], dim=-1)  # (..., 2, 3)
    lead = x.shape[:-2]
    if g.ndim == 2:
        imgs = x.reshape(1, -1, H, W)
        theta = theta.unsqueeze(0)
    else:
        imgs = x.reshape(x.shape[0], -1, H, W)
    grid = F.affine_grid(theta, list(imgs.shape), align_corners=False)
    out = F.grid_sample(imgs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(*lead, H, W)


def _uniform_angles(n: int, dtype, device) -> torch.Tensor:
    return torch.arange(n, dtype=dtype, device=device) * (2 * math.pi / n)
