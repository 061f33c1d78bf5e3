"""Skipping optimiser steps whose gradient is NaN or inf, and stopping a run that has diverged.

One bad batch (an extreme structure, an overflow in float32) should not poison the weights, the
optimiser's moments or the EMA: its step is skipped. Many bad steps in a row mean the run has diverged,
and continuing would only burn time, so training stops with an error that says what to change.
"""
from __future__ import annotations

import torch


def finite_gradients(model: torch.nn.Module, clip: float | None) -> bool:
    """Clip the gradient norm to ``clip`` (``None``: no clipping) and say whether it is finite.

    >>> m = torch.nn.Linear(2, 1)
    >>> m(torch.ones(1, 2)).sum().backward()
    >>> finite_gradients(m, 1.0)
    True
    >>> m.weight.grad[0, 0] = float("nan")
    >>> finite_gradients(m, None)
    False
    """
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return True
    if clip:
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
    else:
        norm = torch.nn.utils.get_total_norm([p.grad for p in params])
    return bool(torch.isfinite(norm))


class NonFiniteGuard:
    """Count optimiser steps skipped for a NaN or inf gradient; raise after ``limit`` in a row.

    >>> guard = NonFiniteGuard(limit=2)
    >>> guard.ok(True), guard.ok(False), guard.skipped
    (True, False, 1)
    >>> guard.ok(False)
    Traceback (most recent call last):
    ...
    FloatingPointError: training diverged: 2 steps in a row with a NaN or inf gradient. Lower the learning rate, ...
    """

    def __init__(self, limit: int, advice: str = "") -> None:
        if limit < 1:
            raise ValueError(f"NonFiniteGuard: limit must be >= 1, got {limit}")
        self.limit, self.advice = int(limit), advice
        self.skipped = 0  # in all
        self.in_a_row = 0

    def ok(self, finite: bool, where: str = "") -> bool:
        """Record one step; ``True`` when its gradient is finite and the optimiser may step."""
        if finite:
            self.in_a_row = 0
            return True
        self.skipped += 1
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            raise FloatingPointError(
                f"training diverged: {self.in_a_row} steps in a row with a NaN or inf gradient"
                f"{f' ({where})' if where else ''}. Lower the learning rate, clip the gradient, use "
                f"float64, or check the data for NaN or extreme values{'; ' + self.advice if self.advice else ''}")
        return False
