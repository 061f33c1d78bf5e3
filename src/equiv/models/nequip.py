r"""NequIP interatomic potential (Batzner et al., *E(3)-equivariant graph neural networks for
data-efficient and accurate interatomic potentials*, Nat. Commun. 13, 2453 (2022), arXiv:2101.03164),
built from `equiv`'s public layers.

Per atom :math:`i` with species :math:`Z_i`, features :math:`h_i` (irreps), edges
:math:`\mathbf r_{ij}` within the cut-off :math:`r_c`:

.. math::

    h^0_i &= W_\text{emb}\, \mathrm{onehot}(Z_i) \qquad (C \times 0e) \\
    m_i &= \frac{1}{\sqrt{\bar n}} \sum_{j} \bigl(W_1 h^t_j\bigr) \otimes_{R(r_{ij})} Y(\hat{\mathbf r}_{ij})
        \qquad (\text{channelwise } uvu \text{ product, weights from an MLP of the radial basis}) \\
    h^{t+1}_i &= \mathrm{Gate}\bigl(W_2\, m_i + \mathrm{SC}(h^t_i, \mathrm{onehot}(Z_i))\bigr) \\
    E &= \sum_i E_0(Z_i) + \text{shift} + \text{scale} \cdot W_\text{out,2} W_\text{out,1} h^T_i

with :math:`Y` the spherical harmonics up to ``lmax`` (component normalisation), :math:`R` a
`equiv.nn.FullyConnectedNet` (SiLU, ``radial_mlp`` hidden widths) of the Bessel basis times the
polynomial envelope (:math:`p = 6`, `equiv.nn.RadialEmbedding`), :math:`\bar n` the mean number of
neighbours, :math:`W` equivariant linear maps (`equiv.nn.Linear`), SC the species-dependent
self-connection (`equiv.tp.FullyConnectedTensorProduct` with the one-hot), and `equiv.nn.Gate` with
SiLU / tanh on even / odd scalars and SiLU on the gates (NequIP's defaults). The hidden irreps are
``C x (0e + 0o + 1o + 1e + ... )`` up to ``lmax`` (both parities, ``parity=True``, NequIP's
``o3_full``) or only the spherical-harmonic parities :math:`(-1)^l`; each layer keeps those its
product can reach. The convolution is the fused gather → product → scatter of
`equiv.tp.MessagePassingTensorProduct` (the same engine as `equiv.models.MACE`).

Difference from the reference code (mir-group/nequip): the per-species scale/shift are one global
``scale``/``shift`` from the training data (as `equiv.models.MACE`). The Bessel frequencies are
trained, as NequIP's (``trainable_bessel=True``). Registered as potential ``"nequip"``: ``equiv train potential
--model nequip`` (``model_kwargs``: ``channels``, ``lmax``, ``num_layers``, ``parity``, ...).

>>> import torch
>>> from equiv.data import AtomicData, collate
>>> m = NequIP(species=[1, 8], cutoff=3.0, channels=8, lmax=1, num_layers=2)
>>> d = AtomicData(positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], atomic_numbers=[8, 1, 1])
>>> m(collate([d.with_graph(3.0)]).to(dtype=torch.float32))["energy"].shape
torch.Size([1])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from equiv._index_ops import scatter_rows
from equiv.models._potential_registry import (check_potential_args, register_potential, species_index,
                                              species_lookup)
from equiv.nn import FullyConnectedNet, Gate, Linear, RadialEmbedding
from equiv.so3 import Irrep, Irreps, spherical_harmonics
from equiv.tp import FullyConnectedTensorProduct, MessagePassingTensorProduct

__all__ = ["NequIP"]


def _reachable(irreps_in: Irreps, irreps_edge: Irreps, wanted: Irreps) -> Irreps:
    """The blocks of ``wanted`` that some product ``irreps_in x irreps_edge`` can produce."""
    products = {ir for _, a in irreps_in for _, b in irreps_edge for ir in a * b}
    return Irreps([(mul, ir) for mul, ir in wanted if ir in products])


class _ConvLayer(nn.Module):
    """One NequIP interaction: linear, convolution, linear, self-connection, gate."""

    def __init__(self, irreps_in: Irreps, irreps_sh: Irreps, hidden: Irreps, node_attrs: Irreps,
                 num_basis: int, radial_mlp: list[int]) -> None:
        super().__init__()
        out = _reachable(irreps_in, irreps_sh, hidden)
        scalars = Irreps([(m, ir) for m, ir in out if ir.l == 0])
        gated = Irreps([(m, ir) for m, ir in out if ir.l > 0])
        self.gate = Gate.for_irreps(scalars + gated, act_gates=nn.functional.silu)
        self.linear_1 = Linear(irreps_in, irreps_in)
        self.conv = MessagePassingTensorProduct(irreps_in, irreps_sh, filter_ir_out=[ir for _, ir in self.gate.irreps_in])
        self.radial = FullyConnectedNet([num_basis] + radial_mlp + [self.conv.weight_numel], nn.functional.silu)
        self.linear_2 = Linear(self.conv.irreps_out, self.gate.irreps_in)
        self.self_connection = FullyConnectedTensorProduct(irreps_in, node_attrs, self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out

    def forward(self, h, onehot, sh, radial, edge_index, norm):
        m = self.conv(self.linear_1(h), sh, self.radial(radial), edge_index, h.shape[0]) * norm
        return self.gate(self.linear_2(m) + self.self_connection(h, onehot))


@register_potential("nequip")
class NequIP(nn.Module):
    r"""NequIP interatomic potential (module docstring for the equations).

    Parameters
    ----------
    species : list of int
        Sorted atomic numbers.
    cutoff : float
        :math:`r_c` in Å (default 5.0).
    atomic_energies : list of float, optional
        :math:`E_0` per species in eV (default 0).
    avg_num_neighbors, scale, shift : float
        Statistics of the training set (the workflow computes them).
    channels : int
        :math:`C`, channels per irrep (default 32).
    lmax : int
        Degree of the spherical harmonics and of the hidden irreps (default 2).
    num_layers : int
        Interaction layers (default 4).
    parity : bool
        Hidden irreps of both parities (default True) or only :math:`(-1)^l`.
    num_bessel, polynomial_p : int
        Radial basis size (default 8) and envelope power (default 6).
    radial_mlp : list of int
        Hidden widths of the radial network (default ``[64, 64]``).
    readout_hidden : int
        Scalars of the linear read-out's hidden layer (default 16).
    trainable_bessel : bool
        Learn the Bessel frequencies :math:`\omega_n` (default True, as NequIP).

    Returns (forward): ``{"energy": (n_graphs,), "node_energy": (n_atoms,)}`` in eV; forces and stress
    by autograd (`equiv.train.forces.predict_properties`).

    Examples
    --------
    A tiny model; the energy of a water molecule is invariant under rotations:

    >>> import torch
    >>> from equiv.data import AtomicData, collate
    >>> from equiv.so3 import random_rotation
    >>> model = NequIP(species=[1, 8], cutoff=3.0, channels=4, lmax=1, num_layers=1, radial_mlp=[8]).double()
    >>> pos = torch.tensor([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]], dtype=torch.float64)
    >>> def energy(p):
    ...     data = AtomicData(positions=p, atomic_numbers=[8, 1, 1]).with_graph(3.0)
    ...     return model(collate([data]).to(dtype=torch.float64))["energy"]
    >>> energy(pos).shape
    torch.Size([1])
    >>> R = random_rotation(1, dtype=torch.float64)[0]
    >>> bool(torch.allclose(energy(pos @ R.T), energy(pos)))
    True
    """

    def __init__(self, species, cutoff: float = 5.0, atomic_energies=None, avg_num_neighbors: float = 1.0,
                 scale: float = 1.0, shift: float = 0.0, channels: int = 32, lmax: int = 2, num_layers: int = 4,
                 parity: bool = True, num_bessel: int = 8, polynomial_p: int = 6, radial_mlp=(64, 64),
                 readout_hidden: int = 16, trainable_bessel: bool = True) -> None:
        super().__init__()
        species, cutoff, atomic_energies = check_potential_args(species, cutoff, atomic_energies)
        for name, v, lo in (("channels", channels, 1), ("lmax", lmax, 0), ("num_layers", num_layers, 1),
                            ("num_bessel", num_bessel, 1), ("polynomial_p", polynomial_p, 1),
                            ("readout_hidden", readout_hidden, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        if not avg_num_neighbors > 0:
            raise ValueError(f"avg_num_neighbors must be positive, got {avg_num_neighbors!r}")
        radial_mlp = [int(h) for h in radial_mlp]
        if any(h < 1 for h in radial_mlp):
            raise ValueError(f"radial_mlp must be positive widths, got {radial_mlp!r}")
        self.species, self.cutoff = species, float(cutoff)
        self.hparams = dict(species=species, cutoff=float(cutoff), atomic_energies=atomic_energies,
                            avg_num_neighbors=float(avg_num_neighbors), scale=float(scale), shift=float(shift),
                            channels=channels, lmax=lmax, num_layers=num_layers, parity=bool(parity),
                            num_bessel=num_bessel, polynomial_p=polynomial_p, radial_mlp=radial_mlp,
                            readout_hidden=readout_hidden, trainable_bessel=bool(trainable_bessel))
        self.avg_num_neighbors, self.scale, self.shift, self.lmax = float(avg_num_neighbors), float(scale), float(shift), lmax
        self.register_buffer("z_to_index", species_lookup(species), persistent=False)
        self.register_buffer("atomic_energies", torch.tensor(atomic_energies, dtype=torch.float64))

        node_attrs = Irreps(f"{len(species)}x0e")
        irreps_sh = Irreps([(1, Irrep(l, (-1) ** l)) for l in range(lmax + 1)])
        # C x l for l = 0..lmax: the spherical-harmonic parity (-1)^l first, then (parity=True) the other
        hidden = Irreps([(channels, Irrep(l, p)) for l in range(lmax + 1)
                         for p in (((-1) ** l, -((-1) ** l)) if parity else ((-1) ** l,))])
        self.embedding = Linear(node_attrs, f"{channels}x0e")
        self.radial = RadialEmbedding(cutoff, num_bessel, polynomial_p, trainable=bool(trainable_bessel))
        self.layers = nn.ModuleList()
        irreps = Irreps(f"{channels}x0e")
        for _ in range(num_layers):
            layer = _ConvLayer(irreps, irreps_sh, hidden, node_attrs, num_bessel, radial_mlp)
            self.layers.append(layer)
            irreps = layer.irreps_out
        self.irreps_hidden = irreps
        self.readout = nn.Sequential(Linear(irreps, f"{readout_hidden}x0e"), Linear(f"{readout_hidden}x0e", "1x0e"))

    def species_index(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Map atomic numbers to 0..n_species-1; unknown elements raise ``ValueError``."""
        return species_index(self.z_to_index, atomic_numbers, self.species)

    def forward(self, batch) -> dict[str, torch.Tensor]:
        species = self.species_index(batch.atomic_numbers)
        vec = batch.positions[batch.edge_index[1]] - batch.positions[batch.edge_index[0]] + batch.shifts
        dtype = batch.positions.dtype
        sh = spherical_harmonics(list(range(self.lmax + 1)), vec, normalize=True, normalization="component")
        radial = self.radial(vec.norm(dim=-1))
        onehot = torch.nn.functional.one_hot(species, len(self.species)).to(dtype)
        h = self.embedding(onehot)
        norm = 1.0 / math.sqrt(self.avg_num_neighbors)
        for layer in self.layers:
            h = layer(h, onehot, sh, radial, batch.edge_index, norm)
        node_energy = self.atomic_energies.to(dtype)[species] + self.shift + self.scale * self.readout(h).squeeze(-1)
        energy = scatter_rows(node_energy, batch.batch, batch.num_graphs)
        return {"energy": energy, "node_energy": node_energy}
