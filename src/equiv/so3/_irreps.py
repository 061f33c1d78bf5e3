r"""Irreducible representations of O(3) and their direct sums, with e3nn's string syntax.

An irrep of :math:`O(3) = SO(3) \times \{\pm 1\}` is a degree :math:`l \ge 0` (dimension
:math:`2l+1`) and a parity :math:`p = \pm 1` (how it transforms under the inversion
:math:`x \mapsto -x`). ``"1o"`` is a vector, ``"1e"`` a pseudovector, ``"0e"`` a scalar. A direct sum
is written ``"16x0e + 8x1o"``; the feature layout is e3nn's ``mul_ir``: the 24 numbers of ``"8x1o"``
are 8 consecutive 3-vectors.
"""

from __future__ import annotations

import itertools
import re
from collections import namedtuple
from typing import Iterable, Iterator

import torch

__all__ = ["Irrep", "Irreps", "MulIr"]

# as e3nn reads them (``int`` of what precedes the parity letter): blanks before the letter and a "-0"
# are accepted; a negative degree is not
_IRREP_RE = re.compile(r"^(-?\d+)\s*([eoy])$")


def _parse_irrep(token: str) -> tuple[int, int]:
    name = token.strip()
    match = _IRREP_RE.match(name)
    if match is None:
        raise ValueError(
            f"Irrep: cannot parse {token!r}: expected a degree l >= 0 followed by a parity letter "
            "'e' (even), 'o' (odd) or 'y' (parity (-1)^l of the spherical harmonics), e.g. '1o'"
        )
    l = int(match.group(1))
    if l < 0:
        raise ValueError(f"Irrep: cannot parse {token!r}: the degree must be >= 0")
    p = {"e": 1, "o": -1, "y": (-1) ** l}[match.group(2)]
    return l, p


class Irrep(tuple):
    r"""An irreducible representation of :math:`O(3)`: degree ``l`` and parity ``p``.

    Under a rotation :math:`R` a feature of type ``Irrep(l, p)`` transforms with the Wigner matrix
    :math:`D^l(R)`; under the inversion :math:`-I` it is multiplied by :math:`p`. For an improper
    rotation :math:`g = -R`, :math:`D(g) = p\,D^l(R)`.

    Parameters
    ----------
    l : int or str or Irrep or tuple
        The degree :math:`l \ge 0`, or a string ``"<l><p>"`` with ``p`` one of ``e`` (even, +1),
        ``o`` (odd, -1), ``y`` (:math:`(-1)^l`, the parity of :math:`Y^l`), or an ``(l, p)`` tuple.
    p : {1, -1}, optional
        The parity when ``l`` is an int.

    Examples
    --------
    >>> Irrep("1o"), Irrep(2, 1), Irrep("3y")
    (1o, 2e, 3o)
    >>> Irrep("2e").dim
    5
    >>> list(Irrep("1o") * Irrep("1o"))
    [0e, 1e, 2e]
    """

    def __new__(cls, l, p=None):
        if p is None:
            if isinstance(l, Irrep):
                return l
            if isinstance(l, str):
                l, p = _parse_irrep(l)
            elif isinstance(l, tuple) and len(l) == 2:
                l, p = l
            else:
                raise TypeError(
                    f"Irrep: expected an int l with a parity p, a string like '1o', or an (l, p) "
                    f"tuple, got {l!r}"
                )
        if isinstance(l, bool) or not isinstance(l, int) or l < 0:
            raise ValueError(f"Irrep: l must be an int >= 0, got {l!r}")
        if isinstance(p, bool) or p not in (1, -1):
            raise ValueError(f"Irrep: parity p must be 1 or -1, got {p!r}")
        return super().__new__(cls, (int(l), int(p)))

    @property
    def l(self) -> int:  # noqa: E743
        """The degree :math:`l`."""
        return self[0]

    @property
    def p(self) -> int:
        """The parity, +1 (even) or -1 (odd)."""
        return self[1]

    @property
    def dim(self) -> int:
        """The dimension :math:`2l+1`."""
        return 2 * self[0] + 1

    def is_scalar(self) -> bool:
        """True for ``0e``."""
        return self == (0, 1)

    def __repr__(self) -> str:
        return f"{self.l}{'e' if self.p == 1 else 'o'}"

    def __getnewargs__(self):
        return (self.l, self.p)

    @classmethod
    def iterator(cls, lmax: int | None = None) -> Iterator["Irrep"]:
        """All irreps in the order ``0e, 0o, 1o, 1e, 2e, 2o, ...`` (up to ``lmax`` if given).

        >>> list(Irrep.iterator(1))
        [0e, 0o, 1o, 1e]
        """
        for l in itertools.count():
            if lmax is not None and l > lmax:
                return
            yield Irrep(l, (-1) ** l)
            yield Irrep(l, -((-1) ** l))

    def __mul__(self, other) -> Iterator["Irrep"]:
        """The irreps in the tensor product: :math:`|l_1-l_2|, \\dots, l_1+l_2` with parity :math:`p_1 p_2`."""
        other = Irrep(other)
        p = self.p * other.p
        return iter([Irrep(l, p) for l in range(abs(self.l - other.l), self.l + other.l + 1)])

    def __rmul__(self, mul: int) -> "Irreps":
        """``3 * Irrep("1o")`` is ``Irreps("3x1o")``."""
        if isinstance(mul, bool) or not isinstance(mul, int):
            return NotImplemented
        return Irreps([(mul, self)])

    def __add__(self, other) -> "Irreps":
        return Irreps(self) + Irreps(other)

    def count(self, _value):  # tuple API that makes no sense here
        raise NotImplementedError

    def index(self, _value):
        raise NotImplementedError

    def D_from_angles(self, alpha, beta, gamma, k=None) -> torch.Tensor:
        r"""The matrix :math:`p^k D^l(\alpha, \beta, \gamma)` (e3nn's Y-X-Y Euler angles).

        ``k`` (same shape as the angles) counts how many times the inversion is applied.
        Returns shape ``(..., 2l+1, 2l+1)``.
        """
        from ._wigner import wigner_D

        D = wigner_D(self.l, alpha, beta, gamma)
        if k is not None and self.p == -1:
            k = torch.as_tensor(k, dtype=D.dtype, device=D.device)
            D = D * (1 - 2 * (k % 2))[..., None, None]
        return D

    def D_from_quaternion(self, q: torch.Tensor, k=None) -> torch.Tensor:
        r""":math:`p^k D^l` of the rotation of unit quaternions ``q (..., 4)`` (e3nn's method).

        >>> q = torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)  # half-turn about y
        >>> Irrep("1o").D_from_quaternion(q).round(decimals=6).abs().diagonal().tolist()
        [1.0, 1.0, 1.0]
        """
        from ._parametrizations import quaternion_to_angles

        return self.D_from_angles(*quaternion_to_angles(q), k)

    def D_from_matrix(self, R: torch.Tensor) -> torch.Tensor:
        r"""The representation matrix of an element of :math:`O(3)` given as a 3x3 matrix.

        For :math:`\det R = -1`, :math:`R = -R'` with :math:`R'` proper and
        :math:`D(R) = p\, D^l(R')`.

        Parameters
        ----------
        R : torch.Tensor
            Orthogonal matrices of shape ``(..., 3, 3)``.

        Returns
        -------
        torch.Tensor
            Shape ``(..., 2l+1, 2l+1)``.

        Examples
        --------
        >>> Irrep("1o").D_from_matrix(-torch.eye(3)).long()
        tensor([[-1,  0,  0],
                [ 0, -1,  0],
                [ 0,  0, -1]])
        """
        from ._wigner import wigner_D_from_matrix

        d = torch.det(R).sign()
        D = wigner_D_from_matrix(self.l, R * d[..., None, None])
        if self.p == -1:
            D = D * d[..., None, None]
        return D


class MulIr(namedtuple("MulIr", ["mul", "ir"])):
    """A multiplicity and an irrep: ``MulIr(16, Irrep("1o"))`` is ``16x1o`` (``dim`` = 48).

    Examples
    --------
    >>> MulIr(16, Irrep("1o")), MulIr(16, Irrep("1o")).dim
    (16x1o, 48)
    >>> mul, ir = Irreps("16x0e + 8x1o")[1]  # the entries of an Irreps are MulIr
    >>> mul, ir, ir.l, ir.p
    (8, 1o, 1, -1)
    """

    __slots__ = ()

    @property
    def dim(self) -> int:
        return self.mul * self.ir.dim

    def __repr__(self) -> str:
        return f"{self.mul}x{self.ir}"


_SortResult = namedtuple("sort", ["irreps", "p", "inv"])


def _parse_irreps(text: str) -> list[MulIr]:
    out = []
    if text.strip() == "":
        return out
    for token in text.split("+"):
        stripped = token.strip()
        if "x" in stripped:
            mul_str, _, ir_str = stripped.partition("x")
            mul_str = mul_str.strip()
            if not (mul_str.isdigit() or mul_str[:1] == "-" and mul_str[1:].isdigit() and int(mul_str) == 0):
                raise ValueError(
                    f"Irreps: bad token {stripped!r} in {text!r}: the multiplicity {mul_str!r} is not "
                    "an int >= 0 (expected e.g. '16x0e')"
                )
        else:
            mul_str, ir_str = "1", stripped
        try:
            ir = Irrep(*_parse_irrep(ir_str))
        except ValueError:
            raise ValueError(
                f"Irreps: bad token {stripped!r} in {text!r}: expected '<mul>x<l><p>' or '<l><p>' "
                "with p in e/o/y, e.g. '16x0e + 8x1o + 2e'"
            ) from None
        out.append(MulIr(int(mul_str), ir))
    return out


class Irreps(tuple):
    r"""A direct sum of irreps of :math:`O(3)`, with e3nn's syntax and semantics.

    ``Irreps("16x0e + 8x1o")`` describes features whose last axis has
    :math:`16 \cdot 1 + 8 \cdot 3 = 40` numbers: 16 scalars then 8 consecutive vectors (``mul_ir``
    layout). Under :math:`g \in O(3)` they transform with the block-diagonal matrix
    :math:`\bigoplus_i \bigoplus^{\mathrm{mul}_i} D^{l_i, p_i}(g)`.

    Parameters
    ----------
    irreps : str or Irreps or Irrep or iterable, optional
        ``"16x0e + 8x1o + 2e"`` (``+``-separated; ``<mul>x`` optional, parity ``e``/``o``/``y``),
        an ``Irrep``, or an iterable of ``(mul, ir)`` pairs / irreps / irrep strings. e3nn
        ``Irreps`` are accepted and compare equal.

    Raises
    ------
    ValueError
        If a string token is malformed; the message names the token.

    Examples
    --------
    >>> irreps = Irreps("16x0e + 8x1o + 2e")
    >>> irreps, irreps.dim, irreps.num_irreps, irreps.lmax
    (16x0e+8x1o+1x2e, 45, 25, 2)
    >>> [(mul, ir.l, ir.p) for mul, ir in irreps]
    [(16, 0, 1), (8, 1, -1), (1, 2, 1)]
    >>> Irreps("1e + 0e + 1e").sort().irreps
    1x0e+1x1e+1x1e
    >>> Irreps("1e + 1e + 0e").simplify()
    2x1e+1x0e
    """

    def __new__(cls, irreps=None):
        if isinstance(irreps, Irreps):
            return irreps
        if irreps is None:
            out: list[MulIr] = []
        elif isinstance(irreps, str):
            out = _parse_irreps(irreps)
        elif isinstance(irreps, Irrep):
            out = [MulIr(1, irreps)]
        else:
            out = []
            try:
                items = list(irreps)
            except TypeError:
                raise TypeError(
                    f"Irreps: expected a string like '16x0e + 8x1o', an Irrep or an iterable of "
                    f"(mul, irrep) pairs, got {irreps!r}"
                ) from None
            for item in items:
                if isinstance(item, (str, Irrep)):
                    out.append(MulIr(1, Irrep(item)))
                    continue
                try:
                    mul, ir = item
                    ir = Irrep(ir)
                except (TypeError, ValueError):
                    raise ValueError(
                        f"Irreps: cannot interpret {item!r} as (mul, irrep) or an irrep"
                    ) from None
                if isinstance(mul, bool) or not isinstance(mul, int) or mul < 0:
                    raise ValueError(f"Irreps: multiplicity must be an int >= 0, got {mul!r} in {item!r}")
                out.append(MulIr(mul, ir))
        return super().__new__(cls, out)

    def __getnewargs__(self):
        return (list(self),)

    # --- tuple behaviour -------------------------------------------------------------------------
    def __getitem__(self, i):
        x = super().__getitem__(i)
        if isinstance(i, slice):
            return Irreps(x)
        return x

    def __contains__(self, ir) -> bool:
        ir = Irrep(ir)
        return any(irrep == ir for _, irrep in self)

    def count(self, ir) -> int:
        """Total multiplicity of ``ir``.

        >>> Irreps("2x1o + 0e + 3x1o").count("1o")
        5
        """
        ir = Irrep(ir)
        return sum(mul for mul, irrep in self if irrep == ir)

    def index(self, _value):
        raise NotImplementedError

    def __add__(self, other) -> "Irreps":
        return Irreps(tuple(self) + tuple(Irreps(other)))

    def __radd__(self, other) -> "Irreps":
        return Irreps(other) + self

    def __mul__(self, n) -> "Irreps":
        """``Irreps * int`` repeats the sequence (as e3nn); use a tensor product for products."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(
                f"Irreps * {n!r}: only an int repeat is defined; use equiv.tp for tensor products"
            )
        return Irreps(tuple(self) * n)

    __rmul__ = __mul__

    def __repr__(self) -> str:
        return "+".join(repr(mul_ir) for mul_ir in self)

    # --- properties ------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        """Total dimension :math:`\\sum_i \\mathrm{mul}_i (2 l_i + 1)`."""
        return sum(mul * ir.dim for mul, ir in self)

    @property
    def num_irreps(self) -> int:
        """Sum of the multiplicities."""
        return sum(mul for mul, _ in self)

    @property
    def ls(self) -> list[int]:
        """The degree of every irrep copy, in order (``"2x1o + 0e"`` gives ``[1, 1, 0]``)."""
        return [ir.l for mul, ir in self for _ in range(mul)]

    @property
    def lmax(self) -> int:
        """Largest degree among entries of non-zero multiplicity (as e3nn); ValueError if there are none."""
        ls = [ir.l for mul, ir in self if mul > 0]
        if not ls:
            raise ValueError(f"Irreps.lmax: the irreps {self!r} are empty (no entry with multiplicity > 0)")
        return max(ls)

    @staticmethod
    def spherical_harmonics(lmax: int, p: int = -1) -> "Irreps":
        """``1x0e + 1x1o + ... `` up to ``lmax``: the irreps of :math:`Y^0, \\dots, Y^{lmax}`.

        >>> Irreps.spherical_harmonics(3)
        1x0e+1x1o+1x2e+1x3o
        """
        return Irreps([(1, (l, p**l)) for l in range(lmax + 1)])

    def slices(self) -> list[slice]:
        """The slice of the feature axis occupied by each ``(mul, ir)`` entry.

        >>> Irreps("2x0e + 1e").slices()
        [slice(0, 2, None), slice(2, 5, None)]
        """
        out, i = [], 0
        for mul_ir in self:
            out.append(slice(i, i + mul_ir.dim))
            i += mul_ir.dim
        return out

    def simplify(self) -> "Irreps":
        """Merge consecutive equal irreps and drop zero multiplicities (does not sort).

        >>> Irreps("1e + 1e + 0e + 1e + 0x2o").simplify()
        2x1e+1x0e+1x1e
        """
        out: list[list] = []
        for mul, ir in self:
            if out and out[-1][1] == ir:
                out[-1][0] += mul
            elif mul > 0:
                out.append([mul, ir])
        return Irreps([(m, ir) for m, ir in out])

    def remove_zero_multiplicities(self) -> "Irreps":
        """Drop entries with multiplicity 0."""
        return Irreps([(mul, ir) for mul, ir in self if mul > 0])

    def sort(self):
        """Sort by irrep (``l``, then parity ``o`` before ``e``), stably.

        Returns
        -------
        namedtuple ``(irreps, p, inv)``
            ``p[i]`` is the new position of entry ``i``; ``inv[j]`` the old position of new entry ``j``.

        >>> Irreps("2o + 1e + 0e + 1e").sort()
        sort(irreps=1x0e+1x1e+1x1e+1x2o, p=(3, 1, 0, 2), inv=(2, 1, 3, 0))
        """
        order = sorted(range(len(self)), key=lambda i: (self[i].ir, i))
        inv = tuple(order)
        p = [0] * len(inv)
        for new, old in enumerate(inv):
            p[old] = new
        return _SortResult(Irreps([self[i] for i in inv]), tuple(p), inv)

    # --- tensors ---------------------------------------------------------------------------------
    def randn(
        self,
        *size: int,
        normalization: str = "component",
        requires_grad: bool = False,
        dtype: torch.dtype | None = None,
        device=None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Random features; the single ``-1`` in ``size`` is replaced by ``dim``.

        ``normalization="component"``: i.i.d. standard normal components;
        ``"norm"``: each irrep copy has unit norm.

        >>> Irreps("5x0e + 10x1o").randn(2, -1).shape
        torch.Size([2, 35])
        """
        if list(size).count(-1) != 1:
            raise ValueError(f"Irreps.randn: size must contain exactly one -1 (the feature axis), got {size}")
        if normalization not in ("component", "norm"):
            raise ValueError(f"Irreps.randn: normalization must be 'component' or 'norm', got {normalization!r}")
        di = size.index(-1)
        shape = (*size[:di], self.dim, *size[di + 1 :])
        x = torch.randn(shape, dtype=dtype, device=device, generator=generator)
        if normalization == "norm":
            lsize, rsize = size[:di], size[di + 1 :]
            parts = []
            for s, (mul, ir) in zip(self.slices(), self):
                r = x.narrow(di, s.start, s.stop - s.start).reshape(*lsize, mul, ir.dim, *rsize)
                r = r / r.norm(dim=di + 1, keepdim=True)
                parts.append(r.reshape(*lsize, mul * ir.dim, *rsize))
            x = torch.cat(parts, dim=di) if parts else x
        return x.requires_grad_(requires_grad)

    def D_from_matrix(self, R: torch.Tensor) -> torch.Tensor:
        r"""Block-diagonal representation matrix of :math:`R \in O(3)`.

        Parameters
        ----------
        R : torch.Tensor
            Orthogonal matrices, shape ``(..., 3, 3)``; ``det R = -1`` applies the parities.

        Returns
        -------
        torch.Tensor
            Shape ``(..., dim, dim)``: :math:`\bigoplus_i \bigoplus^{\mathrm{mul}_i} D^{l_i,p_i}(R)`.

        Examples
        --------
        >>> from equiv.so3 import random_rotation
        >>> R = random_rotation(5, dtype=torch.float64)
        >>> D = Irreps("2x0e + 1o").D_from_matrix(R)
        >>> D.shape, torch.allclose(D[:, 2:, 2:], R)
        (torch.Size([5, 5, 5]), True)
        """
        from ._wigner import wigner_D_from_matrix

        R = torch.as_tensor(R)
        if R.shape[-2:] != (3, 3):
            raise ValueError(f"Irreps.D_from_matrix: R must have shape (..., 3, 3), got {tuple(R.shape)}")
        d = torch.det(R).sign()
        Rp = R * d[..., None, None]
        batch = R.shape[:-2]
        out = R.new_zeros((*batch, self.dim, self.dim))
        cache: dict[int, torch.Tensor] = {}
        i = 0
        for mul, ir in self:
            if ir.l not in cache:
                cache[ir.l] = wigner_D_from_matrix(ir.l, Rp)
            D = cache[ir.l]
            if ir.p == -1:
                D = D * d[..., None, None]
            if mul == 1:
                out[..., i : i + ir.dim, i : i + ir.dim] = D
            elif mul > 1:  # mul copies on the diagonal: kron(I_mul, D)
                eye = torch.eye(mul, dtype=D.dtype, device=D.device)
                block = torch.einsum("uv,...ij->...uivj", eye, D).reshape(*batch, mul * ir.dim, mul * ir.dim)
                out[..., i : i + mul * ir.dim, i : i + mul * ir.dim] = block
            i += mul * ir.dim
        return out

    def D_from_quaternion(self, q: torch.Tensor, k=None) -> torch.Tensor:
        """Block-diagonal :math:`p^k D` of unit quaternions, see `Irrep.D_from_quaternion`.

        >>> Irreps("0e + 1o").D_from_quaternion(torch.tensor([1.0, 0.0, 0.0, 0.0])).shape
        torch.Size([4, 4])
        """
        from ._parametrizations import quaternion_to_angles

        return self.D_from_angles(*quaternion_to_angles(q), k)

    def D_from_angles(self, alpha, beta, gamma, k=None) -> torch.Tensor:
        """Block-diagonal :math:`p^k D(\\alpha, \\beta, \\gamma)`, see `Irrep.D_from_angles`."""
        blocks = [ir.D_from_angles(alpha, beta, gamma, k) for mul, ir in self for _ in range(mul)]
        if not blocks:
            alpha = torch.as_tensor(alpha)
            return alpha.new_zeros((*alpha.shape, 0, 0))
        return torch.block_diag(*blocks) if blocks[0].dim() == 2 else _batched_block_diag(blocks)


def _batched_block_diag(blocks: Iterable[torch.Tensor]) -> torch.Tensor:
    blocks = list(blocks)
    batch = torch.broadcast_shapes(*(b.shape[:-2] for b in blocks))
    dim = sum(b.shape[-1] for b in blocks)
    out = blocks[0].new_zeros((*batch, dim, dim))
    i = 0
    for b in blocks:
        n = b.shape[-1]
        out[..., i : i + n, i : i + n] = b
        i += n
    return out
