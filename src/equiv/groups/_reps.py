"""Representations of matrix groups: how a group element acts on a feature vector.

A group in :mod:`equiv.groups` is a matrix group: each element is a ``(d, d)`` matrix ``Q`` in its
*defining* representation (``d = 3`` for rotations, reflections and scalings of space). A
:class:`Rep` turns ``Q`` into the ``(dim, dim)`` matrix :math:`\\rho(Q)` acting on features, and a
Lie-algebra element ``A`` (a ``(d, d)`` matrix) into :math:`d\\rho(A) = \\frac{d}{dt}\\rho(e^{tA})|_{t=0}`.
Both are what the soft-equivariance projector needs (:mod:`equiv.symmetry`).

A representation is a direct sum of *blocks* ``(mul, base)`` laid out one after the other, each the
``mul``-fold copy of a small base representation (e3nn's ``mul_ir`` layout: ``mul`` consecutive
copies of ``base``). Bases are

- :class:`TensorRep` -- Cartesian tensors of rank ``k``, :math:`\\rho(Q) = \\det(Q)^{s} Q^{\\otimes k}`
  (``s = 1`` for pseudo-tensors), row-major flattening: a rank-2 tensor ``M`` is ``M.reshape(9)`` and
  :math:`\\rho(Q)\\,\\mathrm{vec}(M) = \\mathrm{vec}(Q M Q^\\top)`;
- :class:`IrrepRep` -- one O(3) irrep of :mod:`equiv.so3` (e3nn basis: ``"1o"`` transforms exactly like a Cartesian ``(x, y, z)``).

>>> from equiv.groups import Rep, O3
>>> rep = Rep("5x0e + 5x1o")          # irreps string (e3nn syntax)
>>> rep.dim
20
>>> T = Rep.tensor(2)                 # Cartesian rank-2 tensor, 9 numbers
>>> (5 * Rep.scalar() + 5 * Rep.vector() + T).dim
29
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

__all__ = ["Rep", "TensorRep", "IrrepRep", "as_rep"]


class _Base:
    """A small representation used as a block of a :class:`Rep` (hashable, immutable)."""

    dim: int
    #: True when the base is the trivial representation of every supported group (gated as a scalar)
    is_scalar: bool = False

    def matrix(self, Q: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def lie(self, A: torch.Tensor) -> torch.Tensor:
        """:math:`d\\rho(A)` through the matrix logarithm: :math:`\\rho(e^{tA}) = e^{t\\,d\\rho(A)}`.

        Exact (to rounding) for ``t`` small enough that the logarithm is the principal one.
        """
        import scipy.linalg

        A64 = A.detach().to(torch.float64).cpu()
        scale = float(torch.linalg.matrix_norm(A64, ord=2)) or 1.0
        t = 0.25 / (scale * (1 + self._degree()))
        rho = self.matrix(torch.linalg.matrix_exp(t * A64)).numpy()
        L = scipy.linalg.logm(rho)
        return torch.as_tensor(np.real(L) / t, dtype=A.dtype, device=A.device)

    def _degree(self) -> int:
        return 1


@dataclass(frozen=True)
class TensorRep(_Base):
    """Cartesian tensors of rank ``rank`` over a ``d``-dimensional defining representation.

    .. math:: \\rho(Q) = \\det(Q)^{s}\\, Q^{\\otimes k}, \\qquad
              d\\rho(A) = s\\,\\mathrm{tr}(A)\\,I + \\sum_{i=1}^{k} I^{\\otimes (i-1)} \\otimes A \\otimes I^{\\otimes (k-i)}

    with ``s = 1`` for a pseudo-tensor (``pseudo=True``), else 0. Rank 0 is the scalar (trivial)
    representation; rank 1 is the defining representation (a polar vector).

    >>> import torch
    >>> Q = torch.tensor([[0., -1, 0], [1, 0, 0], [0, 0, 1]])
    >>> TensorRep(2).matrix(Q).shape
    torch.Size([9, 9])
    """

    rank: int
    pseudo: bool = False
    d: int = 3

    def __post_init__(self):
        if not isinstance(self.rank, int) or self.rank < 0:
            raise ValueError(f"rank={self.rank!r}: expected a non-negative integer")

    @property
    def dim(self) -> int:  # type: ignore[override]
        return self.d**self.rank

    @property
    def is_scalar(self) -> bool:  # type: ignore[override]
        return self.rank == 0 and not self.pseudo

    def _degree(self) -> int:
        return max(self.rank, 1)

    def matrix(self, Q: torch.Tensor) -> torch.Tensor:
        _check_square(Q, self.d, "Q")
        batch = Q.shape[:-2]
        out = torch.ones(*batch, 1, 1, dtype=Q.dtype, device=Q.device)
        for _ in range(self.rank):
            out = torch.einsum("...ab,...ij->...aibj", out, Q).reshape(
                *batch, out.shape[-2] * self.d, out.shape[-1] * self.d
            )
        if self.pseudo:
            out = out * torch.linalg.det(Q)[..., None, None]
        return out

    def lie(self, A: torch.Tensor) -> torch.Tensor:
        _check_square(A, self.d, "A")
        eye = torch.eye(self.d, dtype=A.dtype, device=A.device)
        out = torch.zeros(self.dim, self.dim, dtype=A.dtype, device=A.device)
        for i in range(self.rank):
            term = torch.ones(1, 1, dtype=A.dtype, device=A.device)
            for j in range(self.rank):
                term = torch.kron(term, A if j == i else eye)
            out = out + term
        if self.pseudo:
            out = out + torch.trace(A) * torch.eye(self.dim, dtype=A.dtype, device=A.device)
        return out

    def __str__(self) -> str:
        name = {0: "scalar", 1: "vector"}.get(self.rank, f"T{self.rank}")
        return ("pseudo" if self.pseudo else "") + name


@dataclass(frozen=True)
class IrrepRep(_Base):
    """One irreducible representation of O(3), in e3nn's real basis (via :mod:`equiv.so3`).

    ``D(Q)`` for an improper ``Q`` (``det Q = -1``) includes the parity ``p``. Defined only for
    orthogonal 3x3 ``Q`` (rotation and reflection groups; not for scalings).

    Examples
    --------
    >>> rep = IrrepRep(1, -1)  # the vector irrep 1o
    >>> rep, str(rep), rep.dim, Rep("2x1o").blocks
    (IrrepRep(l=1, p=-1), '1o', 3, ((2, IrrepRep(l=1, p=-1)),))
    >>> from equiv.groups import SO3
    >>> Q = SO3().sample(1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[0]
    >>> torch.allclose(rep.matrix(Q), Q), torch.allclose(rep.matrix(-Q), -Q)  # 1o acts like (x, y, z)
    (True, True)
    >>> torch.allclose(IrrepRep(1, 1).matrix(-Q), Q)  # 1e (axial vector) ignores the inversion
    True
    """

    l: int
    p: int

    @property
    def dim(self) -> int:  # type: ignore[override]
        return 2 * self.l + 1

    @property
    def is_scalar(self) -> bool:  # type: ignore[override]
        return self.l == 0 and self.p == 1

    def _degree(self) -> int:
        return max(self.l, 1)

    def matrix(self, Q: torch.Tensor) -> torch.Tensor:
        _check_square(Q, 3, "Q")
        from equiv.so3 import Irrep

        eye = torch.eye(3, dtype=Q.dtype, device=Q.device)
        err = (Q @ Q.transpose(-1, -2) - eye).abs().amax() if Q.numel() else 0.0
        if err > 1e-4:
            raise ValueError(
                f"IrrepRep({self.l}, {self.p}).matrix: Q is not orthogonal (|QQ^T - I| = {float(err):.2g}); "
                "irreps are representations of O(3) only (use Rep.tensor(k) for scalings)"
            )
        return Irrep(self.l, self.p).D_from_matrix(Q)

    def lie(self, A: torch.Tensor) -> torch.Tensor:
        """:math:`d\\rho(A) = \\sum_a \\omega_a G_a` for antisymmetric ``A`` with axial vector :math:`\\omega`,
        ``G_a`` the irrep's generators (:func:`equiv.so3.so3_generators`, e3nn basis)."""
        _check_square(A, 3, "A")
        if (A + A.transpose(-1, -2)).abs().max() > 1e-9 * max(1.0, float(A.abs().max())):
            raise ValueError(f"IrrepRep({self.l}, {self.p}).lie: A is not antisymmetric; irreps are O(3) representations only")
        omega = torch.stack([A[2, 1], A[0, 2], A[1, 0]])
        return torch.einsum("a,aij->ij", omega, _irrep_generators(self.l).to(dtype=A.dtype, device=A.device))

    def __str__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"


@lru_cache(maxsize=64)
def _irrep_generators(l: int) -> torch.Tensor:
    from equiv.so3 import so3_generators

    return torch.as_tensor(so3_generators(l), dtype=torch.float64)


def _check_square(M: torch.Tensor, d: int, name: str) -> None:
    if not isinstance(M, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(M).__name__}")
    if M.ndim < 2 or M.shape[-2:] != (d, d):
        raise ValueError(f"{name} has shape {tuple(M.shape)}: expected (..., {d}, {d})")


class Rep:
    """A representation as a direct sum of blocks ``mul x base`` (laid out in order).

    Parameters
    ----------
    spec : str, Rep, Irreps, or list of (mul, base)
        An irreps string (``"5x0e + 5x1o"``), an :class:`equiv.so3.Irreps`, another :class:`Rep`, or
        explicit blocks. Build Cartesian representations with :meth:`scalar`, :meth:`vector`,
        :meth:`tensor`, ``+`` and integer ``*``.

    Notes
    -----
    :meth:`matrix` returns the block-diagonal :math:`\\rho(Q)`; :meth:`lie` the block-diagonal
    :math:`d\\rho(A)`. The block structure is what makes the soft-equivariance projector cheap: the
    equivariant maps between ``m x A`` and ``n x B`` are ``Hom(A, B)`` tensored with all of
    :math:`\\mathbb{R}^{n \\times m}`.

    >>> Rep("2x1o").dim, str(3 * Rep.vector() + Rep.tensor(2))
    (6, '3xvector+1xT2')
    """

    def __init__(self, spec=()):
        if isinstance(spec, Rep):
            blocks = list(spec.blocks)
        elif isinstance(spec, _Base):
            blocks = [(1, spec)]
        elif isinstance(spec, str) or _is_irreps(spec):
            blocks = _parse_irreps(spec)
        elif isinstance(spec, (list, tuple)):
            blocks = []
            for item in spec:
                if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int) and isinstance(item[1], _Base)):
                    raise TypeError(f"Rep: block {item!r} is not a (mul: int, base) pair")
                if item[0] < 0:
                    raise ValueError(f"Rep: multiplicity {item[0]} must be >= 0")
                blocks.append(item)
        else:
            raise TypeError(
                f"Rep(spec): spec={spec!r} of type {type(spec).__name__}; expected an irreps string, "
                "Irreps, Rep or a list of (mul, base) blocks"
            )
        merged: list[tuple[int, _Base]] = []
        for mul, base in blocks:
            if mul == 0:
                continue
            if merged and merged[-1][1] == base:
                merged[-1] = (merged[-1][0] + mul, base)
            else:
                merged.append((mul, base))
        self.blocks: tuple[tuple[int, _Base], ...] = tuple(merged)

    # constructors ------------------------------------------------------------------------------
    @staticmethod
    def scalar() -> "Rep":
        """The trivial representation (one number)."""
        return Rep([(1, TensorRep(0))])

    @staticmethod
    def vector(pseudo: bool = False) -> "Rep":
        """A Cartesian 3-vector ``(x, y, z)`` (polar; ``pseudo=True`` for an axial vector)."""
        return Rep([(1, TensorRep(1, pseudo))])

    @staticmethod
    def tensor(rank: int, pseudo: bool = False) -> "Rep":
        """A Cartesian tensor of rank ``rank`` flattened row-major (``3**rank`` numbers)."""
        return Rep([(1, TensorRep(rank, pseudo))])

    # algebra -----------------------------------------------------------------------------------
    def __add__(self, other) -> "Rep":
        return Rep(list(self.blocks) + list(as_rep(other).blocks))

    def __radd__(self, other) -> "Rep":
        if other == 0:  # sum([...])
            return self
        return as_rep(other) + self

    def __mul__(self, n: int) -> "Rep":
        if not isinstance(n, int) or n < 0:
            raise TypeError(f"Rep * n: n={n!r}; expected a non-negative int")
        return Rep(list(self.blocks) * n)  # e3nn semantics: n copies of the whole sum, in order

    __rmul__ = __mul__

    def __eq__(self, other) -> bool:
        return isinstance(other, Rep) and self.blocks == other.blocks

    def __hash__(self) -> int:
        return hash(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)

    def __iter__(self):
        return iter(self.blocks)

    @property
    def dim(self) -> int:
        return sum(m * b.dim for m, b in self.blocks)

    def slices(self) -> list[slice]:
        """Slice of each block in the flat layout."""
        out, start = [], 0
        for m, b in self.blocks:
            out.append(slice(start, start + m * b.dim))
            start += m * b.dim
        return out

    @property
    def num_gates(self) -> int:
        """Number of non-scalar copies (one gate each in a gated nonlinearity)."""
        return sum(m for m, b in self.blocks if not b.is_scalar)

    # action ------------------------------------------------------------------------------------
    def matrix(self, Q: torch.Tensor) -> torch.Tensor:
        """:math:`\\rho(Q)`, shape ``(..., dim, dim)`` for ``Q`` of shape ``(..., d, d)``."""
        mats = []
        for m, b in self.blocks:
            D = b.matrix(Q)
            mats.extend([D] * m)
        return _block_diag(mats, Q)

    def lie(self, A: torch.Tensor) -> torch.Tensor:
        """:math:`d\\rho(A)`, shape ``(dim, dim)`` for a Lie-algebra element ``A`` of shape ``(d, d)``."""
        if A.ndim != 2:
            raise ValueError(f"A has shape {tuple(A.shape)}: expected one (d, d) matrix")
        mats = []
        for m, b in self.blocks:
            L = b.lie(A)
            mats.extend([L] * m)
        return _block_diag(mats, A)

    def __repr__(self) -> str:
        return f"Rep('{self}')"

    def __str__(self) -> str:
        return "+".join(f"{m}x{b}" for m, b in self.blocks) or "0"


def _block_diag(mats: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    batch = like.shape[:-2]
    if not mats:
        return torch.zeros(*batch, 0, 0, dtype=like.dtype, device=like.device)
    dim = sum(M.shape[-1] for M in mats)
    out = torch.zeros(*batch, dim, dim, dtype=like.dtype, device=like.device)
    i = 0
    for M in mats:
        n = M.shape[-1]
        out[..., i : i + n, i : i + n] = M
        i += n
    return out


def _is_irreps(obj) -> bool:
    return type(obj).__name__ == "Irreps"


def _parse_irreps(spec) -> list[tuple[int, _Base]]:
    try:
        from equiv.so3 import Irreps
    except ImportError as exc:  # pragma: no cover - so3 is part of the package
        raise ImportError("Rep: parsing irreps needs equiv.so3.Irreps") from exc
    try:
        irreps = Irreps(spec)
    except Exception as exc:
        raise ValueError(f"Rep(spec): could not parse spec={spec!r} as irreps ({exc})") from exc
    return [(mul, IrrepRep(ir.l, ir.p)) for mul, ir in irreps]


def as_rep(spec) -> Rep:
    """Coerce ``spec`` (``Rep``, irreps string, ``Irreps``, base, blocks) into a :class:`Rep`.

    Examples
    --------
    >>> as_rep("2x0e + 1x1o")
    Rep('2x0e+1x1o')
    >>> as_rep(IrrepRep(2, 1)).dim, as_rep([(2, IrrepRep(0, 1)), (1, TensorRep(2))])
    (5, Rep('2x0e+1xT2'))
    >>> r = Rep.vector()
    >>> as_rep(r) is r  # a Rep is returned unchanged
    True
    """
    return spec if isinstance(spec, Rep) else Rep(spec)
