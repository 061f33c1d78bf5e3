"""Shared plumbing of the N-body models: input checks, batching of 5-particle systems as dense tensors.

Every N-body model has the same call signature::

    model(positions, velocities, charges) -> predicted positions

with ``positions``, ``velocities`` of shape ``(B, N, 3)`` or ``(N, 3)`` and ``charges`` ``(B, N, 1)``,
``(B, N)``, ``(N, 1)`` or ``(N,)``; the output has the shape of ``positions``. Graphs are fully
connected and small, so a batch is a dense ``(B, N, ...)`` tensor and pair features are
``(B, N, N, ...)``: no scatter, no Python loop over graphs.
"""

from __future__ import annotations

import torch

__all__ = ["check_nbody_inputs", "off_diagonal_mask"]


def check_nbody_inputs(
    positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor, name: str = "model"
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """Validate and batch the inputs: returns ``(x (B,N,3), v (B,N,3), q (B,N,1), unbatched)``."""
    for arg, t in (("positions", positions), ("velocities", velocities), ("charges", charges)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name}: {arg} must be a torch.Tensor, got {type(t).__name__}")
    if positions.dim() not in (2, 3) or positions.shape[-1] != 3:
        raise ValueError(f"{name}: positions must have shape (B, N, 3) or (N, 3), got {tuple(positions.shape)}")
    if velocities.shape != positions.shape:
        raise ValueError(f"{name}: velocities must have the shape of positions {tuple(positions.shape)}, "
                         f"got {tuple(velocities.shape)}")
    unbatched = positions.dim() == 2
    if unbatched:
        positions, velocities, charges = positions[None], velocities[None], charges[None]
    B, N = positions.shape[:2]
    if charges.shape == (B, N):
        charges = charges[..., None]
    if charges.shape != (B, N, 1):
        raise ValueError(f"{name}: charges must have shape {(B, N, 1)[unbatched:]} or {(B, N)[unbatched:]}, "
                         f"got {tuple(charges.shape)[unbatched:]}")
    if not (positions.dtype == velocities.dtype == charges.dtype):
        raise TypeError(f"{name}: positions, velocities and charges must share a dtype, got "
                        f"{positions.dtype}, {velocities.dtype}, {charges.dtype}")
    return positions, velocities, charges, unbatched


def off_diagonal_mask(n: int, *, dtype: torch.dtype, device: torch.device | None = None) -> torch.Tensor:
    """``(n, n, 1)`` mask, 1 for i != j (the fully connected graph without self-loops)."""
    return (1 - torch.eye(n, dtype=dtype, device=device))[..., None]
