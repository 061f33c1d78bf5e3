r"""Gaunt product as a per-sample matrix (the "matrix" route).

The Gaunt product is linear in each input. For a fixed second input :math:`y` (for example the
spherical harmonics of an edge) it is a matrix acting on the first,

.. math::

    z_{u, j} = \sum_i x_{u, i}\, M_{ij}(y), \qquad M_{ij}(y) = \sum_k G_{ikj}\, y_k, \qquad
    G_{ikj} = \int_{S^2} Y_i Y_k Y_j \, d\Omega,

with :math:`i = (l_1 m_1)`, :math:`k = (l_2 m_2)`, :math:`j = (l_3 m_3)` and :math:`G` the real
Gaunt coefficients (`equiv.so3.gaunt`). Because the per-degree weights of `GauntTensorProduct`
factor out of the sum (:math:`w_1` scales :math:`x`, :math:`w_2` scales :math:`y`, :math:`w_3` scales
:math:`z`), one matrix :math:`M(y)` serves every channel :math:`u` when :math:`y` has a single
channel (mode ``uvu`` with ``irreps_in2`` of multiplicity 1, the convolution of NequIP/MACE-style
models). The product is then two kinds of dense operation:

* build: ``M = Y @ G`` with ``Y (n, R2)`` and ``G (R2, R1 R3)``;
* apply: ``Z = X @ M`` batched over samples, ``X (n, C, R1)``: :math:`n C R_1 R_3` multiply-adds,

with :math:`R_k = (L_k+1)^2` for full sets of degrees. The backward is the same kinds of product with
transposed operands: :math:`g_x = g_z M^\top`, :math:`g_M = x^\top g_z` (summed over channels) and
:math:`g_y = g_M G^\top`.

**Parity blocks.** :math:`G_{ikj} = 0` unless :math:`l_1 + l_2 + l_3` is even, so with rows ordered
even degrees first, :math:`M` has four blocks, :math:`M_{ee}` and :math:`M_{oo}` built from the
even-degree part of :math:`y` only and :math:`M_{eo}`, :math:`M_{oe}` from the odd part. Building the
blocks separately halves the build's multiply-adds (:math:`\approx n R_1 R_2 R_3 / 2`).

For one-channel :math:`y` the batch goes through in chunks whose matrices stay in cache
(`CHUNK_BYTES`); the chunks' matrices (and their gathered, weighted rows) are kept for the
backward up to `KEEP_BYTES` and rebuilt beyond. A backward that must itself be differentiable (``create_graph=True``) differentiates the
plain whole-batch formula with autograd, so double backward is exact; ``uuu`` (one matrix per sample
*and* channel) and ``torch.compile`` use the plain formula too.

Cost against the grid route (`equiv.tp._gaunt_grid`, :math:`O(C L^3)` per sample): the build is
:math:`O(L^6)` per sample, independent of :math:`C`, and the apply :math:`O(C L^4)`, but both are
large matrix products where the grid route runs many small ones with layout changes in between.
Measured on CPU (`benchmarks/tensor_products.py`), the matrix route is the faster one for
one-channel :math:`y` at small and moderate :math:`L` and the grid route wins at large :math:`L`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from equiv import so3

from ._budget import chunk_bytes, keep_bytes
from ._gaunt_grid import row_order

__all__ = ["MatrixPlan", "matrix_plan", "gaunt_matrix", "parity_row_order"]

#: Bytes of per-sample matrices built at once on a CPU (a chunk of the batch; cache-sized).
CHUNK_BYTES = 1 << 21
#: Bytes of per-sample matrices kept for the backward on a CPU (rebuilt beyond).
KEEP_BYTES = 64 << 20


def parity_row_order(ls) -> list[tuple[int, int]]:
    """`row_order` with the even degrees first: the rows of the matrix route."""
    order = row_order(ls)
    return [lm for lm in order if lm[0] % 2 == 0] + [lm for lm in order if lm[0] % 2 == 1]


class MatrixPlan:
    r"""The Gaunt tensor of three degree sets for `gaunt_matrix`, rows in `parity_row_order`.

    ``rows`` is ``(R1, R2, R3)`` and ``even`` the number of even-degree rows of each leg.
    """

    def __init__(self, ls1, ls2, ls3):
        self.ls = (tuple(sorted(ls1)), tuple(sorted(ls2)), tuple(sorted(ls3)))
        orders = [parity_row_order(ls) for ls in self.ls]
        self.rows = tuple(len(o) for o in orders)
        self.even = tuple(sum(1 for l, _ in o if l % 2 == 0) for o in orders)
        r1, r2, r3 = self.rows
        index = [{lm: i for i, lm in enumerate(o)} for o in orders]
        rows_of = [{l: np.array([idx[(l, m)] for m in range(-l, l + 1)]) for l in ls} for idx, ls in zip(index, self.ls)]
        g = np.zeros((r2, r1, r3))
        for l1 in self.ls[0]:
            for l2 in self.ls[1]:
                for l3 in self.ls[2]:
                    if not (abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0):
                        continue
                    block = so3.gaunt(l1, l2, l3, dtype=torch.float64).numpy()  # (m1, m2, m3)
                    g[np.ix_(rows_of[1][l2], rows_of[0][l1], rows_of[2][l3])] = block.transpose(1, 0, 2)
        self._g = g
        self.nnz = int(np.count_nonzero(g))
        e1, e2, e3 = self.even
        # blocks (p1, p3) of M: rows of leg 1 with parity p1, columns of leg 3 with parity p3; built
        # from the rows of y with parity p1 + p3. Per parity of y, its blocks side by side.
        sl = [(slice(0, e1), slice(e1, r1)), (slice(0, e2), slice(e2, r2)), (slice(0, e3), slice(e3, r3))]
        self.blocks = {}  # (p1, p3) -> (y parity, column offset in that parity's build, shape)
        mats = {0: [], 1: []}
        for p2 in (0, 1):
            offset = 0
            for p1 in (0, 1):
                p3 = (p1 + p2) % 2
                a, c = sl[0][p1], sl[2][p3]
                block = g[sl[1][p2], a, c]  # (rows of y, rows1, rows3)
                shape = (a.stop - a.start, c.stop - c.start)
                self.blocks[(p1, p3)] = (p2, offset, shape)
                mats[p2].append(block.reshape(block.shape[0], shape[0] * shape[1]))
                offset += shape[0] * shape[1]
        self._build = [np.concatenate(mats[p], 1) for p in (0, 1)]
        self.build_macs = sum(m.size for m in self._build)  # multiply-adds per sample of the build
        self._cache = {}

    def tensor(self, dtype, device) -> torch.Tensor:
        """``G`` as a dense ``(R2, R1 R3)`` tensor (the plain formula; cached per dtype and device)."""
        key = ("dense", dtype, torch.device(device))
        t = self._cache.get(key)
        if t is None:
            t = self._cache[key] = torch.as_tensor(self._g.reshape(self.rows[1], -1), dtype=dtype, device=device)
        return t

    def parity_tensors(self, dtype, device) -> list[torch.Tensor]:
        """Per parity of ``y``: its rows' blocks of ``G``, ``(R2_p, width_p)`` (cached)."""
        key = ("parity", dtype, torch.device(device))
        t = self._cache.get(key)
        if t is None:
            t = self._cache[key] = [torch.as_tensor(m, dtype=dtype, device=device) for m in self._build]
        return t

    def build(self, y: torch.Tensor, g) -> tuple[dict, list[torch.Tensor]]:
        """The blocks of ``M(y)`` for ``y (n, R2)``: ``{(p1, p3): (n, rows1, rows3) view}``, and the two
        buffers they view."""
        e2 = self.even[1]
        bufs = [y[:, :e2] @ g[0], y[:, e2:] @ g[1]]
        return {k: _view(bufs[p], off, shape) for k, (p, off, shape) in self.blocks.items()}, bufs


def _view(buf, offset, shape):
    return buf[:, offset : offset + shape[0] * shape[1]].view(buf.shape[0], *shape)


@functools.lru_cache(maxsize=None)
def matrix_plan(ls1, ls2, ls3) -> MatrixPlan:
    return MatrixPlan(tuple(ls1), tuple(ls2), tuple(ls3))


def _plain(plan: MatrixPlan, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The product as whole-batch differentiable operations (``uuu``, double backward, compile)."""
    n, c, r1 = x.shape
    v = y.shape[1]
    m = (y.reshape(n * v, -1) @ plan.tensor(x.dtype, x.device)).view(n, v, r1, plan.rows[2])
    if v == 1:
        return torch.bmm(x, m.view(n, r1, -1))
    return torch.matmul(x.unsqueeze(-2), m).squeeze(-2)


def _chunks(plan: MatrixPlan, n: int, x: torch.Tensor):
    step = max(1, chunk_bytes(CHUNK_BYTES, x.device) // (plan.rows[0] * plan.rows[2] * x.element_size()))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def _split(t: torch.Tensor, at: int):
    return t[..., :at], t[..., at:]


def _apply(plan, g, x, y):
    """One chunk: ``z (n, C, R3) = x (n, C, R1) M(y)`` for ``y (n, R2)``; returns ``z`` and ``M``'s blocks."""
    n, c, r1 = x.shape
    e1, e3 = plan.even[0], plan.even[2]
    m, _ = plan.build(y, g)
    xe, xo = _split(x, e1)
    parts = []
    for p3 in (0, 1):
        if (e3, plan.rows[2] - e3)[p3]:
            z = torch.bmm(xe, m[0, p3]) if e1 else None
            if e1 < r1:
                z = torch.bmm(xo, m[1, p3]) if z is None else z.baddbmm_(xo, m[1, p3])
            parts.append(z)
    return (parts[0] if len(parts) == 1 else torch.cat(parts, 2)), m


def _apply_adjoint(plan, g, x, y, gz, m, need_x, need_y):
    """Backward of `_apply` for one chunk: ``(g_x (n, C, R1), g_y (n, R2))`` (``None`` where not needed).
    ``m`` are the chunk's blocks of ``M`` (rebuilt from ``y`` when ``None``)."""
    n, c, r1 = x.shape
    (e1, e2, e3), (_, r2, r3) = plan.even, plan.rows
    pairs = [(p1, p3) for p1 in (0, 1) for p3 in (0, 1) if (e1, r1 - e1)[p1] and (e3, r3 - e3)[p3]]
    xs, gzs = _split(x, e1), _split(gz, e3)
    gx = gy = None
    if need_x:  # products into fresh (contiguous) tensors: strided outputs are slow on CPU
        if m is None:
            m = plan.build(y, g)[0]
        parts = []
        for p1 in (0, 1):
            terms = [torch.bmm(gzs[p3], m[p1, p3].transpose(1, 2)) for q1, p3 in pairs if q1 == p1]
            if terms:
                parts.append(terms[0] if len(terms) == 1 else terms[0].add_(terms[1]))
        gx = parts[0] if len(parts) == 1 else torch.cat(parts, 2)
    if need_y:
        gm = [[], []]
        for p1, p3 in pairs:
            gm[plan.blocks[p1, p3][0]].append(torch.bmm(xs[p1].transpose(1, 2), gzs[p3]).view(n, -1))
        parts = []
        for p2 in (0, 1):
            if (e2, r2 - e2)[p2]:
                if gm[p2]:
                    parts.append((gm[p2][0] if len(gm[p2]) == 1 else torch.cat(gm[p2], 1)) @ g[p2].t())
                else:
                    parts.append(y.new_zeros(n, (e2, r2 - e2)[p2]))
        gy = parts[0] if len(parts) == 1 else torch.cat(parts, 1)
    return gx, gy


def _keep(plan, n, x, needs_grad, per_sample: int = 0) -> bool:
    """Keep the chunks' matrices (and ``per_sample`` more values per sample) for the backward?"""
    size = n * (plan.rows[0] * plan.rows[2] + per_sample) * x.element_size()
    return needs_grad and size <= keep_bytes(KEEP_BYTES, x.device)


class _MatrixProduct(torch.autograd.Function):
    """``z = x M(y)`` for one-channel ``y`` in the row layout, chunked."""

    @staticmethod
    def forward(ctx, plan, x, y):
        ctx.plan = plan
        ctx.save_for_backward(x, y)
        n, c, _ = x.shape
        g = plan.parity_tensors(x.dtype, x.device)
        ctx.kept = [] if _keep(plan, n, x, ctx.needs_input_grad[1]) else None
        out = x.new_empty(n, c, plan.rows[2])
        for s, e in _chunks(plan, n, x):
            out[s:e], m = _apply(plan, g, x[s:e], y[s:e, 0])
            if ctx.kept is not None:
                ctx.kept.append(m)
        return out

    @staticmethod
    def backward(ctx, gz):
        x, y = ctx.saved_tensors
        plan = ctx.plan
        need_x, need_y = ctx.needs_input_grad[1:3]
        if torch.is_grad_enabled():  # create_graph: differentiate the plain formula
            inputs = [t for t, need in zip((x, y), (need_x, need_y)) if need]
            with torch.enable_grad():
                z = _plain(plan, x, y)
            grads = iter(torch.autograd.grad(z, inputs, gz, create_graph=True))
            return None, next(grads) if need_x else None, next(grads) if need_y else None
        g = plan.parity_tensors(x.dtype, x.device)
        gz = gz.contiguous()
        gx = torch.empty_like(x) if need_x else None
        gy = torch.empty_like(y) if need_y else None
        for i, (s, e) in enumerate(_chunks(plan, x.shape[0], x)):
            m = ctx.kept[i] if ctx.kept is not None else None
            a, b = _apply_adjoint(plan, g, x[s:e], y[s:e, 0], gz[s:e], m, need_x, need_y)
            if need_x:
                gx[s:e] = a
            if need_y:
                gy[s:e, 0] = b
        return None, gx, gy


def gaunt_matrix(plan: MatrixPlan, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Gaunt product of row-layout coefficients (rows in `parity_row_order`): ``x (n, C, R1)``,
    ``y (n, V, R2)`` with ``V`` 1 or ``C`` -> ``z (n, C, R3)``, :math:`z_{u} = x_u M(y_{v})`
    (:math:`v = 1` or :math:`u`).

    >>> import torch
    >>> plan = matrix_plan((0, 1), (0, 1), (0, 1, 2))
    >>> z = gaunt_matrix(plan, torch.randn(3, 8, 4), torch.randn(3, 1, 4))
    >>> tuple(z.shape)
    (3, 8, 9)
    """
    if y.shape[1] != 1 or torch.compiler.is_compiling():
        return _plain(plan, x, y)
    return _MatrixProduct.apply(plan, x, y)


# --------------------------------------------------------------------------- mul_ir layout, weights
class MulIrMatrixLayout:
    r"""Index tensors that move ``mul_ir`` coefficients and per-degree weights of `GauntTensorProduct`
    (mode ``uvu``, one-channel ``y``) into the row layout of `_apply`, chunk by chunk.

    ``legs[k] = (mul, perm, weight_index, degree_of_row, num_degrees)``: ``perm[u R_k + r]`` is the
    ``mul_ir`` column of channel ``u`` and row ``r`` (`parity_row_order`), ``weight_index[u R_k + r]``
    the index ``a mul + u`` of its weight (``a`` the row's irrep), within the leg's slice
    ``weight_slices[k]`` of the concatenated weights.
    """

    def __init__(self, plan: MatrixPlan, legs, weight_slices):
        self.plan, self.weight_slices = plan, weight_slices
        self.legs = []
        for mul, perm, widx, deg, ndeg in legs:
            perm = torch.as_tensor(perm, dtype=torch.long)
            inv = torch.empty_like(perm)
            inv[perm] = torch.arange(len(perm))
            ind = torch.zeros(len(deg), ndeg)  # rows -> degrees: sums over the orders m of a degree
            ind[torch.arange(len(deg)), torch.as_tensor(deg)] = 1
            self.legs.append((mul, perm, inv, torch.as_tensor(widx, dtype=torch.long), ind))
        self._cache = {}

    def tensors(self, dtype, device):
        key = (dtype, torch.device(device))
        t = self._cache.get(key)
        if t is None:
            t = self._cache[key] = [(mul, perm.to(device), inv.to(device), widx.to(device), ind.to(device, dtype))
                                    for mul, perm, inv, widx, ind in self.legs]
        return t


def _rows(leg, t, s, e):
    """Rows of ``mul_ir`` coefficients ``t`` of chunk ``[s, e)``: ``(n_c, mul, R_k)`` (a gather)."""
    return t[s:e].index_select(1, leg[1]).view(e - s, leg[0], -1)


def _weights(leg, w, span, s, e):
    """Per-row weights of chunk ``[s, e)`` from the leg's slice ``span`` of ``w (1 or n, dw)``:
    ``(1 or n_c, mul, R_k)``."""
    wk = w[:, span[0] : span[1]] if w.shape[0] == 1 else w[s:e, span[0] : span[1]]
    return wk.index_select(1, leg[3]).view(wk.shape[0], leg[0], -1)


def _degree_sums(leg, v):
    """``v (n_c, mul, R_k)`` summed over the rows of each degree -> ``(n_c, degrees * mul)`` (weight layout)."""
    mul, _, _, _, ind = leg
    return (v @ ind).transpose(1, 2).reshape(v.shape[0], -1)


def _columns(leg, v):
    """Row layout ``(n_c, mul, R_k)`` -> ``mul_ir`` columns ``(n_c, dim_k)`` (a gather)."""
    return v.reshape(v.shape[0], -1).index_select(1, leg[2])


class _WeightedMatrix(torch.autograd.Function):
    r""":math:`w_3 \odot (w_1 \odot x) M(w_2 \odot y)` on ``mul_ir`` coefficients, chunked."""

    @staticmethod
    def forward(ctx, layout, x, y, w, plain):
        plan, ws = layout.plan, layout.weight_slices
        ctx.layout, ctx.plain = layout, plain
        ctx.save_for_backward(x, y, w)
        n = x.shape[0]
        t = layout.tensors(x.dtype, x.device)
        g = plan.parity_tensors(x.dtype, x.device)
        rows = [leg[0] * len(leg[4]) for leg in t]  # values per sample of each leg's row layout
        ctx.kept = [] if _keep(plan, n, x, any(ctx.needs_input_grad[1:4]), 2 * rows[0] + 2 * rows[1] + rows[2]) else None
        out = x.new_empty(n, len(t[2][1]))
        for s, e in _chunks(plan, n, x):
            xr, w1 = _rows(t[0], x, s, e), _weights(t[0], w, ws[0], s, e)
            yr, w2 = _rows(t[1], y, s, e), _weights(t[1], w, ws[1], s, e)
            xw, yw = xr * w1, (yr * w2).view(e - s, -1)
            z, m = _apply(plan, g, xw, yw)
            w3 = _weights(t[2], w, ws[2], s, e)
            if ctx.kept is not None:  # the gathered inputs too: the backward gathers only g_z and w_3
                ctx.kept.append((m, z, xr, w1, yr, w2))
            out[s:e] = _columns(t[2], z * w3)
        return out

    @staticmethod
    def backward(ctx, gz):
        x, y, w = ctx.saved_tensors
        needs = ctx.needs_input_grad[1:4]
        if torch.is_grad_enabled():  # create_graph: differentiate the plain formula (double backward)
            inputs = [v for v, need in zip((x, y, w), needs) if need]
            with torch.enable_grad():
                z = ctx.plain(x, y, w)
            grads = iter(torch.autograd.grad(z, inputs, gz, create_graph=True))
            return (None,) + tuple(next(grads) if need else None for need in needs) + (None,)
        return (None,) + _weighted_backward(ctx.layout, x, y, w, gz.contiguous(), needs, ctx.kept) + (None,)


def _weighted_backward(layout, x, y, w, gz, needs, kept):
    need_x, need_y, need_w = needs
    plan, ws = layout.plan, layout.weight_slices
    n = x.shape[0]
    shared = w.shape[0] == 1 and n != 1
    t = layout.tensors(x.dtype, x.device)
    g = plan.parity_tensors(x.dtype, x.device)
    gx = x.new_empty(x.shape) if need_x else None
    gy = y.new_empty(y.shape) if need_y else None
    gw = (w.new_zeros(1, w.shape[1]) if shared else w.new_empty(w.shape)) if need_w else None

    def put(k, s, e, v):
        a, b = ws[k]
        if shared:
            gw[:, a:b] += v.sum(0, keepdim=True)
        else:
            gw[s:e, a:b] = v

    for i, (s, e) in enumerate(_chunks(plan, n, x)):
        if kept is not None:
            m, z, xr, w1, yr, w2 = kept[i]
        else:
            m = z = None
            xr, w1 = _rows(t[0], x, s, e), _weights(t[0], w, ws[0], s, e)
            yr, w2 = _rows(t[1], y, s, e), _weights(t[1], w, ws[1], s, e)
        xw, yw = xr * w1, (yr * w2).view(e - s, -1)
        w3 = _weights(t[2], w, ws[2], s, e)
        g3 = _rows(t[2], gz, s, e)
        if need_w:
            if z is None:
                z = _apply(plan, g, xw, yw)[0]
            put(2, s, e, _degree_sums(t[2], g3 * z))
        gxw, gyw = _apply_adjoint(plan, g, xw, yw, g3.mul_(w3), m, need_x or need_w, need_y or need_w)
        if need_w:
            put(0, s, e, _degree_sums(t[0], gxw * xr))
            put(1, s, e, _degree_sums(t[1], gyw.view(yr.shape) * yr))
        if need_x:
            gx[s:e] = _columns(t[0], gxw.mul_(w1))
        if need_y:
            gy[s:e] = _columns(t[1], gyw.view(yr.shape).mul_(w2))
    return gx, gy, gw


def weighted_gaunt_matrix(layout: MulIrMatrixLayout, x, y, w, plain):
    r""":math:`w_3 \odot D(w_1 \odot x, w_2 \odot y)` for ``mul_ir`` ``x (n, dim_1)``, one-channel
    ``y (n, dim_2)`` and per-degree weights ``w (1 or n, dw)``; ``plain(x, y, w)`` is the same product
    as differentiable whole-batch operations (used for double backward and under ``torch.compile``)."""
    if torch.compiler.is_compiling():
        return plain(x, y, w)
    return _WeightedMatrix.apply(layout, x, y, w, plain)
