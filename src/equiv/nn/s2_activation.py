r"""Pointwise nonlinearity of a function on the sphere (e3nn's ``S2Activation``; the activation of
EquiformerV2, Liao et al., ICLR 2024, arXiv:2306.12059, and of spherical CNNs).

The coefficients :math:`x_{lm}` (:math:`l = 0..L`, one copy each) describe
:math:`f(\hat r) = \sum_{lm} x_{lm} Y_{lm}(\hat r)`. The layer evaluates :math:`f` on a quadrature grid,
applies :math:`\sigma` pointwise and projects back,

.. math::

    y_{lm} = \frac{\int \sigma(f(\hat r))\, Y_{lm}(\hat r)\, d\Omega}{\int Y_{lm}^2\, d\Omega}
    \approx \frac{\sum_g w_g\, \sigma(f(\hat r_g))\, Y_{lm}(\hat r_g)}{\int Y_{lm}^2\, d\Omega},
    \qquad l \le L_\text{out},

on the Gauss–Legendre × uniform grid of `equiv.so3.sphere_grid` (exact for band limit
``resolution``). A pointwise function commutes with rotations, so the layer is equivariant exactly
when the quadrature is exact: for a polynomial :math:`\sigma` of degree :math:`k` with
``resolution >= k L + L_out`` (e.g. :math:`\sigma(t) = t^2`, the Gaunt product of the signal with
itself, from :math:`2L + L_\text{out}` on). For other activations :math:`\sigma(f)` is not
band-limited and the equivariance error falls with ``resolution``; measured for SiLU on
unit-variance coefficients, relative to the output (``tests/nn/test_s2_activation.py``):
:math:`L = 2`: 8e-2 at resolution 6, 2e-3 at 20 (the default), 1e-5 at 40; :math:`L = 3`: 6e-2 at
9, 4e-3 at 27 (the default), 6e-5 at 60; :math:`L = 6`: 5e-3 at 48 (the default). The default grids
have 231, 392, 630 and 1225 points (``grid_points``) for :math:`L` = 2, 3, 4 and 6.

**Parities.** The signal's irreps are :math:`p_v p_a^l` for :math:`l = 0..L`: :math:`p_a = -1` is
an ordinary function on the sphere (``0e + 1o + 2e + ...``, spherical-harmonic parity),
:math:`p_v = -1` a pseudo-scalar function (``0o + 1e + 2o + ...``), and :math:`p_a = +1` the
all-even or all-odd families. With :math:`p_v = -1` the activation must be odd (the output keeps
:math:`p_v`) or even (the output has :math:`p_v = +1`), as in `equiv.nn.Activation`.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from equiv.so3 import Irrep, Irreps, sphere_grid, spherical_harmonics

from .activation import _irreps, _parity_of

__all__ = ["S2Activation", "s2_irreps"]

_NORMALIZATIONS = ("integral", "component", "norm")


def s2_irreps(lmax: int, p_val: int = 1, p_arg: int = -1) -> Irreps:
    """The irreps ``0 .. lmax`` of a signal on the sphere: parity ``p_val * p_arg**l``.

    >>> s2_irreps(3)
    1x0e+1x1o+1x2e+1x3o
    """
    return Irreps([(1, Irrep(l, p_val * p_arg**l)) for l in range(lmax + 1)])


def _signal_parities(irreps: Irreps) -> tuple[int, int]:
    if len(irreps) == 0 or any(mul != 1 for mul, _ in irreps) or [ir.l for _, ir in irreps] != list(range(len(irreps))):
        raise ValueError(f"S2Activation: irreps must be one copy of each degree 0..L (e.g. '0e + 1o + 2e'), got {irreps}")
    p_val = irreps[0].ir.p
    p_arg = irreps[1].ir.p * p_val if len(irreps) > 1 else -1
    if irreps != s2_irreps(len(irreps) - 1, p_val, p_arg):
        raise ValueError(f"S2Activation: parities of {irreps} are not p_val * p_arg**l for any p_val, p_arg")
    return p_val, p_arg


class S2Activation(nn.Module):
    r"""Activation of a signal on the sphere, pointwise on a quadrature grid (module docstring).

    Parameters
    ----------
    irreps : Irreps or str
        The signal, one copy of each degree ``0..L`` (e.g. ``"0e + 1o + 2e"``, or `s2_irreps`).
    act : callable
        Elementwise activation.
    lmax_out : int, optional
        Degrees kept in the output (default ``L``).
    resolution : int, optional
        Band limit for which the grid is exact (default ``6 (L + 1) + lmax_out``; at least
        ``L + lmax_out``).
    normalization : {"component", "integral", "norm"}
        Of the harmonics in :math:`f = \sum x_{lm} Y_{lm}` (`equiv.so3.spherical_harmonics`). For
        unit-variance coefficients :math:`f` has mean square :math:`(L+1)^2` (``"component"``,
        default), :math:`L+1` (``"norm"``) or :math:`(L+1)^2/4\pi` (``"integral"``).

    Shapes: ``(..., irreps.dim)`` → ``(..., irreps_out.dim)``; several channels are leading axes.

    Examples
    --------
    >>> import torch
    >>> act = S2Activation("0e + 1o + 2e", torch.nn.functional.silu)
    >>> act.irreps_out, act.resolution, act.grid_points
    (1x0e+1x1o+1x2e, 20, 231)
    >>> act(torch.randn(4, 16, 9)).shape
    torch.Size([4, 16, 9])
    """

    def __init__(self, irreps, act: Callable, lmax_out: int | None = None, resolution: int | None = None,
                 normalization: str = "component", separable: bool = False) -> None:
        super().__init__()
        self.irreps_in = _irreps(irreps, "S2Activation")
        p_val, p_arg = _signal_parities(self.irreps_in)
        if not callable(act):
            raise ValueError(f"S2Activation: act must be callable, got {act!r}")
        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"S2Activation: normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
        L = self.irreps_in.lmax
        lmax_out = L if lmax_out is None else lmax_out
        if isinstance(lmax_out, bool) or not isinstance(lmax_out, int) or lmax_out < 0:
            raise ValueError(f"S2Activation: lmax_out must be an int >= 0, got {lmax_out!r}")
        resolution = 6 * (L + 1) + lmax_out if resolution is None else resolution
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < L + lmax_out:
            raise ValueError(f"S2Activation: resolution must be an int >= L + lmax_out = {L + lmax_out}, got {resolution!r}")
        if p_val == -1:
            parity = _parity_of(act)
            if parity == 0:
                raise ValueError(f"S2Activation: {self.irreps_in} is a pseudo-scalar signal; the activation must be "
                                 f"odd or even, {act!r} is neither")
            p_val = parity
        self.irreps_out = s2_irreps(lmax_out, p_val, p_arg)
        self.act, self.lmax_out, self.resolution, self.normalization = act, lmax_out, resolution, normalization
        self.separable = bool(separable)
        grid = sphere_grid(resolution, dtype=torch.float64)
        Y_in = spherical_harmonics(list(range(L + 1)), grid.points, normalization=normalization)  # (P, D_in)
        Y_out = spherical_harmonics(list(range(lmax_out + 1)), grid.points, normalization=normalization)
        norm = {"integral": [1.0] * (lmax_out + 1), "component": [4 * torch.pi] * (lmax_out + 1),
                "norm": [4 * torch.pi / (2 * l + 1) for l in range(lmax_out + 1)]}[normalization]
        inv = torch.tensor([1 / norm[l] for l in range(lmax_out + 1) for _ in range(2 * l + 1)], dtype=torch.float64)
        self.grid_points = grid.points.shape[0]
        self.register_buffer("to_grid_matrix", Y_in.T.contiguous(), persistent=False)  # (D_in, P)
        self.register_buffer("from_grid_matrix", (Y_out * grid.weights[:, None] * inv).contiguous(),
                             persistent=False)  # (P, D_out)

    def to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """Values :math:`f(\\hat r_g)` on the grid: ``(..., irreps_in.dim)`` → ``(..., grid_points)``."""
        if x.shape[-1] != self.irreps_in.dim:
            raise ValueError(f"S2Activation: input last dimension {x.shape[-1]} != irreps_in.dim={self.irreps_in.dim}")
        return x @ self.to_grid_matrix.to(x.dtype)

    def from_grid(self, f: torch.Tensor) -> torch.Tensor:
        """Coefficients of degree ``<= lmax_out`` of grid values (quadrature): ``(..., grid_points)`` →
        ``(..., irreps_out.dim)``."""
        return f @ self.from_grid_matrix.to(f.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.from_grid(self.act(self.to_grid(x)))
        if self.separable:
            out = torch.cat([self.act(x[..., :1]), out[..., 1:]], -1)
        return out

    def extra_repr(self) -> str:
        name = getattr(self.act, "__name__", type(self.act).__name__)
        return (f"{self.irreps_in} -> {self.irreps_out}, act={name}, resolution={self.resolution} "
                f"({self.grid_points} points), normalization={self.normalization!r}, separable={self.separable}")
