r"""The constant-velocity baseline of the N-body benchmark: :math:`\hat x = x + t\,v` with one learned :math:`t`.

Satorras, Hoogeboom and Welling, *E(n) Equivariant Graph Neural Networks*, ICML 2021, Table 2 ("Linear":
test MSE 0.0819 on the charged 5-body task with 3000 training systems). Its reference code learns the
single time :math:`t` (initialised at 0.7) with the same training loop as the networks. The model is
the least-squares problem :math:`\min_t \sum \lVert x + t v - y\rVert^2`, so :meth:`NBodyLinear.fit`
also solves it in closed form, :math:`t^* = \langle y - x, v\rangle / \langle v, v\rangle`.

Its test error depends on the data alone, not on a seed or a training run. That makes it the one published
number that checks a regenerated dataset directly (docs/nbody.md, "Data").
"""

from __future__ import annotations

import torch
from torch import nn

from ._nbody_common import check_nbody_inputs

__all__ = ["NBodyLinear"]


class NBodyLinear(nn.Module):
    r"""Constant-velocity extrapolation :math:`\hat x_i = x_i + t\,v_i` with one learned time :math:`t`.

    Equivariant to rotations, reflections, translations and permutations; ignores the charges.

    Parameters
    ----------
    time : float
        Initial :math:`t` (default 0.7, as in the reference code).

    Shapes:
        - positions, velocities: ``(B, N, 3)`` or ``(N, 3)``
        - charges: ``(B, N, 1)``, ``(B, N)``, ``(N, 1)`` or ``(N,)`` (unused)
        - output: predicted positions, shape of ``positions``

    Examples
    --------
    >>> x, v = torch.zeros(2, 5, 3), torch.ones(2, 5, 3)
    >>> model = NBodyLinear().fit(x, v, x + 0.25 * v)   # closed-form least squares
    >>> round(model.time.item(), 6)
    0.25
    >>> model(x, v, torch.ones(2, 5, 1)).shape
    torch.Size([2, 5, 3])
    """

    def __init__(self, time: float = 0.7) -> None:
        super().__init__()
        if isinstance(time, bool) or not isinstance(time, (int, float)):
            raise TypeError(f"NBodyLinear: time must be a number, got {type(time).__name__}")
        self.time = nn.Parameter(torch.tensor(float(time)))

    def reset_parameters(self, time: float = 0.7) -> None:
        with torch.no_grad():
            self.time.fill_(time)

    @torch.no_grad()
    def fit(self, positions: torch.Tensor, velocities: torch.Tensor, targets: torch.Tensor) -> NBodyLinear:
        r"""Set :math:`t` to the least-squares optimum :math:`\langle y - x, v\rangle / \langle v, v\rangle`.

        Parameters
        ----------
        positions, velocities, targets : torch.Tensor
            Inputs and target positions of the training systems, all of one shape ``(..., 3)``.

        Returns
        -------
        NBodyLinear
            ``self``.
        """
        for name, t in (("velocities", velocities), ("targets", targets)):
            if t.shape != positions.shape:
                raise ValueError(f"NBodyLinear.fit: {name} must have the shape of positions "
                                 f"{tuple(positions.shape)}, got {tuple(t.shape)}")
        v = velocities.double()
        vv = (v * v).sum()
        if not torch.isfinite(vv) or not torch.isfinite(targets.double() - positions.double()).all():
            raise ValueError("NBodyLinear.fit: inputs must be finite (got NaN or inf)")
        if not vv > 0:
            raise ValueError("NBodyLinear.fit: no systems, or all velocities are zero: the time is undetermined")
        self.time.fill_(((targets.double() - positions.double()) * v).sum() / vv)
        return self

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        x, v, _, unbatched = check_nbody_inputs(positions, velocities, charges, "NBodyLinear")
        out = x + self.time.to(x.dtype) * v
        return out[0] if unbatched else out

    def extra_repr(self) -> str:
        return f"time={self.time.item():.6g}"
