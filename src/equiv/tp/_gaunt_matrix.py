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
When ``x`` and the output have the same degrees, :math:`M` is symmetric (:math:`G` is symmetric in its
three indices), :math:`M_{oe} = M_{eo}^\top` is a transposed view, and :math:`g_y` takes the two
off-diagonal blocks' :math:`g_M` summed in one product: a quarter of the build and of that product saved
(measured forward + backward, batch 1024: C = 16, L = 8: 33.5 -> 31.3 ms; L = 6: 14.4 -> 13.7 ms).

**Layouts.** Rows are ordered by parity, then degree, then order (`parity_row_order`), so each
parity is a contiguous range of rows and each degree a contiguous slab within it. Inside the kernels a
leg is channel-last, ``(n, R, C)``: the forward computes :math:`z^\top = M^\top x^\top` and the
backward :math:`g_x^\top = M g_z^\top`, whose operands are contiguous (a transposed second operand
makes CPU batched products up to twice as slow), per-degree weights are broadcasts over contiguous
channels, and sums over the orders of each degree are one small matrix product. The ``mul_ir``
coefficients move into and out of this layout by one whole-chunk gather per leg
(`MulIrMatrixLayout`). Against the channel-first layout of the first version, interleaved, forward +
backward, batch 1024: C = 64, L = 6: 52.2 -> 45.2 ms; C = 64, L = 3: 14.2 -> 12.7 ms; C = 16: within
±5 % (L = 3 to 8).

For one-channel :math:`y` the batch goes through in chunks of a few MB of matrices
(`CHUNK_BYTES`); the chunks' matrices are kept for the backward up to `KEEP_BYTES` and rebuilt
beyond, and so are their gathered, weighted rows (a separate `KEEP_BYTES`; gathered again beyond).
A backward that must itself be differentiable (``create_graph=True``) differentiates the
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
#: Per-degree weights multiply channel-last slabs by broadcasting when a leg has at least this many
#: channels, else through weights spread by a gather (short channel rows broadcast slowly).
SLAB_MIN_CHANNELS = 32


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
        # x and the output on the same degrees: G_ikj = G_jki makes M symmetric, M_oe = M_eo^T, and the
        # (1, 0) block is a transposed view of the (0, 1) block (not built)
        self.symmetric = self.ls[0] == self.ls[2] and (0, 1, 1) in self.blocks and (1, 0, 1) in self.blocks
        self.build_macs = sum(m.size for b, m in zip(self.blocks, self._block_np)
                              if not (self.symmetric and b == (1, 0, 1)))  # multiply-adds per sample of the build
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
        m = {(p1, p3): (y_parts[p2] @ gb).view(n, r1[p1], r3[p3])
             for (p1, p3, p2), (gb, _) in zip(self.blocks, g) if not (self.symmetric and (p1, p3) == (1, 0))}
        if self.symmetric:
            m[1, 0] = m[0, 1].transpose(1, 2)
        return m


@functools.lru_cache(maxsize=None)
def matrix_plan(ls1, ls2, ls3) -> MatrixPlan:
    return MatrixPlan(tuple(ls1), tuple(ls2), tuple(ls3))


def _plain(plan: MatrixPlan, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The product as whole-batch differentiable operations (``uuu``, double backward, compile). The
    dense ``G`` doubles the build against the parity blocks, but as one product it differentiates
    faster: a force-like step (forward, input gradients with ``create_graph``, their backward) was
    10-25 % slower with per-block products for C = 16-64, L = 2-6 (faster only from L = 8)."""
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


# --------------------------------------------------------------------------- kernels, channel-last
# The kernels work channel-last: per sample a leg is an ``(R, C)`` matrix (rows in `parity_row_order`,
# channels contiguous), and the rows of one parity are a row range of it. In this layout the forward
# ``z^T = M^T x^T`` and the backward ``g_x^T = M g_z^T`` read contiguous operands (on CPU a transposed
# second operand makes a batched product up to twice as slow), per-degree weights are a broadcast over
# contiguous channels, and sums over the orders of each degree are one matrix product.
def _accumulate(out, a, b, first):
    """``out = a @ b`` (batched) or ``out += a @ b``; small blocks by a product and an addition."""
    if first:
        torch.bmm(a, b, out=out)
    elif a.shape[1] * b.shape[1] <= SMALL_BLOCK:
        out.add_(torch.bmm(a, b))
    else:
        out.baddbmm_(a, b)


def _forward_chunk(plan, g, xts, ys, zts, s, e):
    """``z^T = M(y)^T x^T`` for samples ``[s, e)``: ``xts[p1]`` ``(n, R1_p1, C)`` rows of ``x`` by
    parity, ``ys[p2]`` ``(n, R2_p2)``; writes ``zts[p3][s:e]`` ``(n, R3_p3, C)`` (contiguous); returns
    the blocks of ``M``."""
    m = plan.build([t[s:e] for t in ys], g)
    done = set()
    for p1, p3, _ in plan.blocks:
        _accumulate(zts[p3][s:e], m[p1, p3].transpose(1, 2), xts[p1][s:e], p3 not in done)
        done.add(p3)
    for p3 in (0, 1):  # an output parity no block reaches (y lacks the parity) is zero
        if p3 not in done:
            zts[p3][s:e].zero_()
    return m


def _adjoint_chunk(plan, g, xts, ys, gzts, m, s, e, gxts, gys):
    """Backward of `_forward_chunk` for samples ``[s, e)``: ``g_x^T = M g_z^T`` into ``gxts[p1][s:e]``
    ``(n, R1_p1, C)`` and ``g_y = g_M G^T`` (:math:`g_M = x^\top g_z`) into ``gys[p2][s:e]``, each when
    its list is given; ``m`` the chunk's blocks of ``M`` (rebuilt when None)."""
    if m is None:
        m = plan.build([t[s:e] for t in ys], g)
    n = e - s
    done_x, done_y = set(), set()
    for (p1, p3, p2), (_, gbt) in zip(plan.blocks, g):
        gz = gzts[p3][s:e]
        if gxts is not None:
            _accumulate(gxts[p1][s:e], m[p1, p3], gz, p1 not in done_x)
            done_x.add(p1)
        if gys is not None:
            if plan.symmetric and (p1, p3) == (1, 0):
                continue  # added to the (0, 1) block's g_M, transposed (below)
            gm = torch.bmm(xts[p1][s:e], gz.transpose(1, 2))
            if plan.symmetric and (p1, p3) == (0, 1):  # g_y from both off-diagonal blocks, one product
                gm.baddbmm_(gzts[0][s:e], xts[1][s:e].transpose(1, 2))
            gm = gm.view(n, -1)
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


def _parity_buffers(like, n, c, rows):
    """Empty contiguous parity buffers ``(n, R_p, c)`` (``(n, R_p)`` if ``c`` is None)."""
    return [like.new_empty(n, r) if c is None else like.new_empty(n, r, c) for r in rows]


def _parity_views(t, even):
    """Row ranges of the two parities of ``t (n, R, ...)``."""
    return [t[:, :even], t[:, even:]]


class _MatrixProduct(torch.autograd.Function):
    """``z = x M(y)`` for one-channel ``y`` in the row layout ``(n, C, R)``, chunked (channel-last inside)."""

    @staticmethod
    def forward(ctx, plan, x, y):
        ctx.plan = plan
        n, c, _ = x.shape
        g = plan.block_tensors(x.dtype, x.device)
        xt = x.transpose(1, 2).contiguous()
        yr = y[:, 0].contiguous()
        xts, ys = _parity_views(xt, plan.even[0]), _parity_views(yr, plan.even[1])
        zts = _parity_buffers(x, n, c, plan.parity_rows[2])
        ctx.kept = [] if _keep(plan, n, x, ctx.needs_input_grad[1]) else None
        for s, e in _chunks(plan, n, x):
            m = _forward_chunk(plan, g, xts, ys, zts, s, e)
            if ctx.kept is not None:
                ctx.kept.append(m)
        ctx.save_for_backward(x, y, xt, yr)
        return torch.cat(zts, 1).transpose(1, 2)

    @staticmethod
    def backward(ctx, gz):
        x, y, xt, yr = ctx.saved_tensors
        plan = ctx.plan
        need_x, need_y = ctx.needs_input_grad[1:3]
        if torch.is_grad_enabled():  # create_graph: differentiate the plain formula
            inputs = [t for t, need in zip((x, y), (need_x, need_y)) if need]
            with torch.enable_grad():
                z = _plain(plan, x, y)
            grads = iter(torch.autograd.grad(z, inputs, gz, create_graph=True))
            return None, next(grads) if need_x else None, next(grads) if need_y else None
        n, c, _ = x.shape
        g = plan.block_tensors(x.dtype, x.device)
        gzts = _parity_views(gz.transpose(1, 2).contiguous(), plan.even[2])
        gxts = _parity_buffers(x, n, c, plan.parity_rows[0]) if need_x else None
        gys = _parity_buffers(x, n, None, plan.parity_rows[1]) if need_y else None
        xts, ys = _parity_views(xt, plan.even[0]), _parity_views(yr, plan.even[1])
        for i, (s, e) in enumerate(_chunks(plan, n, x)):
            m = ctx.kept[i] if ctx.kept is not None else None
            _adjoint_chunk(plan, g, xts, ys, gzts, m, s, e, gxts, gys)
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
    between ``mul_ir`` columns and the kernels' channel-last layout ``(n, R, mul)`` (rows in
    `parity_row_order`), and the per-degree weights.

    Per leg ``k`` (tensors in ``legs[k]``):

    * ``rows``: the ``mul_ir`` column of entry ``r mul + u`` of the channel-last layout (a gather);
    * ``columns``: the channel-last entry of each ``mul_ir`` column (the gather back);
    * ``degree``: ``(irreps, R)`` indicator of the degree of each row, in the leg's irreps order;
      ``degree @ v`` for ``v (n, R, mul)`` sums over the orders :math:`m` and is the weight layout
      ``(n, irreps, mul)``;
    * ``row_weight`` (the ``y`` leg, ``mul`` 1): the weight column of each row.

    ``slabs[k]`` lists ``(row, 2l+1, weight)`` per irrep: its rows ``[row, row + 2l+1)`` and its weights
    ``[weight, weight + mul)`` of the concatenated weights (a degree's weights multiply its slab of
    rows, broadcast over the orders: measured on CPU faster than spreading the weights by a gather).
    """

    def __init__(self, plan: MatrixPlan, irreps, weight_slices):
        self.plan, self.weight_slices = plan, weight_slices
        self.muls, self.slabs, self._np = [], [], []
        for k, irr in enumerate(irreps):
            mul = irr[0].mul
            order = parity_row_order([ir.l for _, ir in irr])
            where = {ir.l: (a, sl.start) for a, (sl, (_, ir)) in enumerate(zip(irr.slices(), irr))}
            nr = len(order)
            irrep = np.array([where[l][0] for l, _ in order])  # irrep index of each row
            col0 = np.array([where[l][1] + m + l for l, m in order])  # mul_ir column of channel 0
            dim = np.array([2 * l + 1 for l, _ in order])
            u = np.arange(mul)
            rows = (col0[:, None] + u * dim[:, None]).reshape(-1)  # entry r mul + u
            row_weight = weight_slices[k][0] + irrep * mul
            entry_weight = (row_weight[:, None] + u).reshape(-1)
            degree = np.zeros((len(irr), nr))
            degree[irrep, np.arange(nr)] = 1
            first = {}
            for r, (l, _) in enumerate(order):
                first.setdefault(l, r)
            columns = np.empty_like(rows)
            columns[rows] = np.arange(len(rows))
            self.muls.append(mul)
            self.slabs.append([(first[ir.l], 2 * ir.l + 1, weight_slices[k][0] + a * mul) for a, (_, ir) in enumerate(irr)])
            self._np.append(dict(rows=rows, columns=columns, degree=degree, row_weight=row_weight, entry_weight=entry_weight))
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


def _weigh(leg, slabs, v, w, s, e, out=None):
    """Channel-last ``v (n, R, mul)`` times the per-degree weights of samples ``[s, e)`` of ``w``
    ``(1 or n, dw)``, into ``out`` (in place when None). From `SLAB_MIN_CHANNELS` channels on, one
    broadcast product per degree; below, the weights are spread over the entries by one gather."""
    ws = w if w.shape[0] == 1 else w[s:e]
    out = v if out is None else out
    if v.shape[2] < SLAB_MIN_CHANNELS:
        return torch.mul(v, ws.index_select(1, leg["entry_weight"]).view(ws.shape[0], *v.shape[1:]), out=out)
    for row, d, wi in slabs:
        torch.mul(v[:, row : row + d], ws[:, None, wi : wi + v.shape[2]], out=out[:, row : row + d])
    return out


def _degree_sums(leg, v):
    """Channel-last ``v (n, R, mul)`` summed over the orders of each degree: ``(n, irreps mul)``, the
    weight layout."""
    return torch.matmul(leg["degree"], v).view(v.shape[0], -1)


def _keep_rows(layout, n, x, need_w) -> bool:
    """Keep the chunks' gathered, weighted rows (and, for weight gradients, the unweighted rows of ``x``
    and of the product) for the backward, or gather and compute them again there?"""
    (c1, c2, c3), (r1, r2, r3) = layout.muls, layout.plan.rows
    values = c1 * r1 + c2 * r2 + (c1 * r1 + c3 * r3 if need_w else 0)
    return n * values * x.element_size() <= keep_bytes(KEEP_BYTES, x.device)


def _chunk_rows(layout, t, x, y, w, s, e):
    """Channel-last rows of ``x`` (plain and weighted) and the weighted rows of ``y`` for samples ``[s, e)``."""
    nc, c = e - s, layout.muls[0]
    xu = x[s:e].index_select(1, t[0]["rows"]).view(nc, -1, c)
    xw = _weigh(t[0], layout.slabs[0], xu, w, s, e, torch.empty_like(xu))
    wy = w.index_select(1, t[1]["row_weight"]) if w.shape[0] == 1 else w[s:e].index_select(1, t[1]["row_weight"])
    return xu, xw, y[s:e].index_select(1, t[1]["rows"]).mul_(wy)


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
        keep_rows = any(needs) and _keep_rows(layout, n, x, needs[2])
        ctx.chunks = []  # per chunk: x (plain and weighted), weighted y, the unweighted product, M
        out = x.new_empty(n, t[2]["columns"].shape[0])
        for s, e in _chunks(plan, n, x):
            nc = e - s
            xu, xw, yw = _chunk_rows(layout, t, x, y, w, s, e)
            zts = _parity_buffers(x, nc, c3, plan.parity_rows[2])
            m = _forward_chunk(plan, g, _parity_views(xw, plan.even[0]), _parity_views(yw, plan.even[1]), zts, 0, nc)
            z = torch.cat(zts, 1)
            torch.index_select(_weigh(t[2], layout.slabs[2], z, w, s, e, torch.empty_like(z)).view(nc, -1), 1,
                               t[2]["columns"], out=out[s:e])
            if any(needs):
                rows = (xu if needs[2] else None, xw, yw, z if needs[2] else None) if keep_rows else None
                ctx.chunks.append((rows, m if keep_m else None))
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
    for (s, e), (rows, m) in zip(_chunks(plan, n, x), chunks):
        nc = e - s
        if rows is not None:
            xu, xw, yw, z = rows
        else:  # not kept: gather again, and recompute the product for the output weights' gradient
            xu, xw, yw = _chunk_rows(layout, t, x, y, w, s, e)
            if need_w:
                zts = _parity_buffers(x, nc, c3, plan.parity_rows[2])
                m = _forward_chunk(plan, g, _parity_views(xw, plan.even[0]), _parity_views(yw, plan.even[1]), zts, 0, nc)
                z = torch.cat(zts, 1)
        g3 = gz[s:e].index_select(1, t[2]["rows"]).view(nc, -1, c3)  # channel-last
        if need_w:
            gw[s:e, a3:b3] = _degree_sums(t[2], g3 * z)
        _weigh(t[2], layout.slabs[2], g3, w, s, e)
        gxts = _parity_buffers(x, nc, c, plan.parity_rows[0]) if need_x or need_w else None
        gys = _parity_buffers(x, nc, None, plan.parity_rows[1]) if need_y or need_w else None
        _adjoint_chunk(plan, g, _parity_views(xw, plan.even[0]), _parity_views(yw, plan.even[1]),
                       _parity_views(g3, plan.even[2]), m, 0, nc, gxts, gys)
        if gxts is not None:  # gradient of w_1 x, channel-last
            gxw = torch.cat(gxts, 1)
            if need_w:
                gw[s:e, a1:b1] = _degree_sums(t[0], gxw * xu)
            if need_x:
                torch.index_select(_weigh(t[0], layout.slabs[0], gxw, w, s, e).view(nc, -1), 1, t[0]["columns"], out=gx[s:e])
        if gys is not None:  # gradient of w_2 y (one channel: the row layout)
            gyw = torch.cat(gys, 1)
            yu = y[s:e].index_select(1, t[1]["rows"])
            if need_w:
                gw[s:e, a2:b2] = _degree_sums(t[1], (gyw * yu).unsqueeze(-1))
            if need_y:
                torch.index_select(_weigh(t[1], layout.slabs[1], gyw.unsqueeze(-1), w, s, e).view(nc, -1), 1,
                                   t[1]["columns"], out=gy[s:e])
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
