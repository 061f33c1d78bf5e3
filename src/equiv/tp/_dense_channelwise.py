r"""Dense per-sample form of a small channelwise product (few, large operations).

For small degrees (e.g. ``L <= 2``) the block-sparse engine (`equiv.tp._channelwise`) spends most of
its time in per-block operations and Python overhead, not arithmetic. This module evaluates the same
form with five dense operations on the engine's channel-last layout:

.. math::

    T_n = (y_n C)\ \ (R \times D_3), \qquad Z_{n r u} = w_{n, q(r), u}\, x_{n, a(r), u}, \qquad
    g_n = T_n^\top Z_n ,

where the rows :math:`r` enumerate (path :math:`q`, component :math:`i` of its input block
:math:`a_q`), :math:`C` ``(D_2, R D_3)`` holds every path's Clebsch–Gordan block (zero outside its
output block) and :math:`a(r) = a_q + i`. The dense :math:`T_n` costs more multiply-adds than the
block-sparse one, so `DenseChannelwise.use` compares the two counts and the size of the
intermediates for the batch at hand; all operations are plain
differentiable torch, so first, second and higher derivatives come from autograd.
"""

from __future__ import annotations

import numpy as np
import torch

from equiv._allocator import cpu_allocator_tuned

__all__ = ["DenseChannelwise"]

#: Use the dense form when its multiply-adds are at most this multiple of the block-sparse engine's
#: (measured on a 2-core CPU: the dense form wins at L = 1 for every size) ...
DENSE_FACTOR = 3.0
#: ... or, once `equiv.tune_cpu_allocator` has been applied, at most ``SMALL_FACTOR`` times with
#: intermediates (T and Z) within ``SMALL_BYTES``: small products are overhead-bound, and five
#: operations beat the engine's per-block ones (L = 2, C = 16, batch 1024: forward + backward 1.4x
#: faster; with C = 32 or batch 2048 the two are even, beyond that the engine wins, by 2x at batch
#: 10000). With glibc's default malloc the dense form's large intermediates are fresh pages at
#: every call (page faults) and it is 1.5x *slower* there, so the rule needs the tuned allocator.
SMALL_FACTOR = 4.0
SMALL_BYTES = 4 * 2**20


class DenseChannelwise:
    """Dense evaluation of a `ChannelwisePlan` (no gather/scatter of rows)."""

    def __init__(self, plan):
        self.plan = plan
        a_index, q_index, blocks = [], [], []
        r = 0
        for q, p in enumerate(plan.paths):
            a_index += range(p.a_off, p.a_off + p.a_dim)
            q_index += [plan._wperm[q]] * p.a_dim
            blocks.append((r, p))
            r += p.a_dim
        self.rows = r
        cmat = np.zeros((plan.dim_y, r, plan.dim_g))
        for r0, p in blocks:
            # coeff (a, b, c) -> C[b_off + j, r0 + i, c_off + k]
            cmat[p.b_off : p.b_off + p.b_dim, r0 : r0 + p.a_dim, p.c_off : p.c_off + p.c_dim] += p.coeff.transpose(1, 0, 2)
        self._np = dict(cmat=cmat.reshape(plan.dim_y, -1), a_index=np.array(a_index), q_index=np.array(q_index))
        self._cache: dict = {}

    def macs(self, channels: int) -> int:
        """Multiply-adds per sample of the dense form."""
        return self.plan.dim_y * self.rows * self.plan.dim_g + channels * self.rows * (self.plan.dim_g + 1)

    def worthwhile(self, channels: int) -> bool:
        """Whether the dense form can ever be the faster one (for small enough batches)."""
        return self.macs(channels) <= max(DENSE_FACTOR, SMALL_FACTOR) * self.plan.flops(channels)

    def use(self, channels: int, n: int, itemsize: int) -> bool:
        """Whether to use the dense form for a batch of ``n`` samples (see `DENSE_FACTOR`, `SMALL_BYTES`)."""
        ratio = self.macs(channels) / max(self.plan.flops(channels), 1)
        if ratio <= DENSE_FACTOR:
            return True
        return cpu_allocator_tuned() and ratio <= SMALL_FACTOR and n * self.rows * (channels + self.plan.dim_g) * itemsize <= SMALL_BYTES

    def _tensors(self, dtype, device):
        key = (dtype, device)
        t = self._cache.get(key)
        if t is None:
            t = self._cache[key] = dict(
                cmat=torch.as_tensor(self._np["cmat"], dtype=dtype, device=device),
                a_index=torch.as_tensor(self._np["a_index"], dtype=torch.long, device=device),
                q_index=torch.as_tensor(self._np["q_index"], dtype=torch.long, device=device),
            )
        return t

    def __call__(self, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``x`` (n, D1, U), ``y`` (n, D2), ``w`` (n|1, P, U) -> (n, D3, U), as `channelwise_product`."""
        t = self._tensors(y.dtype, y.device)
        n = y.shape[0]
        if self.plan.has_unweighted:
            w = torch.cat([w, w.new_ones(w.shape[0], 1, w.shape[2])], 1)
        z = x.index_select(1, t["a_index"]) * w.index_select(1, t["q_index"])  # (n, R, U)
        tt = (y @ t["cmat"]).view(n, self.rows, self.plan.dim_g)  # (n, R, D3)
        return torch.bmm(tt.transpose(1, 2), z)
