r"""Product quadrature on the sphere: Gauss–Legendre in :math:`\cos\beta` times uniform :math:`\alpha`.

In e3nn's spherical coordinates (polar axis :math:`y`),
:math:`\hat r(\alpha, \beta) = (\sin\beta \sin\alpha, \cos\beta, \sin\beta \cos\alpha)` and
:math:`d\Omega = d(\cos\beta)\, d\alpha`. A spherical polynomial of degree :math:`\le L` is, in
:math:`\alpha`, a trigonometric polynomial of degree :math:`\le L` and, for fixed :math:`\alpha`, a
polynomial of degree :math:`\le L` in :math:`\cos\beta` (after the :math:`\sin^{|m|}\beta` factors
are paired with :math:`e^{im\alpha}`). Hence :math:`n_\beta = \lceil (L+1)/2 \rceil`
Gauss–Legendre nodes (exact to degree :math:`2n_\beta - 1 \ge L`) times :math:`n_\alpha = L+1`
equispaced angles (exact for :math:`|m| \le L`) integrate it exactly. See e.g. Driscoll & Healy,
Adv. Appl. Math. 15, 202 (1994) for such product rules.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["SphereGrid", "sphere_grid"]


@dataclass(frozen=True)
class SphereGrid:
    r"""A product quadrature grid on :math:`S^2` (see `sphere_grid`).

    Attributes
    ----------
    degree : int
        Band limit: exact for spherical polynomials of degree :math:`\le` ``degree``.
    cos_beta : torch.Tensor
        ``(n_beta,)`` Gauss–Legendre nodes in :math:`\cos\beta`, increasing.
    betas : torch.Tensor
        ``(n_beta,)`` polar angles :math:`\arccos(\cos\beta)` (from :math:`y`).
    beta_weights : torch.Tensor
        ``(n_beta,)`` Gauss–Legendre weights (sum 2).
    alphas : torch.Tensor
        ``(n_alpha,)`` azimuths :math:`2\pi k / n_\alpha`.
    alpha_weights : torch.Tensor
        ``(n_alpha,)`` all :math:`2\pi/n_\alpha`.
    points : torch.Tensor
        ``(n_beta * n_alpha, 3)`` unit vectors, :math:`\beta`-major (``points.view(n_beta, n_alpha, 3)``).
    weights : torch.Tensor
        ``(n_beta * n_alpha,)`` product weights, sum :math:`4\pi`.

    Examples
    --------
    >>> grid = sphere_grid(4, dtype=torch.float64)
    >>> grid.shape, grid.points.shape, grid.weights.shape
    ((3, 5), torch.Size([15, 3]), torch.Size([15]))
    >>> z = grid.points[:, 2]  # int z^2 dOmega = 4 pi / 3
    >>> bool(torch.isclose(grid.integrate(z**2), torch.tensor(4 * torch.pi / 3, dtype=torch.float64)))
    True
    """

    degree: int
    cos_beta: torch.Tensor
    betas: torch.Tensor
    beta_weights: torch.Tensor
    alphas: torch.Tensor
    alpha_weights: torch.Tensor
    points: torch.Tensor
    weights: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_beta, n_alpha)``."""
        return (self.betas.shape[0], self.alphas.shape[0])

    def integrate(self, f: torch.Tensor) -> torch.Tensor:
        r""":math:`\int_{S^2} f\, d\Omega` for values ``f`` of shape ``(N, ...)`` at ``points``."""
        w = self.weights.reshape(-1, *([1] * (f.dim() - 1)))
        return (f * w).sum(0)


@functools.lru_cache(maxsize=None)
def _gauss_legendre(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    return torch.from_numpy(x), torch.from_numpy(w)


def sphere_grid(degree: int, dtype: torch.dtype | None = None, device=None) -> SphereGrid:
    r"""Gauss–Legendre × uniform quadrature on the sphere, exact for band limit ``degree``.

    .. math::

        \int_{S^2} f\, d\Omega = \sum_{i, j} w_i \frac{2\pi}{n_\alpha}
        f\big(\hat r(\alpha_j, \beta_i)\big)
        \quad \text{for every spherical polynomial } f \text{ of degree} \le \texttt{degree},

    with :math:`n_\beta = \lceil(\texttt{degree}+1)/2\rceil`, :math:`n_\alpha = \texttt{degree}+1`.
    To integrate a product :math:`Y^{l_1} Y^{l_2} Y^{l_3}` use ``degree = l1 + l2 + l3``.

    Parameters
    ----------
    degree : int
        Band limit :math:`L \ge 0`.
    dtype, device : optional
        Of the returned tensors (nodes are computed in float64, then cast).

    Returns
    -------
    SphereGrid

    Examples
    --------
    >>> from equiv.so3 import spherical_harmonics
    >>> grid = sphere_grid(8, dtype=torch.float64)
    >>> Y = spherical_harmonics(4, grid.points)  # orthonormal: int Y Y^T = I
    >>> bool((grid.integrate(Y[:, :, None] * Y[:, None, :]) - torch.eye(9)).abs().max() < 1e-13)
    True
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"sphere_grid: degree must be an int >= 0, got {degree!r}")
    dtype = dtype or torch.get_default_dtype()
    n_beta = (degree + 2) // 2
    n_alpha = degree + 1
    x, w = _gauss_legendre(n_beta)
    alphas = torch.arange(n_alpha, dtype=torch.float64) * (2 * math.pi / n_alpha)
    alpha_w = torch.full((n_alpha,), 2 * math.pi / n_alpha, dtype=torch.float64)
    betas = torch.arccos(x)
    sin_beta = torch.sqrt(1 - x * x)[:, None]
    points = torch.stack(
        [sin_beta * alphas.sin()[None, :], x[:, None].expand(n_beta, n_alpha), sin_beta * alphas.cos()[None, :]], -1
    ).reshape(-1, 3)
    weights = (w[:, None] * alpha_w[None, :]).reshape(-1)
    cast = lambda t: t.to(dtype=dtype, device=device)  # noqa: E731
    return SphereGrid(degree, cast(x), cast(betas), cast(w), cast(alphas), cast(alpha_w), cast(points), cast(weights))
