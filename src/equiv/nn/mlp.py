r"""A fully connected network with variance-preserving initialisation (e3nn's ``FullyConnectedNet``),
the usual radial network of NequIP/MACE-style models."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn

from .activation import moment_scale

__all__ = ["FullyConnectedNet"]


class _Layer(nn.Module):
    """``act(x @ W / sqrt(h_in var_in)) sqrt(var_out)`` (or ``x @ W / sqrt(h_in var_in / var_out)``
    without activation), ``W ~ N(0, 1)``, no bias."""

    def __init__(self, h_in: int, h_out: int, act, var_in: float, var_out: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(h_in, h_out))
        self.act, self.h_in, self.h_out, self.var_in, self.var_out = act, h_in, h_out, var_in, var_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act is None:
            return x @ (self.weight / math.sqrt(self.h_in * self.var_in / self.var_out))
        return self.act(x @ (self.weight / math.sqrt(self.h_in * self.var_in))) * math.sqrt(self.var_out)

    def extra_repr(self) -> str:
        name = getattr(self.act, "__name__", type(self.act).__name__) if self.act is not None else None
        return f"{self.h_in} -> {self.h_out}, act={name}"


class FullyConnectedNet(nn.Sequential):
    r"""Multi-layer perceptron with bias-free layers that keep unit variance (e3nn's ``FullyConnectedNet``).

    Layer :math:`k` computes :math:`x \mapsto \phi(x W_k / \sqrt{h_k})` with :math:`W_k \sim N(0, 1)`
    (the scale is in the forward, not the initialisation, so the learning rate sees unit-scale
    weights) and :math:`\phi = c f`, :math:`c = 1/\sqrt{E[f(z)^2]}` (`moment_scale`, exact; e3nn's
    Monte-Carlo constant differs by ~1e-3 relative), so activations keep unit second moment
    through depth. The last layer has no activation unless ``out_act``. ``variance_in`` and
    ``variance_out`` declare the input's variance and the wanted output variance.

    Parameters
    ----------
    hs : sequence of int
        Input, hidden and output widths (at least two).
    act : callable or None
        Activation (normalised as above); None: a linear network.
    variance_in, variance_out : float
    out_act : bool
        Apply the activation after the last layer too.
    normalize : bool
        Scale ``act`` to unit second moment (default True, as e3nn).

    The parameters are ``layer{k}.weight`` of shape ``(h_k, h_{k+1})``, e3nn's names and shapes, so an
    e3nn state dict loads as it is.

    Examples
    --------
    >>> import torch
    >>> net = FullyConnectedNet([8, 64, 64, 3], torch.nn.functional.silu)
    >>> [tuple(p.shape) for p in net.parameters()]
    [(8, 64), (64, 64), (64, 3)]
    >>> net(torch.randn(10, 8)).shape
    torch.Size([10, 3])
    """

    def __init__(self, hs: Sequence[int], act: Callable | None = None, variance_in: float = 1.0,
                 variance_out: float = 1.0, out_act: bool = False, normalize: bool = True) -> None:
        super().__init__()
        hs = list(hs)
        if len(hs) < 2 or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hs):
            raise ValueError(f"FullyConnectedNet: hs must list at least two positive widths, got {hs!r}")
        if act is not None and not callable(act):
            raise ValueError(f"FullyConnectedNet: act must be callable or None, got {act!r}")
        if not variance_in > 0 or not variance_out > 0:
            raise ValueError(f"FullyConnectedNet: variances must be positive, got {variance_in}, {variance_out}")
        self.hs = hs
        if act is not None and normalize:
            c = moment_scale(act)
            base = act

            def act(z, base=base, c=c):  # noqa: E731 - a named closure keeps the repr readable
                return base(z) * c

            act.__name__ = f"{getattr(base, '__name__', type(base).__name__)}*{c:.4f}"
        var_in = variance_in
        for k, (h1, h2) in enumerate(zip(hs, hs[1:])):
            last = k == len(hs) - 2
            var_out = variance_out if last else 1.0
            self.add_module(f"layer{k}", _Layer(h1, h2, act if (out_act or not last) else None, var_in, var_out))
            var_in = var_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1:] != (self.hs[0],):
            raise ValueError(f"FullyConnectedNet: input last dimension must be {self.hs[0]}, got shape {tuple(x.shape)}")
        return super().forward(x)

    def extra_repr(self) -> str:
        return f"hs={self.hs}"
