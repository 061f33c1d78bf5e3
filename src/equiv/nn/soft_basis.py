r"""Smooth one-hot encodings of a scalar on an interval (e3nn's ``soft_one_hot_linspace``) and the
smooth unit step :math:`\theta(x)\, e^{-1/x}` (e3nn's ``soft_unit_step``).

``soft_one_hot_linspace(x, start, end, number, basis, cutoff)`` returns ``number`` functions of
``x`` on ``[start, end]``, centred on a uniform grid of values :math:`v_i` with spacing :math:`h`
(``cutoff=False``: the grid includes the ends; ``cutoff=True``: the ends are excluded and the
functions vanish outside ``(start, end)``), with :math:`d_i = (x - v_i)/h`:

============== ======================================================================================
basis          :math:`y_i(x)`
============== ======================================================================================
gaussian       :math:`e^{-d_i^2} / 1.12`
cosine         :math:`\cos(\pi d_i / 2)` for :math:`|d_i| < 1`, else 0
smooth_finite  :math:`1.14136\, e^2\, u(d_i + 1)\, u(1 - d_i)`, :math:`u` the smooth unit step
fourier        :math:`\cos(\pi i t)/\sqrt{1/4 + N/2}`, :math:`i = 0..N-1`; with ``cutoff``
               :math:`\sin(\pi i t)/\sqrt{1/4 + N/2}`, :math:`i = 1..N`, zero outside
               :math:`0 < t < 1`; :math:`t = (x - \text{start})/(\text{end} - \text{start})`
bessel         :math:`\sqrt{2/c}\, \sin(i \pi r / c)/r`, :math:`r = x - \text{start}`,
               :math:`c = \text{end} - \text{start}`, :math:`i = 1..N`; with ``cutoff`` zero outside
               :math:`0 < r < c`
============== ======================================================================================

The constants make :math:`\sum_i y_i(x)^2 \approx 1` inside the interval (not for ``bessel``).
"""

from __future__ import annotations

import math

import torch

__all__ = ["soft_one_hot_linspace", "soft_unit_step"]

BASES = ("gaussian", "cosine", "smooth_finite", "fourier", "bessel")


class _SoftUnitStep(torch.autograd.Function):
    """:math:`\\theta(x) e^{-1/x}` with the derivative :math:`e^{-1/x}/x^2` (0 for :math:`x \\le 0`),
    written so that neither direction evaluates :math:`e^{-1/x}` at :math:`x \\le 0` (no inf * 0)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        pos = x > 0
        safe = torch.where(pos, x, torch.ones_like(x))
        return torch.where(pos, torch.exp(-1 / safe), torch.zeros_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        pos = x > 0
        safe = torch.where(pos, x, torch.ones_like(x))
        return grad * torch.where(pos, torch.exp(-1 / safe) / safe**2, torch.zeros_like(x))


def soft_unit_step(x: torch.Tensor) -> torch.Tensor:
    r"""The smooth (:math:`C^\infty`) unit step :math:`\theta(x)\, e^{-1/x}`: 0 for :math:`x \le 0`,
    rising to 1 as :math:`x \to \infty`, with every derivative 0 at :math:`x = 0`.

    >>> import torch
    >>> soft_unit_step(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0.0, 0.0, float(torch.exp(torch.tensor(-1.0)))]
    True
    """
    return _SoftUnitStep.apply(x)


def soft_one_hot_linspace(x: torch.Tensor, start: float, end: float, number: int, basis: str = None,
                          cutoff: bool = None) -> torch.Tensor:
    r"""``number`` smooth functions of ``x`` on ``[start, end]`` (table in the module docstring):
    ``(...)`` → ``(..., number)``. ``basis`` and ``cutoff`` must be given (as in e3nn).

    >>> import torch
    >>> y = soft_one_hot_linspace(torch.linspace(0, 1, 5), 0.0, 1.0, number=4, basis="smooth_finite", cutoff=True)
    >>> tuple(y.shape), bool(y[0].abs().max() == 0)   # zero at the ends with cutoff
    ((5, 4), True)
    """
    if basis not in BASES:
        raise ValueError(f"soft_one_hot_linspace: basis must be one of {BASES}, got {basis!r}")
    if cutoff not in (True, False):
        raise ValueError(f"soft_one_hot_linspace: cutoff must be True or False, got {cutoff!r}")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ValueError(f"soft_one_hot_linspace: number must be a positive integer, got {number!r}")
    if number < 2 and not cutoff and basis in ("gaussian", "cosine", "smooth_finite"):
        raise ValueError(f"soft_one_hot_linspace: basis {basis!r} without cutoff needs number >= 2 (a grid spacing)")
    if not end > start:
        raise ValueError(f"soft_one_hot_linspace: need end > start, got start={start}, end={end}")
    if not x.dtype.is_floating_point:
        raise ValueError(f"soft_one_hot_linspace: x must be floating point, got {x.dtype}")
    if basis == "fourier":
        t = (x[..., None] - start) / (end - start)
        norm = math.sqrt(0.25 + number / 2)
        if not cutoff:
            i = torch.arange(0, number, dtype=x.dtype, device=x.device)
            return torch.cos(math.pi * i * t) / norm
        i = torch.arange(1, number + 1, dtype=x.dtype, device=x.device)
        return torch.sin(math.pi * i * t) / norm * ((t > 0) & (t < 1))
    if basis == "bessel":
        r = x[..., None] - start
        c = end - start
        roots = torch.arange(1, number + 1, dtype=x.dtype, device=x.device) * math.pi
        out = math.sqrt(2 / c) * torch.sin(roots * r / c) / r
        return out * ((r / c < 1) & (r > 0)) if cutoff else out
    if cutoff:
        values = torch.linspace(start, end, number + 2, dtype=x.dtype, device=x.device)
        step = values[1] - values[0]
        values = values[1:-1]
    else:
        values = torch.linspace(start, end, number, dtype=x.dtype, device=x.device)
        step = values[1] - values[0]
    d = (x[..., None] - values) / step
    if basis == "gaussian":
        return torch.exp(-d * d) / 1.12
    if basis == "cosine":
        return torch.cos(math.pi / 2 * d) * ((d < 1) & (d > -1))
    return 1.14136 * math.exp(2.0) * soft_unit_step(d + 1) * soft_unit_step(1 - d)
