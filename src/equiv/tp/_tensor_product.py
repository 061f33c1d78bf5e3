r"""`TensorProduct`: e3nn's instruction-based tensor product, plain torch, fast channelwise paths."""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

from equiv import so3

from ._channelwise import ChannelwisePath, ChannelwisePlan, channelwise_product
from ._dense_channelwise import DenseChannelwise
from ._instruction import Instruction, build_instructions, irreps as _irreps
from ._layout import flatten_batch, inverse_permutation, select

__all__ = ["TensorProduct"]

_ENGINE_MODES = ("uvu", "uvv")


class _EngineGroup:
    """Instructions of one channelwise mode sharing the channel multiplicity, run by one plan."""

    def __init__(self, mode, mul, items, irreps_in1, irreps_in2, irreps_out, weight_offsets, convention="e3nn-0.4"):
        self.mode = mode
        self.mul = mul
        chan_irreps, other_irreps = (irreps_in1, irreps_in2) if mode == "uvu" else (irreps_in2, irreps_in1)
        chan_idx = sorted({(ins.i_in1 if mode == "uvu" else ins.i_in2) for ins in items})
        out_idx = sorted({ins.i_out for ins in items})
        self.chan_blocks = [(chan_irreps.slices()[i], chan_irreps[i].ir.dim) for i in chan_idx]
        chan_off, d = {}, 0
        for i in chan_idx:
            chan_off[i] = d
            d += chan_irreps[i].ir.dim
        dim_x = d
        self.out_blocks = []  # (i_out, offset in G, ir dim)
        out_off, d = {}, 0
        for i in out_idx:
            out_off[i] = d
            self.out_blocks.append((i, d, irreps_out[i].ir.dim))
            d += irreps_out[i].ir.dim
        dim_g = d
        other_slices = other_irreps.slices()
        paths = []
        w_blocks = []  # (flat offset, n rows) per weighted instruction, in path-column order
        n_w = 0
        for ins in items:
            ic, io_ = (ins.i_in1, ins.i_in2) if mode == "uvu" else (ins.i_in2, ins.i_in1)
            l1, l2, l3 = irreps_in1[ins.i_in1].ir.l, irreps_in2[ins.i_in2].ir.l, irreps_out[ins.i_out].ir.l
            cg = so3.clebsch_gordan(l1, l2, l3, dtype=torch.float64, convention=convention).numpy() * ins.path_weight
            if mode == "uvv":
                cg = cg.transpose(1, 0, 2)
            m_other, d_other = other_irreps[io_].mul, other_irreps[io_].ir.dim
            for v in range(m_other):
                paths.append(
                    ChannelwisePath(
                        chan_off[ic], chan_irreps[ic].ir.dim,
                        other_slices[io_].start + v * d_other, d_other,
                        out_off[ins.i_out], irreps_out[ins.i_out].ir.dim,
                        n_w + v if ins.has_weight else -1,
                        np.ascontiguousarray(cg),
                    )
                )
            if ins.has_weight:
                w_blocks.append((weight_offsets[id(ins)], m_other))
                n_w += m_other
        self.num_weights = n_w
        self.plan = ChannelwisePlan(paths, dim_x, other_irreps.dim, dim_g, max(n_w, 0))
        dense = DenseChannelwise(self.plan) if paths else None
        self.dense = dense if dense is not None and dense.worthwhile(mul) else None
        # mul_ir <-> channel-last (rows, channel) column permutations, as gathers
        cslices = chan_irreps.slices()
        pin = [cslices[i].start + u * chan_irreps[i].ir.dim + m for i in chan_idx
               for m in range(chan_irreps[i].ir.dim) for u in range(mul)]
        pout = [(off + m) * mul + u for i, off, d in self.out_blocks for u in range(mul) for m in range(d)]
        self._perm_in = inverse_permutation(pin, chan_irreps.dim)
        self._perm_out = inverse_permutation(pout, dim_g * mul)
        self.out_cols = [(i, off * mul, d * mul) for i, off, d in self.out_blocks]  # in the mul_ir output
        self._dev: dict = {}
        # e3nn weight layout of an instruction: uvu (U, V) -> column v, channel u needs a transpose
        # unless V == 1; uvv (U, V) -> column u, channel v is already (rows, channel).
        contiguous = all(b[0] == w_blocks[0][0] + sum(x[1] for x in w_blocks[:k]) * mul for k, b in enumerate(w_blocks))
        self.w_view = bool(w_blocks) and contiguous and (mode == "uvv" or all(r == 1 for _, r in w_blocks))
        self.w_start = w_blocks[0][0] if w_blocks else 0
        self.w_blocks = w_blocks

    def weights(self, w):
        """Flat e3nn weights (n|1, numel) -> engine weights (n|1, P, U)."""
        n, u = w.shape[0], self.mul
        if not self.w_blocks:
            return w.new_zeros(n, 0, u)
        if self.w_view:
            return w[:, self.w_start : self.w_start + self.num_weights * u].reshape(n, self.num_weights, u)
        parts = []
        for off, rows in self.w_blocks:
            blk = w[:, off : off + rows * u]
            if self.mode == "uvu":
                parts.append(blk.reshape(n, u, rows).transpose(1, 2))
            else:
                parts.append(blk.reshape(n, rows, u))
        return torch.cat(parts, 1)

    def _perms(self, device):
        p = self._dev.get(device)
        if p is None:
            p = self._dev[device] = tuple(t.to(device) for t in self._perm_in + self._perm_out)
        return p

    def product(self, x1, x2, w, idx=None, idx_out=None, n_out=None):
        """The group's output irreps side by side in ``mul_ir`` layout, ``(n, sum of their dims)``."""
        xc, xo = (x1, x2) if self.mode == "uvu" else (x2, x1)
        pin, iin, pout, iout = self._perms(xc.device)
        x = select(xc, pin, iin).view(xc.shape[0], self.plan.dim_x, self.mul)
        if self.dense is not None and idx is None and idx_out is None and self.dense.use(self.mul, xo.shape[0], xo.element_size()):
            g = self.dense(x, xo, self.weights(w))
        else:
            g = channelwise_product(self.plan, x, xo, self.weights(w), idx, idx_out, n_out)
        return select(g.reshape(g.shape[0], self.plan.dim_g * self.mul), pout, iout)

    def run(self, x1, x2, w, idx=None, idx_out=None, n_out=None):
        g = self.product(x1, x2, w, idx, idx_out, n_out)
        return [(i, g[:, off : off + d]) for i, off, d in self.out_cols]


def assemble_outputs(irreps_out, parts: dict, like: torch.Tensor, n: int) -> torch.Tensor:
    """Sum the contributions ``parts[i_out]`` (lists of ``(n, dim)`` blocks) of each output irrep and
    lay them out in ``mul_ir`` order, zeros for irreps no path reaches; ``(n, irreps_out.dim)``."""
    outs = []
    for k, mul_ir in enumerate(irreps_out):
        if mul_ir.dim == 0:
            continue
        ts = parts.get(k)
        if not ts:
            outs.append(like.new_zeros(n, mul_ir.dim))
        else:
            acc = ts[0]
            for t in ts[1:]:
                acc = acc + t
            outs.append(acc)
    if not outs:
        return like.new_zeros(n, 0)
    return torch.cat(outs, 1) if len(outs) > 1 else outs[0]


class TensorProduct(torch.nn.Module):
    r"""Tensor product of two direct sums of irreps, with parametrised paths (e3nn-compatible).

    Each instruction ``(i_in1, i_in2, i_out, mode, has_weight[, path_weight])`` adds, for every
    output channel,

    .. math::

        z^{(i_{out})}_{w,k} \mathrel{+}= \alpha \sum_{u,v} W_{(u,v,w)}
        \sum_{i,j} C^{l_1 l_2 l_{out}}_{ijk}\, x^{(i_{in1})}_{u,i}\, y^{(i_{in2})}_{v,j},

    with :math:`C` the Clebsch–Gordan coefficients (`equiv.so3.clebsch_gordan`), :math:`\alpha` the
    e3nn normalisation (module `equiv.tp._instruction`) and the multiplicities connected by ``mode``:

    ============ ========================================== ============================
    mode         output channel from                        weight shape
    ============ ========================================== ============================
    ``uvw``      :math:`\sum_{uv} W_{uvw} x_u y_v`           ``(mul1, mul2, mul_out)``
    ``uvu``      :math:`\sum_{v} W_{uv} x_u y_v` (channelwise) ``(mul1, mul2)``
    ``uvv``      :math:`\sum_{u} W_{uv} x_u y_v`             ``(mul1, mul2)``
    ``uuw``      :math:`\sum_{u} W_{uw} x_u y_u`             ``(mul1, mul_out)``
    ``uuu``      :math:`W_u x_u y_u` (elementwise)           ``(mul1,)``
    ``uvuv``     :math:`W_{uv} x_u y_v` (all pairs)          ``(mul1, mul2)``
    ``uvu<v``    :math:`W_{uv} x_u y_v`, :math:`u<v`         ``(mul1 (mul2-1) / 2,)``
    ``u<vw``     :math:`\sum_{u<v} W_{uvw} x_u y_v`          ``(mul1 (mul2-1) / 2, mul_out)``
    ============ ========================================== ============================

    Weights, their flat layout (instruction by instruction, each row-major in its shape) and the
    normalisation are those of ``e3nn.o3.TensorProduct`` 0.4.4, so the same weights give the same
    output (checked to 1e-10 in float64 in tests/tp). The channelwise modes (``uvu``, ``uvv``) run
    on a block-sparse engine (`equiv.tp._channelwise`): shared-input contraction once per sample,
    one batched matrix product per output irrep, chunked with a recomputing backward (any order of
    differentiation). Construction takes milliseconds (Clebsch–Gordan tensors are cached) and the
    module runs under ``torch.compile(fullgraph=True)``.

    Parameters
    ----------
    irreps_in1, irreps_in2, irreps_out : Irreps or str
    instructions : list of tuple
        ``(i_in1, i_in2, i_out, mode, has_weight[, path_weight])``; ``path_weight >= 0`` multiplies
        :math:`\alpha^2`.
    in1_var, in2_var, out_var : list of float, optional
        Per-irrep variances used by the normalisation (default all 1).
    irrep_normalization : {"component", "norm", "none"}
    path_normalization : {"element", "path", "none"}
    internal_weights : bool, optional
        Hold the weights as a parameter (default: ``shared_weights`` and there are weights).
    shared_weights : bool, optional
        One weight vector for the whole batch (default True); False: ``weight`` has a batch shape.
    cg_convention : {"e3nn-0.4", "e3nn-0.5"}
        Sign convention of the Clebsch–Gordan coefficients (`equiv.so3.clebsch_gordan`): e3nn 0.4.x's
        (default; mace-torch's) or that of e3nn 0.5 and later, which flips the sign of some paths
        (e.g. ``1o x 2e -> 2e``). Choose the one of the e3nn a set of weights was trained with.

    Shapes
    ------
    ``x (..., irreps_in1.dim)``, ``y (..., irreps_in2.dim)``, ``weight (weight_numel,)`` or
    ``(..., weight_numel)`` → ``(..., irreps_out.dim)`` (batch shapes broadcast).

    Examples
    --------
    >>> import torch
    >>> from equiv.tp import TensorProduct
    >>> tp = TensorProduct("8x0e + 8x1o", "0e + 1o", "8x0e + 8x1o",
    ...                    [(0, 0, 0, "uvu", True), (0, 1, 1, "uvu", True), (1, 0, 1, "uvu", True),
    ...                     (1, 1, 0, "uvu", True)], shared_weights=False)
    >>> tp.weight_numel
    32
    >>> tp(torch.randn(10, 32), torch.randn(10, 4), torch.randn(10, 32)).shape
    torch.Size([10, 32])

    References
    ----------
    M. Geiger, T. Smidt, "e3nn: Euclidean neural networks", arXiv:2207.09453 (2022).
    """

    def __init__(
        self,
        irreps_in1,
        irreps_in2,
        irreps_out,
        instructions,
        *,
        in1_var=None,
        in2_var=None,
        out_var=None,
        irrep_normalization: str | None = None,
        path_normalization: str | None = None,
        internal_weights: bool | None = None,
        shared_weights: bool | None = None,
        cg_convention: str = "e3nn-0.4",
    ):
        super().__init__()
        if cg_convention not in so3.CG_CONVENTIONS:
            raise ValueError(f"TensorProduct: cg_convention must be one of {so3.CG_CONVENTIONS}, got {cg_convention!r}")
        self.cg_convention = cg_convention
        self.irreps_in1 = _irreps(irreps_in1, "irreps_in1")
        self.irreps_in2 = _irreps(irreps_in2, "irreps_in2")
        self.irreps_out = _irreps(irreps_out, "irreps_out")
        self.irrep_normalization = irrep_normalization or "component"
        self.path_normalization = path_normalization or "element"
        self.instructions: list[Instruction] = build_instructions(
            self.irreps_in1, self.irreps_in2, self.irreps_out, instructions,
            in1_var, in2_var, out_var, self.irrep_normalization, self.path_normalization,
        )
        for name, val in (("shared_weights", shared_weights), ("internal_weights", internal_weights)):
            if val is not None and not isinstance(val, bool):
                raise TypeError(f"TensorProduct: {name} must be a bool or None, got {val!r}")
        if shared_weights is False and internal_weights is None:
            internal_weights = False
        if shared_weights is None:
            shared_weights = True
        if internal_weights is None:
            internal_weights = shared_weights and any(i.has_weight for i in self.instructions)
        if internal_weights and not shared_weights:
            raise ValueError("TensorProduct: internal_weights=True requires shared_weights=True")
        self.shared_weights = shared_weights
        self.internal_weights = internal_weights

        offsets, off = {}, 0
        self._weight_offsets = []
        for ins in self.instructions:
            self._weight_offsets.append(off if ins.has_weight else -1)
            if ins.has_weight:
                offsets[id(ins)] = off
                off += math.prod(ins.path_shape)
        self.weight_numel = off

        live = [
            ins for ins in self.instructions
            if 0 not in ins.path_shape and self.irreps_in1[ins.i_in1].dim > 0
            and self.irreps_in2[ins.i_in2].dim > 0 and self.irreps_out[ins.i_out].dim > 0
        ]
        groups: dict = {}
        self._generic = []
        for ins in live:
            if ins.connection_mode in _ENGINE_MODES:
                mul = (self.irreps_in1 if ins.connection_mode == "uvu" else self.irreps_in2)[
                    ins.i_in1 if ins.connection_mode == "uvu" else ins.i_in2
                ].mul
                groups.setdefault((ins.connection_mode, mul), []).append(ins)
            else:
                self._generic.append((ins, offsets.get(id(ins), -1)))
        self._groups = [
            _EngineGroup(mode, mul, items, self.irreps_in1, self.irreps_in2, self.irreps_out, offsets, cg_convention)
            for (mode, mul), items in groups.items()
        ]
        nonempty = [k for k, mul_ir in enumerate(self.irreps_out) if mul_ir.dim > 0]
        self._single_group = (
            len(self._groups) == 1 and not self._generic and [b[0] for b in self._groups[0].out_blocks] == nonempty
        )
        self._generic_cg: dict = {}
        # Coefficients of the generic paths are built here, not in forward: torch.compile (inductor)
        # must not trace several `clebsch_gordan` constant calls in one graph.
        self._generic_cg64 = {
            self.instructions.index(ins): so3.clebsch_gordan(
                self.irreps_in1[ins.i_in1].ir.l, self.irreps_in2[ins.i_in2].ir.l, self.irreps_out[ins.i_out].ir.l,
                dtype=torch.float64, convention=cg_convention,
            ) * ins.path_weight
            for ins, _ in self._generic
        }
        self._slices1, self._slices2 = self.irreps_in1.slices(), self.irreps_in2.slices()
        self._triu: dict = {}

        if internal_weights and self.weight_numel > 0:
            self.weight = torch.nn.Parameter(torch.randn(self.weight_numel))
        else:
            self.register_buffer("weight", torch.Tensor(), persistent=False)
        mask = [
            torch.ones(mul * ir.dim)
            if any(i.i_out == k and i.path_weight != 0 and 0 not in i.path_shape for i in self.instructions)
            else torch.zeros(mul * ir.dim)
            for k, (mul, ir) in enumerate(self.irreps_out)
        ]
        self.register_buffer("output_mask", torch.cat(mask) if mask else torch.ones(0))

    # ------------------------------------------------------------------ weights
    def __repr__(self) -> str:
        npath = sum(math.prod(i.path_shape) for i in self.instructions)
        return (
            f"{type(self).__name__}({self.irreps_in1.simplify()} x {self.irreps_in2.simplify()} "
            f"-> {self.irreps_out.simplify()} | {npath} paths | {self.weight_numel} weights)"
        )

    def _get_weights(self, weight):
        if isinstance(weight, (list, tuple)):
            shapes = [i.path_shape for i in self.instructions if i.has_weight]
            if len(weight) != len(shapes):
                raise ValueError(f"{type(self).__name__}: got {len(weight)} weight tensors, expected {len(shapes)}")
            if self.shared_weights:
                weight = torch.cat([w.reshape(math.prod(s)) for w, s in zip(weight, shapes)])
            else:
                weight = torch.cat([w.reshape(-1, math.prod(s)) for w, s in zip(weight, shapes)], -1)
        if weight is None:
            if self.weight_numel > 0 and not self.internal_weights:
                raise ValueError(
                    f"{type(self).__name__}: weight is required (internal_weights=False, weight_numel={self.weight_numel})"
                )
            return self.weight
        if self.shared_weights:
            if weight.shape != (self.weight_numel,):
                raise ValueError(
                    f"{type(self).__name__}: weight has shape {tuple(weight.shape)}, expected ({self.weight_numel},) "
                    "(shared_weights=True)"
                )
        elif weight.dim() < 2 or weight.shape[-1] != self.weight_numel:
            raise ValueError(
                f"{type(self).__name__}: weight has shape {tuple(weight.shape)}, expected (..., {self.weight_numel}) "
                "with a batch dimension (shared_weights=False)"
            )
        return weight

    def weight_view_for_instruction(self, instruction: int, weight: torch.Tensor | None = None) -> torch.Tensor:
        """View of the weights of one instruction, shape ``batch + path_shape``."""
        ins = self.instructions[instruction]
        if not ins.has_weight:
            raise ValueError(f"{type(self).__name__}: instruction {instruction} has no weights")
        weight = self._get_weights(weight)
        off = self._weight_offsets[instruction]
        return weight.narrow(-1, off, math.prod(ins.path_shape)).view(weight.shape[:-1] + ins.path_shape)

    def weight_views(self, weight: torch.Tensor | None = None, yield_instruction: bool = False) -> Iterator:
        """Iterate over the weight views of the weighted instructions (like e3nn)."""
        weight = self._get_weights(weight)
        for k, ins in enumerate(self.instructions):
            if ins.has_weight:
                off = self._weight_offsets[k]
                v = weight.narrow(-1, off, math.prod(ins.path_shape)).view(weight.shape[:-1] + ins.path_shape)
                yield (k, ins, v) if yield_instruction else v

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, y: torch.Tensor, weight=None) -> torch.Tensor:
        """Evaluate the product; see the class docstring for shapes."""
        name = type(self).__name__
        if not isinstance(x, torch.Tensor) or x.shape[-1:] != (self.irreps_in1.dim,):
            raise ValueError(f"{name}: x must have last dimension irreps_in1.dim={self.irreps_in1.dim}, got shape {tuple(getattr(x, 'shape', ()))}")
        if not isinstance(y, torch.Tensor) or y.shape[-1:] != (self.irreps_in2.dim,):
            raise ValueError(f"{name}: y must have last dimension irreps_in2.dim={self.irreps_in2.dim}, got shape {tuple(getattr(y, 'shape', ()))}")
        w = self._get_weights(weight)
        if x.dtype != y.dtype or not x.dtype.is_floating_point or (self.weight_numel and w.dtype != x.dtype):
            raise ValueError(f"{name}: x, y and the weights must share one floating-point dtype, got {x.dtype}, {y.dtype} "
                             f"and {w.dtype if self.weight_numel else 'no weights'} (convert the module with .to(dtype))")
        if x.dim() == 2 and y.shape[:-1] == x.shape[:-1] and (self.shared_weights or w.shape[:-1] == x.shape[:-1]):
            batch = x.shape[:-1]  # the common case: one flat batch, nothing to broadcast
            w = w.reshape(1, -1) if self.shared_weights else w
            if self.weight_numel == 0:
                w = x.new_zeros(1, 0)
            return self._compute(x, y, w)
        try:
            batch, n, x, y, w = flatten_batch(x, y, w if self.weight_numel else None, self.shared_weights)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        if self.weight_numel == 0:
            w = x.new_zeros(1, 0)
        return self._compute(x, y, w).reshape(batch + (self.irreps_out.dim,))

    def _compute(self, x, y, w):
        n = x.shape[0]
        if self._single_group:  # one channelwise group writes every output irrep, in order
            return self._groups[0].product(x, y, w)
        parts: dict[int, list] = {}
        for grp in self._groups:
            for i_out, t in grp.run(x, y, w):
                parts.setdefault(i_out, []).append(t)
        for ins, off in self._generic:
            parts.setdefault(ins.i_out, []).append(self._generic_path(ins, off, x, y, w))
        return assemble_outputs(self.irreps_out, parts, x, n)

    def _cg(self, ins, dtype, device):
        key = (self.instructions.index(ins), dtype, device)
        c = self._generic_cg.get(key)
        if c is None:
            c = self._generic_cg64[key[0]].to(dtype=dtype, device=device)
            self._generic_cg[key] = c
        return c

    def _triu_idx(self, m, device):
        key = (m, device)
        if key not in self._triu:
            self._triu[key] = torch.triu_indices(m, m, 1, device=device)
        return self._triu[key]

    def _generic_path(self, ins, off, x, y, w):
        """One instruction of a non-channelwise mode, as plain einsums (autograd does the rest)."""
        n = x.shape[0]
        (m1, ir1), (m2, ir2), (mo, iro) = self.irreps_in1[ins.i_in1], self.irreps_in2[ins.i_in2], self.irreps_out[ins.i_out]
        x1 = x[:, self._slices1[ins.i_in1]].reshape(n, m1, ir1.dim)
        x2 = y[:, self._slices2[ins.i_in2]].reshape(n, m2, ir2.dim)
        c = self._cg(ins, x.dtype, x.device)
        mode = ins.connection_mode
        if ins.has_weight:
            ww = w[:, off : off + math.prod(ins.path_shape)].reshape((w.shape[0],) + ins.path_shape)
            z = "" if w.shape[0] == 1 else "z"
            if z == "":
                ww = ww[0]
        if mode in ("uuw", "uuu"):
            s = torch.einsum("zui,zuik->zuk", x1, torch.einsum("zuj,ijk->zuik", x2, c))  # (n, m, d3)
            if mode == "uuu":
                out = s * (ww[..., None] if ins.has_weight else 1.0)
            elif ins.has_weight:
                out = torch.einsum(f"{z}uw,zuk->zwk", ww, s)
            else:
                out = s.sum(1, keepdim=True)
        else:
            s = torch.einsum("zui,zvik->zuvk", x1, torch.einsum("zvj,ijk->zvik", x2, c))  # (n, m1, m2, d3)
            if mode == "uvw":
                out = torch.einsum(f"{z}uvw,zuvk->zwk", ww, s)
            elif mode == "uvuv":
                out = (s * ww[..., None] if ins.has_weight else s).reshape(n, m1 * m2, iro.dim)
            else:  # uvu<v, u<vw
                iu = self._triu_idx(m1, x.device)
                s = s[:, iu[0], iu[1]]  # (n, P, d3)
                if mode == "uvu<v":
                    out = s * ww[..., None] if ins.has_weight else s
                else:
                    out = torch.einsum(f"{z}pw,zpk->zwk", ww, s)
        return out.reshape(n, mo * iro.dim)

    def right(self, y: torch.Tensor, weight=None) -> torch.Tensor:
        r"""The operator :math:`x \mapsto x \otimes y`: ``(..., irreps_in1.dim, irreps_out.dim)``."""
        d1 = self.irreps_in1.dim
        batch = y.shape[:-1]
        eye = torch.eye(d1, dtype=y.dtype, device=y.device).expand(batch + (d1, d1))
        if weight is not None and not self.shared_weights and not isinstance(weight, (list, tuple)):
            weight = weight[..., None, :]
        return self.forward(eye, y[..., None, :], weight)
