r"""Spherical harmonics as functions of the grid angles, in e3nn's factorised form.

:math:`Y^l(\alpha, \beta) = S^l(\alpha)\, P^l(\cos\beta, \sin\beta)` component by component, with
:math:`S^l_m(\alpha) = \sqrt2 \sin(|m|\alpha)`, :math:`1`, :math:`\sqrt2 \cos(m\alpha)` for
:math:`m <, =, > 0` (`spherical_harmonics_alpha`) and :math:`P^l_m` the polar part (`Legendre`), for
the direction :math:`(\sin\beta\sin\alpha, \cos\beta, \sin\beta\cos\alpha)` and ``"integral"``
harmonics. These are e3nn's ``spherical_harmonics_alpha``, ``Legendre``,
``SphericalHarmonicsAlphaBeta`` and ``spherical_harmonics_s2_grid`` (same values; tested); equiv's
own grid code uses `equiv.so3._s2grid.polar_factors`, the same factorisation without the
:math:`\sqrt2`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ._parametrizations import spherical_harmonics_alpha_beta
from ._spherical_harmonics import spherical_harmonics

__all__ = ["spherical_harmonics_alpha", "Legendre", "SphericalHarmonicsAlphaBeta", "spherical_harmonics_s2_grid", "rfft",
           "irfft"]


def spherical_harmonics_alpha(l: int, alpha: torch.Tensor) -> torch.Tensor:
    r""":math:`S^l(\alpha)`, ``(..., 2l+1)``: :math:`\sqrt2\sin(|m|\alpha)` (:math:`m < 0`), :math:`1`,
    :math:`\sqrt2\cos(m\alpha)` (:math:`m > 0`), for :math:`m = -l..l`.

    >>> spherical_harmonics_alpha(1, torch.tensor(0.0))
    tensor([0.0000, 1.0000, 1.4142])
    """
    alpha = alpha.unsqueeze(-1)
    m = torch.arange(1, l + 1, dtype=alpha.dtype, device=alpha.device)
    return torch.cat([math.sqrt(2) * torch.sin(m.flip(0) * alpha), torch.ones_like(alpha),
                      math.sqrt(2) * torch.cos(m * alpha)], dim=-1)


class Legendre(nn.Module):
    r"""The polar factors :math:`P^l_m(z = \cos\beta, y = \sin\beta)` for the degrees ``ls`` (in order),
    ``(..., sum(2l+1))``, with :math:`Y^l_m = S^l_m(\alpha) P^l_m` (``"integral"``; :math:`P^l_{-m} = P^l_m`).

    Examples
    --------
    >>> beta = torch.tensor([0.3, 1.2], dtype=torch.float64)
    >>> p = Legendre([0, 1])(beta.cos(), beta.sin())
    >>> tuple(p.shape), round(float(p[0, 0]), 6)         # P^0 = 1 / sqrt(4 pi)
    ((2, 4), 0.282095)
    """

    def __init__(self, ls):
        super().__init__()
        self.ls = [int(l) for l in ([ls] if isinstance(ls, int) else ls)]

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        lmax = max(self.ls)
        # at an azimuth where S^l_m = sqrt(2) (m != 0) or 1: alpha = 0 for m >= 0, pi / (2|m|) for m < 0
        ms = range(-lmax, lmax + 1)
        where = torch.tensor([0.0 if m >= 0 else math.pi / (2 * -m) for m in ms], dtype=z.dtype, device=z.device)
        points = torch.stack([y[..., None] * where.sin(), z[..., None].expand(*z.shape, len(where)),
                              y[..., None] * where.cos()], dim=-1)  # (..., 2 lmax + 1, 3)
        sh = spherical_harmonics(list(range(lmax + 1)), points, normalize=False)  # (..., 2 lmax + 1, R)
        cols = []
        for l in self.ls:
            for m in range(-l, l + 1):
                v = sh[..., m + lmax, l * l + l + m]
                cols.append(v / math.sqrt(2) if m != 0 else v)
        return torch.stack(cols, dim=-1)


class SphericalHarmonicsAlphaBeta(nn.Module):
    r"""Module form of `spherical_harmonics_alpha_beta`: ``(alpha, beta) -> (..., sum(2l+1))``.

    >>> sh = SphericalHarmonicsAlphaBeta([0, 1], normalization="component")
    >>> sh(torch.tensor(0.0), torch.tensor(0.0))
    tensor([1.0000, 0.0000, 1.7321, 0.0000])
    """

    def __init__(self, l, normalization: str = "integral"):
        super().__init__()
        from ._irreps import Irreps

        if isinstance(l, Irreps):
            self.ls = [ir.l for mul, ir in l for _ in range(mul)]
        else:
            self.ls = [l] if isinstance(l, int) else [int(v) for v in l]
        self.normalization = normalization

    def forward(self, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics_alpha_beta(self.ls, alpha, beta, normalization=self.normalization)


def spherical_harmonics_s2_grid(lmax: int, res_beta: int, res_alpha: int, dtype=None, device=None):
    r"""e3nn's grid factors: ``betas (res_beta,)``, ``alphas (res_alpha,)``, the polar parts
    ``shb (res_beta, (lmax+1)^2)`` (`Legendre`) and the azimuthal ``sha (res_alpha, 2 lmax + 1)``
    (`spherical_harmonics_alpha`) on the grid of `equiv.so3.s2_grid`.

    >>> betas, alphas, shb, sha = spherical_harmonics_s2_grid(2, 6, 5)
    >>> tuple(shb.shape), tuple(sha.shape)
    ((6, 9), (5, 5))
    """
    from ._s2grid import s2_grid

    betas, alphas = s2_grid(res_beta, res_alpha, dtype=dtype, device=device)
    shb = Legendre(list(range(lmax + 1)))(betas.cos(), betas.sin().abs())
    return betas, alphas, shb, spherical_harmonics_alpha(lmax, alphas)


def rfft(x: torch.Tensor, l: int) -> torch.Tensor:
    r"""Coefficients ``(..., 2l+1)`` of samples ``x (..., res)`` at :math:`\alpha_k = 2\pi k/\mathrm{res}` on the
    basis `spherical_harmonics_alpha`: ``x @ spherical_harmonics_alpha(l, alphas)``, by an FFT (e3nn's ``rfft``).

    >>> alphas = torch.arange(9, dtype=torch.float64) * 2 * torch.pi / 9
    >>> x = torch.randn(9, dtype=torch.float64)
    >>> bool(torch.allclose(rfft(x, 3), x @ spherical_harmonics_alpha(3, alphas)))
    True
    """
    f = torch.fft.rfft(x, dim=-1)
    if f.shape[-1] <= l:
        raise ValueError(f"rfft: {x.shape[-1]} samples resolve frequencies up to {f.shape[-1] - 1}, not l = {l}")
    pos = f[..., 1 : l + 1]
    return torch.cat([-math.sqrt(2) * pos.imag.flip(-1), f[..., :1].real, math.sqrt(2) * pos.real], dim=-1)


def irfft(x: torch.Tensor, res: int) -> torch.Tensor:
    r"""Values ``(..., res)`` at :math:`\alpha_k = 2\pi k/\mathrm{res}` of the coefficients ``x (..., 2l+1)``
    on the basis `spherical_harmonics_alpha` (e3nn's ``irfft``; ``res`` odd, as e3nn's).

    >>> x = torch.zeros(3)
    >>> x[1] = 1.0                                     # the constant
    >>> irfft(x, 5)
    tensor([1., 1., 1., 1., 1.])
    """
    if res % 2 != 1:
        raise ValueError(f"irfft: res must be odd, got {res}")
    l = (x.shape[-1] - 1) // 2
    alphas = torch.arange(res, dtype=x.dtype, device=x.device) * (2 * math.pi / res)
    return x @ spherical_harmonics_alpha(l, alphas).T
