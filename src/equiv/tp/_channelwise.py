r"""The channelwise (``uvu``) tensor-product engine: block-sparse, chunked, differentiable to any order.

Every channelwise product in equiv (`TensorProduct` ``uvu``/``uvv`` instructions,
`ChannelwiseTensorProduct`, the fused `message_passing`) is one multilinear form

.. math::

    F(x, y, w, g) = \sum_{n, u} \sum_{q} w_{n u q} \sum_{i j k}
    C^{(q)}_{ijk}\, x_{n u, a_q + i}\, y_{n, b_q + j}\, g_{n u, c_q + k},

over *paths* :math:`q`, each reading a block :math:`a_q` of the channel-major input ``x``
``(n, U, D1)``, a block :math:`b_q` of the shared input ``y`` ``(n, D2)`` (e.g. edge spherical
harmonics), writing block :math:`c_q` of the output ``g`` ``(n, U, D3)``, with a coefficient tensor
:math:`C^{(q)}` (Clebsch–Gordan times the path normalisation). The product is :math:`\partial F/\partial g`
and its gradients are the other partial derivatives, so one engine evaluates all of them:

* ``T = y @ C`` contracts the shared input with the coefficients once per sample (no channel index),
  with one dense GEMM per distinct :math:`b` block, then a column permutation into output groups;
* for every output block :math:`c`, the rows :math:`(q, i)` of the paths writing it are stacked:
  :math:`Z_{nu,(q,i)} = w_{nuq}\, x_{nu, a_q+i}` (one gather of the input rows, one product with the gathered weights), and
  :math:`g_{nu,c} = Z_{nu} T_{n,c}` is one batched matrix product;
* the batch is processed in chunks sized for the cache, nothing is kept for the backward pass but
  the inputs (the backward recomputes ``T`` and ``Z``), and node-indexed inputs/outputs can be
  gathered/scattered inside the loop (fused message passing, never materialising per-edge tensors).

The backward of the product is `_ChannelwiseVJP`, whose own backward is expressed with the product
and the VJP again, so double (and higher) backward works — forces need it. When that backward is not
itself differentiated (the parameter gradient of force training), its three products and three VJPs
run as one fused pass (`_second`), which shares ``T`` and the rows ``Z`` between them: a MACE training
step (rMD17 aspirin, batch 5, float64, one thread) is 1.12x faster. Gradients that the caller
does not use arrive as None (``set_materialize_grads(False)``) and their terms are skipped: in a MACE
force step the first layer's node features do not depend on the positions, and this skips 2 of the
18 engine calls of a training step (3-5 % of the step, rMD17 aspirin, batch 5).

Work per sample: :math:`\sum_q d_{a_q} d_{b_q} d_{c_q}` for ``T`` plus
:math:`U \sum_q d_{a_q} d_{c_q}` for the products, against
:math:`U \sum_q d_{a_q} d_{b_q} d_{c_q}` for a dense per-path contraction (e3nn).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from equiv._index_ops import gather_rows, scatter_rows

from ._budget import chunk_bytes, keep_bytes

__all__ = ["ChannelwisePath", "ChannelwisePlan", "channelwise_product"]

#: Target size (bytes) of the per-chunk intermediates (T and Z); keeps them in the last-level cache.
_CHUNK_BYTES = 8 * 2**20
#: The VJP handles an output group with several input blocks and at least this many Z rows with
#: per-group gathers and ``index_add`` (fewer operations; measured 4-12 % faster fwd+bwd at L = 3..6,
#: but 30 % slower for the small groups of L = 2, which keep the per-block loop).
GROUPED_MIN_ROWS = 16
#: Without grouped outputs, the VJP writes each input block's first contribution to the x-gradient
#: (and one-component blocks' weight gradients) as a product in place, instead of zero-filling and
#: accumulating (and reducing over a length-1 axis). Measured forward + backward, interleaved, one
#: thread, L = 2: C = 64, batch 1024: 17.7 -> 16.5 ms; C = 16: 6.05 -> 5.80 ms; C = 64, batch 10000:
#: 159 -> 154 ms. False restores the previous kernel (for A/B measurements).
FIRST_WRITE = True
#: The backward of `_ChannelwiseVJP` (the double backward of force training), when it is not itself
#: differentiated, runs as one fused pass (`_second`) rather than three products and three VJPs.
#: False restores the composed version (for A/B measurements and tests); the composed version is
#: always used under ``create_graph=True`` (third derivatives).
FUSED_DOUBLE_BACKWARD = True
#: The forward keeps T and Z for the backward when they take less than this (else it recomputes).
_KEEP_BYTES = 64 * 2**20


@dataclass(frozen=True)
class ChannelwisePath:
    """One path of the channelwise form (offsets/dims into the last axes of x, y, g; weight column)."""

    a_off: int
    a_dim: int
    b_off: int
    b_dim: int
    c_off: int
    c_dim: int
    w_idx: int  # column of the (n, U, P) weight tensor; -1: no weight (coefficient 1)
    coeff: np.ndarray = field(compare=False, repr=False)  # (a_dim, b_dim, c_dim) float64


@dataclass
class _SubGroup:  # paths of one output block sharing one input block (contiguous rows)
    a_off: int
    a_dim: int
    q0: int  # first sorted path
    nq: int
    r0: int  # first row in the group's Z / T rows
    wq0: int = -1  # first row of its paths in the engine weights (q0, or the weight column, see direct_w)


@dataclass
class _Group:  # all paths writing one output block
    c_off: int
    c_dim: int
    rows: int
    t_off: int  # offset of this group's (rows, c_dim) block in T
    subs: list


def _runs(mask):
    """``(start, stop)`` of each run of True in a boolean array."""
    out, start = [], None
    for i, v in enumerate(list(mask) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            out.append((start, i))
            start = None
    return out


class ChannelwisePlan:
    r"""Precomputed structure of a channelwise product (built once, cached by the caller).

    Parameters
    ----------
    paths : list of ChannelwisePath
    dim_x, dim_y, dim_g : int
        Sizes of the last axes of ``x`` ``(n, U, dim_x)``, ``y`` ``(n, dim_y)`` and ``g``
        ``(n, U, dim_g)``.
    num_weights : int
        Size of the last axis of the weights ``w`` ``(n or 1, U, num_weights)``.
    allow_direct_w : bool
        Let the kernels index ``w`` directly when the path layout allows (``direct_w``); False
        always gathers the per-path weights (for tests).
    """

    def __init__(self, paths, dim_x: int, dim_y: int, dim_g: int, num_weights: int, allow_direct_w: bool = True):
        self.dim_x, self.dim_y, self.dim_g, self.num_weights = dim_x, dim_y, dim_g, num_weights
        paths = sorted(paths, key=lambda p: (p.c_off, p.a_off, p.w_idx, p.b_off))
        self.paths = paths
        self.num_paths = len(paths)
        # weight column of each sorted path (num_weights = the constant-one column for unweighted paths)
        self._wperm = [p.w_idx if p.w_idx >= 0 else num_weights for p in paths]
        self.has_unweighted = any(p.w_idx < 0 for p in paths)
        # when every path has its own weight column, the weight gradient is a gather of path rows
        self._winv = np.argsort(self._wperm) if sorted(self._wperm) == list(range(num_weights)) else None
        # ``direct_w``: the kernels index the caller's weights directly (no gathered (n, P, U) copy, the
        # weight gradient written in place). It needs every sub-group's paths to read consecutive
        # weight columns, so sub-groups are split where they do not; used when that adds few blocks.
        natural, split = self._build_groups(False), self._build_groups(True)
        self.direct_w = allow_direct_w and not self.has_unweighted and sum(len(g.subs) for g in split) <= max(
            1.5 * sum(len(g.subs) for g in natural), sum(len(g.subs) for g in natural) + 2)
        self.groups: list[_Group] = split if self.direct_w else natural
        for g in self.groups:
            for s in g.subs:
                s.wq0 = self._wperm[s.q0] if self.direct_w else s.q0
        t_off = 0
        for g in self.groups:
            g.t_off = t_off
            t_off += g.rows * g.c_dim
        self.t_size = t_off
        self.max_rows = max((g.rows for g in self.groups), default=0)
        # T columns: path q, row i, col k -> t_off + (r_q + i) * c_dim + k. Built per distinct y block.
        blocks: dict[tuple[int, int], list] = {}
        for g in self.groups:
            for s in g.subs:
                r = s.r0
                for q in range(s.q0, s.q0 + s.nq):
                    p = paths[q]
                    cols = g.t_off + (r + np.arange(p.a_dim))[:, None] * g.c_dim + np.arange(p.c_dim)[None, :]
                    blocks.setdefault((p.b_off, p.b_dim), []).append((p, cols.reshape(-1)))
                    r += p.a_dim
        self._yblocks = []  # (b_off, b_dim, C_b (b_dim, N_b) float64)
        order = []
        for (b_off, b_dim), items in sorted(blocks.items()):
            mats = [np.ascontiguousarray(p.coeff.transpose(1, 0, 2)).reshape(b_dim, -1) for p, _ in items]
            self._yblocks.append((b_off, b_dim, np.concatenate(mats, 1)))
            order += [c for _, c in items]
        order = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
        # T = cat_b(y_b @ C_b)[:, perm]  and  grad: gcat = gT[:, inv]
        self._perm = np.argsort(order)
        self._inv = order
        # the backward computes each group's gradient of T transposed, as (c_dim, rows) (a batched GEMM
        # with the channel axis as the wide output, ~1.3-1.7x faster on CPU); ``inv_t`` reads it in
        # the order of ``inv``
        tpos = np.zeros(self.t_size, dtype=np.int64)
        for g in self.groups:
            r, k = np.meshgrid(np.arange(g.rows), np.arange(g.c_dim), indexing="ij")
            tpos[g.t_off + r * g.c_dim + k] = g.t_off + k * g.rows + r
        self._inv_t = tpos[order]
        # per group, for every Z row: the input row it reads and the sorted path it belongs to
        self._group_rows = []
        for g in self.groups:
            a_rows, q_rows = [], []
            for s in g.subs:
                for q in range(s.q0, s.q0 + s.nq):
                    a_rows += range(s.a_off, s.a_off + s.a_dim)
                    q_rows += [self._wperm[q] if self.direct_w else q] * s.a_dim
            self._group_rows.append((np.array(a_rows, dtype=np.int64), np.array(q_rows, dtype=np.int64)))
        # row ranges of x that no path reads (their gradient is zero)
        read = np.zeros(dim_x, dtype=bool)
        for p in paths:
            read[p.a_off : p.a_off + p.a_dim] = True
        self.unread_x_blocks = [(int(a), int(b)) for a, b in _runs(~read)]
        self._cache: dict = {}

    def _build_groups(self, split_w: bool) -> list:
        """Output groups and their sub-groups (paths sharing an input block; with ``split_w``, also
        reading consecutive weight columns)."""
        groups: list[_Group] = []
        for q, p in enumerate(self.paths):
            if not groups or groups[-1].c_off != p.c_off:
                groups.append(_Group(p.c_off, p.c_dim, 0, 0, []))
            g = groups[-1]
            if not g.subs or g.subs[-1].a_off != p.a_off or (split_w and self._wperm[q] != self._wperm[q - 1] + 1):
                g.subs.append(_SubGroup(p.a_off, p.a_dim, q, 0, g.rows))
            g.subs[-1].nq += 1
            g.rows += p.a_dim
        return groups

    def tensors(self, dtype, device):
        """Coefficient matrices and index tensors for a dtype/device (cached)."""
        key = (dtype, device)
        out = self._cache.get(key)
        if out is None:
            out = dict(
                yblocks=[(o, d, torch.as_tensor(m, dtype=dtype, device=device)) for o, d, m in self._yblocks],
                perm=torch.as_tensor(self._perm, dtype=torch.long, device=device),
                inv=torch.as_tensor(self._inv, dtype=torch.long, device=device),
                inv_t=torch.as_tensor(self._inv_t, dtype=torch.long, device=device),
                wperm=torch.as_tensor(self._wperm, dtype=torch.long, device=device),
                group_rows=[(torch.as_tensor(a, device=device), torch.as_tensor(q, device=device))
                            for a, q in self._group_rows],
                winv=None if self._winv is None else torch.as_tensor(self._winv, dtype=torch.long, device=device),
            )
            self._cache[key] = out
        return out

    def chunk_size(self, channels: int, itemsize: int, n: int | None = None, device=None) -> int:
        """Rows per chunk: intermediates of about ``_CHUNK_BYTES`` on a CPU (far more on an
        accelerator, see `equiv.tp._budget`); with ``n``, balanced so the last chunk is not a small
        remainder (e.g. 1024 rows go as 512 + 512, not 484 + 484 + 56)."""
        per_row = (2 * self.t_size + 2 * channels * (self.max_rows + self.dim_x + self.dim_g)) * itemsize
        budget = _CHUNK_BYTES if device is None else chunk_bytes(_CHUNK_BYTES, torch.device(device))
        step = max(1, budget // max(per_row, 1))
        if n is not None and n > step:
            chunks = max(1, round(n / step))  # chunks up to 1.5x the target size, rather than a small tail
            step = -(-n // chunks)
        return step

    def flops(self, channels: int) -> int:
        """Multiply-adds per sample (T plus the channel products), for benchmarks."""
        t = sum(p.a_dim * p.b_dim * p.c_dim for p in self.paths)
        return t + channels * sum(p.a_dim * p.c_dim for p in self.paths)


# ---------------------------------------------------------------------------------------------------
# kernels (no autograd inside; called on one chunk at a time). Layout is channel-last:
# x (n, D1, U), g (n, D3, U), w (n|1, P, U); the channel axis U is the contiguous one.


def _compute_t(plan, tens, y):
    parts = [y[:, o : o + d] @ m for o, d, m in tens["yblocks"]]
    if not parts:
        return y.new_zeros(y.shape[0], 0)
    return torch.cat(parts, 1).index_select(1, tens["perm"])


def _t_to_y(plan, tens, gt, transposed=False):
    """Gradient of y from the gradient of T (each group's block (rows, c_dim), or (c_dim, rows)
    with ``transposed``)."""
    gcat = gt.index_select(1, tens["inv_t" if transposed else "inv"])
    gy = gt.new_zeros(gt.shape[0], plan.dim_y)
    i = 0
    for o, d, m in tens["yblocks"]:
        n = m.shape[1]
        gy[:, o : o + d] += gcat[:, i : i + n] @ m.t()
        i += n
    return gy


def _weights(plan, tens, w, tangent=False):
    """(n|1, P, U) -> (n|1, Q, U) weights per sorted path, or ``w`` itself when ``plan.direct_w``
    (the kernels then read sub-group rows ``wq0 : wq0 + nq``, which are weight columns).

    Unweighted paths read an appended row of ones, or of zeros when ``w`` is a tangent (a
    derivative with respect to the weights, where the constant paths drop out).
    """
    if plan.direct_w:
        return w
    if plan.has_unweighted:
        fill = w.new_zeros if tangent else w.new_ones
        w = torch.cat([w, fill(w.shape[0], 1, w.shape[2])], 1)
    return w.index_select(1, tens["wperm"])


def _build_z(x, wq, out, rows):
    """Z rows of one output group: out (n, rows, U) <- w_q * x_a for every path.

    ``rows`` is the group's ``(a_rows, q_rows)`` index tensors (the input row and the path of every Z
    row): one gather of the input rows and one in-place product with the gathered weights, on
    contiguous ``(n, rows, U)`` arrays. (A broadcast product per input block, whose innermost loop is
    only ``U`` long, was 12-17 % slower forward + backward at C = 16.)
    """
    torch.index_select(x, 1, rows[0], out=out)
    return out.mul_(wq.index_select(1, rows[1]))


def _bmm(a, b):
    """``torch.bmm`` for (n, M, K) @ (n, K, N), with the degenerate shapes of scalar blocks
    (K = 1, M = 1 or N = 1) done as broadcast products, which are several times faster than a
    batched GEMM of vectors on CPU."""
    if a.shape[2] == 1:
        return a * b
    if a.shape[1] == 1:
        return (a.transpose(1, 2) * b).sum(1, keepdim=True)
    if b.shape[2] == 1:
        return (a * b.transpose(1, 2)).sum(2, keepdim=True)
    return torch.bmm(a, b)


def _tc(t, g, n):
    return t[:, g.t_off : g.t_off + g.rows * g.c_dim].view(n, g.rows, g.c_dim)


def _forward_chunk(plan, tens, x, y, w, tangent, keep=None, out=None):
    n, u = y.shape[0], x.shape[2]
    t = _compute_t(plan, tens, y)
    wq = _weights(plan, tens, w, tangent)
    zbuf = x.new_empty(n * plan.max_rows * u) if keep is None else None
    outs, zs, cur = [], [], 0
    for k, g in enumerate(plan.groups):
        if g.c_off > cur:
            outs.append(x.new_zeros(n, g.c_off - cur, u))
        z = zbuf[: n * g.rows * u].view(n, g.rows, u) if keep is None else x.new_empty(n, g.rows, u)
        _build_z(x, wq, z, tens["group_rows"][k])
        zs.append(z)
        outs.append(_bmm(_tc(t, g, n).transpose(1, 2), z))
        cur = g.c_off + g.c_dim
    if plan.dim_g > cur:
        outs.append(x.new_zeros(n, plan.dim_g - cur, u))
    if keep is not None:
        keep.append((t, wq, zs))
    if out is not None:
        return torch.cat(outs, 1, out=out)
    return torch.cat(outs, 1) if len(outs) > 1 else outs[0]


def _grouped(g):
    return len(g.subs) > 1 and g.rows >= GROUPED_MIN_ROWS


def _vjp_chunk(plan, tens, x, y, w, gout, need_x, need_y, need_w, tangent, kept=None, gx=None, gw=None):
    """Gradients of one chunk; ``gx``, ``gw``: optional buffers (like ``x``, ``w``) to write the
    x- and weight-gradients to."""
    n, u = y.shape[0], x.shape[2]
    t, wq, zs = kept if kept is not None else (_compute_t(plan, tens, y), _weights(plan, tens, w, tangent), None)
    # with no grouped output, each input block's first contribution is written, not accumulated, so
    # gx needs no zero fill (blocks that no path reads are zeroed at the end)
    first_write = FIRST_WRITE and not any(_grouped(g) for g in plan.groups)
    written = set()
    if need_x:
        if first_write:
            gx = torch.empty_like(x) if gx is None else gx
        else:
            gx = torch.zeros_like(x) if gx is None else gx.zero_()
    gwq = None
    if need_w:  # per-path weight gradients; with direct_w, the weight gradient itself
        gwq = (gw if gw is not None else x.new_empty(n, plan.num_weights, u)) if plan.direct_w \
            else x.new_empty(n, plan.num_paths, u)
    gts = []
    buf = x.new_empty(n * plan.max_rows * u) if need_y and zs is None else None
    if need_w and any(_grouped(g) for g in plan.groups):  # the per-block loop writes every row itself
        gwq.zero_()
    for k, g in enumerate(plan.groups):
        gc = gout[:, g.c_off : g.c_off + g.c_dim]
        tc = _tc(t, g, n)
        if (need_x or need_w) and _grouped(g):
            # one gather / product / index_add per group instead of a few operations per block
            gz = _bmm(tc, gc)  # (n, rows, U)
            a_rows, q_rows = tens["group_rows"][k]
            if need_x:
                gx.index_add_(1, a_rows, gz * wq.index_select(1, q_rows))
            if need_w:
                gwq.index_add_(1, q_rows, gz * x.index_select(1, a_rows))
        elif need_x or need_w:
            gz = _bmm(tc, gc)  # (n, rows, U)
            for s in g.subs:
                gzv = gz[:, s.r0 : s.r0 + s.nq * s.a_dim].view(n, s.nq, s.a_dim, u)
                if need_x:
                    gxa = gx[:, s.a_off : s.a_off + s.a_dim]
                    fresh = first_write and s.a_off not in written
                    written.add(s.a_off)
                    if s.nq == 1:
                        if fresh:
                            torch.mul(gzv[:, 0], wq[:, s.wq0, None, :], out=gxa)
                        else:
                            gxa.addcmul_(gzv[:, 0], wq[:, s.wq0, None, :])
                    elif fresh:
                        torch.sum(gzv * wq[:, s.wq0 : s.wq0 + s.nq, None, :], 1, out=gxa)
                    else:
                        gxa += (gzv * wq[:, s.wq0 : s.wq0 + s.nq, None, :]).sum(1)
                if need_w:
                    gwo = gwq[:, s.wq0 : s.wq0 + s.nq]
                    if s.a_dim == 1 and FIRST_WRITE:  # no reduction: a product written in place
                        torch.mul(gzv[:, :, 0], x[:, None, s.a_off], out=gwo)
                    else:
                        torch.sum(gzv * x[:, None, s.a_off : s.a_off + s.a_dim, :], 2, out=gwo)
        if need_y:
            z = zs[k] if zs is not None else _build_z(x, wq, buf[: n * g.rows * u].view(n, g.rows, u),
                                                             tens["group_rows"][k])
            if g.c_dim == 1:  # (rows, 1) and (1, rows) are the same layout
                gts.append(_bmm(z, gc.transpose(1, 2)).reshape(n, -1))
            else:  # transposed, (n, c_dim, rows): measured 2-5 % faster fwd+bwd (L = 2..8), 19 % at L = 5
                gts.append(_bmm(gc, z.transpose(1, 2)).reshape(n, -1))
    if need_x and first_write:
        for a0, a1 in plan.unread_x_blocks:
            gx[:, a0:a1].zero_()
    gy = _t_to_y(plan, tens, torch.cat(gts, 1), transposed=True) if need_y else None
    if need_w:
        gw = _path_grad_to_w(plan, tens, gwq, gw)
    return gx, gy, gw


def _path_grad_to_w(plan, tens, gwq, gw=None):
    """Weight gradient ``(n, P, U)`` from the per-path rows ``gwq`` (the weight gradient itself when
    ``plan.direct_w``); written to ``gw`` when given."""
    if plan.direct_w:
        return gwq if gw is None or gw is gwq else gw.copy_(gwq)
    if tens["winv"] is not None:  # a permutation of path rows
        return torch.index_select(gwq, 1, tens["winv"], out=gw) if gw is not None else gwq.index_select(1, tens["winv"])
    acc = gwq.new_zeros(gwq.shape[0], plan.num_weights + int(plan.has_unweighted), gwq.shape[2])
    acc.index_add_(1, tens["wperm"], gwq)
    return acc[:, : plan.num_weights] if gw is None else gw.copy_(acc[:, : plan.num_weights])


def _second_chunk(plan, tens, x, y, w, gout, ggx, ggy, ggw, want, tangent):
    r"""One chunk of the double backward, fused: the gradients of

    .. math::

        S = F(\dot x, y, w, g) + F(x, \dot y, w, g) + F(x, y, \dot w, g)

    (``ggx`` = :math:`\dot x`, ... the cotangents of the VJP's outputs, None when absent) with respect
    to ``x``, ``y``, ``w`` and ``g`` (= ``gout``), for the flags ``want``. Unfused, these are three
    products and three VJPs; here ``T(y)``, ``T(\dot y)`` and the gradient of ``T`` are formed once, and
    the rows :math:`Z = \dot w \odot x + w \odot \dot x` feed both the output and the ``y`` terms
    (:math:`S` is linear in each slot), so each output group takes at most five batched products
    instead of seven. Returns ``(gx, gy, gw, gg)`` for the chunk (None where not wanted);
    ``gw`` per sample, before any reduction over shared weights.
    """
    want_x, want_y, want_w, want_g = want
    n, u = y.shape[0], x.shape[2]
    t = _compute_t(plan, tens, y)
    tg = _compute_t(plan, tens, ggy) if ggy is not None else None
    wq = _weights(plan, tens, w, tangent)
    ggwq = _weights(plan, tens, ggw, True) if ggw is not None else None
    mixed = ggx is not None or ggw is not None  # the rows Z (S's first and third terms)
    gx = x.new_zeros(x.shape) if want_x else None
    gwq = x.new_zeros(n, plan.num_weights if plan.direct_w else plan.num_paths, u) if want_w else None
    gg = x.new_zeros(n, plan.dim_g, u) if want_g else None
    gts = []
    for k, g in enumerate(plan.groups):
        a_rows, q_rows = tens["group_rows"][k]

        def rows(v, idx=a_rows):  # the input row of every Z row
            return v.index_select(1, idx)

        def path_w(v, idx=q_rows):  # the path weight of every Z row
            return v.index_select(1, idx)

        gc = gout[:, g.c_off : g.c_off + g.c_dim]
        tc = _tc(t, g, n)
        tgc = _tc(tg, g, n) if tg is not None else None
        xa = rows(x) if (ggw is not None or (tg is not None and (want_g or want_w))) else None
        wa = path_w(wq) if (ggx is not None or tg is not None) else None
        z = None
        if mixed and (want_g or want_y):
            z = rows(ggx) * wa if ggx is not None else None
            if ggw is not None:
                z = torch.mul(xa, path_w(ggwq)) if z is None else z.addcmul_(xa, path_w(ggwq))
        if want_g:
            out = gg[:, g.c_off : g.c_off + g.c_dim]
            if z is not None:
                out.copy_(_bmm(tc.transpose(1, 2), z))
            if tgc is not None:
                out.add_(_bmm(tgc.transpose(1, 2), xa * wa))
        if want_y and z is not None:
            if g.c_dim == 1:  # (rows, 1) and (1, rows) are the same layout
                gts.append(_bmm(z, gc.transpose(1, 2)).reshape(n, -1))
            else:  # the transposed layout of `_vjp_chunk`
                gts.append(_bmm(gc, z.transpose(1, 2)).reshape(n, -1))
        gz = _bmm(tc, gc) if (ggx is not None and want_w) or (ggw is not None and want_x) else None
        gzg = _bmm(tgc, gc) if tgc is not None and (want_x or want_w) else None
        if want_x and (ggw is not None or gzg is not None):
            acc = gz * path_w(ggwq) if ggw is not None else None
            if gzg is not None:  # (gzg is used again below: not overwritten)
                acc = gzg * wa if acc is None else acc.addcmul_(gzg, wa)
            gx.index_add_(1, a_rows, acc)
        if want_w and (ggx is not None or gzg is not None):
            acc = gz * rows(ggx) if ggx is not None else None
            if gzg is not None:
                acc = acc.addcmul_(gzg, xa) if acc is not None else gzg.mul_(xa)
            gwq.index_add_(1, q_rows, acc)
    gy = None
    if want_y:
        gy = _t_to_y(plan, tens, torch.cat(gts, 1), transposed=True) if gts else y.new_zeros(y.shape)
    gw = _path_grad_to_w(plan, tens, gwq) if want_w else None
    return gx, gy, gw, gg


def _second(plan, x, y, w, gout, ggx, ggy, ggw, idx_x, idx_out, want, tangent):
    """`_second_chunk` over the batch in chunks, with the gathers and scatters of fused message
    passing: ``x``, ``ggx`` and their gradient are indexed by ``idx_x``, ``gout`` and its gradient by
    ``idx_out``."""
    want_x, want_y, want_w, want_g = want
    tens = plan.tensors(y.dtype, y.device)
    n, u = y.shape[0], x.shape[2]
    step = max(1, plan.chunk_size(u, y.element_size(), n, y.device) // 2)  # about twice the live rows
    gx = torch.zeros_like(x) if want_x else None
    gy = torch.empty_like(y) if want_y else None
    per_sample_w = w.shape[0] != 1
    gw = (torch.empty_like(w) if per_sample_w else torch.zeros_like(w)) if want_w else None
    gg = torch.zeros_like(gout) if want_g else None
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        cx, cy, cw, cg = _second_chunk(
            plan, tens, _rows(x, sl, idx_x), y[sl], _w_rows(w, sl), _rows(gout, sl, idx_out),
            None if ggx is None else _rows(ggx, sl, idx_x), None if ggy is None else ggy[sl],
            None if ggw is None else _w_rows(ggw, sl), want, tangent,
        )
        if want_x:
            if idx_x is None:
                gx[sl] = cx
            else:
                gx.index_add_(0, idx_x[sl], cx)
        if want_g:
            if idx_out is None:
                gg[sl] = cg
            else:
                gg.index_add_(0, idx_out[sl], cg)
        if want_y:
            gy[sl] = cy
        if want_w:
            if per_sample_w:
                gw[sl] = cw
            else:
                gw += cw.sum(0, keepdim=True)
    return gx, gy, gw, gg


# ---------------------------------------------------------------------------------------------------
# chunk loops with optional gather (x rows by idx_x) and scatter (output rows by idx_out)


def _rows(t, sl, idx):
    return t[sl] if idx is None else t.index_select(0, idx[sl])


def _w_rows(w, sl):
    return w if w.shape[0] == 1 else w[sl]


def _forward(plan, x, y, w, idx_x, idx_out, n_out, tangent=False, keep=None):
    tens = plan.tensors(y.dtype, y.device)
    n, u = y.shape[0], x.shape[2]
    step = plan.chunk_size(u, y.element_size(), n, y.device)
    if idx_out is None and step >= n:
        return _forward_chunk(plan, tens, x if idx_x is None else x.index_select(0, idx_x), y, w, tangent, keep)
    if idx_out is None:  # every row is written: no zero fill, chunks written in place
        out = x.new_empty(n, plan.dim_g, u)
    else:
        out = x.new_zeros(n_out, plan.dim_g, u)
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        args = (plan, tens, _rows(x, sl, idx_x), y[sl], _w_rows(w, sl), tangent, keep)
        if idx_out is None:
            _forward_chunk(*args, out=out[sl])
        else:
            out.index_add_(0, idx_out[sl], _forward_chunk(*args))
    return out


def _vjp(plan, x, y, w, gout, idx_x, idx_out, need_x, need_y, need_w, tangent=False, kept=None):
    tens = plan.tensors(y.dtype, y.device)
    n, u = y.shape[0], x.shape[2]
    direct = need_x and idx_x is None  # each chunk writes its rows of gx in place
    gx = (torch.empty_like(x) if direct else torch.zeros_like(x)) if need_x else None
    gy = torch.empty_like(y) if need_y else None
    per_sample_w = need_w and w.shape[0] != 1  # each chunk writes its rows of gw in place
    gw = (torch.empty_like(w) if per_sample_w else torch.zeros_like(w)) if need_w else None
    step = plan.chunk_size(u, y.element_size(), n, y.device)
    for k, s in enumerate(range(0, n, step)):
        sl = slice(s, min(n, s + step))
        cx, cy, cw = _vjp_chunk(
            plan, tens, _rows(x, sl, idx_x), y[sl], _w_rows(w, sl), _rows(gout, sl, idx_out),
            need_x, need_y, need_w, tangent, None if kept is None else kept[k], gx[sl] if direct else None,
            gw[sl] if per_sample_w else None,
        )
        if need_x and not direct:
            gx.index_add_(0, idx_x[sl], cx)
        if need_y:
            gy[sl] = cy
        if need_w:
            if not per_sample_w:
                gw += cw.sum(0, keepdim=True)
    return gx, gy, gw


class _ChannelwiseProduct(torch.autograd.Function):
    """(x, y, w) -> g = dF/dg; ``tangent``: w is a derivative direction (unweighted paths vanish)."""

    @staticmethod
    def forward(ctx, plan, x, y, w, idx_x, idx_out, n_out, tangent):
        ctx.plan, ctx.n_out, ctx.tangent = plan, n_out, tangent
        ctx.set_materialize_grads(False)  # an unused output gives None, not a zero tensor to multiply
        ctx.save_for_backward(x, y, w, idx_x, idx_out)
        n, u = y.shape[0], x.shape[2]
        size = n * (plan.t_size + plan.num_paths * u + sum(g.rows for g in plan.groups) * u) * y.element_size()
        # keep T and Z for the first backward when cheap (the fused gather/scatter path never keeps)
        ctx.kept = [] if (idx_x is None and idx_out is None and any(ctx.needs_input_grad[1:4])
                          and size <= keep_bytes(_KEEP_BYTES, y.device)) else None
        return _forward(plan, x, y, w, idx_x, idx_out, n_out, tangent, ctx.kept)

    @staticmethod
    def backward(ctx, gout):
        if gout is None:
            return (None,) * 8
        x, y, w, idx_x, idx_out = ctx.saved_tensors
        nx, ny, nw = ctx.needs_input_grad[1:4]
        gx, gy, gw = _ChannelwiseVJP.apply(
            ctx.plan, x, y, w, gout, idx_x, idx_out, ctx.n_out, nx, ny, nw, ctx.tangent, ctx.kept
        )
        return None, gx, gy, gw, None, None, None, None


class _ChannelwiseVJP(torch.autograd.Function):
    """(x, y, w, g) -> (dF/dx, dF/dy, dF/dw); its backward is made of products and VJPs again."""

    @staticmethod
    def forward(ctx, plan, x, y, w, gout, idx_x, idx_out, n_out, need_x, need_y, need_w, tangent, kept=None):
        ctx.plan, ctx.n_out, ctx.tangent = plan, n_out, tangent
        ctx.needs = (need_x, need_y, need_w)
        # a gradient that the caller does not use (e.g. that of node features which do not depend on
        # the positions, in a force pass) comes back as None, and its terms of the double backward
        # are skipped rather than computed from zeros
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(x, y, w, gout, idx_x, idx_out)
        return _vjp(plan, x, y, w, gout, idx_x, idx_out, need_x, need_y, need_w, tangent, kept)

    @staticmethod
    def backward(ctx, ggx, ggy, ggw):
        x, y, w, gout, idx_x, idx_out = ctx.saved_tensors
        plan, n_out, tan = ctx.plan, ctx.n_out, ctx.tangent
        ggx = ggx if ctx.needs[0] else None
        ggy = ggy if ctx.needs[1] else None
        ggw = ggw if ctx.needs[2] else None
        if ggx is None and ggy is None and ggw is None:
            return (None,) * 13
        want_x, want_y, want_w, want_g = ctx.needs_input_grad[1:5]
        if FUSED_DOUBLE_BACKWARD and not torch.is_grad_enabled():  # not differentiated further: one pass
            gx, gy, gw, gg = _second(plan, x, y, w, gout, ggx, ggy, ggw, idx_x, idx_out,
                                     (want_x, want_y, want_w, want_g), tan)
            return None, gx, gy, gw, gg, None, None, None, None, None, None, None, None
        prod = _ChannelwiseProduct.apply
        vjp = _ChannelwiseVJP.apply

        def add(a, b):
            return b if a is None else (a if b is None else a + b)

        gx = gy = gw = gg = None
        # S = F(ggx, y, w, g) + F(x, ggy, w, g) + F(x, y, ggw, g); a cotangent in the weight slot
        # is a tangent (no constant term from unweighted paths).
        if want_g:
            if ggx is not None:
                gg = add(gg, prod(plan, ggx, y, w, idx_x, idx_out, n_out, tan))
            if ggy is not None:
                gg = add(gg, prod(plan, x, ggy, w, idx_x, idx_out, n_out, tan))
            if ggw is not None:
                gg = add(gg, prod(plan, x, y, ggw, idx_x, idx_out, n_out, True))
        if ggx is not None and (want_y or want_w):
            _, a, b = vjp(plan, ggx, y, w, gout, idx_x, idx_out, n_out, False, want_y, want_w, tan)
            gy, gw = add(gy, a), add(gw, b)
        if ggy is not None and (want_x or want_w):
            a, _, b = vjp(plan, x, ggy, w, gout, idx_x, idx_out, n_out, want_x, False, want_w, tan)
            gx, gw = add(gx, a), add(gw, b)
        if ggw is not None and (want_x or want_y):
            a, b, _ = vjp(plan, x, y, ggw, gout, idx_x, idx_out, n_out, want_x, want_y, False, True)
            gx, gy = add(gx, a), add(gy, b)
        return None, gx, gy, gw, gg, None, None, None, None, None, None, None, None


def _reference(plan, x, y, w, idx_x=None, idx_out=None, n_out=None):
    """Plain differentiable torch (used under torch.compile and as a test oracle)."""
    tens = plan.tensors(y.dtype, y.device)
    if idx_x is not None:
        x = gather_rows(x, idx_x)
    n, u = y.shape[0], x.shape[2]
    t = _compute_t(plan, tens, y)
    wq = _weights(plan, tens, w)
    outs = []
    cur = 0
    for g in plan.groups:
        if g.c_off > cur:
            outs.append(x.new_zeros(n, g.c_off - cur, u))
        z = torch.cat(
            [
                (wq[:, s.wq0 : s.wq0 + s.nq, None, :] * x[:, None, s.a_off : s.a_off + s.a_dim, :]).reshape(n, -1, u)
                for s in g.subs
            ],
            1,
        )
        tc = t[:, g.t_off : g.t_off + g.rows * g.c_dim].reshape(n, g.rows, g.c_dim)
        outs.append(torch.bmm(tc.transpose(1, 2), z))
        cur = g.c_off + g.c_dim
    if plan.dim_g > cur:
        outs.append(x.new_zeros(n, plan.dim_g - cur, u))
    out = torch.cat(outs, 1) if outs else x.new_zeros(n, plan.dim_g, u)
    if idx_out is not None:
        out = scatter_rows(out, idx_out, n_out)
    return out


def channelwise_product(plan, x, y, w, idx_x=None, idx_out=None, n_out=None):
    r"""Evaluate :math:`g = \partial F / \partial g` for ``x`` (n|N, D1, U), ``y`` (n, D2), ``w`` (n|1, P, U).

    With ``idx_x`` (n,) the rows of ``x`` are gathered (``x[idx_x]``); with ``idx_out`` (n,) the rows
    of the result are summed into ``n_out`` rows (``index_add``). Runs chunked with a recomputing
    backward in eager mode, and as plain differentiable ops under ``torch.compile``.
    """
    if torch.compiler.is_compiling():
        return _reference(plan, x, y, w, idx_x, idx_out, n_out)
    return _ChannelwiseProduct.apply(plan, x, y, w, idx_x, idx_out, n_out, False)

