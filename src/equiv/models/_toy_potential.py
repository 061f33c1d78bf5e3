r"""A small invariant many-body potential, to exercise the potential workflow.

``ToyPotential`` is **not** a reference model: it exists so that training, checkpoints, the ASE
calculator and MD can be built and tested before the MACE-style model lands, and as a cheap baseline.
It follows the potential protocol of :mod:`equiv.models._potential_registry`.

Per atom :math:`i`, with neighbours :math:`j` within :math:`r_c`, unit vectors
:math:`\hat{\mathbf r}_{ij}` and channels :math:`c`, the radial functions

.. math::

    R_c(r_{ij}, Z_j) = u(r_{ij})\, \Bigl(\sum_n W_{cn}\, b_n(r_{ij})\Bigr)\, e_c(Z_j),
    \qquad b_n(r) = \sqrt{2/r_c}\,\frac{\sin(n\pi r/r_c)}{r},

(Bessel basis and polynomial envelope :math:`u` with :math:`p=6` of DimeNet, Klicpera et al. 2020,
arXiv:2003.03123; :math:`e(Z)` a learned species embedding) build the moments

.. math::

    A^{(0)}_{ic} = \sum_j R_c,\quad
    \mathbf A^{(1)}_{ic} = \sum_j R_c\,\hat{\mathbf r}_{ij},\quad
    \mathbf A^{(2)}_{ic} = \sum_j R_c\,\bigl(\hat{\mathbf r}_{ij}\hat{\mathbf r}_{ij}^\top - \tfrac13 \mathbf I\bigr),

whose invariants :math:`A^{(0)}, \lVert\mathbf A^{(1)}\rVert^2, \lVert\mathbf A^{(2)}\rVert_F^2`
(a Cartesian form of the :math:`l \le 2` power spectrum, i.e. two- and three-body terms) feed an MLP
together with a one-hot of :math:`Z_i`:

.. math::

    E = \sum_i \Bigl( E_0(Z_i) + \text{shift} + \text{scale}\cdot \mathrm{MLP}_i \Bigr).

Energy depends only on distances and angles, so it is invariant under rotations, reflections,
translations and permutations of like atoms; it is smooth at :math:`r_c`.

>>> import torch
>>> from equiv.data import AtomicData, collate
>>> m = ToyPotential(species=[1, 8], cutoff=3.0)
>>> d = AtomicData(positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], atomic_numbers=[8, 1, 1])
>>> m(collate([d.with_graph(3.0)]).to(dtype=torch.float32))["energy"].shape
torch.Size([1])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from equiv._index_ops import scatter_rows
from equiv.models._potential_registry import check_species, register_potential

__all__ = ["ToyPotential"]


@register_potential("toy")
class ToyPotential(nn.Module):
    """Small invariant (two- and three-body) potential for tests and workflow checks.

    Parameters
    ----------
    species : list of int
        Sorted atomic numbers.
    cutoff : float
        Cut-off radius in Å.
    atomic_energies : list of float, optional
        :math:`E_0` per species in eV (default zeros).
    avg_num_neighbors : float
        Moments are divided by this (default 1).
    scale, shift : float
        Per-atom energy scale and shift in eV.
    num_basis : int
        Bessel functions (default 8).
    channels : int
        Radial channels :math:`c` (default 16).
    hidden : int
        MLP width (default 64).

    Shapes
    ------
    ``forward(batch)`` -> ``{"energy": (n_graphs,), "node_energy": (n_atoms,)}``.

    Examples
    --------
    The energy of a water molecule, and its invariance under a rotation:

    >>> import torch
    >>> from equiv.data import AtomicData, collate
    >>> from equiv.so3 import random_rotation
    >>> model = ToyPotential(species=[1, 8], cutoff=3.0, atomic_energies=[-13.6, -2038.0], channels=4, hidden=8)
    >>> model = model.double()
    >>> pos = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]], dtype=torch.float64)
    >>> def predict(p):
    ...     data = AtomicData(positions=p, atomic_numbers=[8, 1, 1]).with_graph(3.0)
    ...     return model(collate([data]).to(dtype=torch.float64))
    >>> out = predict(pos)
    >>> out["energy"].shape, out["node_energy"].shape
    (torch.Size([1]), torch.Size([3]))
    >>> R = random_rotation(1, dtype=torch.float64)[0]
    >>> bool(torch.allclose(predict(pos @ R.T)["energy"], out["energy"]))
    True
    """

    def __init__(self, species, cutoff: float = 5.0, atomic_energies=None, avg_num_neighbors: float = 1.0,
                 scale: float = 1.0, shift: float = 0.0, num_basis: int = 8, channels: int = 16,
                 hidden: int = 64):
        super().__init__()
        species = check_species(species)
        if not (isinstance(cutoff, (int, float)) and cutoff > 0):
            raise ValueError(f"cutoff must be a positive number in Å, got {cutoff!r}")
        if atomic_energies is None:
            atomic_energies = [0.0] * len(species)
        atomic_energies = [float(e) for e in atomic_energies]
        if len(atomic_energies) != len(species):
            raise ValueError(f"atomic_energies must have one value per species ({len(species)}), got {len(atomic_energies)}")
        for name, v in (("num_basis", num_basis), ("channels", channels), ("hidden", hidden)):
            if int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        self.species, self.cutoff = species, float(cutoff)
        self.hparams = dict(species=species, cutoff=float(cutoff), atomic_energies=atomic_energies,
                            avg_num_neighbors=float(avg_num_neighbors), scale=float(scale), shift=float(shift),
                            num_basis=int(num_basis), channels=int(channels), hidden=int(hidden))
        self.avg_num_neighbors, self.scale, self.shift = float(avg_num_neighbors), float(scale), float(shift)
        lookup = torch.full((119,), -1, dtype=torch.long)
        lookup[torch.tensor(species)] = torch.arange(len(species))
        self.register_buffer("z_to_index", lookup, persistent=False)
        self.register_buffer("atomic_energies", torch.tensor(atomic_energies, dtype=torch.get_default_dtype()))
        self.register_buffer("frequencies", math.pi / self.cutoff * torch.arange(1, num_basis + 1,
                                                                                    dtype=torch.get_default_dtype()))
        self.radial = nn.Linear(num_basis, channels, bias=False)
        self.embedding = nn.Embedding(len(species), channels)
        self.mlp = nn.Sequential(nn.Linear(3 * channels + len(species), hidden), nn.SiLU(),
                                 nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    def species_index(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Map atomic numbers to 0..n_species-1; unknown elements raise ``ValueError``."""
        if atomic_numbers.numel() and (atomic_numbers.min() < 1 or atomic_numbers.max() > 118):
            raise ValueError(f"atomic_numbers must be in 1..118, got range {int(atomic_numbers.min())}..{int(atomic_numbers.max())}")
        idx = self.z_to_index[atomic_numbers]
        if (idx < 0).any():
            bad = sorted(set(atomic_numbers[idx < 0].tolist()))
            raise ValueError(f"atomic_numbers: unknown element(s) {bad}; this model knows species {self.species}")
        return idx

    def _envelope(self, x: torch.Tensor) -> torch.Tensor:
        # DimeNet polynomial envelope, p = 6: 1 - 28 x^6 + 48 x^7 - 21 x^8 for x < 1, else 0
        x6 = x**6
        u = 1 - 28 * x6 + 48 * x6 * x - 21 * x6 * x * x
        return torch.where(x < 1, u, torch.zeros_like(u))

    def forward(self, batch) -> dict[str, torch.Tensor]:
        species = self.species_index(batch.atomic_numbers)
        sender, receiver = batch.edge_index[0], batch.edge_index[1]
        vec = batch.positions[receiver] - batch.positions[sender] + batch.shifts
        r = vec.norm(dim=-1, keepdim=True)
        unit = vec / r
        basis = math.sqrt(2.0 / self.cutoff) * torch.sin(self.frequencies * r) / r  # (E, num_basis)
        radial = self.radial(basis) * self._envelope(r / self.cutoff) * self.embedding(species[sender])  # (E, C)
        n, c = batch.positions.shape[0], radial.shape[1]
        outer = unit[:, :, None] * unit[:, None, :] - torch.eye(3, dtype=unit.dtype, device=unit.device) / 3
        a0 = radial.new_zeros(n, c).index_add(0, receiver, radial)
        a1 = radial.new_zeros(n, c, 3).index_add(0, receiver, radial[:, :, None] * unit[:, None, :])
        a2 = radial.new_zeros(n, c, 9).index_add(0, receiver, radial[:, :, None] * outer.reshape(-1, 1, 9))
        norm = 1.0 / self.avg_num_neighbors
        features = torch.cat([a0 * norm, (a1 * norm).pow(2).sum(-1), (a2 * norm).pow(2).sum(-1),
                              nn.functional.one_hot(species, len(self.species)).to(a0.dtype)], dim=-1)
        node_energy = self.scale * self.mlp(features).squeeze(-1) + self.shift + self.atomic_energies[species]
        energy = scatter_rows(node_energy, batch.batch, batch.num_graphs)
        return {"energy": energy, "node_energy": node_energy}

    def extra_repr(self) -> str:
        h = self.hparams
        return f"species={h['species']}, cutoff={h['cutoff']}, channels={h['channels']}, num_basis={h['num_basis']}"
