r"""PONITA: equivariant convolutions in position–orientation space, N-body variant.

Bekkers, Vadgama, Hesselink, van der Linden and Romero, *Fast, Expressive SE(n) Equivariant Networks
through Weight-Sharing in Position-Orientation Space*, ICLR 2024 (arXiv:2310.02970).
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.nn._ponita import ConvNeXtBlock, PolynomialFeatures, repulsion_grid

from ._nbody_common import check_nbody_inputs

__all__ = ["Ponita"]


class Ponita(nn.Module):
    r"""PONITA on :math:`\mathbb R^3 \times S^2` for the charged N-body task.

    Every particle carries a signal on a grid of ``num_ori`` orientations :math:`o` on the sphere
    (:func:`equiv.nn.repulsion_grid`). The input signal is :math:`f^0_{i,o} = W[q_i, \langle v_i, o\rangle]`;
    ``num_layers`` :class:`equiv.nn.ConvNeXtBlock` apply separable spatial-then-fibre convolutions whose
    kernels are MLPs (:class:`equiv.nn.PolynomialFeatures` → Linear → GELU → Linear → GELU) of the
    invariants of :mod:`equiv.nn._ponita` — for every pair including :math:`i = j`, as in the paper's
    fully connected N-body setting. Each layer has a linear read-out; their mean :math:`r_{i,o}` gives
    the displacement as a vector field integrated over the sphere,

    .. math::

        \hat x_i = x_i + \frac{1}{|O|}\sum_{o} r_{i,o}\, o .

    **Symmetry.** Positions, velocities *and grid* transformed together by any :math:`g \in E(3)` give
    exactly :math:`g\hat x` (all kernel inputs are invariants); with the grid held fixed the model is
    equivariant up to the discretisation of :math:`S^2` (the error shrinks as ``num_ori`` grows). In
    training mode each system sees a randomly rotated copy of the grid (``rotate_grid=True``, as in the
    reference implementation), which teaches the network not to depend on the grid's orientation;
    evaluation uses the fixed grid, so predictions are deterministic. Pass ``grid`` to ``forward`` to
    use your own grid (``(O, 3)`` or per system ``(B, O, 3)``).

    Parameters
    ----------
    hidden : int
        Channels (default 128).
    num_layers : int
        ConvNeXt blocks (default 5).
    num_ori : int
        Orientations in the grid (default 20).
    basis_dim : int
        Width of the kernel basis (default 256).
    degree : int
        Degree of the polynomial embedding of the invariants (default 3).
    widening : int
        ConvNeXt widening factor (default 4).
    layer_scale : float or None
        ConvNeXt layer scale (default None: off; the N-body recipe of `equiv train nbody` uses 1e-6,
        the default of the reference's final N-body script).
    rotate_grid : bool
        Random grid rotation per system in training mode (default True).

    Shapes:
        - positions, velocities: ``(B, N, 3)`` or ``(N, 3)``
        - charges: ``(B, N, 1)``, ``(B, N)``, ``(N, 1)`` or ``(N,)``
        - grid (optional): ``(O, 3)`` or ``(B, O, 3)`` unit vectors
        - output: predicted positions, shape of ``positions``

    Examples
    --------
    >>> model = Ponita(hidden=16, num_layers=2, num_ori=8, basis_dim=16).eval()
    >>> x, v = torch.randn(3, 5, 3), torch.randn(3, 5, 3)
    >>> model(x, v, torch.ones(3, 5, 1)).shape
    torch.Size([3, 5, 3])
    """

    def __init__(
        self,
        hidden: int = 128,
        num_layers: int = 5,
        num_ori: int = 20,
        basis_dim: int = 256,
        degree: int = 3,
        widening: int = 4,
        layer_scale: float | None = None,
        rotate_grid: bool = True,
    ) -> None:
        super().__init__()
        for name, val in (("hidden", hidden), ("num_layers", num_layers), ("num_ori", num_ori),
                          ("basis_dim", basis_dim), ("degree", degree), ("widening", widening)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"Ponita: {name} must be a positive integer, got {val!r}")
        self.hidden, self.num_layers, self.num_ori, self.basis_dim = hidden, num_layers, num_ori, basis_dim
        self.degree, self.rotate_grid = degree, bool(rotate_grid)
        self.register_buffer("grid", repulsion_grid(num_ori, dtype=torch.get_default_dtype()))
        act = nn.GELU
        self.spatial_basis = nn.Sequential(
            PolynomialFeatures(degree), nn.Linear(PolynomialFeatures.num_features(2, degree), hidden), act(),
            nn.Linear(hidden, basis_dim), act())
        self.fiber_basis = nn.Sequential(
            PolynomialFeatures(degree), nn.Linear(PolynomialFeatures.num_features(1, degree), hidden), act(),
            nn.Linear(hidden, basis_dim), act())
        self.embedding = nn.Linear(2, hidden, bias=False)
        self.blocks = nn.ModuleList(ConvNeXtBlock(hidden, basis_dim, widening, layer_scale) for _ in range(num_layers))
        self.readouts = nn.ModuleList(nn.Linear(hidden, 1) for _ in range(num_layers))

    def reset_parameters(self) -> None:
        """Re-initialise all weights (kernels are recalibrated on the next training forward)."""
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()

    def set_orientations(self, num_ori: int) -> None:
        """Replace the orientation grid by a repulsion grid of ``num_ori`` points.

        The kernels are functions of continuous invariants and the fibre operations are averages over
        the grid, so a trained model can be evaluated on a finer grid: the equivariance error falls
        with the grid size while the predictions barely change (see docs/nbody.md for measurements).
        """
        if isinstance(num_ori, bool) or not isinstance(num_ori, int) or num_ori < 1:
            raise ValueError(f"Ponita: num_ori must be a positive integer, got {num_ori!r}")
        self.grid = repulsion_grid(num_ori, dtype=self.grid.dtype, device=self.grid.device)
        self.num_ori = num_ori

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor,
                grid: torch.Tensor | None = None) -> torch.Tensor:
        x, v, q, unbatched = check_nbody_inputs(positions, velocities, charges, "Ponita")
        B, N = x.shape[:2]
        if grid is None:
            grid = self.grid.to(x.dtype)[None]  # (1, O, 3)
            if self.training and self.rotate_grid:
                from equiv.so3 import random_rotation

                R = random_rotation(B, dtype=x.dtype, device=x.device)
                grid = grid @ R.transpose(1, 2)  # (B, O, 3)
        else:
            if not isinstance(grid, torch.Tensor) or grid.shape[-1] != 3 or grid.dim() not in (2, 3):
                raise ValueError(f"Ponita: grid must have shape (O, 3) or (B, O, 3), got "
                                 f"{tuple(grid.shape) if isinstance(grid, torch.Tensor) else type(grid).__name__}")
            grid = grid.to(x.dtype)
            grid = grid[None] if grid.dim() == 2 else grid
            if grid.shape[0] not in (1, B):
                raise ValueError(f"Ponita: grid has {grid.shape[0]} systems, inputs have {B}")
        O = grid.shape[1]
        # invariants: rel[b, i, j] = x_j - x_i (source j, target i)
        rel = x[:, None, :, :] - x[:, :, None, :]  # (B, N, N, 3)
        a1 = torch.einsum("bijd,bod->bijo", rel, grid.expand(B, O, 3))  # <x_j - x_i, o>
        perp = rel[:, :, :, None, :] - a1[..., None] * grid[:, None, None, :, :]
        a2 = torch.linalg.vector_norm(perp, dim=-1)  # |x_j - x_i - a1 o| (0 for i = j)
        spatial = self.spatial_basis(torch.stack([a1, a2], -1))  # (B, N, N, O, basis)
        fiber = self.fiber_basis((grid @ grid.transpose(1, 2))[..., None])  # (B|1, O, O, basis)
        f = torch.stack([q.expand(B, N, 1)[..., 0][:, :, None].expand(B, N, O),
                         torch.einsum("bnd,bod->bno", v, grid.expand(B, O, 3))], -1)
        f = self.embedding(f)  # (B, N, O, C)
        readout = 0.0
        for block, lin in zip(self.blocks, self.readouts):
            f = block(f, spatial, fiber)
            readout = readout + lin(f)
        readout = readout / self.num_layers  # (B, N, O, 1)
        out = x + (readout * grid[:, None]).mean(2)
        return out[0] if unbatched else out

    def extra_repr(self) -> str:
        return (f"hidden={self.hidden}, num_layers={self.num_layers}, num_ori={self.num_ori}, "
                f"basis_dim={self.basis_dim}, degree={self.degree}, rotate_grid={self.rotate_grid}")
