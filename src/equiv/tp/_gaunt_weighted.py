r"""The grid Gaunt product with its per-degree weights applied inside the chunks.

`GauntTensorProduct` computes, per sample, with weights per degree and channel of each leg,

.. math::

    z = w_3 \odot D(w_1 \odot x,\ w_2 \odot y), \qquad
    g_x = w_1 \odot D_1(w_2 \odot y,\ w_3 \odot g_z), \qquad
    g_{w_1} = \textstyle\sum_{m} x \odot D_1(w_2 \odot y,\ w_3 \odot g_z),

(:math:`D` the Gaunt product, :math:`D_1` its adjoint in the first leg, `equiv.tp._gaunt_form`;
the sum runs over the orders :math:`m` of each degree; likewise for :math:`y` and
:math:`g_{w_3} = \sum_m g_z \odot D(w_1 \odot x, w_2 \odot y)`). Written as whole-batch tensor
operations, the three weight products cost a column gather each and their gradients a scatter-add
over ``mul_ir`` columns: 20–30 % of the product's forward + backward at L = 6–8 on CPU (measured,
C = 16, batch 1024). Here each chunk is moved into the kernels' row layout ``(rows, channels, n)``
anyway, and there a degree's weight is a contiguous slab: the weight product is one row gather and
one multiply on cache-resident data, and the weight gradient one ``index_add`` over rows.

The first-order backward is fused the same way. A backward that must itself be differentiable
(``create_graph=True``, e.g. forces in a training loss) is the unfused formula, differentiated by
autograd (so double backward is exact), and ``torch.compile`` traces the unfused formula.
"""

from __future__ import annotations

import torch

from . import _gaunt_form as _form_module
from ._budget import keep_bytes
from ._gaunt_form import _chunks, _form, _reduce
from ._gaunt_grid import gather_rows

__all__ = ["weighted_gaunt", "unfused_weighted_gaunt"]


def _columns(plan, t, k, w):
    """Per-degree weights of leg ``k`` from ``w (1 or n, dw)`` -> per ``mul_ir`` column ``(1 or n, dim_k)``."""
    s, e = plan.weight_slices[k]
    return w[:, s:e].index_select(1, t[k]["wcol"])


def unfused_weighted_gaunt(plan, x, y, w):
    """:math:`w_3 \\odot D(w_1 \\odot x, w_2 \\odot y)` as differentiable whole-batch operations."""
    t = plan.tensors(x.dtype, x.device)
    z = _form(plan, 2, x * _columns(plan, t, 0, w), y * _columns(plan, t, 1, w), plan.channels(0))
    return z * _columns(plan, t, 2, w)


class _Chunk:
    """Row-layout views of one chunk ``[s, e)`` of a leg's coefficients and weights."""

    def __init__(self, plan, t, wT, shared):
        self.plan, self.t, self.wT, self.shared = plan, t, wT, shared

    def rows(self, k, coeffs):
        """``(n_c, dim_k)`` ``mul_ir`` coefficients -> ``(rows_k, mul_k, n_c)`` (a fresh gather)."""
        mul = self.plan.channels(k)
        return gather_rows(coeffs, self.t[k]["cols"]).view(-1, mul, coeffs.shape[0])

    def weights(self, k, s, e):
        """Weights of leg ``k`` for rows ``(rows_k, mul_k, n_c or 1)``."""
        a, b = self.plan.weight_slices[k]
        wk = self.wT[a:b] if self.shared else self.wT[a:b, s:e]
        return wk.reshape(-1, self.plan.channels(k), wk.shape[-1]).index_select(0, self.t[k]["deg"])

    def columns(self, k, rows):
        """``(rows_k, mul_k, n_c)`` -> ``(n_c, dim_k)`` ``mul_ir`` coefficients (a transposed view)."""
        n = rows.shape[-1]
        return rows.reshape(-1, n).index_select(0, self.t[k]["inv"]).t()

    def degree_sum(self, k, prod):
        """``(rows_k, mul_k, n_c)`` -> per-weight sums ``(n_weights_k, n_c)`` (or ``(n_weights_k,)`` shared)."""
        a, b = self.plan.weight_slices[k]
        mul = self.plan.channels(k)
        out = prod.new_zeros((b - a) // mul, mul, prod.shape[-1]).index_add_(0, self.t[k]["deg"], prod)
        return out.view(b - a, -1).sum(1) if self.shared else out.view(b - a, -1)

    def legs(self, x, y, s, e):
        """Synthesised weighted legs ``(f_1, f_2)`` of the chunk."""
        p = self.plan
        X = self.rows(0, x[s:e]).mul_(self.weights(0, s, e))
        Y = self.rows(1, y[s:e]).mul_(self.weights(1, s, e))
        return p.synthesis_rows(self.t, 0, X), p.synthesis_rows(self.t, 1, Y)

    def product(self, fa, fb):
        """Unweighted third-leg rows ``D(w_1 x, w_2 y)`` ``(rows_3, mul_3, n_c)``."""
        p = self.plan
        return p.analysis_rows(self.t, 2, _reduce(p, fa * fb, p.channels(2))).view(-1, p.channels(2), fa.shape[-1])


class _WeightedGaunt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, plan, x, y, w):
        ctx.plan = plan
        ctx.save_for_backward(x, y, w)
        n = x.shape[0]
        t = plan.tensors(x.dtype, x.device)
        shared = w.shape[0] == 1 and n != 1
        c = _Chunk(plan, t, w.t().contiguous(), shared)
        size = n * ((plan.channels(0) + plan.channels(1)) * plan.points + plan.dim(2)) * x.element_size()
        ctx.kept = [] if any(ctx.needs_input_grad[1:4]) and size <= keep_bytes(_form_module._KEEP_BYTES, x.device) else None
        out = x.new_empty(n, plan.dim(2))
        for s, e in _chunks(plan, n, max(plan.channels(0), plan.channels(1)), x.element_size(), x.device):
            fa, fb = c.legs(x, y, s, e)
            zp = c.product(fa, fb)
            if ctx.kept is not None:
                ctx.kept.append((fa, fb, zp))
            out[s:e] = c.columns(2, zp * c.weights(2, s, e))
        return out

    @staticmethod
    def backward(ctx, gz):
        x, y, w = ctx.saved_tensors
        plan, needs = ctx.plan, ctx.needs_input_grad[1:4]
        if torch.is_grad_enabled():  # create_graph: differentiate the unfused formula (double backward)
            inputs = [v for v, need in zip((x, y, w), needs) if need]
            with torch.enable_grad():
                z = unfused_weighted_gaunt(plan, x, y, w)
            grads = iter(torch.autograd.grad(z, inputs, gz, create_graph=True))
            return (None,) + tuple(next(grads) if need else None for need in needs)
        return (None,) + _fused_backward(plan, x, y, w, gz.contiguous(), needs, ctx.kept)


def _fused_backward(plan, x, y, w, gz, needs, kept):
    need_x, need_y, need_w = needs
    n = x.shape[0]
    t = plan.tensors(x.dtype, x.device)
    shared = w.shape[0] == 1 and n != 1
    c = _Chunk(plan, t, w.t().contiguous(), shared)
    gx = x.new_empty(x.shape) if need_x else None
    gy = y.new_empty(y.shape) if need_y else None
    gwT = (w.new_zeros(w.shape[1]) if shared else w.new_empty(w.shape[1], n)) if need_w else None
    ws = plan.weight_slices

    def put(k, s, e, g):
        a, b = ws[k]
        if shared:
            gwT[a:b] += g
        else:
            gwT[a:b, s:e] = g

    for i, (s, e) in enumerate(_chunks(plan, n, max(plan.channels(0), plan.channels(1)), x.element_size(), x.device)):
        fa, fb, zp = kept[i] if kept is not None else (None, None, None)
        if fa is None:
            fa, fb = c.legs(x, y, s, e)
        G = c.rows(2, gz[s:e])
        if need_w:
            put(2, s, e, c.degree_sum(2, G * (zp if zp is not None else c.product(fa, fb))))
        fg = plan.synthesis_rows(t, 2, G.mul_(c.weights(2, s, e)))
        for k, (other, coeffs, grad) in enumerate(((fb, x, gx), (fa, y, gy))):
            if grad is None and not need_w:
                continue
            d = plan.analysis_rows(t, k, _reduce(plan, other * fg, plan.channels(k))).view(-1, plan.channels(k), e - s)
            if need_w:
                put(k, s, e, c.degree_sum(k, d * c.rows(k, coeffs[s:e])))
            if grad is not None:
                grad[s:e] = c.columns(k, d.mul_(c.weights(k, s, e)))
    gw = None
    if need_w:
        gw = gwT.view(1, -1) if shared else gwT.t()
    return gx, gy, gw


def weighted_gaunt(plan, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    r""":math:`w_3 \odot D(w_1 \odot x, w_2 \odot y)` for ``mul_ir`` coefficients ``x (n, dim_1)``,
    ``y (n, dim_2)`` and per-degree weights ``w (1 or n, dw)`` (legs' weights concatenated as in
    `GauntTensorProduct`), on a `MulIrGridPlan` built with ``weights``."""
    if torch.compiler.is_compiling():
        return unfused_weighted_gaunt(plan, x, y, w)
    return _WeightedGaunt.apply(plan, x, y, w)
