r"""SEGNN: steerable E(3)-equivariant graph neural network, N-body variant.

Brandstetter, Hesselink, van der Pol, Bekkers and Welling, *Geometric and Physical Quantities
Improve E(3) Equivariant Message Passing*, ICLR 2022 (arXiv:2110.02905).

Built on :mod:`equiv.tp`: every learnable map is a tensor product of steerable features with
geometric attributes (spherical harmonics), with a switchable product — Clebsch–Gordan
(``product="cg"``, :class:`equiv.tp.FullyConnectedTensorProduct`) or Gaunt (``product="gaunt"``,
:class:`equiv.tp.GauntTensorProduct`).
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.nn import Gate
from equiv.so3 import Irreps, spherical_harmonics

from ._nbody_common import check_nbody_inputs

__all__ = ["SEGNN", "SEGNNLayer", "SteerableTensorProduct", "weight_balanced_irreps"]

_PRODUCTS = ("cg", "gaunt")
_PATH_NORMALIZATIONS = ("element", "path")


def _check_path_normalization(value: str, product: str, who: str) -> str:
    if value not in _PATH_NORMALIZATIONS:
        raise ValueError(f"{who}path_normalization must be one of {_PATH_NORMALIZATIONS}, got {value!r}")
    if product != "cg" and value != "element":
        raise ValueError(f"{who}path_normalization={value!r} applies to product='cg' only")
    return value


def _sh_irreps(lmax: int) -> Irreps:
    return Irreps("+".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1)))


def _fc_weight_numel(irreps1: Irreps, irreps2: Irreps, irreps_out: Irreps) -> int:
    return sum(m1 * m2 * mo for m1, ir1 in irreps1 for m2, ir2 in irreps2 for mo, iro in irreps_out
               if iro in list(ir1 * ir2))


def weight_balanced_irreps(hidden_features: int, attr_irreps, lmax: int) -> Irreps:
    r"""Hidden irreps ``n x (0e + 1o + 2e + ...)`` (degrees up to ``lmax``) with the smallest ``n`` such
    that a fully connected product ``hidden ⊗ attr → hidden`` has at least as many weights as a
    ``hidden_features × hidden_features`` linear layer (SEGNN's "weight-balanced" choice).

    >>> weight_balanced_irreps(64, "1x0e + 1x1o", 1)
    32x0e+32x1o
    """
    attr = Irreps(attr_irreps)
    target = hidden_features * hidden_features
    n = 1
    while True:
        h = Irreps("+".join(f"{n}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1)))
        if _fc_weight_numel(h, attr, h) >= target:
            return h
        n += 1


class _GauntProduct(nn.Module):
    r"""Gaunt product with channel mixing: :math:`z = L_\text{out}\,\mathrm{Gaunt}(L_\text{in} x,\ a)`.

    :class:`equiv.tp.GauntTensorProduct` multiplies spherical signals channel by channel (each degree
    once, parities :math:`(-1)^l`, no channel mixing); equivariant linear maps (:class:`equiv.nn.Linear`)
    bring the input to ``C x (0e + 1o + ...)`` and the result to ``irreps_out``, where ``C`` is the
    largest output multiplicity. Only paths with even :math:`l_1 + l_2 + l_3` exist.
    """

    def __init__(self, irreps_in1: Irreps, irreps_in2: Irreps, irreps_out: Irreps) -> None:
        super().__init__()
        from equiv.nn import Linear
        from equiv.tp import GauntTensorProduct

        C = max(m for m, _ in irreps_out)
        l_in = max(ir.l for _, ir in irreps_in1)
        l_out = max(ir.l for _, ir in irreps_out)

        def signal(lmax):
            return Irreps("+".join(f"{C}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1)))

        self.lin_in = Linear(irreps_in1, signal(l_in))
        self.gaunt = GauntTensorProduct(signal(l_in), irreps_in2, signal(l_out))
        self.lin_out = Linear(signal(l_out), irreps_out)

    def reset_parameters(self) -> None:
        for m in (self.lin_in, self.lin_out):
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        with torch.no_grad():
            self.gaunt.weight.fill_(1.0)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.lin_out(self.gaunt(self.lin_in(x), a))


class SteerableTensorProduct(nn.Module):
    r"""SEGNN's steerable linear layer: a fully connected tensor product with a biased, rescaled output.

    .. math::

        z = \frac{1}{s}\,\bigl(x \otimes_W a\bigr) + b,\qquad W \sim U(-s, s),\ s = 1/\sqrt{\text{fan-in}}

    where :math:`\otimes_W` is the weighted product of ``product`` ("cg": all Clebsch–Gordan paths of
    :class:`equiv.tp.FullyConnectedTensorProduct`, rescaled as in SEGNN with :math:`s` from the fan-in,
    the number of input channel pairs feeding an output block; "gaunt": equivariant linear maps around
    the channelwise :class:`equiv.tp.GauntTensorProduct`, paths with even :math:`l_1 + l_2 + l_3`
    only, :math:`s = 1`) and :math:`b` is a bias on scalar (``0e``) outputs only.
    With ``gate=True`` the output is passed through a gated nonlinearity: SiLU on the scalars, and
    every higher-degree irrep multiplied by the sigmoid of its own extra scalar. With ``gate_norm``
    (default), both activations are scaled to unit second moment on standard-normal inputs
    (:func:`equiv.nn.moment_scale`: SiLU × 1.6765, sigmoid × 1.8462), as e3nn's ``Gate`` does in the
    reference SEGNN; as there, a gate with no higher-degree irreps to gate is a plain SiLU.

    ``path_normalization`` ("cg" only) is that of the product's paths (e3nn's meaning): "element"
    (default) weighs every path into an output block by :math:`1/\sqrt{F}`, :math:`F` the block's
    fan-in, so with the :math:`1/s` rescaling every path counts alike; "path" weighs path :math:`p` by
    :math:`1/\sqrt{n f_p}` (:math:`n` paths into the block, :math:`f_p` this path's fan-in), so a path
    with a small fan-in counts :math:`\sqrt{F/(n f_p)}` times more. "path" is what e3nn 0.3.x computed
    (its only behaviour; 0.4.0 replaced it by "element", and 0.4.2 made both available, "element" the
    default), the version the SEGNN authors' environment pins.

    Shapes:
        - x ``(..., irreps_in1.dim)``, a ``(..., irreps_in2.dim)`` → ``(..., irreps_out.dim)``

    Examples
    --------
    Features ``4x0e + 2x1o`` conditioned on spherical harmonics of a vector, with a gate:

    >>> from equiv.so3 import random_rotation
    >>> irreps = Irreps("4x0e + 2x1o")
    >>> layer = SteerableTensorProduct(irreps, "1x0e + 1x1o", irreps, gate=True).double()
    >>> x = irreps.randn(10, -1, dtype=torch.float64)
    >>> r = torch.randn(10, 3, dtype=torch.float64)
    >>> a = spherical_harmonics([0, 1], r, normalize=True)
    >>> out = layer(x, a)
    >>> out.shape
    torch.Size([10, 10])

    Equivariance: rotating both inputs rotates the output by the same Wigner matrices.

    >>> R = random_rotation(1, dtype=torch.float64)[0]
    >>> D = irreps.D_from_matrix(R)
    >>> bool(torch.allclose(layer(x @ D.T, spherical_harmonics([0, 1], r @ R.T, normalize=True)), out @ D.T))
    True

    With unequal fan-ins into a block ("4x0e" and "1x0e" inputs: 4 and 1), "path" weighs the small one
    :math:`\sqrt{5/(2 \cdot 1)}` times as much as "element" does:

    >>> e, p = (SteerableTensorProduct("4x0e + 1x0e", "1x0e", "2x0e", path_normalization=n) for n in ("element", "path"))
    >>> [round(a.path_weight / b.path_weight, 4) for a, b in zip(p.tp.instructions, e.tp.instructions)]
    [0.7906, 1.5811]
    """

    def __init__(self, irreps_in1, irreps_in2, irreps_out, *, product: str = "cg", gate: bool = False,
                 gate_norm: bool = True, path_normalization: str = "element") -> None:
        super().__init__()
        if product not in _PRODUCTS:
            raise ValueError(f"product must be one of {_PRODUCTS}, got {product!r}")
        self.path_normalization = _check_path_normalization(path_normalization, product, "")
        self.irreps_in1, self.irreps_in2 = Irreps(irreps_in1), Irreps(irreps_in2)
        self.irreps_out, self.product, self.gate = Irreps(irreps_out), product, gate
        self.gate_norm = gate_norm
        scalars = Irreps([(m, ir) for m, ir in self.irreps_out if ir.l == 0])
        gated = Irreps([(m, ir) for m, ir in self.irreps_out if ir.l > 0])
        if gate and (len(self.irreps_out) == 0 or self.irreps_out[0].ir != Irreps("0e")[0].ir
                     or any(ir.l == 0 for _, ir in self.irreps_out[1:])):
            raise ValueError(f"gate=True needs irreps_out with one leading 0e block, got {self.irreps_out}")
        n_gates = gated.num_irreps if gate else 0
        # the product writes [scalars, gates, gated]; scalars and gates are one 0e block
        tp_out = self.irreps_out if n_gates == 0 else Irreps(f"{scalars.dim + n_gates}x0e") + gated
        self.irreps_tp_out = tp_out.simplify() if n_gates else tp_out
        #: the gated nonlinearity (`equiv.nn.Gate`, normalised activations with ``gate_norm``), or None
        self.activation = None
        if gate and n_gates:
            self.activation = Gate(f"{scalars.dim}x0e", nn.functional.silu, f"{n_gates}x0e", torch.sigmoid, gated,
                                   normalize=gate_norm)
            if self.activation.input_index is not None or self.activation.irreps_in != self.irreps_tp_out:
                raise ValueError(f"gate=True needs the irreps of irreps_out in increasing degree, got {self.irreps_out}")
        if product == "cg":
            from equiv.tp import FullyConnectedTensorProduct

            self.tp = FullyConnectedTensorProduct(self.irreps_in1, self.irreps_in2, self.irreps_tp_out,
                                                  path_normalization=path_normalization)
            # fan-in per output block and the matching rescaling of the output (SEGNN's initialisation)
            fan = torch.zeros(self.irreps_tp_out.dim)
            for (mo, iro), sl in zip(self.irreps_tp_out, self.irreps_tp_out.slices()):
                f = sum(m1 * m2 for m1, ir1 in self.irreps_in1 for m2, ir2 in self.irreps_in2
                        if iro in list(ir1 * ir2))
                fan[sl] = max(f, 1)
            scale = fan.rsqrt()
        else:
            self.tp = _GauntProduct(self.irreps_in1, self.irreps_in2, self.irreps_tp_out)
            scale = torch.ones(self.irreps_tp_out.dim)
        self.register_buffer("scale", scale, persistent=False)
        idx = [k for (m, ir), sl in zip(self.irreps_tp_out, self.irreps_tp_out.slices())
               if ir.l == 0 and ir.p == 1 for k in range(sl.start, sl.stop)]
        self.num_bias = len(idx)
        self.register_buffer("bias_index", torch.tensor(idx, dtype=torch.long), persistent=False)
        self.bias = nn.Parameter(torch.zeros(self.num_bias))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weights and scalar biases uniform in :math:`\\pm 1/\\sqrt{\\text{fan-in}}` (as ``nn.Linear``)."""
        with torch.no_grad():
            if isinstance(self.tp, _GauntProduct):
                self.tp.reset_parameters()
            w = None if isinstance(self.tp, _GauntProduct) else getattr(self.tp, "weight", None)
            if w is not None and w.numel():
                w.uniform_(-1.0, 1.0)
                if hasattr(self.tp, "weight_views"):
                    for _, ins, view in self.tp.weight_views(yield_instruction=True):
                        view.mul_(float(self.scale[self.irreps_tp_out.slices()[ins.i_out].start]))
                else:
                    w.mul_(float(self.scale.min()))
            if self.num_bias:
                b = self.scale[self.bias_index]
                self.bias.copy_((torch.rand(self.num_bias) * 2 - 1) * b)

    def forward(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        z = self.tp(x, a) / self.scale.to(x.dtype)
        if self.num_bias:
            z = z + z.new_zeros(z.shape[-1]).index_add(0, self.bias_index, self.bias.to(z.dtype))
        if not self.gate:
            return z
        if self.activation is not None:
            return self.activation(z)
        return nn.functional.silu(z)  # scalars only: a plain SiLU, as the reference (no normalisation)

    def extra_repr(self) -> str:
        return (f"{self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, product={self.product!r}, "
                f"gate={self.gate}, gate_norm={self.gate_norm}"
                + (f", path_normalization={self.path_normalization!r}" if self.path_normalization != "element" else ""))


class SEGNNLayer(nn.Module):
    r"""One SEGNN message-passing layer on a dense fully connected graph.

    .. math::

        m_{ij} &= \phi_m\bigl(h_i, h_j, \lVert x_j - x_i\rVert, q_iq_j;\ a_{ij}\bigr),\qquad
        a_{ij} = Y(x_j - x_i) \\
        h_i &\leftarrow h_i + \phi_f\Bigl(h_i, \sum_{j \ne i} m_{ij};\ a_i\Bigr)

    :math:`\phi_m` is two gated :class:`SteerableTensorProduct` conditioned on the edge attribute
    :math:`a_{ij}`, :math:`\phi_f` a gated one and a linear one conditioned on the node attribute
    :math:`a_i`.

    Shapes:
        - h ``(B, N, hidden.dim)``; edge attributes ``(B, P, attr.dim)`` and extra edge scalars
          ``(B, P, 2)`` for the ``P = N(N-1)`` ordered pairs; node attributes ``(B, N, attr.dim)``

    Examples
    --------
    ``I, J`` list the ordered pairs ``(i, j)``, ``i != j``, sorted by the target ``i``:

    >>> hidden, attr = Irreps("4x0e + 4x1o"), Irreps("1x0e + 1x1o")
    >>> layer = SEGNNLayer(hidden, attr)
    >>> B, N = 2, 4
    >>> I, J = torch.tensor([[i, j] for i in range(N) for j in range(N) if i != j]).T
    >>> x = torch.randn(B, N, 3)
    >>> edge_attr = spherical_harmonics([0, 1], x[:, J] - x[:, I], normalize=True, normalization="integral")
    >>> edge_extra = torch.randn(B, len(I), 2)  # e.g. distances and charge products
    >>> node_attr = edge_attr.reshape(B, N, N - 1, edge_attr.shape[-1]).mean(2)
    >>> h = hidden.randn(B, N, -1)
    >>> layer(h, edge_attr, edge_extra, node_attr, I, J).shape
    torch.Size([2, 4, 16])
    """

    def __init__(self, hidden_irreps, attr_irreps, extra_irreps="2x0e", product: str = "cg",
                 gate_norm: bool = True, path_normalization: str = "element") -> None:
        super().__init__()
        h = Irreps(hidden_irreps)
        self.hidden_irreps = h
        msg_in = h + h + Irreps(extra_irreps)
        kw = dict(product=product, gate_norm=gate_norm, path_normalization=path_normalization)
        self.message_1 = SteerableTensorProduct(msg_in, attr_irreps, h, gate=True, **kw)
        self.message_2 = SteerableTensorProduct(h, attr_irreps, h, gate=True, **kw)
        self.update_1 = SteerableTensorProduct(h + h, attr_irreps, h, gate=True, **kw)
        self.update_2 = SteerableTensorProduct(h, attr_irreps, h, **kw)

    def reset_parameters(self) -> None:
        for m in (self.message_1, self.message_2, self.update_1, self.update_2):
            m.reset_parameters()

    def forward(self, h, edge_attr, edge_extra, node_attr, I, J):
        B, N, D = h.shape
        m = self.message_1(torch.cat([h[:, I], h[:, J], edge_extra], -1), edge_attr)
        m = self.message_2(m, edge_attr)
        agg = m.reshape(B, N, N - 1, D).sum(2)  # pairs are sorted by target i
        u = self.update_2(self.update_1(torch.cat([h, agg], -1), node_attr), node_attr)
        return h + u


class SEGNN(nn.Module):
    r"""SEGNN for the charged N-body task (Brandstetter et al., ICLR 2022).

    Node input (irreps ``2x1o + 1x0e``): position relative to the system's centroid, velocity and
    speed. Edge attributes :math:`a_{ij} = Y^{l\le l_a}(x_j - x_i)` (spherical harmonics, integral
    normalisation) and scalars :math:`(\lVert x_j - x_i\rVert, q_iq_j)`; node attributes
    :math:`a_i = \frac{1}{N-1}\sum_j a_{ij} + Y(v_i)` with the ``0e`` component set to 1 (as the
    reference code's current model does; ``node_attr_scalar="harmonics"`` keeps the sum,
    :math:`2 Y_{00} = 1/\sqrt{\pi}`, as its earlier model ``models/old_segnn`` did). An embedding
    product, ``num_layers`` :class:`SEGNNLayer` and a two-product read-out to ``1x1o`` give the
    displacement, :math:`\hat x_i = x_i + \Delta_i`. The published setting (test MSE 0.0043) is 64
    weight-balanced hidden features (``32x0e + 32x1o``), ``lmax = lmax_attr = 1``, 4 layers, with
    ``path_normalization="path"`` (the e3nn of the published runs; ``equiv train nbody`` uses it).

    Departure from the reference code: it subtracts ``pos.mean(1)`` — the mean over the *coordinates*
    of each particle, which breaks rotation and translation symmetry slightly; here the centroid of the
    particles is subtracted, which is what the paper describes and keeps the model exactly equivariant.
    ``centre="coordinates"`` reproduces the reference's input instead (for comparisons only: the
    model is then no longer equivariant).

    Parameters
    ----------
    hidden : int
        Feature budget for :func:`weight_balanced_irreps` (default 64).
    num_layers : int
        Message-passing layers (default 4).
    lmax : int
        Highest degree of the hidden features (default 1).
    lmax_attr : int
        Highest degree of the attributes (default 1).
    product : {"cg", "gaunt"}
        The tensor product used everywhere.
    gate_norm : bool
        Scale the gate activations to unit second moment, as the reference code does through e3nn's
        ``Gate`` (default True; False is the model of the N-body runs recorded before 2026-11-23).
    centre : {"centroid", "coordinates"}
        What the position input is taken relative to: the particles' centroid (default, equivariant)
        or, as in the reference code, the mean of each particle's own three coordinates.
    node_attr_scalar : {"one", "harmonics"}
        The ``0e`` component of the node attributes: 1 (default) or the sum of the harmonics,
        :math:`1/\sqrt{\pi}`. Both are invariant; they weigh the attributes' scalar path differently
        against the vector path.
    path_normalization : {"element", "path"}
        Normalisation of the tensor-product paths (see :class:`SteerableTensorProduct`). "element"
        (default) is e3nn ≥ 0.4's; "path" is e3nn 0.3.x's, which the SEGNN authors' environment for the
        published runs pins (``environment2.yml``: e3nn 0.3.5). They differ where the fan-ins into a
        block differ, above all in each message's two edge scalars (distance, :math:`q_iq_j`; fan-in 2
        against 32 for each hidden block), whose paths "path" weighs about 3.6 times more.

    Shapes:
        - positions, velocities: ``(B, N, 3)`` or ``(N, 3)``
        - charges: ``(B, N, 1)``, ``(B, N)``, ``(N, 1)`` or ``(N,)``
        - output: predicted positions, shape of ``positions``

    Examples
    --------
    >>> model = SEGNN(hidden=8, num_layers=1)
    >>> model(torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.ones(2, 5, 1)).shape
    torch.Size([2, 5, 3])
    """

    def __init__(self, hidden: int = 64, num_layers: int = 4, lmax: int = 1, lmax_attr: int = 1,
                 product: str = "cg", gate_norm: bool = True, centre: str = "centroid",
                 node_attr_scalar: str = "one", path_normalization: str = "element") -> None:
        super().__init__()
        if centre not in ("centroid", "coordinates"):
            raise ValueError(f"SEGNN: centre must be 'centroid' or 'coordinates', got {centre!r}")
        if node_attr_scalar not in ("one", "harmonics"):
            raise ValueError(f"SEGNN: node_attr_scalar must be 'one' or 'harmonics', got {node_attr_scalar!r}")
        self.centre, self.node_attr_scalar = centre, node_attr_scalar
        for name, val in (("hidden", hidden), ("num_layers", num_layers)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"SEGNN: {name} must be a positive integer, got {val!r}")
        for name, val in (("lmax", lmax), ("lmax_attr", lmax_attr)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 0:
                raise ValueError(f"SEGNN: {name} must be a non-negative integer, got {val!r}")
        if product not in _PRODUCTS:
            raise ValueError(f"SEGNN: product must be one of {_PRODUCTS}, got {product!r}")
        self.path_normalization = _check_path_normalization(path_normalization, product, "SEGNN: ")
        self.hidden, self.num_layers, self.lmax, self.lmax_attr, self.product = hidden, num_layers, lmax, lmax_attr, product
        self.gate_norm = gate_norm
        self.attr_irreps = _sh_irreps(lmax_attr)
        self.hidden_irreps = weight_balanced_irreps(hidden, self.attr_irreps, lmax)
        a, h = self.attr_irreps, self.hidden_irreps
        kw = dict(product=product, gate_norm=gate_norm, path_normalization=path_normalization)
        self.embedding = SteerableTensorProduct("2x1o + 1x0e", a, h, **kw)
        self.layers = nn.ModuleList(SEGNNLayer(h, a, **kw) for _ in range(num_layers))
        self.readout_1 = SteerableTensorProduct(h, a, h, gate=True, **kw)
        self.readout_2 = SteerableTensorProduct(h, a, "1x1o", **kw)
        self._pairs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, SteerableTensorProduct):
                m.reset_parameters()

    def _pair_index(self, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        if n not in self._pairs:
            I, J = zip(*[(i, j) for i in range(n) for j in range(n) if i != j])
            self._pairs[n] = (torch.tensor(I), torch.tensor(J))
        I, J = self._pairs[n]
        return I.to(device), J.to(device)

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        x, v, q, unbatched = check_nbody_inputs(positions, velocities, charges, "SEGNN")
        B, N = x.shape[:2]
        if N < 2:
            raise ValueError(f"SEGNN: needs at least 2 particles, got {N}")
        I, J = self._pair_index(N, x.device)
        rel = x[:, J] - x[:, I]  # source j minus target i
        ls = list(range(self.lmax_attr + 1))
        edge_attr = spherical_harmonics(ls, rel, normalize=True, normalization="integral")
        dist = rel.norm(dim=-1, keepdim=True)
        edge_extra = torch.cat([dist, q[:, I] * q[:, J]], -1)
        node_attr = edge_attr.reshape(B, N, N - 1, edge_attr.shape[-1]).mean(2) + spherical_harmonics(
            ls, v, normalize=True, normalization="integral")
        if self.node_attr_scalar == "one":
            node_attr = torch.cat([torch.ones_like(node_attr[..., :1]), node_attr[..., 1:]], -1)
        speed = v.norm(dim=-1, keepdim=True)
        x0 = x - (x.mean(1, keepdim=True) if self.centre == "centroid" else x.mean(2, keepdim=True))
        h = self.embedding(torch.cat([x0, v, speed], -1), node_attr)
        for layer in self.layers:
            h = layer(h, edge_attr, edge_extra, node_attr, I, J)
        out = x + self.readout_2(self.readout_1(h, node_attr), node_attr)
        return out[0] if unbatched else out

    def extra_repr(self) -> str:
        return (f"hidden={self.hidden} ({self.hidden_irreps}), num_layers={self.num_layers}, lmax={self.lmax}, "
                f"lmax_attr={self.lmax_attr}, product={self.product!r}, gate_norm={self.gate_norm}"
                + (f", centre={self.centre!r}" if self.centre != "centroid" else "")
                + (f", node_attr_scalar={self.node_attr_scalar!r}" if self.node_attr_scalar != "one" else "")
                + (f", path_normalization={self.path_normalization!r}" if self.path_normalization != "element" else ""))

