r"""Signals on the rotation group: Wigner coefficients ↔ values on an Euler-angle grid (e3nn's ``SO3Grid``).

A function on SO(3) band-limited to degree :math:`L` is a sum of Wigner matrix entries,

.. math::

    f(g) = \frac{1}{\sqrt{d}} \sum_{l \le L} \sqrt{2l+1} \sum_{m,n} x^l_{mn}\, D^l_{mn}(g),
    \qquad d = \sum_{l \le L} (2l+1)^2,

so its coefficients are :math:`2l+1` copies of each degree :math:`l` (irreps ``(2l+1)x l``, `so3_irreps`;
row :math:`m` of :math:`x^l` is copy :math:`m`). Acting on the coefficients with these irreps,
:math:`x^l \mapsto x^l D^l(h)^\top`, translates the signal on the right, :math:`f(g) \mapsto f(g h)`,
which a pointwise function commutes with: `equiv.nn.SO3Activation`.

The grid is e3nn's: :math:`\alpha_a = \gamma_a = 2\pi a / N_\alpha`, :math:`\beta_b = \pi (b + \frac12)/N_\beta`,
:math:`N_\beta = 2 r`, :math:`N_\alpha = \mathrm{round}(2 \rho r)` for resolution :math:`r` and aspect
ratio :math:`\rho`. The integral over SO(3) (Haar measure of mass 1) is
:math:`\sum_{a, b, c} \frac{w_b}{2 N_\alpha^2} f(\alpha_a, \beta_b, \gamma_c)` with the β weights of
`equiv.so3.FromS2Grid` (exact for polynomials of degree :math:`< N_\beta` in :math:`\cos\beta`), so
``from_grid(to_grid(x)) = x`` exactly once :math:`N_\beta > 2L` and :math:`N_\alpha > 2L`
(orthogonality :math:`\int D^l_{mn} D^{l'}_{m'n'} = \delta\delta\delta / (2l+1)`). e3nn computes the same
weights in float32; the outputs agree to that precision.
"""

from __future__ import annotations

import torch
from torch import nn

from ._irreps import Irrep, Irreps
from ._s2grid import _beta_weights, s2_grid
from ._wigner import wigner_D

__all__ = ["SO3Grid", "so3_irreps", "flat_wigner"]


def so3_irreps(lmax: int, p: int = 1) -> Irreps:
    """``(2l+1)x l`` for ``l = 0..lmax`` (parity ``p``): the coefficients of a signal on SO(3).

    >>> so3_irreps(2)
    1x0e+3x1e+5x2e
    """
    return Irreps([(2 * l + 1, Irrep(l, p)) for l in range(lmax + 1)])


def flat_wigner(lmax: int, alpha, beta, gamma) -> torch.Tensor:
    r""":math:`\sqrt{2l+1}\, D^l(\alpha, \beta, \gamma)` flattened row by row and concatenated over
    :math:`l \le L`, shape ``(..., sum (2l+1)^2)`` (e3nn's ``flat_wigner``).

    >>> zero = torch.tensor(0.0, dtype=torch.float64)
    >>> [round(v, 6) for v in flat_wigner(1, zero, zero, zero).tolist()]   # the identity: sqrt(3) I
    [1.0, 1.732051, 0.0, 0.0, 0.0, 1.732051, 0.0, 0.0, 0.0, 1.732051]
    """
    return torch.cat([(2 * l + 1) ** 0.5 * wigner_D(l, alpha, beta, gamma).flatten(-2) for l in range(lmax + 1)], dim=-1)


class SO3Grid(nn.Module):
    r"""Coefficients ``(..., d)`` ↔ values ``(..., res_alpha, res_beta, res_gamma)`` of a signal on SO(3)
    (module docstring; e3nn's ``o3.SO3Grid``, same grid, layout and outputs).

    Parameters
    ----------
    lmax : int
    resolution : int
        :math:`r`: ``res_beta = 2r``, ``res_alpha = res_gamma = round(2 aspect_ratio r)``.
    normalization : {"component"}
        The only one (as e3nn's).
    aspect_ratio : float
        Default 2.

    Examples
    --------
    >>> grid = SO3Grid(2, 4, dtype=torch.float64)
    >>> grid.irreps, (grid.res_alpha, grid.res_beta, grid.res_gamma)
    (1x0e+3x1e+5x2e, (16, 8, 16))
    >>> x = grid.irreps.randn(3, -1, dtype=torch.float64)
    >>> bool(torch.allclose(grid.from_grid(grid.to_grid(x)), x))
    True
    """

    def __init__(self, lmax: int, resolution: int, *, normalization: str = "component", aspect_ratio: float = 2,
                 dtype=None, device=None):
        super().__init__()
        if normalization != "component":
            raise ValueError(f"SO3Grid: only normalization='component' is defined, got {normalization!r}")
        if isinstance(lmax, bool) or not isinstance(lmax, int) or lmax < 0:
            raise ValueError(f"SO3Grid: lmax must be a non-negative int, got {lmax!r}")
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ValueError(f"SO3Grid: resolution must be a positive int, got {resolution!r}")
        nb, na = 2 * resolution, round(2 * aspect_ratio * resolution)
        if na < 1:
            raise ValueError(f"SO3Grid: aspect_ratio {aspect_ratio} leaves no azimuth points")
        self.lmax, self.res_beta, self.res_alpha, self.res_gamma = lmax, nb, na, na
        self.irreps = so3_irreps(lmax)
        dtype = dtype or torch.get_default_dtype()
        betas, alphas = s2_grid(nb, na, dtype=torch.float64)
        # float64 masters, cast per dtype and device on use (a float32 buffer cast to float64 would keep
        # float32 accuracy)
        self._D64 = flat_wigner(lmax, alphas[:, None, None], betas[None, :, None], alphas[None, None, :])  # (a,b,c,d)
        self._qw64 = torch.as_tensor(_beta_weights(nb)) / (2 * na**2)
        self._cache = {}
        self.register_buffer("alpha", alphas.to(dtype=dtype, device=device))
        self.register_buffer("beta", betas.to(dtype=dtype, device=device))
        self.register_buffer("gamma", alphas.to(dtype=dtype, device=device))

    @property
    def D(self) -> torch.Tensor:
        """:math:`\\sqrt{2l+1} D^l` on the grid, ``(res_alpha, res_beta, res_gamma, d)`` (float64)."""
        return self._D64

    @property
    def qw(self) -> torch.Tensor:
        """Quadrature weight of each β row (float64; the grid's weights sum to 1)."""
        return self._qw64

    def _matrices(self, dtype, device):
        key = (dtype, torch.device(device))
        if key not in self._cache:
            d = self._D64.shape[-1]
            to = self._D64.reshape(-1, d)
            weighted = (self._D64 * self._qw64[None, :, None, None]).reshape(-1, d)
            self._cache[key] = (to.T.contiguous().to(dtype=dtype, device=device) / d**0.5,
                                (weighted * d**0.5).to(dtype=dtype, device=device))
        return self._cache[key]

    def to_grid(self, features: torch.Tensor) -> torch.Tensor:
        """``(..., d)`` coefficients -> ``(..., res_alpha, res_beta, res_gamma)`` values."""
        d = self._D64.shape[-1]
        if features.shape[-1] != d:
            raise ValueError(f"SO3Grid(lmax={self.lmax}): expected (..., {d}) coefficients, got {tuple(features.shape)}")
        to, _ = self._matrices(features.dtype, features.device)
        out = features.reshape(-1, d) @ to
        return out.reshape(*features.shape[:-1], self.res_alpha, self.res_beta, self.res_gamma)

    def from_grid(self, values: torch.Tensor) -> torch.Tensor:
        """``(..., res_alpha, res_beta, res_gamma)`` values -> ``(..., d)`` coefficients."""
        shape = (self.res_alpha, self.res_beta, self.res_gamma)
        if tuple(values.shape[-3:]) != shape:
            raise ValueError(f"SO3Grid: expected (..., {', '.join(map(str, shape))}) values, got {tuple(values.shape)}")
        _, weighted = self._matrices(values.dtype, values.device)
        out = values.reshape(-1, weighted.shape[0]) @ weighted
        return out.reshape(*values.shape[:-3], weighted.shape[1])

    def extra_repr(self) -> str:
        return f"lmax={self.lmax}, res={self.res_alpha}x{self.res_beta}x{self.res_gamma}"
