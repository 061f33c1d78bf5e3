r"""MACE's symmetric contraction: equivariant polynomials of one node's features, per channel.

For each channel :math:`c` of a node with species :math:`z`, the input features
:math:`A_{c} = \bigoplus_{l} A_{c, l}` (one copy of each irrep of ``irreps_in``, together a vector
of length :math:`D`) are raised to the symmetric powers :math:`\nu = 1, \dots, \nu_{\max}` and
projected onto each output irrep :math:`L`:

.. math::

    B_{c, LM} = \sum_{\nu=1}^{\nu_{\max}} \sum_{k} W^{(\nu, L)}_{z k c}
        \sum_{i_1 \dots i_\nu} \mathcal U^{(\nu, L)}_{M, i_1 \dots i_\nu, k}\,
        A_{c, i_1} \cdots A_{c, i_\nu}

(Batatia et al., *MACE*, NeurIPS 2022, eqs. 10–11: the "generalised Clebsch–Gordan" coefficients
:math:`\mathcal U` turn the :math:`\nu`-fold product of the atomic basis :math:`A` into the
:math:`(\nu+1)`-body equivariant basis :math:`B`, with learnable species-dependent weights.)

The coupling basis
------------------
For every :math:`(\nu, L)`, :math:`\mathcal U^{(\nu, L)}_{\cdot, \cdot, k}` runs over an orthonormal
(Frobenius) basis of the **equivariant, fully symmetric** tensors
:math:`\mathrm{Hom}_{O(3)}(\mathrm{Sym}^\nu V, V_L)`, :math:`V = \bigoplus_l V_l`. It is built with
:func:`equiv.so3.clebsch_gordan` only:

1. for every multiset of input irreps :math:`l_1 \le \dots \le l_\nu` (as positions in
   ``irreps_in``), all iterated couplings
   :math:`((l_1 \otimes l_2)_{l_{12}} \otimes l_3)_{l_{123}} \cdots \to L` (parity-consistent)
   give tensors spanning the equivariant maps :math:`V_{l_1} \otimes \dots \otimes V_{l_\nu} \to V_L`;
2. each is embedded in :math:`V^{\otimes\nu}` and symmetrised over the :math:`\nu!` permutations
   of its input axes (the symmetriser commutes with the group action, and any block ordering of
   the same multiset symmetrises into the span of the sorted one);
3. the symmetrised tensors of one multiset are orthonormalised by modified Gram–Schmidt (twice) in a
   fixed order, dropping the dependent ones (residual norm below :math:`10^{-9}`). Different
   multisets have disjoint supports, so the union is orthonormal. Gram–Schmidt in a fixed order
   (not an SVD) makes the basis a deterministic, continuous function of the CG coefficients, so
   saved weights mean the same thing on every machine.

Each basis polynomial is then scaled to *component* normalisation: for :math:`A` with i.i.d.
standard normal components, :math:`\mathbb E\,|B|^2 / (2L+1) = 1` (computed exactly from the
Gaussian moments :math:`\mathbb E\, A^\alpha A^\beta = \prod_d (\alpha_d + \beta_d - 1)!!`).
:math:`K_{\nu, L} = \dim \mathrm{Hom}_{O(3)}(\mathrm{Sym}^\nu V, V_L)` is the smallest possible
number of weights per species and channel (``parametrization="basis"``). mace-torch (without
cuequivariance) learns one weight per *unsymmetrised* coupling path over ordered tuples of irreps —
more weights, several of which symmetrise to the same polynomial. Under Adam the coordinates matter
(redundant copies of a direction move together), so by default (``parametrization="paths"``) the
learned weights :math:`W'` live on those same paths — rebuilt here from :func:`equiv.so3.clebsch_gordan`
in mace-torch's order and normalisation, identical tensors (tested) — and a fixed matrix maps them
onto the basis, :math:`W = a W'`. Training then follows mace-torch's trajectory step for step
(measured: equal losses to 4 digits over 60 steps from the same weights), while evaluation stays on
the basis.

Evaluation
----------
A symmetric tensor contracted :math:`\nu` times with :math:`A` is a sum over the monomials
:math:`A_{i_1} \cdots A_{i_\nu}`, :math:`i_1 \le \dots \le i_\nu` (each with its number of
orderings). Splitting every monomial into its lower part :math:`A_{i_1} \cdots A_{i_{\nu-1}}` and
its last coordinate :math:`A_{i_\nu}` gives one Horner step for all orders at once,

.. math::

    B_{c, M} = \sum_{k} A_{c,k} \sum_{r} P_r(A_c)\, \tilde{\mathcal U}_{z c}[r, k, M],

where :math:`P_r` runs over the monomials of order :math:`0, \dots, \nu_{\max}-1` (153 for 16
coordinates and :math:`\nu_{\max} = 3`, against 816 cubic ones) and
:math:`\tilde{\mathcal U}_{zc} = \sum_k \mathcal U_{\cdot k} W_{zkc}` combines the coupling
coefficients with the weights once per call, one species and one output irrep at a time (none of
these :math:`C \times R \times D\,(2L+1)` tensors, nor their gradients, is ever concatenated or
stacked: MACE with ``128x0e + 128x1o + 128x2e`` hidden features trains 6 % faster per step than with
all of them side by side). Nodes are sorted by species and each species is one batched matrix
product per channel and output irrep. Everything is plain differentiable torch, so the double backward
needed for force training consists of matrix products too; in eager mode the only data-dependent
step is the per-species split (under ``torch.compile`` every species is evaluated and each node
picks its own). Measured against mace-torch's ``SymmetricContraction`` in
``benchmarks/results/potential_speed.md``.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch
from torch import nn

from equiv._index_ops import gather_rows
from equiv.so3 import Irrep, Irreps, clebsch_gordan

__all__ = ["SymmetricContraction", "symmetric_coupling_basis"]

_DROP_TOL = 1e-9


def _coupled_tensors(irs: tuple[Irrep, ...], ir_out: Irrep) -> list[np.ndarray]:
    """All iterated CG couplings of irs[0] x irs[1] x ... -> ir_out, each (dim_out, d_1, ..., d_nu)."""
    level = [(irs[0], np.eye(irs[0].dim).reshape(irs[0].dim, irs[0].dim))]
    for k, ir in enumerate(irs[1:], start=1):
        last = k == len(irs) - 1
        nxt = []
        for ir_mid, t in level:
            for ir_new in ir_mid * ir:
                if last and ir_new != ir_out:
                    continue
                c = clebsch_gordan(ir_mid.l, ir.l, ir_new.l, dtype=torch.float64).numpy()
                # t (m, i1..ik) , c (m, j, M') -> (M', i1..ik, j)
                tn = np.tensordot(t, c, axes=([0], [0]))  # (i1..ik, j, M')
                tn = np.moveaxis(tn, -1, 0)
                nxt.append((ir_new, tn))
        level = nxt
    if len(irs) == 1:
        level = [(ir, t) for ir, t in level if ir == ir_out]
    return [t for _, t in level]


def _gram_schmidt(vectors: list[np.ndarray], metric: np.ndarray) -> list[np.ndarray]:
    """Modified Gram–Schmidt (twice) under <u, v> = sum(metric * u * v); drops dependent vectors.

    The vectors must be given on a common O(1) scale (here: symmetrised unit-norm tensors), so that
    the absolute residual norm decides dependence (a tensor that symmetrises to rounding noise is
    dropped, not normalised up).
    """
    basis: list[np.ndarray] = []
    for v in vectors:
        w = v
        for _ in range(2):
            for q in basis:
                w = w - float(np.sum(metric * q * w)) * q
        n = math.sqrt(float(np.sum(metric * w * w)))
        if n > _DROP_TOL:
            basis.append(w / n)
    return basis


def _orderings(idx: tuple[int, ...]) -> int:
    """Number of distinct permutations of a multi-index."""
    out = math.factorial(len(idx))
    for v in set(idx):
        out //= math.factorial(idx.count(v))
    return out


@functools.lru_cache(maxsize=None)
def _symmetric_basis_monomials(irreps_key: str, ir_out_key: str, nu: int):
    """The basis of :func:`symmetric_coupling_basis` on sorted multi-indices.

    Returns ``(idx, u, groups)``: ``idx`` (n, nu) sorted multi-indices i1 <= ... <= inu (all
    multisets of irreps with a coupling to L), ``u`` (n, dim_L, K) the tensor entries
    U[M, i1..inu, k], and ``groups`` a list of (row slice, k slice), one per multiset of irreps.
    """
    irs = [ir for _, ir in Irreps(irreps_key)]
    ir_out = Irrep(ir_out_key)
    offs = np.concatenate([[0], np.cumsum([ir.dim for ir in irs])]).astype(int)
    all_idx, all_u, groups, n0, k0 = [], [], [], 0, 0
    for blocks in itertools.combinations_with_replacement(range(len(irs)), nu):
        tensors = _coupled_tensors(tuple(irs[b] for b in blocks), ir_out)
        if not tensors:
            continue
        # sorted multi-indices with i_k in block b_k (blocks are sorted, so this is all of them)
        ranges = [range(offs[b], offs[b + 1]) for b in blocks]
        idx = [t for t in itertools.product(*ranges) if all(t[i] <= t[i + 1] for i in range(nu - 1))]
        idx_arr = np.array(idx)
        local = idx_arr - offs[np.array(blocks)][None, :]
        # symmetrisation: average over the nu! orderings; only those keeping the block labels in
        # place hit the support of the coupled tensor (placed at blocks b_1..b_nu in this order)
        stab = [p for p in itertools.permutations(range(nu)) if all(blocks[p[i]] == blocks[i] for i in range(nu))]
        mult = np.array([_orderings(t) for t in idx], dtype=np.float64)
        vecs = []
        for t in tensors:  # t: (dL, d_1, ..., d_nu), scaled to unit Frobenius norm
            s = sum(t[(slice(None),) + tuple(local[:, p[i]] for i in range(nu))] for p in stab)
            vecs.append(s.T / (math.factorial(nu) * np.linalg.norm(t)))  # (n, dL)
        basis = _gram_schmidt(vecs, mult[:, None])
        if not basis:
            continue
        all_idx.append(idx_arr)
        all_u.append(np.stack(basis, -1))  # (n, dL, k)
        groups.append((slice(n0, n0 + len(idx)), slice(k0, k0 + len(basis))))
        n0 += len(idx)
        k0 += len(basis)
    if not all_idx:
        return np.zeros((0, nu), dtype=int), np.zeros((0, ir_out.dim, 0)), []
    u = np.zeros((n0, ir_out.dim, k0))
    for (rs, ks), b in zip(groups, all_u):
        u[rs, :, ks] = b
    return np.concatenate(all_idx), u, groups


def symmetric_coupling_basis(irreps_in, ir_out, nu: int) -> np.ndarray:
    r"""Orthonormal basis of the equivariant symmetric tensors :math:`\mathrm{Sym}^\nu V \to V_L`.

    Parameters
    ----------
    irreps_in : Irreps or str
        :math:`V`: one copy of each irrep (multiplicities are ignored, e.g. ``"0e + 1o + 2e"``).
    ir_out : Irrep or str
        :math:`L`.
    nu : int
        Symmetric power :math:`\nu \ge 1`.

    Returns
    -------
    numpy.ndarray, shape (2L+1, D, ..., D, K)
        :math:`\nu` input axes of size :math:`D = \sum_l (2l+1)`, symmetric under their
        permutations, equivariant:
        :math:`\mathcal U_{M, i_1 \dots i_\nu, k} = \sum D^{L}_{M M'}(g)\,
        \mathcal U_{M', j_1 \dots j_\nu, k}\, D_{j_1 i_1}(g) \cdots D_{j_\nu i_\nu}(g)`;
        orthonormal, :math:`\sum_{M, i} \mathcal U_{M i k} \mathcal U_{M i k'} = \delta_{kk'}`.
        ``K = 0`` when no such map exists.

    Examples
    --------
    >>> symmetric_coupling_basis("0e + 1o", "0e", 2).shape   # x0^2 and |x1|^2
    (1, 4, 4, 2)
    >>> symmetric_coupling_basis("1o", "1e", 2).shape[-1]      # the cross product is antisymmetric
    0
    """
    irreps_in = Irreps(irreps_in)
    ir_out = Irrep(ir_out)
    if isinstance(nu, bool) or not isinstance(nu, int) or nu < 1:
        raise ValueError(f"nu must be an int >= 1, got {nu!r}")
    key = str(Irreps([(1, ir) for _, ir in irreps_in]))
    idx, u, _ = _symmetric_basis_monomials(key, str(ir_out), nu)
    dim = sum(ir.dim for _, ir in irreps_in)
    out = np.zeros((ir_out.dim,) + (dim,) * nu + (u.shape[-1],))
    for row, t in enumerate(idx):
        for perm in set(itertools.permutations(tuple(t))):
            out[(slice(None),) + perm] = u[row]
    return out


@functools.lru_cache(maxsize=None)
def _normalised_polynomials(irreps_key: str, ir_out_key: str, nu: int):
    r"""Polynomial coefficients of the basis, each scaled to component normalisation.

    Returns ``(tuples, b, scale)``: sorted multi-indices, ``b`` (n, dim_L, K) such that basis
    polynomial k is :math:`\sum_m b_{m M k} A^m`, and ``scale`` (K,) with
    ``b = orderings * U * scale`` (U the orthonormal tensors of :func:`symmetric_coupling_basis`):
    :math:`\mathbb E|B_k|^2/(2L+1) = 1` for :math:`A \sim \mathcal N(0, I)`, from the Gaussian moments
    :math:`\mathbb E\, A^\alpha A^\beta = \prod_d (\alpha_d + \beta_d - 1)!!`.
    """
    dim = Irreps(irreps_key).dim
    ir = Irrep(ir_out_key)
    idx, u, groups = _symmetric_basis_monomials(irreps_key, ir_out_key, nu)
    tuples = [tuple(int(v) for v in t) for t in idx]
    mult = np.array([_orderings(t) for t in tuples], dtype=np.float64)
    b = u * mult[:, None, None]
    scale = np.ones(u.shape[-1])
    counts = np.stack([np.bincount(t, minlength=dim) for t in idx]) if len(idx) else np.zeros((0, dim), int)
    for rs, ks in groups:
        c = counts[rs]
        g = np.prod(_double_factorial_odd(c[:, None, :] + c[None, :, :]), axis=-1)
        bb = b[rs, :, ks]
        second = np.einsum("mak,mn,nak->k", bb, g, bb) / ir.dim
        scale[ks] = 1 / np.sqrt(second)
        b[rs, :, ks] = bb * scale[ks]
    return tuples, b, scale


def _ordered_paths(irreps_key: str, ir_out: Irrep, nu: int):
    r"""Unsymmetrised iterated couplings over *ordered* tuples of input irreps (mace-torch's paths).

    Returns a list of (blocks, tensor (dim_L, d_b1, ..., d_bnu)); each coupling step is
    :math:`\sqrt{2l_{\text{out}}+1}\,C` ("component" normalisation), and the list is ordered as
    mace-torch's ``U_matrix_real`` (e3nn's ``_wigner_nj``): generation order (left path, right
    irrep, output irrep), stably sorted by the intermediate irrep at every level.
    """
    irs = [ir for _, ir in Irreps(irreps_key)]
    level = [(ir, (b,), np.eye(ir.dim)) for b, ir in enumerate(irs)]  # order 1: not sorted
    for k in range(1, nu):
        nxt = []
        for ir_left, blocks, t in level:
            for b, ir in enumerate(irs):
                for ir_new in ir_left * ir:
                    c = math.sqrt(ir_new.dim) * clebsch_gordan(ir_left.l, ir.l, ir_new.l, dtype=torch.float64).numpy()
                    tn = np.moveaxis(np.tensordot(t, c, axes=([0], [0])), -1, 0)  # (M', ..., j)
                    nxt.append((ir_new, blocks + (b,), tn))
        level = sorted(nxt, key=lambda e: e[0])
    return [(blocks, t) for ir, blocks, t in level if ir == ir_out]


@functools.lru_cache(maxsize=None)
def _path_map(irreps_key: str, ir_out_key: str, nu: int) -> np.ndarray:
    r"""Matrix ``a`` (K, K_paths): path weights W' -> basis weights W = a W' (same polynomial).

    :math:`\sum_{k'} W'_{k'}\,\mathrm{sym}(T_{k'}) = \sum_k W_k\, s_k U_k` gives
    :math:`a_{kk'} = \langle U_k, \mathrm{sym}\,T_{k'} \rangle / s_k` (``U`` orthonormal).
    """
    irs = [ir for _, ir in Irreps(irreps_key)]
    ir_out = Irrep(ir_out_key)
    offs = np.concatenate([[0], np.cumsum([ir.dim for ir in irs])]).astype(int)
    idx, u, groups = _symmetric_basis_monomials(irreps_key, ir_out_key, nu)
    _, _, scale = _normalised_polynomials(irreps_key, ir_out_key, nu)
    row_of = {tuple(int(v) for v in t): i for i, t in enumerate(idx)}
    paths = _ordered_paths(irreps_key, ir_out, nu)
    a = np.zeros((u.shape[-1], len(paths)))
    for q, (blocks, t) in enumerate(paths):
        sb = tuple(sorted(blocks))
        ranges = [range(offs[b], offs[b + 1]) for b in sb]
        tup = [x for x in itertools.product(*ranges) if all(x[i] <= x[i + 1] for i in range(nu - 1))]
        if not tup or tup[0] not in row_of:
            continue  # the multiset has no symmetric coupling to L: this path symmetrises to zero
        rows = np.array([row_of[x] for x in tup])
        local = np.array(tup) - offs[np.array(sb)][None, :]
        # sym(T) at sorted index i: average over the orderings p that put block b_i at position i
        perms = [p for p in itertools.permutations(range(nu)) if all(sb[p[i]] == blocks[i] for i in range(nu))]
        vals = sum(t[(slice(None),) + tuple(local[:, p[i]] for i in range(nu))] for p in perms).T / math.factorial(nu)
        mult = np.array([_orderings(x) for x in tup], dtype=np.float64)
        a[:, q] = np.einsum("n,nm,nmk->k", mult, vals, u[rows]) / scale
    return a


def _block_diag(mats: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((sum(m.shape[0] for m in mats), sum(m.shape[1] for m in mats)))
    r = c = 0
    for m in mats:
        out[r : r + m.shape[0], c : c + m.shape[1]] = m
        r, c = r + m.shape[0], c + m.shape[1]
    return out


def _double_factorial_odd(n: np.ndarray) -> np.ndarray:
    """(n-1)!! for even n >= 0 (the Gaussian moment E x^n), 0 for odd n."""
    table = np.zeros(int(n.max()) + 1 if n.size else 1)
    table[0] = 1.0
    for k in range(2, len(table), 2):
        table[k] = table[k - 2] * (k - 1)
    return table[n]


@functools.lru_cache(maxsize=None)
def _monomial_plan(irreps_key: str, out_key: str, correlation: int):
    r"""Polynomial coefficients of every (nu, L) basis, component-normalised, in Horner form.

    Every monomial :math:`A_{i_1} \cdots A_{i_\nu}` (sorted indices) is split as the lower monomial
    :math:`A_{i_1} \cdots A_{i_{\nu-1}}` (a "row", order < correlation; order 0 is the constant 1)
    times the coordinate :math:`A_{i_\nu}`. Returns ``(levels, sizes, base, k_sizes, poly)``:
    ``levels[o-1]`` = (parent row within order o-1, last coordinate) for the rows of order
    ``o = 1..correlation-1``; ``sizes[o]`` the number of rows of order ``o``; ``base[L]``
    ``(rows, D, dim_L, K_L)`` with ``K_L = sum_nu K_{nu,L}``; ``k_sizes[L] = [K_{1,L}, ...]``;
    ``poly[L][nu-1]`` a dict multi-index -> (dim_L, K_nu) coefficients.
    """
    outs = [ir for _, ir in Irreps(out_key)]
    dim = Irreps(irreps_key).dim
    per_l = []  # per L, per nu: dict multi-index -> (dL, K_nu) coefficient rows, and K_nu
    for ir in outs:
        levels_l = []
        for nu in range(1, correlation + 1):
            tuples, b, _ = _normalised_polynomials(irreps_key, str(ir), nu)
            levels_l.append(({t: b[i] for i, t in enumerate(tuples) if np.any(b[i])}, b.shape[-1]))
        per_l.append(levels_l)
    # Horner split of every monomial m = (m[:-1], m[-1]): lower monomials m[:-1] of order < correlation
    # (the "rows", kept when some coefficient needs them, plus their parents) times one coordinate
    low = [set() for _ in range(correlation)]  # low[o]: monomials of order o that are rows
    for levels_l in per_l:
        for nu, (rows, _) in enumerate(levels_l, start=1):
            low[nu - 1] |= {t[:-1] for t in rows}
    for o in range(correlation - 1, 1, -1):
        low[o - 1] |= {t[:-1] for t in low[o]}
    low = [sorted(x) for x in low]
    low[0] = [()] if low[0] or any(low) else []
    row_of = {t: i for i, t in enumerate(t for level in low for t in level)}
    levels = []  # orders 1..correlation-1: (row of the parent in the previous order's block, last coordinate)
    for o in range(1, correlation):
        prev = {t: i for i, t in enumerate(low[o - 1])}
        levels.append((torch.tensor([prev[t[:-1]] for t in low[o]], dtype=torch.long),
                       torch.tensor([t[-1] for t in low[o]], dtype=torch.long)))
    base, k_sizes = [], []
    for ir, levels_l in zip(outs, per_l):
        ks = [k for _, k in levels_l]
        c = np.zeros((len(row_of), dim, ir.dim, sum(ks)))
        k0 = 0
        for (rows, k) in levels_l:
            for t, coeff in rows.items():
                c[row_of[t[:-1]], t[-1], :, k0 : k0 + k] = coeff
            k0 += k
        base.append(c)
        k_sizes.append(ks)
    poly = [[rows for rows, _ in levels_l] for levels_l in per_l]
    return levels, [len(x) for x in low], base, k_sizes, poly


class SymmetricContraction(nn.Module):
    r"""MACE's symmetric contraction (Batatia et al. 2022, eqs. 10–11) with per-species weights.

    .. math::

        B_{c, LM}(A) = \sum_{\nu=1}^{\nu_{\max}} \sum_{k=1}^{K_{\nu, L}} W^{(\nu, L)}_{z k c}\,
        \bigl\langle \mathcal U^{(\nu, L)}_{M \cdot k},\; A_c^{\otimes \nu} \bigr\rangle

    See the module docstring for the construction of :math:`\mathcal U` (iterated Clebsch–Gordan
    couplings, symmetrised and orthonormalised) and the evaluation by monomials.

    Parameters
    ----------
    irreps_in : Irreps or str
        Input features, every irrep with the same multiplicity :math:`C` (channels), e.g.
        ``"64x0e + 64x1o + 64x2e + 64x3o"``.
    irreps_out : Irreps or str
        Output irreps, each with multiplicity :math:`C`, e.g. ``"64x0e + 64x1o"``.
    correlation : int
        Highest power :math:`\nu_{\max}` (MACE: 3); any :math:`\nu \ge 1` works (cost grows as
        :math:`\binom{D+\nu-1}{\nu}`).
    num_species : int
        Number of weight sets :math:`z`.
    parametrization : {"paths", "basis"}
        Coordinates of the learned weights. ``"paths"`` (default): one weight per unsymmetrised
        coupling path over *ordered* tuples of input irreps, as mace-torch (redundant: several
        paths symmetrise to the same polynomial), mapped onto the basis by a fixed matrix,
        :math:`W = a W'`; the same parameters and initialisation as mace-torch, hence the same
        training dynamics under Adam. ``"basis"``: one weight per basis polynomial (the fewest
        weights for the same function space). Either way the evaluation uses the basis.

    Shapes
    ------
    ``forward(x, species)``: ``x`` ``(N, irreps_in.dim)`` (``mul_ir`` layout), ``species`` ``(N,)``
    integers in ``0..num_species-1`` -> ``(N, irreps_out.dim)``.

    Examples
    --------
    >>> import torch
    >>> sc = SymmetricContraction("8x0e + 8x1o + 8x2e", "8x0e + 8x1o", correlation=3, num_species=2)
    >>> x = torch.randn(5, sc.irreps_in.dim)
    >>> sc(x, torch.tensor([0, 1, 1, 0, 1])).shape
    torch.Size([5, 32])
    >>> sc.num_weights   # K_{nu,L} per (L, nu): weights per species and channel
    {'0e': [1, 3, 11], '1o': [1, 4, 21]}
    """

    def __init__(self, irreps_in, irreps_out, correlation: int = 3, num_species: int = 1,
                 parametrization: str = "paths"):
        super().__init__()
        if parametrization not in ("paths", "basis"):
            raise ValueError(f"parametrization must be 'paths' or 'basis', got {parametrization!r}")
        self.parametrization = parametrization
        self.irreps_in, self.irreps_out = Irreps(irreps_in), Irreps(irreps_out)
        if isinstance(correlation, bool) or not isinstance(correlation, int) or correlation < 1:
            raise ValueError(f"correlation must be an int >= 1, got {correlation!r}")
        if isinstance(num_species, bool) or not isinstance(num_species, int) or num_species < 1:
            raise ValueError(f"num_species must be an int >= 1, got {num_species!r}")
        muls = {mul for mul, _ in self.irreps_in} | {mul for mul, _ in self.irreps_out}
        if len(self.irreps_in) == 0 or len(self.irreps_out) == 0 or len(muls) != 1 or 0 in muls:
            raise ValueError(f"irreps_in and irreps_out must all have one common multiplicity (channels); got "
                             f"irreps_in={self.irreps_in}, irreps_out={self.irreps_out}")
        ins = [ir for _, ir in self.irreps_in]
        if len(set(ins)) != len(ins):
            raise ValueError(f"irreps_in must list each irrep once (as {muls.pop()}x<irrep>), got {self.irreps_in}")
        self.channels = muls.pop()
        self.correlation, self.num_species = correlation, num_species
        key_in = str(Irreps([(1, ir) for ir in ins]))
        key_out = str(Irreps([(1, ir) for _, ir in self.irreps_out]))
        levels, sizes, base, k_sizes, poly = _monomial_plan(key_in, key_out, correlation)
        self._levels, self._sizes, self._poly = levels, sizes, poly
        self._in_dims = [ir.dim for ir in ins]
        self._out_dims = [ir.dim for _, ir in self.irreps_out]
        self._k_basis = k_sizes
        if parametrization == "paths":
            maps = [[_path_map(key_in, str(ir), nu) for nu in range(1, correlation + 1)] for _, ir in self.irreps_out]
            k_sizes = [[a.shape[1] for a in ms] for ms in maps]
            self._path_maps = [_block_diag(ms) for ms in maps]  # (K_L, K'_L) float64
        self.num_weights = {str(ir): ks for (_, ir), ks in zip(self.irreps_out, k_sizes)}
        # coefficients (rows, D, dim_L, K_L) per output irrep: float64 numpy, cast per (dtype, device) on
        # use (not buffers: module.float().double() would round them), rebuilt deterministically on load
        self._base_np = base
        self._base_cache: dict = {}
        self._coefficient_cache: dict = {}
        for i, (parent, last) in enumerate(levels):
            self.register_buffer(f"_parent_{i}", parent, persistent=False)
            self.register_buffer(f"_last_{i}", last, persistent=False)
        self.weights = nn.ParameterList()
        for ks in k_sizes:
            self.weights.append(nn.Parameter(torch.empty(num_species, sum(ks), self.channels)))
        self._k_sizes = k_sizes
        self.reset_parameters()

    def reset_parameters(self) -> None:
        r"""Weights :math:`W^{(\nu, L)} \sim \mathcal N(0, 1) / K_{\nu, L}` (as MACE)."""
        with torch.no_grad():
            for w, ks in zip(self.weights, self._k_sizes):
                k0 = 0
                for k in ks:
                    w[:, k0 : k0 + k].normal_().div_(max(k, 1))
                    k0 += k

    def _base(self, dtype, device) -> list[torch.Tensor]:
        key = (dtype, device)
        out = self._base_cache.get(key)
        if out is None:
            out = [torch.as_tensor(c, dtype=dtype, device=device) for c in self._base_np]
            if self.parametrization == "paths":
                out = out + [torch.as_tensor(a, dtype=dtype, device=device) for a in self._path_maps]
            self._base_cache[key] = out
        return out

    def basis_weights(self) -> list[torch.Tensor]:
        r"""The weights on the basis polynomials, one ``(num_species, K_L, channels)`` per output irrep
        (:math:`W = a W'` for ``parametrization="paths"``, the parameters themselves for ``"basis"``)."""
        if self.parametrization == "basis":
            return list(self.weights)
        w0 = self.weights[0]
        maps = self._base(w0.dtype, w0.device)[len(self._base_np):]
        return [torch.einsum("kq,sqc->skc", a, w) for a, w in zip(maps, self.weights)]

    def _coefficients(self, dtype, device, grouped: bool) -> list:
        """Per output irrep, the weights contracted with the coupling coefficients: a list over species
        of ``(C, R, D dL)`` (``grouped``), else one ``(C, R, D S dL)``. They depend on the weights only, so
        when no gradient can flow to the weights (inference: ``torch.no_grad()``, or frozen parameters
        as in `equiv.calculators.EquivCalculator`) they are kept until a weight changes (its version
        counter), saving the largest products of a small-molecule step (measured, interleaved, one
        thread: the benchmark's MACE on ethanol through `EquivCalculator`, energy + forces, median of 6
        rounds of 30 steps, 23.6 -> 18.1 ms per step)."""
        need_grad = torch.is_grad_enabled() and any(w.requires_grad for w in self.weights)
        cacheable = not need_grad and not torch.compiler.is_compiling()
        key = (dtype, torch.device(device), grouped, tuple((w.data_ptr(), w._version) for w in self.weights))
        if cacheable and self._coefficient_cache.get("key") == key:
            return self._coefficient_cache["value"]
        c, s, dim, r = self.channels, self.num_species, sum(self._in_dims), self._base_np[0].shape[0]
        nl = len(self._base_np)
        base = self._base(dtype, device)
        weights = [w.to(dtype) for w in self.weights]
        if self.parametrization == "paths":
            weights = [torch.einsum("kq,sqc->skc", a, w) for a, w in zip(base[nl:], weights)]
        out = []
        for bt, w, dl in zip(base[:nl], weights, self._out_dims):
            bt = bt.view(r * dim * dl, -1)  # (R D dL, K)
            if grouped:
                out.append([torch.mm(w[sp].t(), bt.t()).view(c, r, dim * dl) for sp in range(s)])  # (C, R, D dL)
            else:
                comb = torch.einsum("xk,skc->cxs", bt, w).reshape(c, r, dim, dl, s).permute(0, 1, 2, 4, 3)
                out.append(comb.reshape(c, r, dim * s * dl))
        if cacheable:
            self._coefficient_cache = {"key": key, "value": out}
        return out

    def _rows(self, xr: torch.Tensor) -> torch.Tensor:
        """xr (D, M) -> (rows, M): the lower monomials, orders 0..correlation-1 (row products)."""
        out = [xr.new_ones(1, xr.shape[1])]
        prev = out[0]
        for i in range(len(self._levels)):
            cur = gather_rows(prev, getattr(self, f"_parent_{i}")) * gather_rows(xr, getattr(self, f"_last_{i}"))
            out.append(cur)
            prev = cur
        return torch.cat(out, 0) if len(out) > 1 else out[0]

    def forward(self, x: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[-1] != self.irreps_in.dim:
            raise ValueError(f"x must have shape (N, {self.irreps_in.dim}) for irreps_in={self.irreps_in}, "
                             f"got {tuple(x.shape)}")
        if species.shape != x.shape[:1] or species.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"species must be an integer tensor of shape ({x.shape[0]},), got "
                             f"{tuple(species.shape)} {species.dtype}")
        n, c, s, dim = x.shape[0], self.channels, self.num_species, sum(self._in_dims)
        r = self._base_np[0].shape[0]
        grouped = s > 1 and n > 0 and not torch.compiler.is_compiling()
        combs = self._coefficients(x.dtype, x.device, grouped)
        if grouped:  # nodes sorted by species: one batched product per species, no wasted columns
            order = torch.argsort(species, stable=True)
            counts = torch.bincount(species, minlength=s).tolist()
            if len(counts) > s:
                raise ValueError(f"species must be indices in [0, {s}) (num_species={s}), got {len(counts) - 1}")
            x, unsort = x.index_select(0, order), torch.argsort(order)
        # mul_ir (N, C*D) -> coordinate-major rows (D, C*N): monomials are contiguous row products
        parts = [xb.reshape(n, c, d).permute(2, 1, 0) for xb, d in zip(x.split([c * d for d in self._in_dims], 1),
                                                                           self._in_dims)]
        xr = torch.cat(parts, 0).reshape(dim, c * n)
        rows = self._rows(xr).view(r, c, n)
        xc = xr.view(dim, c, n)
        # B_{c,n} = sum_k A_{c,n,k} * (rows_{c,n} @ comb_{z,c})[k]  (Horner in the last index), one output
        # irrep and one species at a time: every species' coefficients (C, R, D dL) come from one product
        # of its weights with the coupling coefficients, and none of these large tensors is ever
        # concatenated or stacked (nor, in the backward, their gradients)
        outs = []
        for comb, dl in zip(combs, self._out_dims):
            if grouped:
                ys = []
                for sp, (cnt, rows_s, xc_s) in enumerate(zip(counts, rows.split(counts, 2), xc.split(counts, 2))):
                    if cnt == 0:
                        continue
                    q = torch.bmm(rows_s.permute(1, 2, 0), comb[sp]).view(c, cnt, dim, dl)
                    ys.append((q * xc_s.permute(1, 2, 0).unsqueeze(-1)).sum(2))
                y = torch.cat(ys, 1) if len(ys) > 1 else ys[0]  # (C, N, dL), sorted nodes
                y = y.index_select(1, unsort)
            else:
                q = torch.bmm(rows.permute(1, 2, 0), comb).view(c, n, dim, s * dl)
                y = (q * xc.permute(1, 2, 0).unsqueeze(-1)).sum(2).view(c, n, s, dl)
                if torch.compiler.is_compiling():  # no scatter in the backward (equiv._index_ops)
                    y = (y * torch.nn.functional.one_hot(species, s).to(y.dtype).view(1, n, s, 1)).sum(2)
                else:
                    y = y.gather(2, species.view(1, n, 1, 1).expand(c, n, 1, dl)).squeeze(2)  # (C, N, dL)
            outs.append(y.permute(1, 0, 2).reshape(n, c * dl))
        return torch.cat(outs, -1) if len(outs) > 1 else outs[0]

    def coupling_tensors(self, index: int) -> list[torch.Tensor]:
        r"""The normalised coupling tensors :math:`\mathcal U^{(\nu, L)}` of output ``index``.

        Parameters
        ----------
        index : int
            Position of :math:`L` in ``irreps_out``.

        Returns
        -------
        list of torch.Tensor, one per :math:`\nu = 1..` ``correlation``, shape
        ``(2L+1, D, ..., D, K_nu)`` (:math:`\nu` symmetric input axes), such that
        ``forward`` computes
        :math:`B_{c,LM} = \sum_\nu \sum_k W^{(\nu)}_{zkc} \sum_i \mathcal U^{(\nu)}_{M i k} A_{c,i_1}\cdots A_{c,i_\nu}`
        with ``W^{(nu)} = basis_weights()[index][:, K_1+...+K_{nu-1} : ... + K_nu]``.

        Examples
        --------
        >>> sc = SymmetricContraction("2x0e + 2x1o", "2x0e", correlation=2)
        >>> [tuple(u.shape) for u in sc.coupling_tensors(0)]
        [(1, 4, 1), (1, 4, 4, 2)]
        """
        if not isinstance(index, int) or not 0 <= index < len(self.irreps_out):
            raise ValueError(f"index must be an int in 0..{len(self.irreps_out) - 1}, got {index!r}")
        dim, dl, ks = sum(self._in_dims), self._out_dims[index], self._k_basis[index]
        out = []
        for nu, (rows, k) in enumerate(zip(self._poly[index], ks), start=1):
            u = torch.zeros((dl,) + (dim,) * nu + (k,), dtype=torch.float64)
            for t, coeff in rows.items():
                row = torch.as_tensor(coeff) / _orderings(t)
                for perm in set(itertools.permutations(t)):
                    u[(slice(None),) + perm] = row
            out.append(u)
        return out

    def path_tensors(self, index: int) -> list[torch.Tensor]:
        r"""The unsymmetrised coupling-path tensors :math:`T^{(\nu, L)}` behind ``parametrization="paths"``.

        One ``(2L+1, D, ..., D, K'_nu)`` tensor per :math:`\nu` (iterated Clebsch–Gordan couplings over
        ordered tuples of input irreps, component normalisation, mace-torch's order); the layer
        computes :math:`\sum_{k'} W'_{k'} \langle T_{\cdot k'}, A^{\otimes\nu}\rangle`.

        >>> sc = SymmetricContraction("2x0e + 2x1o", "2x0e", correlation=2)
        >>> [tuple(u.shape) for u in sc.path_tensors(0)]
        [(1, 4, 1), (1, 4, 4, 2)]
        """
        if not isinstance(index, int) or not 0 <= index < len(self.irreps_out):
            raise ValueError(f"index must be an int in 0..{len(self.irreps_out) - 1}, got {index!r}")
        key = str(Irreps([(1, ir) for ir in (ir for _, ir in self.irreps_in)]))
        ir_out = self.irreps_out[index].ir
        offs = np.concatenate([[0], np.cumsum(self._in_dims)]).astype(int)
        dim, out = int(offs[-1]), []
        for nu in range(1, self.correlation + 1):
            paths = _ordered_paths(key, ir_out, nu)
            u = torch.zeros((ir_out.dim,) + (dim,) * nu + (len(paths),), dtype=torch.float64)
            for q, (blocks, t) in enumerate(paths):
                u[(slice(None),) + tuple(slice(offs[b], offs[b + 1]) for b in blocks) + (q,)] = torch.as_tensor(t)
            out.append(u)
        return out

    def extra_repr(self) -> str:
        return (f"{self.irreps_in} -> {self.irreps_out}, correlation={self.correlation}, "
                f"num_species={self.num_species}, parametrization={self.parametrization!r}, "
                f"weights={self.num_weights}")
