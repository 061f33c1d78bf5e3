r"""A non-equivariant baseline for the N-body task: an MLP on raw, concatenated coordinates.

The reference point for the symmetry diagnostics (:mod:`equiv.symmetry`): it sees the particles in a
fixed order and the coordinates in a fixed frame, so nothing ties its prediction for a rotated,
reflected, translated or relabelled system to its prediction for the original — it can only learn
the symmetries approximately, from data or augmentation (``equiv train nbody --model mlp --augment
rotation``).
"""

from __future__ import annotations

import torch
from torch import nn

from ._nbody_common import check_nbody_inputs

__all__ = ["NBodyMLP"]


class NBodyMLP(nn.Module):
    r"""Multi-layer perceptron on the flattened system: :math:`\hat x = x + \mathrm{MLP}([x, v, q])`.

    .. math::

        z = \operatorname{concat}_{i=1}^{N}(x_i, v_i, q_i) \in \mathbb R^{7N},\qquad
        \hat x_i = x_i + \bigl(W_L\,\sigma(\cdots\sigma(W_1 z + b_1)\cdots) + b_L\bigr)_{3i:3i+3}

    with SiLU :math:`\sigma`. Not equivariant to rotations, reflections, translations or permutations
    (the input layer mixes coordinates of fixed particles in a fixed frame); the tests check that
    :func:`equiv.symmetry.assert_equivariant` rejects it.

    Parameters
    ----------
    num_particles : int
        :math:`N` (default 5); inputs must have exactly this many particles.
    hidden : int
        Hidden width (default 256).
    num_layers : int
        Number of hidden layers (default 3).

    Shapes:
        - positions, velocities: ``(B, N, 3)`` or ``(N, 3)``
        - charges: ``(B, N, 1)``, ``(B, N)``, ``(N, 1)`` or ``(N,)``
        - output: predicted positions, shape of ``positions``

    Examples
    --------
    >>> import torch
    >>> model = NBodyMLP(hidden=32, num_layers=2)
    >>> model(torch.randn(4, 5, 3), torch.randn(4, 5, 3), torch.ones(4, 5, 1)).shape
    torch.Size([4, 5, 3])
    """

    def __init__(self, num_particles: int = 5, hidden: int = 256, num_layers: int = 3) -> None:
        super().__init__()
        for name, val in (("num_particles", num_particles), ("hidden", hidden), ("num_layers", num_layers)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"NBodyMLP: {name} must be a positive integer, got {val!r}")
        self.num_particles, self.hidden, self.num_layers = num_particles, hidden, num_layers
        layers: list[nn.Module] = []
        width = 7 * num_particles
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, 3 * num_particles))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default Linear initialisation."""
        for m in self.net:
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        x, v, q, unbatched = check_nbody_inputs(positions, velocities, charges, "NBodyMLP")
        B, N = x.shape[:2]
        if N != self.num_particles:
            raise ValueError(f"NBodyMLP: expected {self.num_particles} particles, got {N}")
        z = torch.cat([x, v, q], -1).reshape(B, 7 * N)
        out = x + self.net(z).reshape(B, N, 3)
        return out[0] if unbatched else out

    def extra_repr(self) -> str:
        return f"num_particles={self.num_particles}, hidden={self.hidden}, num_layers={self.num_layers}"
