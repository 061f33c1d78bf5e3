r"""Pointwise nonlinearity of a signal on the rotation group (e3nn's ``SO3Activation``).

The coefficients ``(2l+1)x l`` (`equiv.so3.so3_irreps`) describe a function on SO(3)
(`equiv.so3.SO3Grid`); the layer evaluates it on the Euler-angle grid, applies :math:`\sigma`
pointwise and projects back to degrees :math:`\le L_\text{out}`. The irreps act on the coefficients
as right translations of the signal, which commute with a pointwise function, so the layer is
equivariant up to the quadrature error: exactly for a polynomial :math:`\sigma` of degree :math:`k`
once the grid integrates degree :math:`k L_\text{in} + L_\text{out}` (``res_beta`` and ``res_alpha``
above it), otherwise with an error that falls with ``resolution``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from equiv.so3 import SO3Grid

from .activation import moment_scale

__all__ = ["SO3Activation"]


class SO3Activation(nn.Module):
    r"""``(..., d_in) -> (..., d_out)``: to the SO(3) grid, :math:`\sigma`, back (module docstring).

    Parameters
    ----------
    lmax_in, lmax_out : int
    act : callable
        :math:`\sigma`, scaled to unit second moment on :math:`N(0, 1)` inputs when ``normalize``
        (exact constant `moment_scale`; e3nn's ``SO3Activation`` always scales, by a Monte-Carlo
        estimate of the same constant, about 1e-3 off).
    resolution : int
        Of both grids (`equiv.so3.SO3Grid`).
    normalization : {"component"}
    aspect_ratio : float
    normalize : bool
        Default True.

    Attributes
    ----------
    irreps_in, irreps_out : Irreps
        ``(2l+1)x l`` up to ``lmax_in`` / ``lmax_out``.

    Examples
    --------
    >>> act = SO3Activation(1, 2, torch.tanh, resolution=6)
    >>> act.irreps_in, act.irreps_out
    (1x0e+3x1e, 1x0e+3x1e+5x2e)
    >>> tuple(act(torch.randn(7, act.irreps_in.dim)).shape)
    (7, 35)
    """

    def __init__(self, lmax_in: int, lmax_out: int, act: Callable, resolution: int, *,
                 normalization: str = "component", aspect_ratio: float = 2, normalize: bool = True):
        super().__init__()
        self.grid_in = SO3Grid(lmax_in, resolution, normalization=normalization, aspect_ratio=aspect_ratio)
        self.grid_out = SO3Grid(lmax_out, resolution, normalization=normalization, aspect_ratio=aspect_ratio)
        self.act, self.scale = act, moment_scale(act) if normalize else 1.0
        self.lmax_in, self.lmax_out = lmax_in, lmax_out
        self.irreps_in, self.irreps_out = self.grid_in.irreps, self.grid_out.irreps

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        values = self.act(self.grid_in.to_grid(features))
        if self.scale != 1.0:
            values = values * self.scale
        return self.grid_out.from_grid(values)

    def extra_repr(self) -> str:
        return f"{self.lmax_in} -> {self.lmax_out}, resolution {self.grid_in.res_beta // 2}"
