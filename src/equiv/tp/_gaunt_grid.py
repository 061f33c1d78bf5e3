r"""Gaunt product on a sphere grid (the "grid" route of Xie et al. 2025).

Real spherical harmonics in e3nn's basis separate in the grid angles,
:math:`Y_{lm}(\beta, \alpha) = P_{lm}(\beta)\, A_m(\alpha)` with :math:`A_m = \cos(m\alpha)`
(:math:`m \ge 0`) or :math:`\sin(|m|\alpha)` (:math:`m < 0`), so a band-limited function
:math:`f = \sum_{lm} x_{lm} Y_{lm}` is evaluated on a Gauss–Legendre × uniform grid in two steps,
:math:`F_m(\beta_b) = \sum_l x_{lm} P_{lm}(\beta_b)` (one small matrix product per :math:`m`) and
:math:`f(\beta_b, \alpha_a) = \sum_m F_m(\beta_b) A_m(\alpha_a)` (one matrix product), i.e.
:math:`O(L^3)` per channel instead of :math:`O(L^4)`. The product :math:`f g` is formed pointwise and
projected back with the transposed steps and the quadrature weights:

.. math::

    z_{l_3 m_3} = \sum_{a, b} w_a w_b\, f(\beta_b, \alpha_a)\, g(\beta_b, \alpha_a)\, Y_{l_3 m_3}(\beta_b, \alpha_a)
    = \sum_{l_1 m_1 l_2 m_2} x_{l_1 m_1} y_{l_2 m_2} \int Y_{l_1 m_1} Y_{l_2 m_2} Y_{l_3 m_3}\, d\Omega,

exact (not approximate) because the grid integrates spherical polynomials of degree
:math:`L_1 + L_2 + L_3` exactly (`equiv.so3.sphere_grid`).

The trilinear form :math:`F(x, y, z) = \sum_{\text{grid}} w\, f_x f_y f_z` is symmetric in its three
*legs*; the product is its derivative in the third leg and the gradients are its derivatives in the
other two, so one chunked kernel (`equiv.tp._gaunt_form`) evaluates all of them, with a recomputing
backward that is itself differentiable (double backward for forces).

Coefficient layout: ``(n, channels, rows)`` with rows ordered by :math:`m` then :math:`l` (only the
degrees present, :math:`l \ge |m|`), a permutation of e3nn's ``mul_ir`` features within each
sample; grid values are ``(n_alpha, n_beta, channels, n)`` (batch last, so that the product with a
one-channel leg broadcasts over an outer dimension, which vectorises).

Reference: Y. Xie, J. Daigavane, M. Kotak, T. Smidt, "The price of freedom: exploring expressivity
and runtime tradeoffs in equivariant tensor products", ICML 2025 (arXiv:2506.13523).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from equiv import so3
from equiv.so3._s2grid import azimuthal_factors, polar_factors

from ._gaunt_form import LegPlan

__all__ = ["GridPlan", "MulIrGridPlan", "grid_plan", "separable_harmonics", "row_order"]


@functools.lru_cache(maxsize=None)
def separable_harmonics(lmax: int, degree: int):
    r"""Factors :math:`P_{lm}(\beta_b)` ``(lmax+1, 2 lmax+1, n_beta)`` and :math:`A_m(\alpha_a)`
    ``(2 lmax+1, n_alpha)`` of e3nn's real harmonics on ``sphere_grid(degree)`` (float64, numpy),
    with the grid (`equiv.so3._s2grid.polar_factors`, `azimuthal_factors`).
    """
    grid = so3.sphere_grid(degree, dtype=torch.float64)
    return polar_factors(lmax, grid.betas.numpy()), azimuthal_factors(lmax, grid.alphas.numpy()), grid


def gather_rows(coeffs: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``(n, dim)`` -> ``(len(cols), n)`` with row ``j`` = column ``cols[j]`` of ``coeffs``.

    ``index_select`` on the transposed (strided) view copies row by row; for more than a few
    rows one blocked transpose and a gather of contiguous rows is faster (measured on CPU: 0.19 vs
    0.12 ms for 1296 rows of a 100-sample chunk, 0.29 vs 0.14 ms for 3136 rows of 43 samples).
    """
    if len(cols) >= 128:
        return coeffs.t().contiguous().index_select(0, cols)
    return coeffs.t().index_select(0, cols)


def row_order(ls) -> list[tuple[int, int]]:
    """The ``(l, m)`` of each coefficient row: by ``m`` from ``-L`` to ``L``, then by ``l`` in ``ls``."""
    L = max(ls)
    return [(l, m) for m in range(-L, L + 1) for l in sorted(ls) if l >= abs(m)]


class GridPlan(LegPlan):
    r"""Cached matrices of the grid Gaunt form for three legs with degree sets ``ls``."""

    def __init__(self, ls1, ls2, ls3):
        self.ls = (tuple(sorted(ls1)), tuple(sorted(ls2)), tuple(sorted(ls3)))
        self.L = tuple(max(ls) for ls in self.ls)
        self.degree = sum(self.L)
        lmax = max(self.L)
        pmat, amat, grid = separable_harmonics(lmax, self.degree)
        self.shape = grid.shape  # (n_beta, n_alpha)
        wb, wa = grid.beta_weights.numpy(), grid.alpha_weights.numpy()
        self.rows = []  # per leg: per m (index m + L) the (start, stop) of its rows
        self._np = []
        for ls, L in zip(self.ls, self.L):
            order = row_order(ls)
            starts, legs = [], {}
            for m in range(-L, L + 1):
                r = [i for i, (_, mm) in enumerate(order) if mm == m]
                starts.append((r[0], r[-1] + 1))
                s = np.stack([pmat[l, m + lmax] for l, mm in order if mm == m], 1)  # (n_beta, rows_m)
                legs[f"S{m}"] = s
                legs[f"Sw{m}"] = (s * wb[:, None]).T.copy()
            am = amat[lmax - L : lmax + L + 1]
            legs["A"] = am.T.copy()  # (n_alpha, 2L+1)
            legs["Aw"] = (am * wa[None, :]).copy()  # (2L+1, n_alpha)
            self.rows.append(starts)
            self._np.append(legs)
        self._cache = {}
        self.points = grid.shape[0] * grid.shape[1]  # grid values per channel (for chunk sizes)
        self.channel_dim = 2  # values are (n_alpha, n_beta, c, n)


    def flops(self) -> int:
        """Multiply-adds per channel of one product (two syntheses, the pointwise product, one analysis)."""
        nb, na = self.shape
        total = 0
        for k in range(3):
            total += self.num_rows(k) * nb + na * nb * (2 * self.L[k] + 1)
        return total + na * nb


@functools.lru_cache(maxsize=None)
def grid_plan(ls1, ls2, ls3) -> GridPlan:
    return GridPlan(tuple(ls1), tuple(ls2), tuple(ls3))


class MulIrGridPlan:
    r"""A `GridPlan` reading and writing e3nn's flat ``mul_ir`` layout directly.

    Coefficients are ``(n, dim)`` tensors; each chunk is gathered into the kernels' ``(rows, c, n)``
    layout inside `synthesis` and scattered back (as a gather) inside `analysis`, so the layout change
    touches cache-resident chunks only, never a whole-batch array.

    ``layouts[k]`` is ``(mul, columns)`` for leg ``k``: ``columns[r * mul + u]`` is the ``mul_ir``
    column of channel ``u`` of row ``r`` (in `row_order`).

    ``weights[k]``, optional, is ``(num_weights, row_weight, column_weight)`` for per-degree weights
    of leg ``k`` (`equiv.tp._gaunt_weighted`): ``row_weight[r]`` is the index ``i`` of row ``r``'s
    degree among the leg's weights ``(i, u)`` (``i * mul + u``), ``column_weight[j]`` the weight of
    ``mul_ir`` column ``j``; the legs' weights are concatenated in leg order.
    """

    def __init__(self, plan: GridPlan, layouts, weights=None):
        self.plan = plan
        self.muls = tuple(int(m) for m, _ in layouts)
        self._cols = []
        for k, (mul, cols) in enumerate(layouts):
            cols = np.asarray(cols, dtype=np.int64)
            if len(cols) != mul * plan.num_rows(k) or len(set(cols.tolist())) != len(cols):
                raise ValueError(f"MulIrGridPlan: leg {k} columns must be a permutation of {mul * plan.num_rows(k)}")
            self._cols.append((cols, np.argsort(cols)))
        self.points, self.shape, self.L, self.rows = plan.points, plan.shape, plan.L, plan.rows
        self.channel_dim = plan.channel_dim
        self._weights, self.weight_slices, start = [], [], 0
        for k, (num, row_w, col_w) in enumerate(weights or ()):
            if len(row_w) != plan.num_rows(k) or len(col_w) != len(self._cols[k][0]) or num % self.muls[k]:
                raise ValueError(f"MulIrGridPlan: leg {k} weight layout does not match its rows and columns")
            self._weights.append((np.asarray(row_w, dtype=np.int64), np.asarray(col_w, dtype=np.int64)))
            self.weight_slices.append((start, start + num))
            start += num
        self._cache = {}

    def dim(self, leg: int) -> int:
        """Width of leg ``leg``'s ``mul_ir`` coefficients."""
        return len(self._cols[leg][0])

    def channels(self, leg: int) -> int:
        return self.muls[leg]

    def num_rows(self, leg: int) -> int:
        return self.plan.num_rows(leg)

    def flops(self) -> int:
        return self.plan.flops()

    def tensors(self, dtype, device):
        key = (dtype, device)
        t = self._cache.get(key)
        if t is None:
            t = [dict(leg) for leg in self.plan.tensors(dtype, device)]
            for leg, (cols, inv) in zip(t, self._cols):
                leg["cols"] = torch.as_tensor(cols, device=device)
                leg["inv"] = torch.as_tensor(inv, device=device)
            for leg, (row_w, col_w) in zip(t, self._weights):
                leg["deg"] = torch.as_tensor(row_w, device=device)
                leg["wcol"] = torch.as_tensor(col_w, device=device)
            self._cache[key] = t
        return t

    def synthesis(self, t, k, coeffs):
        """(n, dim) ``mul_ir`` coefficients -> (n_alpha, n_beta, c, n) grid values."""
        n = coeffs.shape[0]
        xt = gather_rows(coeffs, t[k]["cols"]).view(self.plan.num_rows(k), self.muls[k] * n)
        return _synthesis_rows(self.plan, t, k, xt, self.muls[k], n)

    def synthesis_rows(self, t, k, rows):
        """``(rows_k, c, n)`` coefficients in row layout -> (n_alpha, n_beta, c, n) grid values."""
        return _synthesis_rows(self.plan, t, k, rows.view(rows.shape[0], -1), rows.shape[1], rows.shape[2])

    def analysis_rows(self, t, k, values):
        """(n_alpha, n_beta, c, n) grid values -> ``(rows_k, c * n)`` coefficients in row layout."""
        return _analysis_rows(self.plan, t, k, values)

    def analysis(self, t, k, values):
        """(n_alpha, n_beta, c, n) grid values -> (n, dim) ``mul_ir`` coefficients (a transposed view)."""
        rows = _analysis_rows(self.plan, t, k, values)  # (rows, c * n)
        n = values.shape[3]
        return rows.view(-1, n).index_select(0, t[k]["inv"]).t()


def _differentiable(x: torch.Tensor) -> bool:
    return torch.is_grad_enabled() and x.requires_grad


def _synthesis_rows(plan, t, k, xt, c, n):
    """(rows, c * n) coefficients -> (n_alpha, n_beta, c, n) grid values."""
    L = plan.L[k]
    if _differentiable(xt):  # traced for autograd (torch.compile): no out= arguments
        F = torch.stack([t[k][f"S{m}"] @ xt[r0:r1] for m, (r0, r1) in zip(range(-L, L + 1), plan.rows[k])])
    else:
        F = xt.new_empty(2 * L + 1, plan.shape[0], c * n)
        for m, (r0, r1) in zip(range(-L, L + 1), plan.rows[k]):
            torch.mm(t[k][f"S{m}"], xt[r0:r1], out=F[m + L])
    return (t[k]["A"] @ F.view(2 * L + 1, -1)).view(-1, plan.shape[0], c, n)


def _analysis_rows(plan, t, k, values):
    """(n_alpha, n_beta, c, n) grid values -> (rows, c * n) coefficients (quadrature included)."""
    na, nb, c, n = values.shape
    L = plan.L[k]
    H = (t[k]["Aw"] @ values.reshape(na, -1)).view(2 * L + 1, nb, c * n)
    if _differentiable(values):
        return torch.cat([t[k][f"Sw{m}"] @ H[m + L] for m in range(-L, L + 1)], 0)
    out = values.new_empty(plan.num_rows(k), c * n)
    for m, (r0, r1) in zip(range(-L, L + 1), plan.rows[k]):
        torch.mm(t[k][f"Sw{m}"], H[m + L], out=out[r0:r1])
    return out
