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

import functools
import math

import torch

__all__ = ["spherical_harmonics"]

_NORMALIZATIONS = ("integral", "component", "norm")


@functools.lru_cache(maxsize=None)
def _coefficients(lmax: int):
    """Recursion coefficients as Python floats (cached per lmax)."""
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


def _sh_all(lmax: int, x: torch.Tensor) -> list[torch.Tensor]:
    """[Y^0, ..., Y^lmax] with "integral" normalisation, each (..., 2l+1), as polynomials of x."""
    diag, a_coef, b_coef = _coefficients(lmax)
    X, Y, Z = x[..., 2], x[..., 0], x[..., 1]  # standard axes = e3nn (z, x, y)
    r2 = (x * x).sum(-1)
    sqrt2 = math.sqrt(2.0)

    # C_m, S_m for m = 0..lmax, arranged as [S_lmax .. S_1, 1, C_1 .. C_lmax] (times sqrt 2)
    C, S = [torch.ones_like(X)], [torch.zeros_like(X)]
    for _ in range(lmax):
        c, s = C[-1], S[-1]
        C.append(X * c - Y * s)
        S.append(X * s + Y * c)
    cs = torch.stack([sqrt2 * s for s in S[:0:-1]] + [C[0]] + [sqrt2 * c for c in C[1:]], dim=-1)

    # Q[l] has shape (..., l+1): Q^m_l for m = 0..l
    ones = torch.ones_like(X)[..., None]
    Q = [ones * diag[0]]
    if lmax >= 1:
        Q.append(torch.cat([math.sqrt(3.0) * Z[..., None] * Q[0], ones * diag[1]], dim=-1))
    for l in range(2, lmax + 1):
        a = x.new_tensor(a_coef[l])
        b = x.new_tensor(b_coef[l])
        low = a * Z[..., None] * Q[l - 1][..., : l - 1] - b * r2[..., None] * Q[l - 2]
        sub = math.sqrt(2 * l + 1) * Z[..., None] * Q[l - 1][..., l - 1 :]
        Q.append(torch.cat([low, sub, ones * diag[l]], dim=-1))

    out = []
    for l in range(lmax + 1):
        m_abs = torch.arange(-l, l + 1, device=x.device).abs()
        out.append(Q[l].index_select(-1, m_abs) * cs[..., lmax - l : lmax + l + 1])
    return out


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
        Project ``x`` on the unit sphere first (a zero vector gives :math:`Y^0` and zeros). If
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

    sh = _sh_all(lmax, x)
    if normalization != "integral":
        for l in set(ls_list):
            scale = math.sqrt(4 * math.pi) if normalization == "component" else math.sqrt(4 * math.pi / (2 * l + 1))
            sh[l] = sh[l] * scale
    if ls_list == list(range(lmax + 1)):
        out = torch.cat(sh, dim=-1)
    else:
        out = torch.cat([sh[l] for l in ls_list], dim=-1)
    return out.to(dtype)
