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

__all__ = ["CartesianTensor", "ReducedTensorProducts"]

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


def _apply_each(mats, V: np.ndarray) -> np.ndarray:
    r""":math:`M_1 \otimes \dots \otimes M_n` applied to the columns of ``V (prod d_k, k)``."""
    dims = [m.shape[1] for m in mats]
    T = V.reshape(tuple(dims) + (V.shape[1],))
    for axis, M in enumerate(mats):
        T = np.moveaxis(np.tensordot(M, T, axes=([1], [axis])), 0, axis)
    return T.reshape(-1, V.shape[1])


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


_ROTATIONS = ((0.7, 1.1, -0.4), (-1.3, 0.5, 2.2))


def _reduce(name: str, n: int, relations, reps) -> tuple[Irreps, np.ndarray]:
    """Change of basis of the tensors with index symmetries ``relations`` whose index ``k`` carries the
    representation ``reps[k] = (D(R) -> matrix, generators (3, d, d), parity vector (d,))``; returns the
    irreps (sorted) and ``Q (dim, d_1 * ... * d_n)`` with orthonormal rows (module docstring)."""
    dims = [len(rep[2]) for rep in reps]
    N = int(np.prod(dims))
    # (1) projector onto the tensors allowed by the index symmetries
    eye = np.eye(N).reshape((N,) + tuple(dims))
    P = np.zeros((N, N))
    group = _group(n, relations)
    for perm, sign in group:
        P += sign * np.transpose(eye, (0,) + tuple(1 + p for p in perm)).reshape(N, N)
    P /= len(group)
    w, v = np.linalg.eigh((P + P.T) / 2)
    B = v[:, w > 0.5]  # (N, d), orthonormal
    parity = np.ones(1)
    for rep in reps:
        parity = np.kron(parity, rep[2])
    Rs = [angles_to_matrix(*(torch.tensor(a, dtype=torch.float64) for a in angles)).numpy() for angles in _ROTATIONS]
    found = []  # (l, p, rows (r, N))
    for p in (1, -1):  # parity sectors (inversion commutes with rotations and with the index permutations)
        w, u = np.linalg.eigh(B.T @ (parity[:, None] * B))
        S = B @ u[:, w * p > 0.5]
        if S.shape[1] == 0:
            continue
        # (2) Casimir on the sector: isotypic components
        casimir = np.zeros((S.shape[1],) * 2)
        for a in range(3):
            G = np.zeros_like(S)
            for axis in range(n):  # Lie algebra action: sum over the tensor factors
                mats = [np.eye(d) for d in dims]
                mats[axis] = reps[axis][1][a]
                G += _apply_each(mats, S)
            A = S.T @ G
            casimir -= A @ A
        lam, vecs = np.linalg.eigh((casimir + casimir.T) / 2)
        degrees = np.rint((-1 + np.sqrt(1 + 4 * np.clip(lam, 0, None))) / 2).astype(int)
        if np.abs(degrees * (degrees + 1) - lam).max() > 1e-6:
            raise RuntimeError(f"{name}: Casimir eigenvalues are not l(l+1)")
        # (3) intertwiners with e3nn's D^l, from two generic rotations
        for l in sorted(set(degrees.tolist())):
            r = 2 * l + 1
            V = S @ vecs[:, degrees == l]  # (N, k)
            k = V.shape[1]
            eqs = []
            for R in Rs:
                A = V.T @ _apply_each([rep[0](R) for rep in reps], V)  # (k, k): the action on the component
                D = wigner_D_from_matrix(l, torch.as_tensor(R)).numpy()
                eqs.append(np.kron(np.eye(r), A.T) - np.kron(D, np.eye(k)))  # on row-major vec(U), U (r, k)
            _, sv, vt = np.linalg.svd(np.concatenate(eqs, 0))
            mult = k // r
            if sv[-mult] > 1e-8 or (len(sv) > mult and sv[-mult - 1] < 1e-6):
                raise RuntimeError(f"{name}: no clean intertwiner space for l={l}")
            # (4) canonical, orthonormal copies in the tensors' own coordinates: Q_i (r, N)
            qs = np.stack([x.reshape(r, k) @ V.T for x in vt[-mult:]])
            qs = _rref(qs.reshape(mult, -1)).reshape(mult, r, N)
            done = []
            for q in qs:
                for d in done:
                    q = q - np.sum(q * d) * d
                q = q / np.sqrt(np.sum(q * q) / r)  # q q^T = I_r (Schur)
                q = q * np.sign(q[0][np.abs(q[0]) > _TOL][0])
                done.append(q / np.sqrt(r))
                found.append((l, p, q))
    found.sort(key=lambda f: (f[0], f[1]))  # e3nn's irrep order: by l, then o before e
    irreps = Irreps([(1, Irrep(l, p)) for l, p, _ in found]).simplify()
    return irreps, np.concatenate([q for _, _, q in found], 0)


def _levi_civita() -> np.ndarray:
    eps = np.zeros((3, 3, 3))
    for a, b, c in itertools.permutations(range(3)):
        eps[a, b, c] = np.linalg.det(np.eye(3)[[a, b, c]])
    return eps


@functools.lru_cache(maxsize=None)
def _change_of_basis(formula: str) -> tuple[Irreps, np.ndarray]:
    indices, relations = _parse(formula)
    n = len(indices)
    if n > 6:
        raise ValueError(f"CartesianTensor: at most 6 indices are supported, got {n} in {formula!r}")
    cartesian = (lambda R: R, -_levi_civita(), -np.ones(3))  # every index a polar vector
    irreps, Q = _reduce(f"CartesianTensor({formula!r})", n, relations, [cartesian] * n)
    return irreps, Q.reshape((-1,) + (3,) * n)


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


def _irreps_rep(irreps: Irreps):
    """(D(R), generators, parity vector) of ``irreps`` in e3nn's basis, for `_reduce`."""
    from ._wigner import so3_generators

    gens = np.zeros((3, irreps.dim, irreps.dim))
    parity = np.zeros(irreps.dim)
    start = 0
    for mul, ir in irreps:
        g = so3_generators(ir.l)
        for _ in range(mul):
            sl = slice(start, start + ir.dim)
            gens[:, sl, sl] = g
            parity[sl] = ir.p
            start += ir.dim
    return (lambda R: irreps.D_from_matrix(torch.as_tensor(R)).numpy(), gens, parity)


@functools.lru_cache(maxsize=None)
def _reduced(formula: str, index_irreps: tuple) -> tuple[Irreps, np.ndarray]:
    indices, relations = _parse(formula)
    n = len(indices)
    reps = dict(index_irreps)
    dims = int(np.prod([reps[c].dim for c in indices]))
    if dims > 4096:
        raise ValueError(f"ReducedTensorProducts: the tensor space has {dims} dimensions; at most 4096 are supported")
    irreps, Q = _reduce(f"ReducedTensorProducts({formula!r})", n, relations, [_irreps_rep(reps[c]) for c in indices])
    return irreps, Q.reshape((-1,) + tuple(reps[c].dim for c in indices))


class ReducedTensorProducts(torch.nn.Module):
    r"""The tensor product of several irreps features with index symmetries, reduced to irreps
    (e3nn's ``ReducedTensorProducts``).

    ``ReducedTensorProducts("ij=ji", i="1o")`` maps two vectors to the irreps ``0e + 2e`` of their
    symmetrised product, ``ReducedTensorProducts("ijk=jik", i="0e + 1o", k="1e")`` three features to
    ``0o + 1o + 3x1e + 2o + 2e + 3e``. Each index carries an irreps (an index tied to another by
    the formula inherits it); the formula's symmetries apply to the product
    :math:`x_i \otimes x_j \otimes \dots`, and the change of basis ``Q``
    (``(irreps_out.dim, d_i, d_j, ...)``, orthonormal rows) is built as for `CartesianTensor`
    (projector, parity sectors, Casimir, intertwiners; module docstring), so the output irreps and,
    degree by degree, the spanned spaces are e3nn's, with the canonical basis of this module.

    Parameters
    ----------
    formula : str
        As `CartesianTensor` (``"ij"``, ``"ij=ji"``, ``"ijk=-jik"``, ...).
    filter_ir_out : list of Irrep or str, optional
        Keep only these output irreps.
    **irreps
        The irreps of each index letter, e.g. ``i="1o"``.

    Shapes: ``forward(x_i, x_j, ...)`` with ``x_k (..., d_k)`` → ``(..., irreps_out.dim)``.

    Examples
    --------
    >>> import torch
    >>> rtp = ReducedTensorProducts("ij=ji", i="1o")
    >>> rtp.irreps_out, tuple(rtp.change_of_basis.shape)
    (1x0e+1x2e, (6, 3, 3))
    >>> v = torch.randn(5, 3)
    >>> rtp(v, v).shape
    torch.Size([5, 6])
    """

    def __init__(self, formula: str, filter_ir_out=None, **irreps) -> None:
        super().__init__()
        indices, relations = _parse(formula)
        given = {}
        for c, irr in irreps.items():
            if c not in indices:
                raise ValueError(f"ReducedTensorProducts: index {c!r} is not in the formula {formula!r}")
            given[c] = Irreps(irr)
        # indices tied by a relation share their irreps
        changed = True
        while changed:
            changed = False
            for perm, _ in relations:
                for a, b in enumerate(perm):
                    ca, cb = indices[a], indices[b]
                    if ca in given and cb in given and given[ca] != given[cb]:
                        raise ValueError(f"ReducedTensorProducts: indices {ca!r} and {cb!r} are exchanged by the "
                                         f"formula but have different irreps ({given[ca]} and {given[cb]})")
                    for x, y in ((ca, cb), (cb, ca)):
                        if x in given and y not in given:
                            given[y] = given[x]
                            changed = True
        missing = [c for c in indices if c not in given]
        if missing:
            raise ValueError(f"ReducedTensorProducts: no irreps for index {missing[0]!r} (e.g. {missing[0]}='1o')")
        irreps_out, Q = _reduced(formula, tuple(sorted((c, given[c]) for c in indices)))
        Q = torch.as_tensor(Q)
        if filter_ir_out is not None:
            keep_ir = {Irrep(ir) for ir in (filter_ir_out if not isinstance(filter_ir_out, str)
                                            else [ir for _, ir in Irreps(filter_ir_out)])}
            rows, kept = [], []
            for (mul, ir), sl in zip(irreps_out, irreps_out.slices()):
                if ir in keep_ir:
                    rows.extend(range(sl.start, sl.stop))
                    kept.append((mul, ir))
            Q, irreps_out = Q[rows], Irreps(kept)
        self.formula, self.indices = formula, indices
        self.irreps_in = [given[c] for c in indices]
        self.irreps_out = irreps_out
        # float64 (exact); forward casts it to the inputs' dtype
        self.register_buffer("change_of_basis", Q.to(torch.float64))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        if len(xs) != len(self.indices):
            raise ValueError(f"ReducedTensorProducts({self.formula!r}): expected {len(self.indices)} inputs, got {len(xs)}")
        if any(x.dtype != xs[0].dtype for x in xs) or not xs[0].is_floating_point():
            raise ValueError(f"ReducedTensorProducts: expected floating-point inputs of one dtype, got "
                             f"{[str(x.dtype) for x in xs]}")
        for x, irr, c in zip(xs, self.irreps_in, self.indices):
            if x.shape[-1] != irr.dim:
                raise ValueError(f"ReducedTensorProducts: input {c!r} must have last dimension {irr.dim} ({irr}), "
                                 f"got {tuple(x.shape)}")
        out = self.change_of_basis.to(xs[0].dtype).flatten(1)  # (dim_out, prod d)
        batch = torch.broadcast_shapes(*(x.shape[:-1] for x in xs))
        t = xs[0].expand(batch + xs[0].shape[-1:])
        for x in xs[1:]:  # outer product, built one index at a time: (..., d_1 d_2 ...)
            t = (t[..., :, None] * x.expand(batch + x.shape[-1:])[..., None, :]).flatten(-2)
        return t @ out.T

    def extra_repr(self) -> str:
        ins = ", ".join(f"{c}={irr}" for c, irr in zip(self.indices, self.irreps_in))
        return f"{self.formula!r}, {ins} -> {self.irreps_out}"
