r"""Cartesian tensors with index symmetries as irreps (e3nn's ``CartesianTensor``).

A rank-:math:`n` Cartesian tensor :math:`T_{i_1 \dots i_n}` (each index a polar vector) transforms as
:math:`T \mapsto R^{\otimes n} T`. Under :math:`O(3)` this representation splits into irreps of
degree :math:`l \le n` and parity :math:`(-1)^n`; index symmetries (``"ij=ji"``: symmetric,
``"ij=-ji"``: antisymmetric, ``"ijkl=jikl=ijlk=klij"``: elasticity) select a subspace and so fewer
irreps. `CartesianTensor` computes an orthogonal change of basis :math:`Q` (``(dim, 3, ..., 3)``) with

.. math::

    x = Q \cdot T \ (\text{irreps features}), \qquad T = Q^\top x, \qquad
    Q\, R^{\otimes n} = D(R)\, Q \quad \forall R \in O(3),

:math:`D` the block-diagonal representation of the irreps (e3nn's basis). Examples: a symmetric
matrix (stress, polarisability) is ``0e + 2e`` (trace and traceless part), a general matrix
``0e + 1e + 2e``, the elasticity tensor ``2x0e + 2x2e + 1x4e`` (21 components).

**Construction** (numerical, exact to rounding, cached per formula). (1) The signed permutations of
the formula generate a group; its average is the orthogonal projector onto the allowed tensors.
(2) On that subspace the Casimir operator :math:`-\sum_a A_a^2` of the Lie algebra action
(:math:`A_a` from :math:`(L_a)_{jk} = -\epsilon_{ajk}`) has eigenvalue :math:`l(l+1)` exactly on the
copies of degree :math:`l`. (3) In each eigenspace the intertwiners with e3nn's :math:`D^l` solve
:math:`U A(R) = D^l(R)\, U` for two generic rotations (a null space, of dimension the multiplicity).
(4) The copies are made canonical and orthonormal: reduced row-echelon form of the intertwiners
written in Cartesian coordinates (so the result does not depend on the eigensolver's basis), then
Gram–Schmidt. A degree that appears once is thus unique up to sign, and the sign makes the first
non-zero entry of its :math:`m = -l` row positive.

**Against e3nn 0.4.4** (``e3nn.io.CartesianTensor``, tested for ten formulas up to rank 5): the same
irreps in the same order, and for every degree the same subspace of Cartesian tensors (equal
projectors :math:`Q_l^\top Q_l`). e3nn's basis comes from chains of Clebsch–Gordan couplings, ours
from the canonical form above, so a degree that appears once has e3nn's basis up to its sign (the
same sign for ``"ij"``, ``"ij=ji"``, ``"ij=-ji"``; opposite for, e.g., the ``3o`` part of ``"ijk"``),
and copies of a repeated degree may be mixed differently. Features converted by one library should
be converted back by the same one.
"""

from __future__ import annotations

import functools
import itertools
import re

import numpy as np
import torch

from ._irreps import Irrep, Irreps
from ._rotation import angles_to_matrix
from ._wigner import wigner_D_from_matrix

__all__ = ["CartesianTensor"]

_TOL = 1e-9


def _parse(formula: str) -> tuple[str, list[tuple[tuple[int, ...], int]]]:
    """``"ij=-ji"`` -> (``"ij"``, [(permutation, sign)]): ``T[indices] = sign * T[permuted]``."""
    if not isinstance(formula, str) or not re.fullmatch(r"\s*[a-zA-Z]+\s*(=\s*-?\s*[a-zA-Z]+\s*)*", formula):
        raise ValueError(f"CartesianTensor: formula must look like 'ij' or 'ij=ji' or 'ij=-ji', got {formula!r}")
    terms = [t.replace(" ", "") for t in formula.split("=")]
    indices = terms[0]
    if len(set(indices)) != len(indices):
        raise ValueError(f"CartesianTensor: repeated index in {indices!r} (traces are not tensors of this kind)")
    relations = []
    for term in terms[1:]:
        sign = -1 if term.startswith("-") else 1
        term = term.lstrip("-")
        if sorted(term) != sorted(indices):
            raise ValueError(f"CartesianTensor: {term!r} is not a permutation of {indices!r} in {formula!r}")
        relations.append((tuple(indices.index(c) for c in term), sign))
    return indices, relations


def _group(n: int, relations) -> list[tuple[tuple[int, ...], int]]:
    """Closure of the signed permutations (composition), identity included."""
    identity = tuple(range(n))
    elements = {identity: 1}
    frontier = [identity]
    gens = relations
    while frontier:
        new = []
        for p in frontier:
            for q, s in gens:
                r = tuple(p[i] for i in q)
                sign = elements[p] * s
                if r in elements:
                    if elements[r] != sign:
                        raise ValueError("CartesianTensor: the formula forces the tensor to zero "
                                         f"(a permutation maps it to both T and -T)")
                    continue
                elements[r] = sign
                new.append(r)
        frontier = new
    return list(elements.items())


def _tensor_power(R: np.ndarray, V: np.ndarray, n: int) -> np.ndarray:
    """:math:`R^{\\otimes n}` applied to the columns of ``V (3^n, k)``."""
    k = V.shape[1]
    T = V.reshape((3,) * n + (k,))
    for axis in range(n):
        T = np.moveaxis(np.tensordot(R, T, axes=([1], [axis])), 0, axis)
    return T.reshape(3**n, k)


def _rref(rows: np.ndarray) -> np.ndarray:
    """Reduced row-echelon form of a full-rank ``(m, N)`` matrix (pivots where |value| > tolerance)."""
    A = rows.copy()
    m = A.shape[0]
    r = 0
    scale = np.abs(A).max()
    for col in range(A.shape[1]):
        if r == m:
            break
        piv = r + int(np.argmax(np.abs(A[r:, col])))
        if abs(A[piv, col]) <= 1e-7 * scale:
            continue
        A[[r, piv]] = A[[piv, r]]
        A[r] /= A[r, col]
        for i in range(m):
            if i != r:
                A[i] -= A[i, col] * A[r]
        r += 1
    return A


@functools.lru_cache(maxsize=None)
def _change_of_basis(formula: str) -> tuple[Irreps, np.ndarray]:
    indices, relations = _parse(formula)
    n = len(indices)
    if n > 6:
        raise ValueError(f"CartesianTensor: at most 6 indices are supported, got {n} in {formula!r}")
    N = 3**n
    # (1) projector onto the tensors allowed by the index symmetries
    eye = np.eye(N).reshape((N,) + (3,) * n)
    P = np.zeros((N, N))
    group = _group(n, relations)
    for perm, sign in group:
        P += sign * np.transpose(eye, (0,) + tuple(1 + p for p in perm)).reshape(N, N)
    P /= len(group)
    w, v = np.linalg.eigh((P + P.T) / 2)
    B = v[:, w > 0.5]  # (N, d), orthonormal
    # (2) Casimir on the subspace: isotypic components
    eps = np.zeros((3, 3, 3))
    for a, b, c in itertools.permutations(range(3)):
        eps[a, b, c] = np.linalg.det(np.eye(3)[[a, b, c]])
    casimir = np.zeros((B.shape[1],) * 2)
    for a in range(3):
        L = -eps[a]
        G = np.zeros((N, B.shape[1]))
        for axis in range(n):  # Lie algebra action: sum over the tensor factors
            T = B.reshape((3,) * n + (-1,))
            G += np.moveaxis(np.tensordot(L, T, axes=([1], [axis])), 0, axis).reshape(N, -1)
        A = B.T @ G
        casimir -= A @ A
    lam, vecs = np.linalg.eigh((casimir + casimir.T) / 2)
    degrees = np.rint((-1 + np.sqrt(1 + 4 * np.clip(lam, 0, None))) / 2).astype(int)
    if np.abs(degrees * (degrees + 1) - lam).max() > 1e-6:
        raise RuntimeError("CartesianTensor: Casimir eigenvalues are not l(l+1)")
    # (3) intertwiners with e3nn's D^l, from two generic rotations
    Rs = [angles_to_matrix(*(torch.tensor(a, dtype=torch.float64) for a in angles)).numpy()
          for angles in ((0.7, 1.1, -0.4), (-1.3, 0.5, 2.2))]
    parity = (-1) ** n
    blocks, irreps = [], []
    for l in sorted(set(degrees.tolist())):
        r = 2 * l + 1
        V = B @ vecs[:, degrees == l]  # (N, k) in Cartesian coordinates
        k = V.shape[1]
        eqs = []
        for R in Rs:
            A = V.T @ _tensor_power(R, V, n)  # (k, k): the action on the component
            D = wigner_D_from_matrix(l, torch.as_tensor(R)).numpy()
            eqs.append(np.kron(np.eye(r), A.T) - np.kron(D, np.eye(k)))  # on row-major vec(U), U (r, k)
        _, s, vt = np.linalg.svd(np.concatenate(eqs, 0))
        mult = k // r
        null = vt[-mult:]
        if s[-mult] > 1e-8 or (len(s) > mult and s[-mult - 1] < 1e-6):
            raise RuntimeError(f"CartesianTensor: no clean intertwiner space for l={l} in {formula!r}")
        # (4) canonical, orthonormal copies, in Cartesian coordinates: Q_i (r, N)
        qs = np.stack([u.reshape(r, k) @ V.T for u in null])  # (mult, r, N)
        qs = _rref(qs.reshape(mult, -1)).reshape(mult, r, N)
        done = []
        for q in qs:
            for p in done:
                q = q - np.sum(q * p) * p
            q = q / np.sqrt(np.sum(q * q) / r)  # q q^T = I_r (Schur)
            first = q[0][np.abs(q[0]) > _TOL][0]
            q = q * np.sign(first)
            done.append(q / np.sqrt(r))  # Frobenius-normalised copy for the projections
            blocks.append(q)
        irreps.append((mult, Irrep(l, parity)))
    Q = np.concatenate(blocks, 0).reshape((-1,) + (3,) * n)
    return Irreps(irreps), Q


class CartesianTensor(Irreps):
    r"""The irreps of a Cartesian tensor with index symmetries, and the change of basis both ways.

    ``CartesianTensor("ij=ji")`` is the `Irreps` ``1x0e+1x2e`` of symmetric 3×3 matrices, with
    `from_cartesian` (``(..., 3, 3)`` → ``(..., 6)``) and `to_cartesian` (back). The formula names
    the indices, then equalities with permuted (``=ji``) or sign-flipped permuted (``=-ji``) copies;
    every index is a polar vector, so the parity is :math:`(-1)^n`. See the module docstring for the
    construction and the basis convention.

    Parameters
    ----------
    formula : str
        E.g. ``"ij"``, ``"ij=ji"``, ``"ij=-ji"``, ``"ijk=jik"``, ``"ijkl=jikl=ijlk=klij"``; up to 6 indices.

    Examples
    --------
    >>> import torch
    >>> stress = CartesianTensor("ij=ji")
    >>> stress, stress.dim
    (1x0e+1x2e, 6)
    >>> s = torch.tensor([[1.0, 2.0, 0.0], [2.0, 3.0, 0.0], [0.0, 0.0, 5.0]])
    >>> x = stress.from_cartesian(s)
    >>> round(float(x[0]) * 3**0.5, 4)             # the 0e part is trace / sqrt(3)
    9.0
    >>> torch.allclose(stress.to_cartesian(x), s, atol=1e-6)
    True
    >>> CartesianTensor("ijkl=jikl=ijlk=klij")       # elasticity: 21 independent components
    2x0e+2x2e+1x4e
    """

    def __new__(cls, formula: str):
        irreps, Q = _change_of_basis(formula)
        self = super().__new__(cls, list(irreps))  # a list: Irreps(Irreps) would return its argument
        self.formula = formula
        self.indices = _parse(formula)[0]
        self._Q = Q
        self._cache = {}
        return self

    def __getnewargs__(self):
        return (self.formula,)

    def change_of_basis(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """:math:`Q`, shape ``(dim, 3, ..., 3)`` (orthonormal rows), cached per dtype and device."""
        key = (dtype, torch.device(device) if device is not None else torch.device("cpu"))
        if key not in self._cache:
            self._cache[key] = torch.as_tensor(self._Q, dtype=dtype, device=key[1])
        return self._cache[key]

    def _check(self, data: torch.Tensor, tail: tuple, name: str) -> None:
        if not isinstance(data, torch.Tensor) or tuple(data.shape[len(data.shape) - len(tail):]) != tail \
                or data.dim() < len(tail):
            raise ValueError(f"CartesianTensor({self.formula!r}).{name}: expected shape (..., "
                             f"{', '.join(map(str, tail))}), got {tuple(getattr(data, 'shape', ()))}")
        if not data.dtype.is_floating_point:
            raise ValueError(f"CartesianTensor.{name}: expected a floating-point tensor, got {data.dtype}")

    def from_cartesian(self, data: torch.Tensor) -> torch.Tensor:
        r"""Irreps features :math:`x = Q \cdot T` of Cartesian tensors ``(..., 3, ..., 3)`` → ``(..., dim)``.

        The tensor is projected onto the allowed symmetries first (a non-symmetric input for
        ``"ij=ji"`` gives the features of its symmetric part)."""
        n = len(self.indices)
        self._check(data, (3,) * n, "from_cartesian")
        Q = self.change_of_basis(data.dtype, data.device)
        return data.flatten(-n) @ Q.reshape(self.dim, -1).T

    def to_cartesian(self, data: torch.Tensor) -> torch.Tensor:
        r"""Cartesian tensors :math:`T = Q^\top x` from irreps features ``(..., dim)`` → ``(..., 3, ..., 3)``."""
        self._check(data, (self.dim,), "to_cartesian")
        Q = self.change_of_basis(data.dtype, data.device)
        return (data @ Q.reshape(self.dim, -1)).unflatten(-1, (3,) * len(self.indices))
