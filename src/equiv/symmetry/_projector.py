"""Orthogonal projectors onto equivariant linear maps.

A linear layer :math:`y = W x + b` from a representation :math:`\\rho_{in}` to :math:`\\rho_{out}` of
a group :math:`G` is equivariant iff, for every finite generator :math:`h` and every Lie-algebra
generator :math:`A` of :math:`G`,

.. math::
    \\rho_{out}(h)\\, W\\, \\rho_{in}(h)^{-1} = W, \\qquad
    d\\rho_{out}(A)\\, W - W\\, d\\rho_{in}(A) = 0, \\qquad
    \\rho_{out}(h)\\, b = b, \\qquad d\\rho_{out}(A)\\, b = 0 .

With the row-major :math:`\\mathrm{vec}` these are linear constraints
:math:`C\\,\\mathrm{vec}(W) = 0`, stacked from
:math:`\\rho_{out}(h) \\otimes \\rho_{in}(h)^{-\\top} - I` and
:math:`d\\rho_{out}(A) \\otimes I - I \\otimes d\\rho_{in}(A)^{\\top}`; the equivariant weights are the
null space of :math:`C`, and :math:`P = Q Q^\\top` (``Q`` an orthonormal basis of the null space, from
the SVD of ``C``) is the orthogonal projector onto them: symmetric, idempotent, and
:math:`\\|W - PW\\|` is the distance of :math:`W` to the nearest equivariant layer (Finzi, Welling and
Wilson, "A practical method for constructing equivariant multilayer perceptrons for arbitrary matrix
groups", ICML 2021; Kim, Lee, Yang and Lee, "Regularizing towards soft equivariance under mixed
symmetries", ICML 2023).

The projector never builds the ``(n_out n_in)^2`` matrix: representations are direct sums of blocks
``m x base`` (:class:`equiv.groups.Rep`), and the constraints act on each ``(out base, in base)`` pair
of blocks identically for all ``m_out x m_in`` copies, so ``P`` is a small ``(d_b d_a)^2`` projector per
pair of base types applied to every copy.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from equiv.groups import Group, Rep, as_rep, get_group

__all__ = ["equivariant_basis", "EquivariantProjector"]


def _group_key(group: Group, dtype=torch.float64) -> tuple:
    disc = group.discrete_generators(dtype)
    lie = group.lie_generators(dtype)
    lin = group._linear_part
    return (
        type(group).__name__,
        tuple(disc.shape),
        lin(disc).numpy().round(12).tobytes() if len(disc) else b"",
        tuple(lie.shape),
        lin(lie).numpy().round(12).tobytes() if len(lie) else b"",
    )


def _null_space(C: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal bases ``(n, r)`` of the null space of ``C (m, n)`` and ``(n, n - r)`` of its complement."""
    if C.shape[0] == 0:
        return torch.eye(n, dtype=torch.float64), torch.zeros(n, 0, dtype=torch.float64)
    _, S, Vh = torch.linalg.svd(C, full_matrices=True)
    tol = 1e-9 * max(1.0, float(S.max()) if S.numel() else 1.0)
    rank = int((S > tol).sum())
    return Vh[rank:].T.contiguous(), Vh[:rank].T.contiguous()


_GROUP_REGISTRY: dict[tuple, Group] = {}


@lru_cache(maxsize=1024)
def _block_basis(base_in, base_out, key: tuple, bias: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Bases of the equivariant ``base_in -> base_out`` maps (or invariant ``base_out`` vectors) and of
    their orthogonal complement, each ``(d, r)`` with ``d = d_out d_in`` (or ``d_out``)."""
    group = _GROUP_REGISTRY[key]
    lin = group._linear_part
    disc = lin(group.discrete_generators(torch.float64))
    lie = lin(group.lie_generators(torch.float64))
    db = base_out.dim
    rows = []
    if bias:
        eye = torch.eye(db, dtype=torch.float64)
        for h in disc:
            rows.append(base_out.matrix(h) - eye)
        for A in lie:
            rows.append(base_out.lie(A))
        C = torch.cat(rows) if rows else torch.zeros(0, db, dtype=torch.float64)
        return _null_space(C, db)
    da = base_in.dim
    eye_a = torch.eye(da, dtype=torch.float64)
    eye_b = torch.eye(db, dtype=torch.float64)
    inv = lin(group.inverse(group.discrete_generators(torch.float64))) if len(disc) else disc
    for h, hinv in zip(disc, inv):
        rows.append(torch.kron(base_out.matrix(h), base_in.matrix(hinv).T.contiguous()) - torch.eye(da * db, dtype=torch.float64))
    for A in lie:
        rows.append(torch.kron(base_out.lie(A), eye_a) - torch.kron(eye_b, base_in.lie(A).T.contiguous()))
    C = torch.cat(rows) if rows else torch.zeros(0, da * db, dtype=torch.float64)
    return _null_space(C, da * db)


def _basis(base_in, base_out, group: Group, bias: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    key = _group_key(group)
    _GROUP_REGISTRY.setdefault(key, group)
    return _block_basis(base_in, base_out, key, bias)


def _merge_types(rep: Rep) -> tuple[torch.Tensor | None, list[tuple[object, int, slice]]]:
    """Reorder a representation so that all copies of each base are contiguous.

    Returns ``(perm, types)``: ``x[..., perm]`` is the reordered layout (``None`` when already in
    order) and ``types`` lists ``(base, total multiplicity, slice in the reordered layout)``.
    """
    groups: dict = {}
    for sl, (m, b) in zip(rep.slices(), rep.blocks):
        groups.setdefault(b, []).append((sl, m))
    perm, types, start = [], [], 0
    for b, parts in groups.items():
        mul = sum(m for _, m in parts)
        for sl, _ in parts:
            perm.extend(range(sl.start, sl.stop))
        types.append((b, mul, slice(start, start + mul * b.dim)))
        start += mul * b.dim
    perm_t = torch.tensor(perm, dtype=torch.long)
    if torch.equal(perm_t, torch.arange(rep.dim)):
        return None, types
    return perm_t, types


def equivariant_basis(rep_in, rep_out, group) -> torch.Tensor:
    """Orthonormal basis of the equivariant linear maps ``rep_in -> rep_out`` (dense, float64).

    Parameters
    ----------
    rep_in, rep_out : Rep, irreps string or Irreps
    group : Group or group name (``"o3"``, ``"o2_z"``, ...)

    Returns
    -------
    Tensor ``(dim_out * dim_in, r)``
        columns are row-major flattened equivariant matrices ``W (dim_out, dim_in)``.

    Examples
    --------
    Equivariant maps from a vector to a vector: multiples of the identity under O(3); under rotations
    about z also the projection on z and the rotation by 90 degrees in the xy-plane.

    >>> from equiv.groups import Rep
    >>> equivariant_basis(Rep.vector(), Rep.vector(), "o3").shape[1]
    1
    >>> equivariant_basis(Rep.vector(), Rep.vector(), "so2_z").shape[1]
    3
    """
    return EquivariantProjector(rep_in, rep_out, group, bias=False).basis()


class EquivariantProjector:
    """Orthogonal projector onto the weights (and biases) of equivariant layers ``rep_in -> rep_out``.

    Parameters
    ----------
    rep_in, rep_out : Rep, irreps string or Irreps
        representations of the layer's input and output features (``W`` has shape
        ``(rep_out.dim, rep_in.dim)``, as in :class:`torch.nn.Linear`).
    group : Group or name
        the symmetry group, through its finite and Lie-algebra generators
        (:meth:`equiv.groups.Group.rep_generators`).
    bias : bool
        also build the projector onto invariant biases.

    Notes
    -----
    :meth:`weight` and :meth:`bias` apply :math:`P` blockwise in ``O(n_out n_in d)`` operations (``d``
    the largest base dimension); :meth:`matrix` materialises the dense ``P`` for small layers and tests.

    Examples
    --------
    >>> import torch
    >>> from equiv.groups import Rep, O3
    >>> P = EquivariantProjector("2x0e + 1x1o", "1x1o + 1x0e", "o3")
    >>> W = P.weight(torch.randn(4, 5))     # nearest O(3)-equivariant weight
    >>> g = O3().sample(1)[0]
    >>> Din, Dout = P.rep_in.matrix(g), P.rep_out.matrix(g)
    >>> torch.allclose(Dout @ W, W @ Din, atol=1e-5)
    True
    """

    def __init__(self, rep_in, rep_out, group, bias: bool = True):
        self.rep_in: Rep = as_rep(rep_in)
        self.rep_out: Rep = as_rep(rep_out)
        self.group: Group = get_group(group)
        self.perm_in, types_in = _merge_types(self.rep_in)
        self.perm_out, types_out = _merge_types(self.rep_out)
        self.inv_in = None if self.perm_in is None else torch.argsort(self.perm_in)
        self.inv_out = None if self.perm_out is None else torch.argsort(self.perm_out)
        #: (out slice, in slice, mo, db, mi, da, Q, Qperp) per pair of base types (reordered layout)
        self.pairs = []
        for bo, mo, so in types_out:
            for bi, mi, si in types_in:
                Q, Qp = _basis(bi, bo, self.group)
                self.pairs.append((so, si, mo, bo.dim, mi, bi.dim, Q, Qp))
        #: (out slice, mo, db, Q, Qperp) per base type of the output (reordered layout)
        self.bias_blocks = []
        if bias:
            for bo, mo, so in types_out:
                Q, Qp = _basis(None, bo, self.group, bias=True)
                self.bias_blocks.append((so, mo, bo.dim, Q, Qp))
        self.has_bias = bias
        self._cache: dict = {}

    # ------------------------------------------------------------------------------------------
    def _Q(self, Q: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        key = (id(Q), like.dtype, like.device)
        out = self._cache.get(key)
        if out is None:
            out = self._cache[key] = Q.to(dtype=like.dtype, device=like.device)
        return out

    def _sort(self, W: torch.Tensor) -> torch.Tensor:
        if self.perm_out is not None:
            W = W.index_select(-2, self.perm_out.to(W.device))
        if self.perm_in is not None:
            W = W.index_select(-1, self.perm_in.to(W.device))
        return W

    def _unsort(self, W: torch.Tensor) -> torch.Tensor:
        if self.inv_out is not None:
            W = W.index_select(-2, self.inv_out.to(W.device))
        if self.inv_in is not None:
            W = W.index_select(-1, self.inv_in.to(W.device))
        return W

    @property
    def num_parameters(self) -> int:
        """Dimension of the space of equivariant weights."""
        return sum(mo * mi * Q.shape[1] for _, _, mo, _, mi, _, Q, _ in self.pairs)

    @property
    def num_bias_parameters(self) -> int:
        """Dimension of the space of invariant biases."""
        return sum(mo * Q.shape[1] for _, mo, _, Q, _ in self.bias_blocks)

    def _check_weight(self, W):
        if W.shape[-2:] != (self.rep_out.dim, self.rep_in.dim):
            raise ValueError(
                f"W has shape {tuple(W.shape)}: expected (..., {self.rep_out.dim}, {self.rep_in.dim}) for "
                f"{self.rep_in} -> {self.rep_out}"
            )

    def _check_bias(self, b):
        if not self.has_bias:
            raise ValueError("EquivariantProjector was built with bias=False")
        if b.shape[-1:] != (self.rep_out.dim,):
            raise ValueError(f"b has shape {tuple(b.shape)}: expected (..., {self.rep_out.dim})")

    def weight(self, W: torch.Tensor) -> torch.Tensor:
        """:math:`P W`: the nearest (Frobenius) equivariant weight, shape ``(..., dim_out, dim_in)``."""
        self._check_weight(W)
        Ws = self._sort(W)
        out = torch.zeros_like(Ws)
        lead = W.shape[:-2]
        for so, si, mo, db, mi, da, Q, _ in self.pairs:
            if Q.shape[1] == 0:
                continue
            Qc = self._Q(Q, W)
            flat = Ws[..., so, si].reshape(*lead, mo, db, mi, da).transpose(-3, -2).reshape(*lead, mo, mi, db * da)
            proj = (flat @ Qc) @ Qc.T
            out[..., so, si] = proj.reshape(*lead, mo, mi, db, da).transpose(-3, -2).reshape(*lead, mo * db, mi * da)
        return self._unsort(out)

    def bias(self, b: torch.Tensor) -> torch.Tensor:
        """:math:`P_b b`: the nearest invariant bias, shape ``(..., dim_out)``."""
        self._check_bias(b)
        bs = b if self.perm_out is None else b.index_select(-1, self.perm_out.to(b.device))
        out = torch.zeros_like(bs)
        lead = b.shape[:-1]
        for so, mo, db, Q, _ in self.bias_blocks:
            if Q.shape[1] == 0:
                continue
            Qc = self._Q(Q, b)
            out[..., so] = ((bs[..., so].reshape(*lead, mo, db) @ Qc) @ Qc.T).reshape(*lead, mo * db)
        return out if self.inv_out is None else out.index_select(-1, self.inv_out.to(b.device))

    def residual(self, W: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        r""":math:`\tfrac12\|W - PW\|^2 + \tfrac12\|b - P_b b\|^2`, computed on the orthogonal complement.

        Uses :math:`\|(I - P) w\| = \|Q_\perp^\top w\|` (no cancellation, one product per block pair),
        so it stays accurate in float32 when the layer is nearly equivariant. Differentiable.
        """
        self._check_weight(W)
        Ws = self._sort(W)
        total = W.new_zeros(W.shape[:-2])
        lead = W.shape[:-2]
        for so, si, mo, db, mi, da, _, Qp in self.pairs:
            if Qp.shape[1] == 0:
                continue
            flat = Ws[..., so, si].reshape(*lead, mo, db, mi, da).transpose(-3, -2).reshape(*lead, mo * mi, db * da)
            total = total + (flat @ self._Q(Qp, W)).pow(2).sum((-1, -2))
        if b is not None:
            self._check_bias(b)
            bs = b if self.perm_out is None else b.index_select(-1, self.perm_out.to(b.device))
            for so, mo, db, _, Qp in self.bias_blocks:
                if Qp.shape[1]:
                    total = total + (bs[..., so].reshape(*b.shape[:-1], mo, db) @ self._Q(Qp, b)).pow(2).sum((-1, -2))
        return 0.5 * total

    def basis(self) -> torch.Tensor:
        """Dense orthonormal basis ``(dim_out * dim_in, r)`` of the equivariant weights (float64)."""
        cols = []
        for so, si, mo, db, mi, da, Q, _ in self.pairs:
            for i in range(mo):
                for j in range(mi):
                    for k in range(Q.shape[1]):
                        W = torch.zeros(self.rep_out.dim, self.rep_in.dim, dtype=torch.float64)
                        W[so.start + i * db : so.start + (i + 1) * db, si.start + j * da : si.start + (j + 1) * da] = Q[:, k].reshape(db, da)
                        cols.append(self._unsort(W).reshape(-1))
        n = self.rep_out.dim * self.rep_in.dim
        return torch.stack(cols, 1) if cols else torch.zeros(n, 0, dtype=torch.float64)

    def matrix(self) -> torch.Tensor:
        """Dense projector ``(dim_out * dim_in, dim_out * dim_in)`` on row-major ``vec(W)`` (float64)."""
        B = self.basis()
        return B @ B.T

    def __repr__(self) -> str:
        return (
            f"EquivariantProjector({self.rep_in} -> {self.rep_out}, {self.group}, "
            f"{self.num_parameters}/{self.rep_in.dim * self.rep_out.dim} equivariant weights)"
        )
