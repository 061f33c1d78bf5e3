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

**Layouts.** Rows are ordered by parity, then degree, then order (`parity_row_order`), so each
parity is a contiguous range of rows and each degree a contiguous slab within it. The ``mul_ir``
coefficients and the per-degree weights move into this row layout by one whole-batch gather per leg
(`MulIrMatrixLayout`); the batched products read and write contiguous matrices (the backward's
:math:`g_x` is computed transposed, :math:`M g_z^\top`, which is about twice as fast on CPU as
:math:`g_z M^\top` with a transposed operand).

For one-channel :math:`y` the batch goes through in chunks of a few MB of matrices
(`CHUNK_BYTES`); the chunks' matrices are kept for the backward up to `KEEP_BYTES` and rebuilt
beyond. A backward that must itself be differentiable (``create_graph=True``) differentiates the
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
#: Blocks of ``M`` with at most this many entries are accumulated by a product and an addition rather
#: than ``baddbmm_``, which is about twice as slow for small matrices on CPU (measured, batch 1024,
#: C = 16: 6 x 10 blocks 155 µs against 87 µs; 45 x 36 blocks of 80 samples: 39 µs against 40 µs).
#: Interleaved A/B of the module's forward, batch 1024: C = 64, L = 2: 3.45 -> 2.97 ms; C = 16, L = 3:
#: 1.54 -> 1.44 ms; forward + backward within 5 % either way.
SMALL_BLOCK = 256


def parity_row_order(ls) -> list[tuple[int, int]]:
    """The ``(l, m)`` of the rows of the matrix route: even degrees first, then odd, each degree's
    orders ``m = -l..l`` together (a degree is a contiguous slab of rows)."""
    ls = sorted(ls)
    return [(l, m) for p in (0, 1) for l in ls if l % 2 == p for m in range(-l, l + 1)]


class MatrixPlan:
    r"""The Gaunt tensor of three degree sets for `gaunt_matrix`, rows in `parity_row_order`.

    ``rows`` is ``(R1, R2, R3)`` and ``even`` the number of even-degree rows of each leg;
    ``parity_rows[k] = (even, odd)`` rows of leg ``k``. ``blocks`` lists the non-empty blocks
    ``(p1, p3, p2)`` of :math:`M`: rows of leg 1 with parity ``p1``, columns of leg 3 with parity
    ``p3``, built from the rows of ``y`` with parity ``p2 = p1 + p3 (mod 2)``.
    """

    def __init__(self, ls1, ls2, ls3):
        self.ls = (tuple(sorted(ls1)), tuple(sorted(ls2)), tuple(sorted(ls3)))
        orders = [parity_row_order(ls) for ls in self.ls]
        self.rows = tuple(len(o) for o in orders)
        self.even = tuple(sum(1 for l, _ in o if l % 2 == 0) for o in orders)
        self.parity_rows = tuple((e, r - e) for e, r in zip(self.even, self.rows))
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
        sl = [(slice(0, e), slice(e, r)) for e, r in zip(self.even, self.rows)]
        self.blocks, self._block_np = [], []
        for p1 in (0, 1):
            for p3 in (0, 1):
                p2 = (p1 + p3) % 2
                a, c = sl[0][p1], sl[2][p3]
                if a.stop > a.start and c.stop > c.start:
                    block = g[sl[1][p2], a, c]  # (rows of y of parity p2, rows1, rows3)
                    self.blocks.append((p1, p3, p2))
                    self._block_np.append(block.reshape(block.shape[0], block.shape[1] * block.shape[2]))
        self.build_macs = sum(m.size for m in self._block_np)  # multiply-adds per sample of the build
        self._cache = {}

    def tensor(self, dtype, device) -> torch.Tensor:
        """``G`` as a dense ``(R2, R1 R3)`` tensor (the plain formula; cached per dtype and device)."""
        key = ("dense", dtype, torch.device(device))
        t = self._cache.get(key)
        if t is None:
            t = self._cache[key] = torch.as_tensor(self._g.reshape(self.rows[1], -1), dtype=dtype, device=device)
        return t

    def block_tensors(self, dtype, device) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per block of `blocks`: ``G`` restricted to it, ``(R2_p2, R1_p1 R3_p3)``, and its transpose
        (contiguous: the backward's product is faster with it), cached."""
        key = ("blocks", dtype, torch.device(device))
        t = self._cache.get(key)
        if t is None:
            t = [torch.as_tensor(m, dtype=dtype, device=device) for m in self._block_np]
            t = self._cache[key] = [(m, m.t().contiguous()) for m in t]
        return t

    def build(self, y_parts, g) -> dict:
        """The blocks of ``M(y)`` from the even and odd rows of ``y`` (``(n, R2_p)`` each):
        ``{(p1, p3): (n, R1_p1, R3_p3)}``, one matrix product each."""
        n = y_parts[0].shape[0]
        r1, r3 = self.parity_rows[0], self.parity_rows[2]
        return {(p1, p3): (y_parts[p2] @ gb).view(n, r1[p1], r3[p3]) for (p1, p3, p2), (gb, _) in zip(self.blocks, g)}


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


def _keep(plan, n, x, needs_grad) -> bool:
    """Keep the chunks' matrices for the backward (else rebuild them)?"""
    return needs_grad and n * plan.rows[0] * plan.rows[2] * x.element_size() <= keep_bytes(KEEP_BYTES, x.device)


# --------------------------------------------------------------------------- kernels on parity buffers
# The kernels work on "parity buffers": per leg, the rows of each parity in their own contiguous tensor,
# ``(n, C, R_even)`` and ``(n, C, R_odd)`` (``y``: ``(n, R_even)``, ``(n, R_odd)``), so that every batched
# product reads and writes contiguous matrices (strided operands and outputs are slow on CPU).
def _forward_chunk(plan, g, xs, ys, zs, s, e):
    """``z = x M(y)`` for samples ``[s, e)``: writes ``zs[p3][s:e]``; returns the blocks of ``M``."""
    m = plan.build([t[s:e] for t in ys], g)
    done = set()
    for p1, p3, _ in plan.blocks:
        out = zs[p3][s:e]
        if p3 in done:
            mb = m[p1, p3]
            if mb.shape[1] * mb.shape[2] <= SMALL_BLOCK:
                out.add_(torch.bmm(xs[p1][s:e], mb))
            else:
                out.baddbmm_(xs[p1][s:e], mb)
        else:
            torch.bmm(xs[p1][s:e], m[p1, p3], out=out)
            done.add(p3)
    for p3 in (0, 1):  # an output parity no block reaches (y lacks the parity) is zero
        if p3 not in done and plan.parity_rows[2][p3]:
            zs[p3][s:e].zero_()
    return m


def _adjoint_chunk(plan, g, xs, ys, gzs, m, s, e, gxts, gys):
    """Backward of `_forward_chunk` for samples ``[s, e)``: ``g_x`` transposed into ``gxts[p1][s:e]``
    (``(n, R1_p1, C)``: :math:`M g_z^\top` is the fast product) and ``g_y`` into ``gys[p2][s:e]``
    (:math:`g_M G^\top` with :math:`g_M = x^\top g_z`), each when its list is given."""
    if m is None:
        m = plan.build([t[s:e] for t in ys], g)
    n = e - s
    done_x, done_y = set(), set()
    for (p1, p3, p2), (_, gbt) in zip(plan.blocks, g):
        gz = gzs[p3][s:e]
        if gxts is not None:
            out = gxts[p1][s:e]
            if p1 in done_x:
                out.baddbmm_(m[p1, p3], gz.transpose(1, 2))
            else:
                torch.bmm(m[p1, p3], gz.transpose(1, 2), out=out)
                done_x.add(p1)
        if gys is not None:
            gm = torch.bmm(xs[p1][s:e].transpose(1, 2), gz).view(n, -1)
            out = gys[p2][s:e]
            if p2 in done_y:
                out.addmm_(gm, gbt)
            else:
                torch.mm(gm, gbt, out=out)
                done_y.add(p2)
    for bufs, done in ((gxts, done_x), (gys, done_y)):  # parities no block reaches: zero gradient
        for p in (0, 1):
            if bufs is not None and p not in done:
                bufs[p][s:e].zero_()


def _parity_buffers(like, n, c, rows, transposed=False):
    """Empty parity buffers ``(n, c, R_p)`` (``(n, R_p, c)`` if ``transposed``; ``(n, R_p)`` if ``c`` is None)."""
    if c is None:
        return [like.new_empty(n, r) for r in rows]
    return [like.new_empty(n, r, c) if transposed else like.new_empty(n, c, r) for r in rows]


class _MatrixProduct(torch.autograd.Function):
    """``z = x M(y)`` for one-channel ``y`` in the row layout, chunked."""

    @staticmethod
    def forward(ctx, plan, x, y):
        ctx.plan = plan
        n, c, _ = x.shape
        (e1, _), (e2, _), (e3, _) = plan.parity_rows
        g = plan.block_tensors(x.dtype, x.device)
        xs = [x[:, :, :e1].contiguous(), x[:, :, e1:].contiguous()]
        ys = [y[:, 0, :e2].contiguous(), y[:, 0, e2:].contiguous()]
        zs = _parity_buffers(x, n, c, plan.parity_rows[2])
        ctx.kept = [] if _keep(plan, n, x, ctx.needs_input_grad[1]) else None
        for s, e in _chunks(plan, n, x):
            m = _forward_chunk(plan, g, xs, ys, zs, s, e)
            if ctx.kept is not None:
                ctx.kept.append(m)
        ctx.save_for_backward(x, y, *xs, *ys)
        return torch.cat(zs, 2)

    @staticmethod
    def backward(ctx, gz):
        x, y, *parts = ctx.saved_tensors
        xs, ys = parts[:2], parts[2:]
        plan = ctx.plan
        need_x, need_y = ctx.needs_input_grad[1:3]
        if torch.is_grad_enabled():  # create_graph: differentiate the plain formula
            inputs = [t for t, need in zip((x, y), (need_x, need_y)) if need]
            with torch.enable_grad():
                z = _plain(plan, x, y)
            grads = iter(torch.autograd.grad(z, inputs, gz, create_graph=True))
            return None, next(grads) if need_x else None, next(grads) if need_y else None
        n, c, _ = x.shape
        e3 = plan.even[2]
        g = plan.block_tensors(x.dtype, x.device)
        gzs = [gz[:, :, :e3].contiguous(), gz[:, :, e3:].contiguous()]
        gxts = _parity_buffers(x, n, c, plan.parity_rows[0], transposed=True) if need_x else None
        gys = _parity_buffers(x, n, None, plan.parity_rows[1]) if need_y else None
        for i, (s, e) in enumerate(_chunks(plan, n, x)):
            m = ctx.kept[i] if ctx.kept is not None else None
            _adjoint_chunk(plan, g, xs, ys, gzs, m, s, e, gxts, gys)
        gx = torch.cat(gxts, 1).transpose(1, 2) if need_x else None
        gy = torch.cat(gys, 1).unsqueeze(1) if need_y else None
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
    r"""Index tensors that move the legs of a `GauntTensorProduct` (mode ``uvu``, one-channel ``y``)
    between ``mul_ir`` columns and the kernels' row layout ``(n, mul, R)`` (rows in
    `parity_row_order`), and spread its per-degree weights over either layout.

    Per leg ``k`` (tensors in ``legs[k]``):

    * ``rows``: the ``mul_ir`` column of row-layout entry ``u R + r`` (a gather into the row layout);
    * ``row_weight``: the weight column of row-layout entry ``u R + r``;
    * ``columns``: the row-layout entry of each ``mul_ir`` column (a gather back);
    * ``columns_t``: the entry ``r mul + u`` of each ``mul_ir`` column in the transposed row layout
      ``(n, R, mul)`` (the layout of the backward's :math:`g_x`);
    * ``column_weight``: the weight column of each ``mul_ir`` column;
    * ``degree``: ``(R, irreps)`` indicator of the degree of each row, in the leg's irreps order;
      ``(n, mul, R) @ degree`` sums over the orders :math:`m` and gives the weight layout
      ``(n, irreps, mul)`` after a transpose.

    Every layout change is one whole-batch ``index_select`` (measured on CPU: faster than per-irrep
    strided copies, whose rows of ``2l+1`` values do not vectorise).
    """

    def __init__(self, plan: MatrixPlan, irreps, weight_slices):
        self.plan, self.weight_slices = plan, weight_slices
        self.muls, self._np = [], []
        for k, irr in enumerate(irreps):
            mul = irr[0].mul
            order = parity_row_order([ir.l for _, ir in irr])
            where = {ir.l: (a, sl.start) for a, (sl, (_, ir)) in enumerate(zip(irr.slices(), irr))}
            nr = len(order)
            rows = np.empty(mul * nr, dtype=np.int64)
            row_weight = np.empty(mul * nr, dtype=np.int64)
            degree = np.zeros((nr, len(irr)))
            for r, (l, m) in enumerate(order):
                a, start = where[l]
                degree[r, a] = 1
                for u in range(mul):
                    rows[u * nr + r] = start + u * (2 * l + 1) + m + l
                    row_weight[u * nr + r] = weight_slices[k][0] + a * mul + u
            columns = np.empty_like(rows)
            columns[rows] = np.arange(len(rows))
            columns_t = (columns % nr) * mul + columns // nr
            column_weight = np.empty_like(rows)
            column_weight[rows] = row_weight
            self.muls.append(mul)
            self._np.append(dict(rows=rows, row_weight=row_weight, columns=columns, columns_t=columns_t,
                                 column_weight=column_weight, degree=degree))
        self._cache = {}

    def tensors(self, dtype, device) -> list[dict]:
        key = (dtype, torch.device(device))
        t = self._cache.get(key)
        if t is None:
            t = self._cache[key] = [
                {k: torch.as_tensor(v, dtype=dtype if k == "degree" else torch.long, device=device) for k, v in leg.items()}
                for leg in self._np
            ]
        return t


def _row_views(plan, rows, k, mul):
    """The parity parts ``(n, mul, R_p)`` (``mul`` None: ``(n, R_p)``) of a leg's row layout ``(n, mul R)``."""
    n, (e, o) = rows.shape[0], plan.parity_rows[k]
    if mul is None:
        return [rows[:, :e], rows[:, e:]]
    r = rows.view(n, mul, e + o)
    return [r[:, :, :e], r[:, :, e:]]


def _degree_sums(leg, v, mul):
    """``v (n, mul R)`` in the row layout summed over the orders of each degree: ``(n, irreps mul)``
    in the weight layout."""
    n = v.shape[0]
    return (v.view(n * mul, -1) @ leg["degree"]).view(n, mul, -1).transpose(1, 2).reshape(n, -1)


def _spread(t, w, key, s, e):
    """Weights ``w (1 or n, dw)`` spread over a layout's entries (``key``) for samples ``[s, e)``."""
    return w.index_select(1, t[key]) if w.shape[0] == 1 else w[s:e].index_select(1, t[key])


class _WeightedMatrix(torch.autograd.Function):
    r""":math:`w_3 \odot (w_1 \odot x) M(w_2 \odot y)` on ``mul_ir`` coefficients, chunk by chunk
    (layout changes included: a chunk's rows stay in cache between its gathers and products)."""

    @staticmethod
    def forward(ctx, layout, x, y, w, plain):
        plan = layout.plan
        ctx.layout, ctx.plain = layout, plain
        n = x.shape[0]
        c, _, c3 = layout.muls
        t = layout.tensors(x.dtype, x.device)
        g = plan.block_tensors(x.dtype, x.device)
        needs = ctx.needs_input_grad[1:4]
        keep_m = _keep(plan, n, x, any(needs))
        ctx.chunks = []  # per chunk: weighted rows of x and y, the unweighted product (for g_w3), M
        out = x.new_empty(n, t[2]["columns"].shape[0])
        for s, e in _chunks(plan, n, x):
            xr = x[s:e].index_select(1, t[0]["rows"]).mul_(_spread(t[0], w, "row_weight", s, e))
            yr = y[s:e].index_select(1, t[1]["rows"]).mul_(_spread(t[1], w, "row_weight", s, e))
            zs = _parity_buffers(x, e - s, c3, plan.parity_rows[2])
            m = _forward_chunk(plan, g, _row_views(plan, xr, 0, c), _row_views(plan, yr, 1, None), zs, 0, e - s)
            z = torch.cat(zs, 2).view(e - s, -1)
            torch.index_select(z, 1, t[2]["columns"], out=out[s:e]).mul_(_spread(t[2], w, "column_weight", s, e))
            if any(needs):
                ctx.chunks.append((xr, yr, z if needs[2] else None, m if keep_m else None))
        ctx.save_for_backward(x, y, w)
        return out

    @staticmethod
    def backward(ctx, gz):
        x, y, w = ctx.saved_tensors
        needs = ctx.needs_input_grad[1:4]
        if torch.is_grad_enabled():  # create_graph: differentiate the plain formula (double backward)
            inputs = [v for v, need in zip((x, y, w), needs) if need]
            with torch.enable_grad():
                out = ctx.plain(x, y, w)
            grads = iter(torch.autograd.grad(out, inputs, gz, create_graph=True))
            return (None,) + tuple(next(grads) if need else None for need in needs) + (None,)
        return (None,) + _weighted_backward(ctx.layout, x, y, w, ctx.chunks, gz, needs) + (None,)


def _weighted_backward(layout, x, y, w, chunks, gz, needs):
    need_x, need_y, need_w = needs
    plan = layout.plan
    n = x.shape[0]
    c, _, c3 = layout.muls
    t = layout.tensors(x.dtype, x.device)
    g = plan.block_tensors(x.dtype, x.device)
    (a1, b1), (a2, b2), (a3, b3) = layout.weight_slices
    gx = x.new_empty(x.shape) if need_x else None
    gy = y.new_empty(y.shape) if need_y else None
    gw = w.new_empty(n, w.shape[1]) if need_w else None
    for (s, e), (xr, yr, z, m) in zip(_chunks(plan, n, x), chunks):
        nc = e - s
        g3 = gz[s:e].index_select(1, t[2]["rows"])  # row layout
        if need_w:
            gw[s:e, a3:b3] = _degree_sums(t[2], g3 * z, c3)
        g3.mul_(_spread(t[2], w, "row_weight", s, e))
        gxts = _parity_buffers(x, nc, c, plan.parity_rows[0], transposed=True) if need_x or need_w else None
        gys = _parity_buffers(x, nc, None, plan.parity_rows[1]) if need_y or need_w else None
        _adjoint_chunk(plan, g, _row_views(plan, xr, 0, c), _row_views(plan, yr, 1, None), _row_views(plan, g3, 2, c3),
                       m, 0, nc, gxts, gys)
        if gxts is not None:  # gradient of w_1 x, in mul_ir columns
            gxw = torch.cat(gxts, 1).view(nc, -1).index_select(1, t[0]["columns_t"])
            if need_w:
                gw[s:e, a1:b1] = _degree_sums(t[0], (gxw * x[s:e]).index_select(1, t[0]["rows"]), c)
            if need_x:
                torch.mul(gxw, _spread(t[0], w, "column_weight", s, e), out=gx[s:e])
        if gys is not None:  # gradient of w_2 y
            gyw = torch.cat(gys, 1).index_select(1, t[1]["columns"])
            if need_w:
                gw[s:e, a2:b2] = _degree_sums(t[1], (gyw * y[s:e]).index_select(1, t[1]["rows"]), 1)
            if need_y:
                torch.mul(gyw, _spread(t[1], w, "column_weight", s, e), out=gy[s:e])
    if need_w and w.shape[0] == 1 and n != 1:
        gw = gw.sum(0, keepdim=True)
    return gx, gy, gw


def weighted_gaunt_matrix(layout: MulIrMatrixLayout, x, y, w, plain):
    r""":math:`w_3 \odot D(w_1 \odot x, w_2 \odot y)` for ``mul_ir`` ``x (n, dim_1)``, one-channel
    ``y (n, dim_2)`` and per-degree weights ``w (1 or n, dw)``; ``plain(x, y, w)`` is the same product
    as differentiable whole-batch operations (used for double backward and under ``torch.compile``)."""
    if torch.compiler.is_compiling():
        return plain(x, y, w)
    return _WeightedMatrix.apply(layout, x, y, w, plain)
