r"""MACE: higher-order equivariant message passing for interatomic potentials.

Batatia, Kovács, Simm, Ortner & Csányi, *MACE: Higher Order Equivariant Message Passing Neural
Networks for Fast and Accurate Force Fields*, NeurIPS 2022 (arXiv:2206.07697). This is the same
architecture as mace-torch's ``ScaleShiftMACE`` with its default residual interaction blocks (the
layer sizes, normalisations and initialisations follow mace-torch 0.3.16 / e3nn 0.4.4), built from
equiv's own parts.

For atoms :math:`i` with species :math:`z_i` and neighbours :math:`j \in \mathcal N(i)` within
:math:`r_c` (edge vector :math:`\mathbf r_{ij} = \mathbf r_j - \mathbf r_i` from sender :math:`j`
to receiver :math:`i` in equiv's ``edge_index`` convention), layer :math:`t = 1, \dots, T`:

.. math::

    h^{(0)}_{i} &= W_{\text{emb}}\, \mathrm{onehot}(z_i) \quad (C \times 0e)\\
    A^{(t)}_{i, c, l_3} &= \frac{1}{\bar n} W^{(t)}_{\text{lin}} \sum_{j}
        \sum_{l_1 l_2} R^{(t)}_{c, (l_1 l_2 l_3)}(r_{ij})\,
        \bigl(\tilde h^{(t-1)}_{j, c, l_1} \otimes Y^{l_2}(\hat{\mathbf r}_{ij})\bigr)_{l_3},
        \qquad \tilde h = W^{(t)}_{\text{up}} h^{(t-1)} \\
    B^{(t)}_{i} &= \mathrm{SymmetricContraction}_{z_i}\bigl(A^{(t)}_i\bigr)
        \quad (\text{correlation } \nu \le 3) \\
    h^{(t)}_{i} &= W^{(t)}_{\text{prod}} B^{(t)}_i + W^{(t)}_{\text{skip}, z_i}\, h^{(t-1)}_i \\
    E &= \sum_i \Bigl( E_0(z_i) + \text{shift} + \text{scale}
        \sum_t \mathcal R^{(t)}\bigl(h^{(t)}_i\bigr) \Bigr),

with :math:`R^{(t)} = \mathrm{MLP}(b(r)\,u(r))` (8 Bessel functions times the :math:`p=5` polynomial
envelope, :mod:`equiv.nn.radial`; MLP 8→64→64→64→paths·C, SiLU), :math:`Y` the spherical harmonics
up to ``max_ell`` (component normalisation), :math:`\bar n` the mean number of neighbours,
:math:`\mathcal R^{(t)}` linear for :math:`t < T` and a one-hidden-layer MLP (16 SiLU units) for the
last layer, whose features are scalars only (a single-layer model reads out linearly, as mace-torch). Forces :math:`-\partial E/\partial \mathbf r_i` and
stress come from autograd (:func:`equiv.train.forces.predict_properties`).

Tensor product. ``tp="cg"`` is MACE's: every path :math:`(l_1, l_2) \to l_3` has its own learned
radial weight per channel and its own output block (Clebsch–Gordan coupling,
:func:`equiv.so3.clebsch_gordan`). ``tp="gaunt"`` is the Gaunt tensor product of Luo, Chen &
Zhang (*Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt Tensor Products*,
ICLR 2024): the edge is the weighted spherical function
:math:`\sum_{l_2} R_{c,l_2}(r)\, Y^{l_2}` and it multiplies the node's spherical function pointwise,
i.e. all paths into :math:`l_3` are summed with the Gaunt coefficients
:math:`\int Y^{l_1} Y^{l_2} Y^{l_3}` (:func:`equiv.so3.gaunt`) and one radial weight per
:math:`(c, l_2)` — fewer weights and a smaller linear layer, the same symmetry.

Same numbers as mace-torch. Every layer uses e3nn's weight layout and normalisation, and the
symmetric-contraction weights live on mace-torch's coupling paths (``product_weights="paths"``), so
:meth:`MACE.from_mace_torch` copies a mace-torch model's weights and reproduces its energies and
forces (tested to 1e-9 eV), and training from the same weights follows the same trajectory; what
differs is the speed (``benchmarks/results/potential_speed.md``).

The model follows the potential protocol of :mod:`equiv.models._potential_registry` and is
registered as ``"mace"``.

>>> import torch
>>> from equiv.data import AtomicData, collate
>>> model = MACE(species=[1, 8], cutoff=3.0, hidden_irreps="8x0e + 8x1o", max_ell=2, radial_mlp=[16])
>>> d = AtomicData(positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]], atomic_numbers=[8, 1, 1])
>>> model(collate([d.with_graph(3.0)]).to(dtype=torch.float32))["energy"].shape
torch.Size([1])
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from equiv._index_ops import scatter_rows
from equiv.models._potential_registry import (check_potential_args, register_potential, species_index,
                                              species_lookup)
from equiv.nn import Linear, moment_scale
from equiv.nn.radial import RadialEmbedding
from equiv.nn.symmetric_contraction import SymmetricContraction
from equiv.so3 import Irrep, Irreps, clebsch_gordan, gaunt, spherical_harmonics
from equiv.tp import FullyConnectedTensorProduct, MessagePassingTensorProduct

__all__ = ["MACE"]


#: 1 / sqrt(E[silu(z)^2]), z ~ N(0, 1) (e3nn's normalize2mom, here by quadrature)
_SILU_NORM = moment_scale(torch.nn.functional.silu)


class _RadialMLP(nn.Module):
    """e3nn FullyConnectedNet: bias-free layers x @ W / sqrt(fan_in), W ~ N(0, 1), SiLU times ``act_norm``."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.weights = nn.ParameterList([nn.Parameter(torch.randn(a, b)) for a, b in zip(dims[:-1], dims[1:])])

    def forward(self, x: torch.Tensor, act_norm: float) -> torch.Tensor:
        for k, w in enumerate(self.weights):
            x = x @ (w / math.sqrt(w.shape[0]))
            if k < len(self.weights) - 1:
                x = torch.nn.functional.silu(x) * act_norm
        return x


class _Interaction(nn.Module):
    r"""Fused message passing of ``equiv.tp`` with MACE's ("cg") or the Gaunt ("gaunt") coupling.

    ``cg``: :class:`equiv.tp.MessagePassingTensorProduct` with MACE's recipe (one output block per
    path :math:`(l_1, l_2) \to l_3` into the target irreps, e3nn normalisation), one radial weight per
    path and channel.

    ``gaunt``: the same fused engine with every path into :math:`l_3` summed into one block and the
    Gaunt coefficients :math:`G = \int Y^{l_1} Y^{l_2} Y^{l_3}` (one constant per output degree,
    component normalisation). The radial network gives one weight per :math:`(l_2, c)`; each path's
    weight is that weight times :math:`\langle G, C \rangle \sqrt{(2l_3+1)/\sum\|G\|^2} / \alpha`,
    which turns the engine's normalised Clebsch–Gordan path (:math:`\alpha C`) into the Gaunt one
    (for :math:`l_1 + l_2 + l_3` even, :math:`G` is a multiple of :math:`C`).
    """

    def __init__(self, irreps_node: Irreps, max_ell: int, targets: list[Irrep], tp: str):
        super().__init__()
        irreps_sh = Irreps([(1, Irrep(l, (-1) ** l)) for l in range(max_ell + 1)])
        self.tp_kind, self.channels = tp, irreps_node[0].mul
        if tp == "cg":
            self.conv = MessagePassingTensorProduct(irreps_node, irreps_sh, filter_ir_out=targets)
            self.num_weights = self.conv.weight_numel
        else:
            irreps_out = Irreps([(self.channels, ir) for ir in targets])
            instructions = [(i, l2, k, "uvu", True)
                            for k, ir3 in enumerate(targets)
                            for i, (_, ir1) in enumerate(irreps_node)
                            for l2 in range(max_ell + 1)
                            if ir3 in list(ir1 * Irrep(l2, (-1) ** l2)) and (ir1.l + l2 + ir3.l) % 2 == 0]
            self.conv = MessagePassingTensorProduct(irreps_node, irreps_sh, irreps_out, instructions=instructions)
            norm2 = {}
            for ins in self.conv.instructions:
                l1, l2, l3 = irreps_node[ins.i_in1].ir.l, ins.i_in2, targets[ins.i_out].l
                norm2[l3] = norm2.get(l3, 0.0) + float(gaunt(l1, l2, l3, dtype=torch.float64).pow(2).sum())
            index, scale = [], []
            for ins in self.conv.instructions:
                l1, l2, l3 = irreps_node[ins.i_in1].ir.l, ins.i_in2, targets[ins.i_out].l
                g = gaunt(l1, l2, l3, dtype=torch.float64)
                c = clebsch_gordan(l1, l2, l3, dtype=torch.float64)
                index.append(l2)
                scale.append(float((g * c).sum()) * math.sqrt((2 * l3 + 1) / norm2[l3]) / ins.path_weight)
            self.register_buffer("_path_l2", torch.tensor(index), persistent=False)
            self._path_scale = torch.tensor(scale, dtype=torch.float64)
            self.num_weights = (max_ell + 1) * self.channels
        self.irreps_out = self.conv.irreps_out

    def forward(self, x, sh, w, edge_index, n_nodes):
        if self.tp_kind == "gaunt":
            e = w.shape[0]
            w = w.view(e, -1, self.channels).index_select(1, self._path_l2)
            w = (w * self._path_scale.to(w.dtype).to(w.device)[None, :, None]).reshape(e, -1)
        return self.conv(x, sh, w, edge_index, n_nodes)


def _map_symmetric_contraction(ref, ours: SymmetricContraction) -> None:
    """Copy mace-torch SymmetricContraction weights into ours.

    ``parametrization="paths"``: equiv's path tensors are mace-torch's (checked), so the weights copy
    over. ``"basis"`` (or any mismatch): the function is mapped, W = a W' with sym(U') = U a.
    """
    for j, contraction in enumerate(ref.contractions):
        dl = ours.irreps_out[j].ir.dim
        w_ref = [contraction.weights_max if nu == ours.correlation else contraction.weights[ours.correlation - 1 - nu]
                 for nu in range(1, ours.correlation + 1)]
        u_refs, tol = [], 1e-10
        for nu in range(1, ours.correlation + 1):
            u = getattr(contraction, f"U_matrix_{nu}").detach()
            tol = max(tol, 100 * torch.finfo(u.dtype).eps)  # a float32 model holds rounded tensors
            u = u.double()
            u_refs.append(u.unsqueeze(0) if dl == 1 and u.dim() == nu + 1 else u)
        if ours.parametrization == "paths":
            mine = ours.path_tensors(j)
            if all(a.shape == b.shape and torch.allclose(a, b, atol=tol, rtol=0) for a, b in zip(mine, u_refs)):
                ours.weights[j].copy_(torch.cat([w.detach() for w in w_ref], 1).to(ours.weights[j].dtype))
                continue
        mapped = []
        for nu, (u_ours, u_ref, w) in enumerate(zip(ours.coupling_tensors(j), u_refs, w_ref), start=1):
            perms = list(itertools.permutations(range(nu)))
            u_sym = sum(u_ref.permute((0,) + tuple(1 + p for p in perm) + (nu + 1,)) for perm in perms) / len(perms)
            a_mat, b_mat = u_ours.reshape(-1, u_ours.shape[-1]), u_sym.reshape(-1, u_ref.shape[-1])
            coef = torch.linalg.lstsq(a_mat, b_mat).solution
            if (a_mat @ coef - b_mat).abs().max() > 100 * tol:
                raise ValueError("mace_model: a symmetric-contraction coupling tensor is outside equiv's basis")
            mapped.append(torch.einsum("kq,sqc->skc", coef, w.detach().double()))
        basis_w = torch.cat(mapped, 1)
        if ours.parametrization == "paths":  # least-norm path weights with the same basis weights
            a = torch.as_tensor(ours._path_maps[j])
            basis_w = torch.einsum("qk,skc->sqc", torch.linalg.pinv(a), basis_w)
        ours.weights[j].copy_(basis_w.to(ours.weights[j].dtype))


@register_potential("mace")
class MACE(nn.Module):
    r"""MACE interatomic potential (Batatia et al., NeurIPS 2022), mace-torch's ``ScaleShiftMACE``.

    See the module docstring for the equations.

    Parameters
    ----------
    species : list of int
        Sorted atomic numbers the model knows.
    cutoff : float
        :math:`r_c` in Å (default 5.0).
    atomic_energies : list of float, optional
        :math:`E_0(z)` in eV per species (default zeros).
    avg_num_neighbors : float
        :math:`\bar n`, messages are divided by it (default 1).
    scale, shift : float
        Per-atom interaction energy scale (eV; the workflow passes the RMS force component) and
        shift (eV; mean per-atom energy after :math:`E_0`).
    hidden_irreps : str
        Node features between layers (default ``"64x0e + 64x1o"``); one multiplicity :math:`C` for
        all irreps; must contain scalars.
    max_ell : int
        Highest degree of the edge spherical harmonics (default 3). The interaction features
        :math:`A` have irreps :math:`C \times (0e + 1o + \dots)` up to ``max_ell``.
    correlation : int
        Body order of the symmetric contraction minus one (default 3).
    num_interactions : int
        Layers :math:`T` (default 2).
    num_bessel : int
        Bessel functions (default 8).
    num_polynomial_cutoff : int
        Envelope order :math:`p` (default 5).
    radial_mlp : list of int
        Hidden widths of the radial MLP (default ``[64, 64, 64]``).
    readout_hidden : int
        Hidden SiLU units of the last read-out (default 16).
    tp : {"cg", "gaunt"}
        Tensor-product algorithm of the interaction (default ``"cg"``).
    product_weights : {"paths", "basis"}
        Coordinates of the symmetric-contraction weights (see
        :class:`equiv.nn.SymmetricContraction`): ``"paths"`` (default) as mace-torch, one weight per
        unsymmetrised coupling path — the same parameters, initialisation and hence training dynamics;
        ``"basis"`` one weight per basis polynomial (fewer weights, same function space). The
        evaluation is the same fast one either way.

    Shapes
    ------
    ``forward(batch)`` -> ``{"energy": (n_graphs,), "node_energy": (n_atoms,)}`` (eV).

    Examples
    --------
    >>> model = MACE(species=[1, 6, 8], cutoff=5.0)
    >>> sum(p.numel() for p in model.parameters()) > 0
    True
    >>> model.hparams["tp"]
    'cg'
    """

    def __init__(self, species, cutoff: float = 5.0, atomic_energies=None, avg_num_neighbors: float = 1.0,
                 scale: float = 1.0, shift: float = 0.0, hidden_irreps: str = "64x0e + 64x1o", max_ell: int = 3,
                 correlation: int = 3, num_interactions: int = 2, num_bessel: int = 8,
                 num_polynomial_cutoff: int = 5, radial_mlp=(64, 64, 64), readout_hidden: int = 16,
                 tp: str = "cg", product_weights: str = "paths"):
        super().__init__()
        species, cutoff, atomic_energies = check_potential_args(species, cutoff, atomic_energies)
        if tp not in ("cg", "gaunt"):
            raise ValueError(f"tp must be 'cg' or 'gaunt', got {tp!r}")
        if product_weights not in ("paths", "basis"):
            raise ValueError(f"product_weights must be 'paths' or 'basis', got {product_weights!r}")
        try:
            hidden = Irreps(hidden_irreps)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"hidden_irreps: cannot parse {hidden_irreps!r} ({exc})") from None
        muls = {mul for mul, _ in hidden}
        if len(muls) != 1 or hidden.count("0e") == 0 or len(set(ir for _, ir in hidden)) != len(hidden):
            raise ValueError(f"hidden_irreps must list distinct irreps with one multiplicity and include 0e, "
                             f"got {hidden_irreps!r}")
        for name, v, lo in (("max_ell", max_ell, 0), ("correlation", correlation, 1),
                            ("num_interactions", num_interactions, 1), ("num_bessel", num_bessel, 1),
                            ("num_polynomial_cutoff", num_polynomial_cutoff, 1), ("readout_hidden", readout_hidden, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
        radial_mlp = [int(h) for h in radial_mlp]
        if any(h < 1 for h in radial_mlp):
            raise ValueError(f"radial_mlp must be positive widths, got {radial_mlp!r}")
        hidden = Irreps([(m, ir) for m, ir in hidden])  # keep the user's order
        c = muls.pop()
        self.species, self.cutoff = species, float(cutoff)
        self.hparams = dict(species=species, cutoff=float(cutoff), atomic_energies=atomic_energies,
                            avg_num_neighbors=float(avg_num_neighbors), scale=float(scale), shift=float(shift),
                            hidden_irreps=str(hidden), max_ell=max_ell, correlation=correlation,
                            num_interactions=num_interactions, num_bessel=num_bessel,
                            num_polynomial_cutoff=num_polynomial_cutoff, radial_mlp=radial_mlp,
                            readout_hidden=readout_hidden, tp=tp, product_weights=product_weights)
        self.avg_num_neighbors, self.scale, self.shift = float(avg_num_neighbors), float(scale), float(shift)
        self.max_ell, self.channels, self.tp = max_ell, c, tp
        n_species = len(species)
        self.register_buffer("z_to_index", species_lookup(species), persistent=False)
        self.register_buffer("atomic_energies", torch.tensor(atomic_energies, dtype=torch.float64))  # eV, exact

        #: SiLU normalisation 1/sqrt(E[silu(z)^2]) (exact; a converted mace-torch model keeps e3nn's
        #: Monte-Carlo estimate). Saved with the weights (``get_extra_state``).
        self.act_norm = _SILU_NORM
        node_attrs = Irreps(f"{n_species}x0e")  # one-hot species, as mace-torch's node_attrs
        self.embedding = Linear(node_attrs, f"{c}x0e")
        self.radial = RadialEmbedding(cutoff, num_bessel, num_polynomial_cutoff)
        targets = [Irrep(l, (-1) ** l) for l in range(max_ell + 1)]
        irreps_a = Irreps([(c, ir) for ir in targets])
        scalars = Irreps([(c, Irrep("0e"))])
        self.irreps_a = irreps_a
        self.ups, self.convs, self.radial_mlps, self.linears = (nn.ModuleList() for _ in range(4))
        self.skips, self.products, self.product_linears = (nn.ModuleList() for _ in range(3))
        self.readouts = nn.ModuleList()
        irreps_h = scalars
        for t in range(num_interactions):
            last = t == num_interactions - 1
            irreps_out = scalars if last else hidden  # the last layer keeps scalars only (as mace-torch)
            # species-dependent self-connection: e3nn FullyConnectedTensorProduct(h, onehot(z))
            self.skips.append(FullyConnectedTensorProduct(irreps_h, node_attrs, irreps_out))
            self.ups.append(Linear(irreps_h, irreps_h))
            conv = _Interaction(irreps_h, max_ell, targets, tp)
            self.convs.append(conv)
            self.radial_mlps.append(_RadialMLP([num_bessel] + radial_mlp + [conv.num_weights]))
            self.linears.append(Linear(conv.irreps_out, irreps_a))
            self.products.append(SymmetricContraction(irreps_a, irreps_out, correlation, n_species,
                                                      parametrization=product_weights))
            self.product_linears.append(Linear(irreps_out, irreps_out))
            if last and num_interactions > 1:  # mace-torch: a single layer reads out linearly
                self.readouts.append(nn.ModuleList([Linear(irreps_out, f"{readout_hidden}x0e"),
                                                    Linear(f"{readout_hidden}x0e", "1x0e")]))
            else:
                self.readouts.append(nn.ModuleList([Linear(irreps_out, "1x0e")]))
            irreps_h = irreps_out

    def species_index(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Map atomic numbers to 0..n_species-1; unknown elements raise ``ValueError``."""
        return species_index(self.z_to_index, atomic_numbers, self.species)

    def forward(self, batch) -> dict[str, torch.Tensor]:
        species = self.species_index(batch.atomic_numbers)
        sender, receiver = batch.edge_index[0], batch.edge_index[1]
        vec = batch.positions[receiver] - batch.positions[sender] + batch.shifts
        n = batch.positions.shape[0]
        sh = spherical_harmonics(list(range(self.max_ell + 1)), vec, normalize=True, normalization="component")
        edge_feats = self.radial(vec.norm(dim=-1))
        dtype = batch.positions.dtype
        onehot = torch.nn.functional.one_hot(species, len(self.species)).to(dtype)
        h = self.embedding(onehot)
        node_energy = self.atomic_energies.to(dtype)[species]
        inter = torch.zeros_like(node_energy)
        for t in range(len(self.convs)):
            sc = self.skips[t](h, onehot)
            w = self.radial_mlps[t](edge_feats, self.act_norm)
            msg = self.convs[t](self.ups[t](h), sh, w, batch.edge_index, n)
            a = self.linears[t](msg) / self.avg_num_neighbors
            h = self.product_linears[t](self.products[t](a, species)) + sc
            readout = self.readouts[t]
            if len(readout) == 1:
                e = readout[0](h)
            else:
                e = readout[1](torch.nn.functional.silu(readout[0](h)) * self.act_norm)
            inter = inter + e.squeeze(-1)
        node_energy = node_energy + self.shift + self.scale * inter
        energy = scatter_rows(node_energy, batch.batch, batch.num_graphs)
        return {"energy": energy, "node_energy": node_energy}

    def get_extra_state(self) -> torch.Tensor:
        """The SiLU normalisation constant, saved with the weights (a float64 tensor)."""
        return torch.tensor([self.act_norm], dtype=torch.float64)

    def set_extra_state(self, state) -> None:
        self.act_norm = float(torch.as_tensor(state, dtype=torch.float64).reshape(-1)[0])

    @classmethod
    def from_mace_torch(cls, mace_model, product_weights: str = "paths") -> "MACE":
        r"""An equiv ``MACE`` computing the same function as a mace-torch model (same weights).

        Supported: mace-torch ``MACE`` / ``ScaleShiftMACE`` (0.3.x) with
        ``RealAgnosticResidualInteractionBlock`` in every layer (mace-torch's default), Bessel
        radial basis, one head, no pair repulsion or extra embeddings. Every weight is copied in
        e3nn's layout (embedding, linear layers, radial MLPs, self-connections, read-outs), and so are
        the symmetric-contraction weights: equiv's coupling-path tensors (``product_weights="paths"``)
        are mace-torch's ones (checked on conversion). Should they differ, the function is mapped
        instead: mace-torch's tensors :math:`U'` are symmetrised and expressed in equiv's basis by
        least squares (exact, the spaces are equal; see :mod:`equiv.nn.symmetric_contraction`),
        :math:`W = a\,W'` with :math:`\mathrm{sym}(U') = U a`. The converted model then trains like
        the original.

        Parameters
        ----------
        mace_model : torch.nn.Module
            A mace-torch model.
        product_weights : {"paths", "basis"}
            Parametrisation of the symmetric contraction (``"basis"``: mapped to the basis).

        Returns
        -------
        MACE
            In the dtype of ``mace_model``'s parameters, ``tp="cg"``.

        Raises
        ------
        ValueError
            An unsupported mace-torch configuration (the message says which part).
        """
        m = mace_model
        name = type(m).__name__
        if name not in ("MACE", "ScaleShiftMACE"):
            raise ValueError(f"mace_model: expected a mace-torch MACE or ScaleShiftMACE, got {name}")
        blocks = {type(b).__name__ for b in m.interactions}
        if blocks != {"RealAgnosticResidualInteractionBlock"}:
            raise ValueError(f"mace_model: only RealAgnosticResidualInteractionBlock layers are supported, got {blocks}")
        if hasattr(m, "pair_repulsion") or hasattr(m, "joint_embedding") or len(getattr(m, "heads", [0])) != 1:
            raise ValueError("mace_model: pair repulsion, joint embeddings and multiple heads are not supported")
        if len(m.readouts) != len(m.interactions):
            raise ValueError("mace_model: one read-out per layer is required (use_last_readout_only is not supported)")
        rad = m.radial_embedding
        if type(rad.bessel_fn).__name__ != "BesselBasis" or hasattr(rad, "distance_transform") or \
                not getattr(rad, "apply_cutoff", True):
            raise ValueError("mace_model: only the Bessel radial basis with the polynomial cut-off is supported")
        dtype = next(m.parameters()).dtype
        t_max = len(m.interactions)
        hidden = str(m.products[0].linear.irreps_out)  # scalars only when there is a single layer
        e0 = m.atomic_energies_fn.atomic_energies.detach().double().reshape(-1).tolist()
        scale, shift = 1.0, 0.0
        if hasattr(m, "scale_shift"):
            scale = float(m.scale_shift.scale.detach().reshape(-1)[0])
            shift = float(m.scale_shift.shift.detach().reshape(-1)[0])
        fc = m.interactions[0].conv_tp_weights
        hparams = dict(
            species=[int(z) for z in m.atomic_numbers.tolist()], cutoff=float(m.r_max), atomic_energies=e0,
            avg_num_neighbors=float(m.interactions[0].avg_num_neighbors), scale=scale, shift=shift,
            hidden_irreps=hidden, max_ell=int(Irreps(str(m.spherical_harmonics.irreps_out)).lmax),
            correlation=int(m.products[0].symmetric_contractions.contractions[0].correlation),
            num_interactions=t_max, num_bessel=int(rad.bessel_fn.bessel_weights.numel()),
            num_polynomial_cutoff=int(rad.cutoff_fn.p), radial_mlp=[int(h) for h in fc.hs[1:-1]],
            readout_hidden=int(Irreps(str(m.readouts[-1].linear_1.irreps_out)).dim) if t_max > 1 else 16, tp="cg",
            product_weights=product_weights)
        out = cls(**hparams).to(dtype)
        with torch.no_grad():
            out.radial.bessel.frequencies.copy_(rad.bessel_fn.bessel_weights)
            out.act_norm = float(getattr(fc, "layer0").act.cst) if len(fc.hs) > 2 else out.act_norm
            out.embedding.weight.copy_(m.node_embedding.linear.weight)
            for t, (inter, prod) in enumerate(zip(m.interactions, m.products)):
                out.ups[t].weight.copy_(inter.linear_up.weight)
                for k, w in enumerate(out.radial_mlps[t].weights):
                    w.copy_(getattr(inter.conv_tp_weights, f"layer{k}").weight)
                if out.convs[t].irreps_out != Irreps(str(inter.conv_tp.irreps_out)):
                    raise ValueError(f"mace_model: interaction {t} has irreps {inter.conv_tp.irreps_out}, "
                                     f"expected {out.convs[t].irreps_out}")
                out.linears[t].weight.copy_(inter.linear.weight)
                out.skips[t].weight.copy_(inter.skip_tp.weight)
                out.product_linears[t].weight.copy_(prod.linear.weight)
                _map_symmetric_contraction(prod.symmetric_contractions, out.products[t])
            for t, readout in enumerate(m.readouts):
                if hasattr(readout, "linear"):
                    out.readouts[t][0].weight.copy_(readout.linear.weight)
                else:
                    out.readouts[t][0].weight.copy_(readout.linear_1.weight)
                    out.readouts[t][1].weight.copy_(readout.linear_2.weight)
        return out

    def extra_repr(self) -> str:
        h = self.hparams
        return (f"species={h['species']}, cutoff={h['cutoff']}, hidden_irreps={h['hidden_irreps']}, "
                f"max_ell={h['max_ell']}, correlation={h['correlation']}, "
                f"num_interactions={h['num_interactions']}, tp={h['tp']!r}")
