r"""Channelwise products with edge harmonics, computed in each edge's own frame (the SO(2) route).

In message passing the second input of the channelwise product is almost always the spherical
harmonics of the edge direction, :math:`y = Y(\hat r)`. Rotate each edge so that :math:`\hat r`
becomes the pole :math:`\hat y` (e3nn's harmonics have :math:`\hat y` as their axis). With
:math:`R \hat y = \hat r` and :math:`Y(\hat r) = D(R) Y(\hat y)`, equivariance of the product gives

.. math::

    x \otimes Y(\hat r) = D(R)\,\big[(D(R)^\top x) \otimes Y(\hat y)\big],

and :math:`Y^{l_2}(\hat y)` has only its :math:`m_2 = 0` component. The product with it is a fixed
matrix, block-sparse in :math:`m` (each path couples :math:`m_3 = \pm m_1` only), the same for
every edge. The cost per edge and channel falls from :math:`O(L^6)` (all :math:`m_1, m_2, m_3`) to
:math:`O(L^3)` for the rotations plus the sparse fibre product: the reduction of SO(3) convolutions to
SO(2) (Passaro & Zitnick, "Reducing SO(3) convolutions to SO(2) for efficient equivariant GNNs",
ICML 2023, arXiv:2302.03655; used by eSCN and EquiformerV2).

The result is exactly the product of the wrapped module with ``y = spherical_harmonics(irreps_in2,
r)``, not an approximation. The per-edge Wigner matrices :math:`D^l(R)` come from a Clebsch–Gordan
recursion in the entries of :math:`R` (`equiv.so3.wigner_D_upto`), with :math:`R` a Rodrigues
rotation from :math:`\pm\hat y` to :math:`\hat r` (two charts, so that :math:`R` is a smooth
rational function of :math:`r` wherever it is used). Hence
gradients and second derivatives with respect to the edge vectors exist everywhere (no Euler-angle
singularity), as forces need.
"""

from __future__ import annotations

import torch

from equiv import so3

__all__ = ["EdgeFrameTensorProduct", "edge_frames", "edge_rotation"]


def edge_rotation(vec: torch.Tensor) -> torch.Tensor:
    r"""Rotations :math:`R` with :math:`R\,\hat y = \hat r`, smooth in ``vec`` (no angles).

    For :math:`r_y \ge 0` the Rodrigues rotation taking :math:`\hat y` to :math:`\hat r`,
    :math:`R = I + [v]_\times + [v]_\times^2 / (1 + c)` with :math:`v = \hat y \times \hat r`,
    :math:`c = \hat y \cdot \hat r \ge 0`; for :math:`r_y < 0` the one taking :math:`-\hat y` to
    :math:`\hat r`, composed with the half-turn about :math:`x`. Both charts are smooth where used.

    Parameters
    ----------
    vec : torch.Tensor
        Non-zero vectors, shape ``(..., 3)``.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 3, 3)``.

    Examples
    --------
    >>> r = torch.tensor([[1.0, 2.0, 2.0], [0.0, -1.0, 0.0]], dtype=torch.float64)
    >>> R = edge_rotation(r)
    >>> bool(torch.allclose(R[..., :, 1], r / r.norm(dim=-1, keepdim=True)))  # R y = r / |r|
    True
    >>> bool(torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64)))
    True
    """
    r = torch.nn.functional.normalize(vec, dim=-1)
    sign = torch.where(r[..., 1] >= 0, 1.0, -1.0).to(r.dtype)
    # a = sign * y_hat;  v = a x r = sign * (r_z, 0, -r_x);  c = a . r = |r_y|
    vx, vz = sign * r[..., 2], -sign * r[..., 0]
    zero = torch.zeros_like(vx)
    K = torch.stack([zero, -vz, zero, vz, zero, -vx, zero, vx, zero], -1).unflatten(-1, (3, 3))
    c = sign * r[..., 1]
    eye = torch.eye(3, dtype=r.dtype, device=r.device)
    R = eye + K + (K @ K) / (1.0 + c)[..., None, None]
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=r.dtype, device=r.device)  # half-turn about x: y -> -y
    return torch.where((sign > 0)[..., None, None], R, R * flip)


def edge_frames(vec: torch.Tensor, lmax: int) -> list[torch.Tensor]:
    r"""Wigner matrices :math:`D^l(R)` of the edge rotations (`edge_rotation`), :math:`l = 0..L`.

    Compute them once per graph and pass them to every `EdgeFrameTensorProduct` that uses the same
    edges (``frames=``). Since :math:`R\hat y = \hat r`, :math:`Y^l(\hat r) = D^l\, Y^l(\hat y)`.
    Built by `equiv.so3.wigner_D_upto` (a Clebsch–Gordan recursion, smooth in ``vec``).

    Parameters
    ----------
    vec : torch.Tensor
        Edge vectors, shape ``(E, 3)``, non-zero.
    lmax : int
        Largest degree :math:`L`.

    Returns
    -------
    list of torch.Tensor
        ``D[l]`` of shape ``(E, 2l+1, 2l+1)``.

    Examples
    --------
    >>> from equiv.so3 import spherical_harmonics
    >>> r = torch.randn(6, 3, dtype=torch.float64)
    >>> D = edge_frames(r, 2)
    >>> pole = spherical_harmonics(2, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    >>> bool(torch.allclose(D[2] @ pole, spherical_harmonics(2, r)))
    True
    """
    if vec.dim() != 2 or vec.shape[-1] != 3:
        raise ValueError(f"edge_frames: vec must have shape (E, 3), got {tuple(vec.shape)}")
    return so3.wigner_D_upto(lmax, edge_rotation(vec))


def _rotate(x: torch.Tensor, D: torch.Tensor) -> torch.Tensor:
    """``x (E, C, d) @ D (E, d, d)`` with contiguous ``x`` (a strided batch makes CPU ``bmm`` loop over
    the edges); degree 0 as a broadcast product. (Broadcast sums for d = 3, 5 were measured slower.)"""
    if D.shape[-1] == 1:
        return x * D
    return torch.bmm(x, D)


class EdgeFrameTensorProduct(torch.nn.Module):
    r"""A channelwise product with edge harmonics, ``tp(x, Y(r))``, computed in each edge's frame.

    Wraps a channelwise (``uvu``) `TensorProduct` / `ChannelwiseTensorProduct`, a fully connected
    (``uvw``, shared weights) `TensorProduct` / `FullyConnectedTensorProduct`, or a
    `GauntTensorProduct`, whose second input is the spherical harmonics of the edge vector, and returns

    .. math::

        \texttt{self}(x, r, w) = \texttt{tp}\big(x,\ Y(r),\ w\big), \qquad
        Y = \texttt{spherical\_harmonics(tp.irreps\_in2, r, normalization=sh\_normalization)},

    by the SO(2) route (see the module docstring): rotate each edge's features into the frame where
    :math:`\hat r` is the pole, apply one fixed per-channel matrix (``uvu``; with per-edge weights a
    sparse product instead), or one fixed channel-mixing matrix (``uvw``: eSCN's "SO(2) linear"
    layer), rotate back. Same weights (the wrapped module's parameters),
    same output, any path including the "odd" ones (:math:`1 \otimes 1 \to 1`). The cost grows as
    :math:`L^3` instead of :math:`L^6`, so the gain over the direct product grows with :math:`L`; on a
    CPU the rotations are memory-bound, so at small :math:`L` the direct product is faster
    (measured in docs/tp.md).

    Parameters
    ----------
    tp : TensorProduct or GauntTensorProduct
        Every instruction ``uvu`` (``irreps_in1`` and ``irreps_out`` of one multiplicity :math:`C`) or
        every one ``uvw`` with shared weights (one multiplicity each); ``irreps_in2`` harmonics of
        multiplicity 1, parity :math:`(-1)^l`.
    sh_normalization : {"component", "integral", "norm"}
        Normalisation of the harmonics the wrapped product is fed with.
    method : {"auto", "frame", "direct"}
        ``"frame"``: the SO(2) route; ``"direct"``: harmonics, then ``tp``; ``"auto"`` (default): the
        one predicted faster on a CPU by counting multiply-adds (calibrated on the measurements of
        docs/tp.md): for ``C x (0..L) -> C x (0..L)`` products the frame from :math:`L = 3` (shared
        weights) or :math:`L = 5` (per-edge weights, where force training's double backward moves
        the crossover); MACE-style products (few input degrees, many output irreps) direct; ``uvw``
        the frame from :math:`L = 2`; Gaunt products direct. ``method`` holds the choice.

    Shapes
    ------
    ``x (E, tp.irreps_in1.dim)``, ``vec (E, 3)`` (non-zero), ``weight`` as for ``tp`` (``None`` for
    internal weights, ``(weight_numel,)`` shared, ``(E, weight_numel)`` per edge); ``frames`` from
    `edge_frames` (optional, to reuse across layers) → ``(E, tp.irreps_out.dim)``.

    Examples
    --------
    >>> from equiv.so3 import spherical_harmonics
    >>> from equiv.tp import ChannelwiseTensorProduct
    >>> tp = ChannelwiseTensorProduct("8x0e + 8x1o + 8x2e", "0e + 1o + 2e", "8x0e + 8x1o + 8x2e").double()
    >>> fast = EdgeFrameTensorProduct(tp, method="frame")
    >>> x, r = torch.randn(5, tp.irreps_in1.dim, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    >>> y = spherical_harmonics(tp.irreps_in2, r, normalization="component")
    >>> bool(torch.allclose(fast(x, r), tp(x, y), atol=1e-12))
    True
    """

    def __init__(self, tp: torch.nn.Module, sh_normalization: str = "component", method: str = "auto"):
        super().__init__()
        from ._gaunt import GauntTensorProduct
        from ._tensor_product import TensorProduct

        name = "EdgeFrameTensorProduct"
        if not isinstance(tp, (GauntTensorProduct, TensorProduct)):
            raise TypeError(f"{name}: tp must be a TensorProduct or GauntTensorProduct, got {type(tp).__name__}")
        self.tp = tp
        self.sh_normalization = sh_normalization
        i1, i2, io = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
        for k, (mul, ir) in enumerate(i2):
            if mul != 1 or ir.p != (-1) ** ir.l:
                raise ValueError(
                    f"{name}: tp.irreps_in2 must be spherical harmonics (1x0e + 1x1o + 1x2e ...), got {i2}"
                )
        if isinstance(tp, GauntTensorProduct):
            if tp.mode != "uvu":
                raise ValueError(f"{name}: GauntTensorProduct must be uvu (one-channel irreps_in2)")
            self.mode = "uvu"
            paths = [(a, b, k, 1.0, True, "e3nn-0.4") for a, b, k in tp.paths()]
        else:
            modes = {ins.connection_mode for ins in tp.instructions}
            if not modes <= {"uvu"} and modes != {"uvw"}:
                raise ValueError(f"{name}: instructions must be all 'uvu' or all 'uvw', got {sorted(modes)}")
            self.mode = modes.pop() if modes else "uvu"
            if self.mode == "uvw" and (not tp.shared_weights or not all(i.has_weight for i in tp.instructions)):
                raise ValueError(f"{name}: 'uvw' products need shared weights on every path (per-edge 'uvw' "
                                 "weights are not supported)")
            paths = [(ins.i_in1, ins.i_in2, ins.i_out, ins.path_weight, ins.has_weight, tp.cg_convention)
                     for ins in tp.instructions]
        mul_in, mul_out = {mul for mul, _ in i1}, {mul for mul, _ in io}
        if len(mul_in) != 1 or len(mul_out) != 1 or (self.mode == "uvu" and mul_in != mul_out):
            what = "share one multiplicity" if self.mode == "uvu" else "each have one multiplicity"
            raise ValueError(f"{name}: irreps_in1 and irreps_out must {what}, got {i1} -> {io}")
        self.mul_in, self.mul_out = mul_in.pop(), mul_out.pop()
        self.mul = self.mul_in
        self._gaunt = isinstance(tp, GauntTensorProduct)
        self.shared_weights = tp.shared_weights
        if not self._gaunt:
            # flat index of every path's weights in tp's layout (uvu: C per path; uvw: C_in x C_out);
            # tp.weight_numel points at an appended 1 (unweighted uvu paths)
            per_path = self.mul_in * (self.mul_out if self.mode == "uvw" else 1)
            widx = [off + u if ins.has_weight else tp.weight_numel
                    for off, ins in zip(tp._weight_offsets, tp.instructions) for u in range(per_path)]
            self.register_buffer("_widx", torch.tensor(widx, dtype=torch.long), persistent=False)
        self.lmax = max(ir.l for _, ir in (*i1, *io, *i2))
        if method not in ("auto", "frame", "direct"):
            raise ValueError(f"{name}: method must be 'auto', 'frame' or 'direct', got {method!r}")
        pole = torch.zeros(3, dtype=torch.float64)
        pole[1] = 1.0
        y0 = so3.spherical_harmonics(i2, pole, normalization=sh_normalization)
        s1, s2, so = i1.slices(), i2.slices(), io.slices()
        self._off1 = [sl.start // self.mul_in for sl in s1]  # block offsets in the channel-major (C, D) layout
        self._off3 = [sl.start // self.mul_out for sl in so]
        self._d1, self._d3 = i1.dim // self.mul_in, io.dim // self.mul_out
        # sparse fibre product: entries (i, j, path, value) of out'[j] += w[path] value x'[i]
        rows, cols, pidx, vals = [], [], [], []
        for p, (a, b, k, pw, has_w, conv) in enumerate(paths):
            l1, l2, l3 = i1[a].ir.l, i2[b].ir.l, io[k].ir.l
            cg = so3.clebsch_gordan(l1, l2, l3, dtype=torch.float64, convention=conv)
            T = torch.einsum("imj,m->ij", cg, y0[s2[b]]) * pw
            nz = (T.abs() > 1e-13 * max(T.abs().max().item(), 1e-300)).nonzero()
            for i, j in nz.tolist():
                rows.append(self._off1[a] + i)
                cols.append(self._off3[k] + j)
                pidx.append(p)
                vals.append(T[i, j].item())
        self.num_paths = len(paths)
        self.register_buffer("_pidx", torch.tensor(pidx, dtype=torch.long), persistent=False)
        self.register_buffer("_vals", torch.tensor(vals, dtype=torch.float64), persistent=False)
        flat = torch.tensor(rows, dtype=torch.long) * self._d3 + torch.tensor(cols, dtype=torch.long)
        self.register_buffer("_flat", flat, persistent=False)
        # per-edge weights: the distinct frame positions q = (i, j), and per output block the matrix
        # M_k (q, path) with out'[j_q] += x'[i_q] sum_p w_p M[q, p]  (a GEMM, then a gather-multiply-scatter)
        uniq, inv = torch.unique(flat, return_inverse=True)
        M = torch.zeros(len(uniq), self.num_paths, dtype=torch.float64)
        M.index_put_((inv, self._pidx), self._vals, accumulate=True)
        self._edge_blocks = []
        for k, (_, ir) in enumerate(io):
            j = uniq % self._d3
            sel = ((j >= self._off3[k]) & (j < self._off3[k] + ir.dim)).nonzero().flatten()
            used = (M[sel] != 0).any(0).nonzero().flatten()
            names = []
            for tag, t in (("m", M[sel][:, used].contiguous()), ("p", used), ("i", uniq[sel] // self._d3),
                           ("j", j[sel] - self._off3[k])):
                names.append(f"_edge_{tag}{k}")
                self.register_buffer(names[-1], t, persistent=False)
            self._edge_blocks.append((names, ir.dim))
        self.method = self._auto_method() if method == "auto" else method
        so3._wigner._recursion_tables(self.lmax)  # cache the frame recursion's constants (torch.compile)

    def __repr__(self) -> str:
        return (f"EdgeFrameTensorProduct({self.tp.irreps_in1} x Y({self.tp.irreps_in2}) -> {self.tp.irreps_out}, "
                f"{self.num_paths} paths, {len(self._vals)} frame coefficients)")

    def _auto_method(self) -> str:
        """The route predicted faster on a CPU, by multiply-adds per edge: the direct engine's against
        the frame's (rotations in and out plus the fibre product, `frame_flops`). ``uvu`` with shared
        weights: the frame above a ratio of 1.1; with per-edge weights above 1.5, because force
        training's double backward favours the direct engine more (benchmarks/results/edge_frame.md,
        C = 16: frame from L = 3 shared, L = 5 per-edge; MACE-style products, few input degrees and
        many output irreps, stay direct: the frame loses 3-5x there). ``uvw``: the frame from L = 2
        (the direct ``uvw`` product is dense). Gaunt: direct (its matrix route is faster)."""
        if self._gaunt:
            return "direct"
        if self.mode == "uvw":
            return "frame" if self.lmax >= 2 else "direct"
        direct = sum(g.plan.flops(g.mul) for g in self.tp._groups)
        return "frame" if direct > (1.1 if self.shared_weights else 1.5) * self.frame_flops() else "direct"

    def frame_flops(self) -> int:
        """Multiply-adds per edge of the frame route (rotations in and out, fibre product), frames excluded."""
        i1, io = self.tp.irreps_in1, self.tp.irreps_out
        rot = self.mul_in * sum(ir.dim ** 2 for _, ir in i1) + self.mul_out * sum(ir.dim ** 2 for _, ir in io)
        if self.mode == "uvw":
            mid = self.mul_in * self._d1 * self.mul_out * self._d3
        elif self.shared_weights:
            mid = self.mul_in * self._d1 * self._d3
        else:
            mid = self.mul_in * sum(getattr(self, names[0]).numel() + getattr(self, names[2]).numel()
                                    for names, _ in self._edge_blocks)
        return rot + mid

    def _path_weights(self, weight):
        """Per-path weights: uvu ``(C, P)`` shared or ``(E, P, C)`` per edge; uvw ``(P, C_in, C_out)``
        (ones for unweighted paths)."""
        C = self.mul_in
        if self._gaunt:
            w = self.tp.cg_weights(weight)  # (..., P * C), path-major
        else:
            if weight is None:
                weight = self.tp.weight
            ones = torch.ones(*weight.shape[:-1], 1, dtype=weight.dtype, device=weight.device)
            w = torch.cat([weight, ones], -1).index_select(-1, self._widx)
        if self.mode == "uvw":
            return w.view(self.num_paths, C, self.mul_out)
        if w.dim() == 1:
            return w.unflatten(-1, (self.num_paths, C)).t()
        return w.unflatten(-1, (self.num_paths, C))  # (E, P, C)

    def _check_inputs(self, x, vec, frames) -> None:
        name = "EdgeFrameTensorProduct"
        dim = self.tp.irreps_in1.dim
        if x.dim() != 2 or x.shape[1] != dim:
            raise ValueError(f"{name}: x must have shape (E, {dim}) for {self.tp.irreps_in1}, got {tuple(x.shape)}")
        if vec is None:
            if frames is None or self.method == "direct":
                raise ValueError(f"{name}: pass the edge vectors (vec)" + ("" if self.method == "direct" else " or their frames"))
            if frames[0].shape[0] != x.shape[0]:
                raise ValueError(f"{name}: frames are for {frames[0].shape[0]} edges, x has {x.shape[0]}")
            return
        if vec.shape != (x.shape[0], 3):
            raise ValueError(f"{name}: vec must have shape ({x.shape[0]}, 3) (one vector per row of x), "
                             f"got {tuple(vec.shape)}")
        if not vec.is_floating_point():
            raise TypeError(f"{name}: vec must be floating point, got {vec.dtype}")
        if not torch.compiler.is_compiling() and vec.numel():
            if not bool(torch.isfinite(vec).all()):
                raise ValueError(f"{name}: vec contains NaN or infinite values")
            if bool((vec.abs().sum(-1) == 0).any()):
                raise ValueError(f"{name}: zero-length edge vector (its harmonics have no direction)")

    def forward(self, x: torch.Tensor, vec: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                frames: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``tp(x, Y(vec), weight)``; see the class docstring."""
        i1, io, C = self.tp.irreps_in1, self.tp.irreps_out, self.mul_in
        self._check_inputs(x, vec, frames)
        if self.method == "direct":
            y = so3.spherical_harmonics(self.tp.irreps_in2, vec, normalization=self.sh_normalization)
            return self.tp(x, y, weight)
        if frames is None:
            frames = edge_frames(vec, self.lmax)
        if len(frames) <= self.lmax:
            raise ValueError(f"EdgeFrameTensorProduct: frames up to degree {self.lmax} needed, got {len(frames) - 1}")
        E = x.shape[0]
        # into the edge frame, channel-major (E, C, D1): x'_row = x_row D
        # (split, not slicing: the backward of a split is one cat, that of each slice a full-size zero fill)
        xs = x.split([mul * ir.dim for mul, ir in i1], -1)
        xp = torch.cat([_rotate(xb.reshape(E, C, ir.dim), frames[ir.l]) for xb, (_, ir) in zip(xs, i1)], -1)
        w = self._path_weights(weight)
        vals = self._vals.to(x.dtype)
        if self.mode == "uvw":  # shared, channel mixing: one (C_in D1, C_out D3) matrix
            k = torch.zeros(self._d1 * self._d3, C, self.mul_out, dtype=x.dtype, device=x.device)
            k = k.index_add(0, self._flat, w[self._pidx] * vals[:, None, None])
            k = k.view(self._d1, self._d3, C, self.mul_out).permute(2, 0, 3, 1).reshape(C * self._d1, -1)
            op = (xp.reshape(E, C * self._d1) @ k).view(E, self.mul_out, self._d3)
        elif w.dim() == 2:  # shared: one (D1, D3) matrix per channel
            kc = torch.zeros(C, self._d1 * self._d3, dtype=x.dtype, device=x.device)
            kc = kc.index_add(1, self._flat, w[:, self._pidx] * vals).unflatten(1, (self._d1, self._d3))
            op = torch.bmm(xp.transpose(0, 1), kc).transpose(0, 1)
        else:  # per-edge weights (E, P, C): per output block, k_q = M_k w (GEMM), then out'[j_q] += k_q x'[i_q]
            # frame index leading, (edge, channel) columns: contiguous row gathers, 2-D transposes
            xt = xp.reshape(E * C, self._d1).t().contiguous()  # (D1, E C)
            wt = w.transpose(0, 1).reshape(self.num_paths, E * C)
            parts = []
            for names, d3 in self._edge_blocks:
                m, used, iq, jq = (getattr(self, n) for n in names)
                block = torch.zeros(d3, E * C, dtype=x.dtype, device=x.device)
                if len(iq):
                    kq = m.to(x.dtype) @ wt.index_select(0, used)
                    block.index_add_(0, jq, xt.index_select(0, iq) * kq)
                parts.append(block)
            op = torch.cat(parts, 0).t().reshape(E, C, self._d3)
        # back: out_row = out'_row D^T
        ops = op.split([ir.dim for _, ir in io], -1)
        outs = [_rotate(ob.contiguous(), frames[ir.l].transpose(-1, -2)).flatten(-2) for ob, (_, ir) in zip(ops, io)]
        return torch.cat(outs, -1)
