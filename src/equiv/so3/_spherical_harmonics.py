r"""Real spherical harmonics in e3nn's basis, for any degree, by a stable recursion.

Basis. e3nn's :math:`Y^l_m(x, y, z)` (component index :math:`l+m`, :math:`m=-l..l`) are the
standard real spherical harmonics (no Condon–Shortley phase; the table on Wikipedia) evaluated
with the axes relabelled :math:`(X, Y, Z) = (z, x, y)`: the polar axis is :math:`y`, the azimuth is
:math:`\alpha = \operatorname{atan2}(x, z)`, and :math:`Y^1 \propto (x, y, z)`.

Recursion. Writing :math:`C_m + i S_m = (X + iY)^m` (so :math:`C_m = \rho^m \cos m\alpha`,
:math:`S_m = \rho^m \sin m\alpha`, :math:`\rho^2 = X^2 + Y^2`),

.. math::

    Y^l_{m} = \sqrt{2}\, \bar Q^{m}_l\, C_m, \qquad Y^l_{-m} = \sqrt{2}\, \bar Q^{m}_l\, S_m,
    \qquad Y^l_0 = \bar Q^0_l,

where :math:`\bar Q^m_l(Z, r)` is the fully normalised associated Legendre function divided by
:math:`\sin^m\theta` (a polynomial of degree :math:`l-m`), computed with the standard three-term
recursion (e.g. Holmes & Featherstone, J. Geodesy 76, 279 (2002); in this polynomial form as in
Bigi et al., "sphericart", J. Chem. Phys. 159, 064802 (2023)):

.. math::

    \bar Q^0_0 = \tfrac{1}{\sqrt{4\pi}}, \quad
    \bar Q^m_m = \sqrt{\tfrac{2m+1}{2m}}\, \bar Q^{m-1}_{m-1}, \quad
    \bar Q^m_{m+1} = \sqrt{2m+3}\, Z\, \bar Q^m_m,

.. math::

    \bar Q^m_l = \sqrt{\tfrac{4l^2-1}{l^2-m^2}}\, Z\, \bar Q^m_{l-1}
      - \sqrt{\tfrac{(2l+1)((l-1)^2-m^2)}{(2l-3)(l^2-m^2)}}\, r^2\, \bar Q^m_{l-2}.

Everything is a homogeneous polynomial of degree :math:`l` in :math:`(x, y, z)`: no angles, no
division, smooth gradients everywhere (also at the poles), and ``normalize=False`` gives e3nn's
polynomials :math:`|x|^l Y^l(\hat x)`. The recursion is the one used for geodesy to degree
thousands; here it is checked against e3nn to l = 11 and for orthonormality at l = 40.
"""

from __future__ import annotations

import math

import torch

__all__ = ["spherical_harmonics", "SphericalHarmonics"]

_NORMALIZATIONS = ("integral", "component", "norm")


def _coefficients(lmax: int):
    """Recursion coefficients as Python floats (cheap; cached with the tensors below)."""
    diag = [1.0 / math.sqrt(4 * math.pi)]  # Q^m_m
    for m in range(1, lmax + 1):
        diag.append(diag[-1] * math.sqrt((2 * m + 1) / (2 * m)))
    a, b = [None, None], [None, None]
    for l in range(2, lmax + 1):
        ms = range(l - 1)
        a.append([math.sqrt((4 * l * l - 1) / (l * l - m * m)) for m in ms])
        b.append([math.sqrt((2 * l + 1) * ((l - 1) ** 2 - m * m) / ((2 * l - 3) * (l * l - m * m))) for m in ms])
    return diag, a, b


def _parse_ls(ls) -> list[int]:
    from ._irreps import Irreps

    if isinstance(ls, bool):
        raise TypeError(f"spherical_harmonics: ls must be an int, a list of ints or Irreps, got {ls!r}")
    if isinstance(ls, int):
        out = [ls]
    elif isinstance(ls, str) or isinstance(ls, Irreps) or type(ls).__name__ == "Irreps":
        irreps = Irreps(ls)
        parities = {ir.p == (-1) ** ir.l for _, ir in irreps if ir.l % 2 == 1}
        if any(ir.p != 1 for _, ir in irreps if ir.l % 2 == 0) or len(parities) > 1:
            raise ValueError(
                f"spherical_harmonics: irreps {irreps} are not those of spherical harmonics: expected "
                "parity (-1)^l for every l (vector input, '1o') or +1 for every l (pseudovector input, '1e')"
            )
        out = irreps.ls
    else:
        try:
            out = [int(l) for l in ls]
        except (TypeError, ValueError):
            raise TypeError(
                f"spherical_harmonics: ls must be an int, a list of ints or Irreps, got {ls!r}"
            ) from None
    if not out or any(l < 0 for l in out):
        raise ValueError(f"spherical_harmonics: ls must be non-empty degrees l >= 0, got {ls!r}")
    return out


# --- low degrees: the same harmonics expanded once into monomials, evaluated with one GEMM ------

_POLY_LMAX = 4  # measured: faster than the recursion up to l = 4 (fwd+bwd), slower at 6; coefficients O(10)
_POLY_CACHE: dict = {}


def _poly_mul(p: dict, var: int) -> dict:
    out = {}
    for e, c in p.items():
        e2 = list(e)
        e2[var] += 1
        out[tuple(e2)] = c
    return out


def _poly_add(p: dict, q: dict, a: float = 1.0, b: float = 1.0) -> dict:
    out = {e: a * c for e, c in p.items()}
    for e, c in q.items():
        out[e] = out.get(e, 0.0) + b * c
    return out


def _monomials(lmax: int) -> list[list[tuple]]:
    """Exponents (i, j, k) of x^i y^j z^k for each degree, in the order `_sh_poly` builds them:
    degree d = [x * (degree d-1)] + [y * (the d monomials of degree d-1 without x)] + [z^d]."""
    degrees = [[(0, 0, 0)]]
    for d in range(1, lmax + 1):
        prev = degrees[-1]
        mons = [(i + 1, j, k) for i, j, k in prev] + [(0, j + 1, k) for i, j, k in prev[-d:]] + [(0, 0, d)]
        degrees.append(mons)
    return degrees


def _polynomials(lmax: int) -> list[list[dict]]:
    """Y^l_m ("integral") as {(i, j, k): coefficient of x^i y^j z^k}, by the same recursion."""
    diag, a_coef, b_coef = _coefficients(lmax)
    Xv, Yv, Zv = 2, 0, 1  # standard axes (X, Y, Z) = e3nn (z, x, y)
    one = {(0, 0, 0): 1.0}
    r2 = {(2, 0, 0): 1.0, (0, 2, 0): 1.0, (0, 0, 2): 1.0}
    C, S = [one], [{}]
    for _ in range(lmax):
        C, S = C + [_poly_add(_poly_mul(C[-1], Xv), _poly_mul(S[-1], Yv), 1.0, -1.0)], S + [
            _poly_add(_poly_mul(S[-1], Xv), _poly_mul(C[-1], Yv))
        ]
    Q = [[{(0, 0, 0): diag[0]}]]
    if lmax >= 1:
        Q.append([_poly_mul(Q[0][0], Zv), {(0, 0, 0): diag[1]}])
        Q[1][0] = {e: math.sqrt(3.0) * c for e, c in Q[1][0].items()}
    for l in range(2, lmax + 1):
        row = []
        for m in range(l - 1):
            zq = {e: a_coef[l][m] * c for e, c in _poly_mul(Q[l - 1][m], Zv).items()}
            t = Q[l - 2][m]
            r2t = {}
            for e2, c2 in r2.items():
                for e, c in t.items():
                    key = (e[0] + e2[0], e[1] + e2[1], e[2] + e2[2])
                    r2t[key] = r2t.get(key, 0.0) + c * c2
            row.append(_poly_add(zq, r2t, 1.0, -b_coef[l][m]))
        row.append({e: math.sqrt(2 * l + 1) * c for e, c in _poly_mul(Q[l - 1][l - 1], Zv).items()})
        row.append({(0, 0, 0): diag[l]})
        Q.append(row)
    out = []
    for l in range(lmax + 1):
        comps = []
        for m in range(-l, l + 1):
            cs, f = (S[-m], math.sqrt(2.0)) if m < 0 else ((C[m], math.sqrt(2.0)) if m > 0 else (one, 1.0))
            prod = {}
            for e1, c1 in Q[l][abs(m)].items():
                for e2, c2 in cs.items():
                    key = (e1[0] + e2[0], e1[1] + e2[1], e1[2] + e2[2])
                    prod[key] = prod.get(key, 0.0) + f * c1 * c2
            comps.append(prod)
        out.append(comps)
    return out


def _poly_tables(ls: tuple, scales: tuple, dtype: torch.dtype, device):
    key = (ls, scales, dtype, str(device))
    out = _POLY_CACHE.get(key)
    if out is None:
        lmax = max(ls)
        degrees = _monomials(lmax)
        index = {e: n for n, e in enumerate(e for mons in degrees for e in mons)}
        polys = _polynomials(lmax)
        cols = [(poly, scale) for l, scale in zip(ls, scales) for poly in polys[l]]
        M = torch.zeros(len(index), len(cols), dtype=torch.float64)
        for j, (poly, scale) in enumerate(cols):
            for e, c in poly.items():
                M[index[e], j] += scale * c
        M = M.to(dtype=dtype, device=device)
        out = (M[0].contiguous(), M[1:].contiguous(), lmax)
        _POLY_CACHE[key] = out
    return out


def _sh_poly(ls: list[int], scales: list[float], x: torch.Tensor) -> torch.Tensor:
    """(N, sum 2l+1): monomials of x up to degree max(ls) (component-major rows, built by slicing,
    cheap to differentiate), then one matrix product with the cached expansion coefficients."""
    bias, M, lmax = _poly_tables(tuple(ls), tuple(scales), x.dtype, x.device)
    xt = x.reshape(-1, 3).T
    if lmax == 0:
        return bias.expand(xt.shape[1], -1).clone()
    xt = xt.contiguous()
    X0, X1, X2 = xt[0:1], xt[1:2], xt[2:3]
    cur, mons = xt, [xt]
    for d in range(2, lmax + 1):
        cur = torch.cat([cur * X0, cur[-d:] * X1, cur[-1:] * X2], 0)
        mons.append(cur)
    mons = torch.cat(mons, 0) if len(mons) > 1 else xt
    return torch.addmm(bias, mons.T, M)


_COEF_CACHE: dict = {}


def _coefficient_tensors(lmax: int, dtype: torch.dtype, device):
    key = (lmax, dtype, str(device))
    out = _COEF_CACHE.get(key)
    if out is None:
        diag, a_coef, b_coef = _coefficients(lmax)
        a = [None, None] + [torch.tensor(a_coef[l], dtype=dtype, device=device)[:, None] for l in range(2, lmax + 1)]
        b = [None, None] + [torch.tensor(b_coef[l], dtype=dtype, device=device)[:, None] for l in range(2, lmax + 1)]
        m_abs = [torch.arange(-l, l + 1, device=device).abs() for l in range(lmax + 1)]
        out = (diag, a, b, m_abs)
        _COEF_CACHE[key] = out
    return out


def _sh_rows(lmax: int, ls: list[int], scales: dict, x: torch.Tensor) -> torch.Tensor:
    """Y^l for l in ls ("integral" normalisation times scales[l]), component-major: (sum 2l+1, N).

    Working with the component axis first keeps every operation on contiguous rows of length N
    (the narrow-last-axis layout is ~2x slower on CPU)."""
    diag, a_coef, b_coef, m_abs = _coefficient_tensors(lmax, x.dtype, x.device)
    xt = x.reshape(-1, 3).T.contiguous()
    Y, Z, X = xt[0], xt[1], xt[2]  # standard axes (X, Y, Z) = e3nn (z, x, y)
    sqrt2 = math.sqrt(2.0)

    # rows [S_lmax .. S_1, 1, C_1 .. C_lmax] * sqrt 2, with C_m + i S_m = (X + iY)^m
    C, S = [X], [Y]
    for _ in range(lmax - 1):
        c, s = C[-1], S[-1]
        C.append(X * c - Y * s)
        S.append(X * s + Y * c)
    cs = torch.stack(S[::-1] + [torch.full_like(X, 1 / sqrt2)] + C, 0) * sqrt2 if lmax > 0 else torch.ones_like(X)[None]

    # Q[l]: rows Q^m_l for m = 0..l
    ones = torch.ones_like(X)[None]
    Q = [ones * diag[0]]
    if lmax >= 1:
        Q.append(torch.cat([math.sqrt(3.0) * Z * Q[0], ones * diag[1]], 0))
    if lmax >= 2:
        r2 = X * X + Y * Y + Z * Z
    for l in range(2, lmax + 1):
        low = a_coef[l] * (Z * Q[l - 1][: l - 1]) - b_coef[l] * (r2 * Q[l - 2])
        sub = math.sqrt(2 * l + 1) * (Z * Q[l - 1][l - 1 :])
        Q.append(torch.cat([low, sub, ones * diag[l]], 0))

    blocks = {}
    for l in set(ls):
        block = Q[l].index_select(0, m_abs[l]) * cs[lmax - l : lmax + l + 1]
        blocks[l] = block * scales[l] if scales[l] != 1.0 else block
    return torch.cat([blocks[l] for l in ls], 0)


def spherical_harmonics(ls, x: torch.Tensor, normalize: bool = True, normalization: str = "integral") -> torch.Tensor:
    r"""Real spherical harmonics :math:`Y^l(x)` in e3nn's basis, any degree.

    Equal to ``e3nn.o3.spherical_harmonics(ls, x, normalize, normalization)`` (same basis,
    component order, signs and argument order) where e3nn is defined (:math:`l \le 11`), and
    continued to any :math:`l` by a stable recursion (see the module docstring). They satisfy

    .. math::

        Y^l(R x) = D^l(R)\, Y^l(x), \qquad
        \int_{S^2} Y^l_m Y^{l'}_{m'}\, d\Omega = \delta_{ll'} \delta_{mm'} \quad (\text{"integral"}).

    Parameters
    ----------
    ls : int or list of int or Irreps or str
        Degrees, output concatenated in this order (repeats allowed). Irreps must have parity
        :math:`(-1)^l` throughout (or :math:`+1` throughout, for a pseudovector input).
    x : torch.Tensor
        Shape ``(..., 3)``.
    normalize : bool
        Project ``x`` on the unit sphere first (a zero vector gives :math:`Y^0` and zeros; as in e3nn,
        the projection is ``x / max(|x|, 1e-12)``, so the gradient at a zero vector is of order
        :math:`10^{12}`, not meaningful: keep zero-length edges, such as self-loops, out of the graph). If
        ``False``, the result is the homogeneous polynomial :math:`|x|^l Y^l(\hat x)`.
    normalization : {"integral", "component", "norm"}
        ``"integral"``: :math:`\int_{S^2} (Y^l_m)^2 = 1`; ``"component"``: :math:`\|Y^l(\hat x)\|^2 = 2l+1`;
        ``"norm"``: :math:`\|Y^l(\hat x)\| = 1`.

    Returns
    -------
    torch.Tensor
        Shape ``(..., sum(2l+1))``, dtype of ``x``.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0, 1.0]])
    >>> spherical_harmonics([0, 1], x, normalization="component")
    tensor([[1.0000, 0.0000, 0.0000, 1.7321]])
    >>> spherical_harmonics(40, torch.randn(5, 3)).shape
    torch.Size([5, 81])
    """
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"spherical_harmonics: normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"spherical_harmonics: x must be a torch.Tensor of shape (..., 3), got {type(x).__name__}")
    if x.shape[-1:] != (3,):
        raise ValueError(f"spherical_harmonics: x must have shape (..., 3), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"spherical_harmonics: x must be floating point, got {x.dtype}")
    ls_list = _parse_ls(ls)
    lmax = max(ls_list)

    dtype = x.dtype
    # compute half precision in float32, and very high degrees in float32 in float64 (the
    # unscaled Q^m_l exceed float32's range beyond l ~ 150)
    work = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    if work == torch.float32 and lmax > 100:
        work = torch.float64
    x = x.to(work)
    if normalize:
        x = torch.nn.functional.normalize(x, dim=-1)

    if normalization == "integral":
        scales = {l: 1.0 for l in ls_list}
    elif normalization == "component":
        scales = {l: math.sqrt(4 * math.pi) for l in ls_list}
    else:
        scales = {l: math.sqrt(4 * math.pi / (2 * l + 1)) for l in ls_list}
    if lmax <= _POLY_LMAX:
        out = _sh_poly(ls_list, [scales[l] for l in ls_list], x)
        return out.reshape(*x.shape[:-1], out.shape[-1]).to(dtype)
    rows = _sh_rows(lmax, ls_list, scales, x)
    return rows.T.reshape(*x.shape[:-1], rows.shape[0]).contiguous().to(dtype)


class SphericalHarmonics(torch.nn.Module):
    r"""Module form of `spherical_harmonics` with e3nn's arguments (``e3nn.o3.SphericalHarmonics``):
    ``x (..., 3) -> (..., irreps_out.dim)``.

    Parameters
    ----------
    irreps_out : int, list of int, str or Irreps
        Degrees (in this order, repeats allowed) or irreps of multiplicity one each. Irreps fix the
        input's parity: odd degrees with parity :math:`+1` mean a pseudovector input (``"1e"``).
    normalize : bool
        Project ``x`` on the unit sphere first.
    normalization : {"integral", "component", "norm"}
        As `spherical_harmonics` (default ``"integral"``, as e3nn's module).
    irreps_in : str or Irreps, optional
        ``"1o"`` (a vector, default) or ``"1e"`` (a pseudovector: every output parity is :math:`+1`).

    Attributes
    ----------
    irreps_in, irreps_out : Irreps
        ``irreps_out`` is simplified (consecutive equal irreps merged), as e3nn's.

    Examples
    --------
    >>> sh = SphericalHarmonics("0e + 1o + 2e", normalize=True, normalization="component")
    >>> sh.irreps_out, tuple(sh(torch.randn(10, 3)).shape)
    (1x0e+1x1o+1x2e, (10, 9))
    >>> SphericalHarmonics([1, 1], True, irreps_in="1e").irreps_out    # a pseudovector's harmonics
    2x1e
    """

    def __init__(self, irreps_out, normalize: bool, normalization: str = "integral", irreps_in=None):
        super().__init__()
        from ._irreps import Irrep, Irreps

        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"SphericalHarmonics: normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
        if isinstance(irreps_out, str):
            irreps_out = Irreps(irreps_out)
        if isinstance(irreps_out, Irreps) and irreps_in is None and any(ir.l % 2 == 1 and ir.p == 1 for _, ir in irreps_out):
            irreps_in = "1e"
        irreps_in = Irreps("1o" if irreps_in is None else irreps_in)
        if irreps_in not in (Irreps("1x1o"), Irreps("1x1e")):
            raise ValueError(f"SphericalHarmonics: irreps_in must be a vector '1x1o' or a pseudovector '1x1e', "
                             f"got {irreps_in}")
        p_in = irreps_in[0].ir.p
        if isinstance(irreps_out, Irreps):
            ls = []
            for mul, ir in irreps_out:
                if ir.p != p_in**ir.l:
                    raise ValueError(f"SphericalHarmonics: {irreps_out} asks for l = {ir.l} with parity {ir.p}, but an "
                                     f"input of parity {p_in} gives parity {p_in ** ir.l}")
                ls += [ir.l] * mul
        elif isinstance(irreps_out, int):
            ls = [irreps_out]
        else:
            ls = [int(l) for l in irreps_out]
        if not ls or min(ls) < 0:
            raise ValueError(f"SphericalHarmonics: degrees must be non-negative and at least one, got {ls}")
        self.normalize, self.normalization, self.ls = bool(normalize), normalization, ls
        self.irreps_in = irreps_in
        self.irreps_out = Irreps([(1, Irrep(l, p_in**l)) for l in ls]).simplify()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics(self.ls, x, self.normalize, self.normalization)

    def extra_repr(self) -> str:
        return f"{self.irreps_out}, normalize={self.normalize}, normalization={self.normalization!r}"
