r"""Signals on the sphere: spherical-harmonic coefficients ↔ values on an equiangular grid.

A band-limited function on the sphere has two representations: its coefficients,

.. math::

    f(\hat r) = \sum_{l=0}^{L} c_l \sum_{m=-l}^{l} x_{lm}\, Y_{lm}(\hat r),

(:math:`Y` the real harmonics of `spherical_harmonics` with ``normalization="integral"``, :math:`c_l`
a per-degree factor set by ``normalization``), and its values on the equiangular grid of e3nn's
``ToS2Grid`` / ``FromS2Grid`` (Driscoll & Healy's sampling, shifted by half a step in :math:`\beta`):

.. math::

    \beta_j = \pi (j + \tfrac12) / N_\beta, \qquad \alpha_k = 2\pi k / N_\alpha, \qquad
    \hat r_{jk} = (\sin\beta_j \sin\alpha_k,\ \cos\beta_j,\ \sin\beta_j \cos\alpha_k),

with the polar axis :math:`y`. `ToS2Grid` evaluates :math:`f` on the grid; `FromS2Grid` computes
:math:`x_{lm} = c_l^{-1} \int f\, Y_{lm}\, d\Omega` by a quadrature exact for band-limited
:math:`f`, so ``FromS2Grid(ToS2Grid(x)) = x`` whenever :math:`N_\beta \ge 2(L+1)` and
:math:`N_\alpha \ge 2L+1`.

**Quadrature in β.** The weights :math:`w_j` are the unique ones with
:math:`\sum_j w_j P_k(\cos\beta_j) = \int_{-1}^{1} P_k(t)\, dt = 2\delta_{k0}` for
:math:`k < N_\beta` (:math:`P_k` Legendre polynomials): they integrate every polynomial of degree
:math:`< N_\beta` in :math:`\cos\beta` exactly, as the Driscoll–Healy weights do (J. R. Driscoll and
D. M. Healy, "Computing Fourier transforms and convolutions on the 2-sphere", Adv. Appl. Math. 15,
202 (1994)). They are found by solving that linear system (well conditioned: the nodes are
Chebyshev-like). With the uniform rule in :math:`\alpha` (weight :math:`2\pi / N_\alpha`) the product
rule integrates :math:`Y_{l_1 m_1} Y_{l_2 m_2}` exactly when :math:`l_1 + l_2 < N_\beta` and
:math:`|m_1| + |m_2| < N_\alpha`.

**Separation.** :math:`Y_{lm}(\beta, \alpha) = P_{lm}(\beta) A_m(\alpha)` with
:math:`A_m = \cos(m\alpha)`, :math:`1`, :math:`\sin(|m|\alpha)` for :math:`m >, =, < 0`, so both
directions are two matrix products (:math:`O(L^3)` per signal on an :math:`O(L) \times O(L)` grid).

**Normalisations** (e3nn's conventions, for users porting e3nn code): ``"integral"``
:math:`c_l = 1`; ``"component"`` :math:`c_l = \sqrt{4\pi / ((2l+1)(L+1))}` (unit-variance
components give a signal whose variance does not depend on :math:`L`); ``"norm"``
:math:`c_l = \sqrt{4\pi / (L+1)}`. `ToS2Grid` and `FromS2Grid` return e3nn 0.4.4's outputs to
rounding (``tests/so3/test_s2grid.py``).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from ._rotation import angles_to_xyz
from ._spherical_harmonics import spherical_harmonics

__all__ = ["s2_grid", "ToS2Grid", "FromS2Grid"]

_NORMALIZATIONS = ("integral", "component", "norm")


def s2_grid(res_beta: int, res_alpha: int, dtype=None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The equiangular grid: ``betas`` :math:`\pi (j + 1/2) / N_\beta` ``(res_beta,)`` and
    ``alphas`` :math:`2\pi k / N_\alpha` ``(res_alpha,)`` (e3nn's ``s2_grid``).

    Examples
    --------
    >>> betas, alphas = s2_grid(4, 3, dtype=torch.float64)
    >>> [round(b, 4) for b in (betas / torch.pi).tolist()], [round(a, 4) for a in (alphas / torch.pi).tolist()]
    ([0.125, 0.375, 0.625, 0.875], [0.0, 0.6667, 1.3333])
    """
    dtype = dtype or torch.get_default_dtype()
    betas = (torch.arange(res_beta, dtype=dtype, device=device) + 0.5) * (math.pi / res_beta)
    alphas = torch.arange(res_alpha, dtype=dtype, device=device) * (2 * math.pi / res_alpha)
    return betas, alphas


@functools.lru_cache(maxsize=None)
def _beta_weights(res_beta: int) -> np.ndarray:
    """Weights ``w_j`` with ``sum_j w_j P_k(cos beta_j) = 2 delta_k0`` for ``k < res_beta`` (float64)."""
    t = np.cos((np.arange(res_beta) + 0.5) * np.pi / res_beta)
    legendre = np.polynomial.legendre.legvander(t, res_beta - 1).T  # (k, j) = P_k(t_j)
    rhs = np.zeros(res_beta)
    rhs[0] = 2.0
    w = np.linalg.solve(legendre, rhs)
    if np.abs(legendre @ w - rhs).max() > 1e-10:
        raise RuntimeError(f"s2 grid: quadrature weights for res_beta={res_beta} are not accurate")
    return w


def azimuthal_factors(lmax: int, alphas) -> np.ndarray:
    r""":math:`A_m(\alpha)` ``(2 lmax + 1, len(alphas))`` for :math:`m = -L..L`: :math:`\cos(m\alpha)`,
    :math:`1`, :math:`\sin(|m|\alpha)` for :math:`m >, =, < 0` (float64, numpy)."""
    a = np.asarray(alphas, dtype=np.float64)
    return np.stack([np.cos(m * a) if m >= 0 else np.sin(-m * a) for m in range(-lmax, lmax + 1)])


def polar_factors(lmax: int, betas) -> np.ndarray:
    r""":math:`P_{lm}(\beta)` ``(lmax + 1, 2 lmax + 1, len(betas))`` with
    :math:`Y_{lm}(\beta, \alpha) = P_{lm}(\beta) A_m(\alpha)` (`azimuthal_factors`; ``"integral"``
    harmonics, zero for :math:`|m| > l`; float64, numpy): the harmonics evaluated where
    :math:`A_m = 1` (:math:`\alpha = 0` for :math:`m \ge 0`, :math:`\pi / (2|m|)` for :math:`m < 0`).
    Used by the sphere-grid transforms here and by the grid Gaunt product (`equiv.tp`)."""
    betas = torch.as_tensor(np.asarray(betas, dtype=np.float64))
    where = torch.tensor([0.0 if m >= 0 else math.pi / (2 * -m) for m in range(-lmax, lmax + 1)], dtype=torch.float64)
    points = angles_to_xyz(where[None, :], betas[:, None])  # (n_beta, 2 lmax + 1, 3)
    y = spherical_harmonics(list(range(lmax + 1)), points, normalization="integral").numpy()  # (b, m, R)
    P = np.zeros((lmax + 1, 2 * lmax + 1, len(betas)))
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            P[l, m + lmax] = y[:, m + lmax, l * l + l + m]
    return P


@functools.lru_cache(maxsize=None)
def _factors(lmax: int, res_beta: int, res_alpha: int):
    """``B (R, res_beta, 2 lmax + 1)`` with ``Y_i(beta_j, alpha) = B[i, j, m_i + lmax] A_{m_i}(alpha)`` and
    ``A (2 lmax + 1, res_alpha)``, in float64 (numpy)."""
    betas, alphas = s2_grid(res_beta, res_alpha, dtype=torch.float64)
    P = polar_factors(lmax, betas.numpy())
    B = np.zeros(((lmax + 1) ** 2, res_beta, 2 * lmax + 1))
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            B[l * l + l + m, :, m + lmax] = P[l, m + lmax]
    return B, azimuthal_factors(lmax, alphas.numpy())


def _resolution(lmax, res):
    """e3nn's completion of ``lmax`` and ``res = (res_beta, res_alpha)`` (either may be None), checked."""
    res_beta, res_alpha = (res, None) if res is None or isinstance(res, int) else tuple(res)
    if res_beta is None:
        if lmax is not None:
            res_beta = 2 * (lmax + 1)
        elif res_alpha is not None:
            res_beta = 2 * ((res_alpha + 1) // 2)
        else:
            raise ValueError("s2 grid: give lmax or res")
    if res_alpha is None:
        res_alpha = max(2 * lmax + 1, res_beta - 1) if lmax is not None else res_beta - 1
    if lmax is None:
        lmax = min(res_beta // 2 - 1, (res_alpha - 1) // 2)
    if lmax < 0 or res_beta < 2 or res_alpha < 1:
        raise ValueError(f"s2 grid: lmax={lmax}, res=({res_beta}, {res_alpha}) is not a usable grid")
    if res_beta % 2:
        raise ValueError(f"s2 grid: res_beta must be even (e3nn's grids), got {res_beta}")
    if lmax + 1 > res_beta // 2:
        raise ValueError(f"s2 grid: lmax={lmax} needs res_beta >= {2 * (lmax + 1)} to be recovered from "
                         f"the grid, got {res_beta}")
    return lmax, res_beta, res_alpha


def _degree_factors(normalization, lmax: int, lmax_norm: int) -> np.ndarray:
    """``c_l`` for ``l = 0..lmax`` (``lmax_norm`` is the L of the normalisation)."""
    if torch.is_tensor(normalization) or isinstance(normalization, (list, tuple, np.ndarray)):
        c = np.asarray(torch.as_tensor(normalization, dtype=torch.float64).cpu(), dtype=np.float64)
        if c.shape != (lmax + 1,):
            raise ValueError(f"s2 grid: per-degree normalization needs {lmax + 1} values, got shape {c.shape}")
        return c
    if normalization not in _NORMALIZATIONS:
        raise ValueError(f"s2 grid: normalization must be one of {_NORMALIZATIONS} or per-degree values, "
                         f"got {normalization!r}")
    ls = np.arange(lmax + 1)
    if normalization == "integral":
        return np.ones(lmax + 1)
    if normalization == "component":
        return np.sqrt(4 * np.pi / ((2 * ls + 1) * (lmax_norm + 1)))
    return np.full(lmax + 1, np.sqrt(4 * np.pi / (lmax_norm + 1)))


class _S2Grid(nn.Module):
    def _setup(self, lmax, res, dtype, device):
        self.lmax, self.res_beta, self.res_alpha = _resolution(lmax, res)
        dtype = dtype or torch.get_default_dtype()
        betas, alphas = s2_grid(self.res_beta, self.res_alpha, dtype=dtype, device=device)
        self.register_buffer("betas", betas)
        self.register_buffer("alphas", alphas)
        return _factors(self.lmax, self.res_beta, self.res_alpha)

    @property
    def grid(self) -> torch.Tensor:
        """Unit vectors of the grid points, ``(res_beta, res_alpha, 3)``."""
        beta, alpha = torch.meshgrid(self.betas, self.alphas, indexing="ij")
        return angles_to_xyz(alpha, beta)

    def extra_repr(self) -> str:
        return f"lmax={self.lmax}, res={self.res_beta}x{self.res_alpha} (beta x alpha)"


class ToS2Grid(_S2Grid):
    r"""Coefficients ``(..., (lmax+1)^2)`` → values on the grid ``(..., res_beta, res_alpha)``:
    :math:`f(\hat r_{jk}) = \sum_{lm} c_l x_{lm} Y_{lm}(\hat r_{jk})` (module docstring: grid,
    normalisations). Same arguments and outputs as e3nn's ``o3.ToS2Grid``.

    Parameters
    ----------
    lmax : int, optional
        Largest degree (default: the largest the grid resolves, ``min(res_beta/2 - 1, (res_alpha-1)/2)``).
    res : int or (int, int), optional
        ``res_beta`` or ``(res_beta, res_alpha)``; default ``(2 (lmax+1), max(2 lmax + 1, res_beta - 1))``.
    normalization : {"component", "norm", "integral"} or per-degree values
        :math:`c_l` (default ``"component"``, as e3nn).

    Examples
    --------
    >>> to_grid = ToS2Grid(2, (6, 7))
    >>> x = torch.zeros(9)
    >>> x[0] = 1.0                                  # a constant function
    >>> f = to_grid(x)
    >>> tuple(f.shape), bool(torch.allclose(f, f[0, 0].expand(6, 7)))
    ((6, 7), True)
    >>> from_grid = FromS2Grid((6, 7), 2)
    >>> x = torch.randn(4, 9)
    >>> bool(torch.allclose(from_grid(to_grid(x)), x, atol=1e-5))
    True
    """

    def __init__(self, lmax: int | None = None, res=None, normalization="component", dtype=None, device=None):
        super().__init__()
        B, A = self._setup(lmax, res, dtype, device)
        c = _degree_factors(normalization, self.lmax, self.lmax)
        scale = np.repeat(c, 2 * np.arange(self.lmax + 1) + 1)  # c_l per coefficient
        dtype = self.betas.dtype
        B = B * scale[:, None, None]
        self.register_buffer("to_beta", torch.as_tensor(B.reshape(B.shape[0], -1), dtype=dtype, device=device))
        self.register_buffer("to_alpha", torch.as_tensor(A, dtype=dtype, device=device))  # (2L+1, res_alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        R = self.to_beta.shape[0]
        if x.shape[-1] != R:
            raise ValueError(f"ToS2Grid(lmax={self.lmax}): expected (..., {R}) coefficients, got {tuple(x.shape)}")
        f = (x.reshape(-1, R) @ self.to_beta).view(-1, self.res_beta, 2 * self.lmax + 1) @ self.to_alpha
        return f.view(*x.shape[:-1], self.res_beta, self.res_alpha)


class FromS2Grid(_S2Grid):
    r"""Values on the grid ``(..., res_beta, res_alpha)`` → coefficients ``(..., (lmax+1)^2)``:
    :math:`x_{lm} = c_l^{-1} \int f\, Y_{lm}\, d\Omega` by the exact quadrature of the module
    docstring, the inverse of `ToS2Grid` on band-limited signals. Same arguments and outputs as
    e3nn's ``o3.FromS2Grid``.

    Parameters
    ----------
    res : int or (int, int), optional
        ``res_beta`` or ``(res_beta, res_alpha)``.
    lmax : int, optional
        Largest degree of the output.
    normalization : {"component", "norm", "integral"} or per-degree values
        :math:`c_l` as in `ToS2Grid` (default ``"component"``). Per-degree values are the
        :math:`c_l` of the matching `ToS2Grid` and are divided by, so that the two stay inverse (e3nn's
        ``FromS2Grid`` multiplies by a tensor argument instead).
    lmax_in : int, optional
        The :math:`L` in the ``"component"`` and ``"norm"`` factors (that of the `ToS2Grid` which made
        the signal; default ``lmax``).

    Examples
    --------
    >>> from_grid = FromS2Grid((8, 9), 3, normalization="integral")
    >>> z = from_grid.grid[..., 1]                  # the function y (polar axis) on the grid
    >>> x = from_grid(z)                            # = sqrt(4 pi / 3) Y_{1,0}
    >>> round(float(x[2]), 5), float(x.abs().sum() - x[2].abs()) < 1e-6
    (2.04665, True)
    """

    def __init__(self, res=None, lmax: int | None = None, normalization="component", lmax_in: int | None = None,
                 dtype=None, device=None):
        super().__init__()
        B, A = self._setup(lmax, res, dtype, device)
        c = _degree_factors(normalization, self.lmax, self.lmax if lmax_in is None else lmax_in)
        if np.any(c == 0):
            raise ValueError("FromS2Grid: per-degree normalization values must be non-zero")
        scale = np.repeat(1.0 / c, 2 * np.arange(self.lmax + 1) + 1)
        w = _beta_weights(self.res_beta) * (2 * np.pi / self.res_alpha)  # integral weight of each point
        B = B * scale[:, None, None] * w[None, :, None]
        dtype = self.betas.dtype
        self.register_buffer("from_alpha", torch.as_tensor(A.T.copy(), dtype=dtype, device=device))  # (res_alpha, 2L+1)
        from_beta = torch.as_tensor(B.reshape(B.shape[0], -1).T.copy(), dtype=dtype, device=device)
        self.register_buffer("from_beta", from_beta)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        if f.shape[-2:] != (self.res_beta, self.res_alpha):
            raise ValueError(f"FromS2Grid: expected (..., {self.res_beta}, {self.res_alpha}) grid values, "
                             f"got {tuple(f.shape)}")
        h = (f.reshape(-1, self.res_alpha) @ self.from_alpha).view(-1, self.res_beta * (2 * self.lmax + 1))
        return (h @ self.from_beta).view(*f.shape[:-2], (self.lmax + 1) ** 2)
