"""Soft equivariance under mixed symmetries: projection regularisers with automatic strengths.

Kim, Lee, Yang and Lee, "Regularizing towards soft equivariance under mixed symmetries", ICML 2023.
For candidate groups :math:`G_1, \\dots, G_K` and the linear layers :math:`(W_\\ell, b_\\ell)` of a
network, the equivariance regulariser of :math:`G_k` is the squared distance of the weights to the
nearest :math:`G_k`-equivariant ones,

.. math::
    R_k = \\sum_\\ell \\tfrac12 \\|W_\\ell - P_{k\\ell} W_\\ell\\|^2 + \\tfrac12 \\|b_\\ell - P^b_{k\\ell} b_\\ell\\|^2 ,

with :math:`P_{k\\ell}` the orthogonal projector onto :math:`G_k`-equivariant weights
(:class:`~equiv.symmetry.EquivariantProjector`), and the training loss is
:math:`\\mathcal{L} + \\sum_k \\lambda_k R_k`.

Automatic strengths (the paper's procedure): all :math:`\\lambda_k` start equal; during a window of
epochs before the adjustment epoch :math:`T` each :math:`R_k` is tracked for its minimum
:math:`\\hat R_k`; at epoch :math:`T`

.. math:: \\lambda_k \\leftarrow \\lambda_k \\left(\\frac{\\min_j \\hat R_j}{\\hat R_k}\\right)^{p}, \\qquad p = 2 ,

so a symmetry that the data violates (large :math:`\\hat R_k` under the same pull) ends up with a
weaker regulariser. The final strengths rank the candidate symmetries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from equiv.groups import Group, Rep, as_rep, get_group

from ._projector import EquivariantProjector

__all__ = ["SoftEquivariance"]


def _layers_from(layers) -> list[tuple[nn.Module, Rep, Rep]]:
    if isinstance(layers, Mapping):
        items = [(m, *reps) for m, reps in layers.items()]
    else:
        items = list(layers)
    out = []
    for item in items:
        if not (isinstance(item, (tuple, list)) and len(item) == 3):
            raise TypeError(f"layers: entry {item!r} is not a (module, rep_in, rep_out) triple")
        module, rin, rout = item
        W = getattr(module, "weight", None)
        if not isinstance(W, torch.Tensor) or W.ndim != 2:
            raise TypeError(f"layers: {type(module).__name__} has no 2-D .weight (expected an nn.Linear-like module)")
        rin, rout = as_rep(rin), as_rep(rout)
        if tuple(W.shape) != (rout.dim, rin.dim):
            raise ValueError(
                f"layers: {module} has weight of shape {tuple(W.shape)} but rep_in={rin} (dim {rin.dim}) and "
                f"rep_out={rout} (dim {rout.dim}) need ({rout.dim}, {rin.dim})"
            )
        out.append((module, rin, rout))
    if not out:
        raise ValueError("layers: expected at least one (module, rep_in, rep_out) triple")
    return out


def _groups_from(groups) -> dict[str, Group]:
    if isinstance(groups, Mapping):
        out = {str(k): get_group(g) for k, g in groups.items()}
    elif isinstance(groups, (list, tuple)):
        out = {}
        for g in groups:
            g = get_group(g)
            out[str(g)] = g
    else:
        raise TypeError(f"groups={groups!r}: expected a dict name -> Group or a list of Groups / names")
    if not out:
        raise ValueError("groups: expected at least one candidate group")
    return out


class SoftEquivariance(nn.Module):
    """Projection regularisers towards several candidate symmetry groups, with automatic strengths.

    Parameters
    ----------
    layers : list of ``(module, rep_in, rep_out)`` or dict ``module -> (rep_in, rep_out)``
        the linear layers to regularise (anything with a 2-D ``.weight`` of shape
        ``(rep_out.dim, rep_in.dim)`` and an optional ``.bias``), with the representations of their
        input and output features.
    groups : list of Group / names, or dict name -> Group
        the candidate symmetries, e.g. ``["o3", "o2_x", "o2_y", "o2_z"]``.
    strength : float
        the common initial strength :math:`\\lambda_k`.
    adjust_at : int or None
        the epoch (1-based count of :meth:`step` calls) at which the strengths are re-weighted; None
        keeps them fixed.
    window : int
        number of epochs before ``adjust_at`` over which each regulariser's minimum is tracked.
    power : float
        the exponent :math:`p` of the update (2 in the paper).
    bias : bool
        include the biases in the regularisers.

    Attributes
    ----------
    strengths : Tensor ``(K,)``
        the current :math:`\\lambda_k` (a buffer: saved in ``state_dict``).
    names : list[str]
        the group names, in the order of ``strengths``.

    Examples
    --------
    A soft-equivariant MLP for 5 point masses (5 scalars + 5 vectors) to a rank-2 tensor, with O(3)
    and O(2) about each axis as candidate symmetries:

    >>> import torch
    >>> from equiv.groups import Rep
    >>> from equiv.symmetry import GatedMLP, SoftEquivariance
    >>> rep_in = 5 * Rep.scalar() + 5 * Rep.vector()
    >>> rep_hidden = 16 * Rep.scalar() + 8 * Rep.vector() + 4 * Rep.tensor(2)
    >>> model = GatedMLP(rep_in, rep_hidden, Rep.tensor(2), num_hidden=2)
    >>> soft = SoftEquivariance(model.layer_reps, ["o3", "o2_x", "o2_y", "o2_z"], strength=1.0, adjust_at=20)
    >>> x, y = torch.randn(32, rep_in.dim), torch.randn(32, 9)
    >>> loss = torch.nn.functional.mse_loss(model(x), y) + soft()   # soft() = sum_k lambda_k R_k
    >>> loss.backward()
    >>> soft.step()   # once per epoch: tracks minima, re-weights at epoch `adjust_at`
    False
    >>> sorted(soft.strength_dict())
    ['O(2)_x', 'O(2)_y', 'O(2)_z', 'O(3)']
    """

    def __init__(
        self,
        layers,
        groups,
        *,
        strength: float = 1.0,
        adjust_at: int | None = None,
        window: int = 10,
        power: float = 2.0,
        bias: bool = True,
    ):
        super().__init__()
        if not (isinstance(strength, (int, float)) and strength >= 0 and math.isfinite(strength)):
            raise ValueError(f"strength={strength!r}: expected a finite number >= 0")
        if adjust_at is not None and (not isinstance(adjust_at, int) or adjust_at < 1):
            raise ValueError(f"adjust_at={adjust_at!r}: expected a positive epoch number or None")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window={window!r}: expected a positive integer")
        if adjust_at is not None and window > adjust_at:
            raise ValueError(f"window={window} is longer than adjust_at={adjust_at} epochs")
        self._layers = _layers_from(layers)
        self._groups = _groups_from(groups)
        self.names = list(self._groups)
        self.adjust_at, self.window, self.power, self.use_bias = adjust_at, window, float(power), bias
        self._projectors = [
            [EquivariantProjector(rin, rout, g, bias=bias) for (_, rin, rout) in self._layers] for g in self._groups.values()
        ]
        self._fused = [self._fuse(i) for i in range(len(self._layers))]
        self._cast: dict = {}
        K = len(self.names)
        self.register_buffer("strengths", torch.full((K,), float(strength), dtype=torch.float64))
        self.register_buffer("minima", torch.full((K,), math.inf, dtype=torch.float64))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))
        self.adjusted = False
        self.history: list[dict] = []

    # ------------------------------------------------------------------------------------------
    def _fuse(self, i: int):
        """Concatenate the complement bases of all groups per block pair of layer ``i``."""
        projs = [p[i] for p in self._projectors]
        P0 = projs[0]
        pairs, biases = [], []
        for j, (so, si, mo, db, mi, da, _, _) in enumerate(P0.pairs):
            Qs = [P.pairs[j][7] for P in projs]
            seg = torch.cat([torch.full((Q.shape[1],), k, dtype=torch.long) for k, Q in enumerate(Qs)])
            if len(seg):
                pairs.append((so, si, mo, db, mi, da, torch.cat(Qs, 1), seg))
        for j, (so, mo, db, _, _) in enumerate(P0.bias_blocks):
            Qs = [P.bias_blocks[j][4] for P in projs]
            seg = torch.cat([torch.full((Q.shape[1],), k, dtype=torch.long) for k, Q in enumerate(Qs)])
            if len(seg):
                biases.append((so, mo, db, torch.cat(Qs, 1), seg))
        return P0, pairs, biases

    def _c(self, T: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        key = (id(T), like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = T.to(device=like.device, dtype=like.dtype if T.is_floating_point() else T.dtype)
        return self._cast[key]

    def regularizers(self) -> torch.Tensor:
        """:math:`(R_1, \\dots, R_K)`, differentiable with respect to the layers' parameters.

        All groups are evaluated together: per pair of block types one product with the stacked
        orthonormal bases of the complements, :math:`\\|(I - P_k) w\\|^2 = \\|Q_{k\\perp}^\\top w\\|^2`.
        """
        K = len(self.names)
        R = None
        for (module, _, _), (P0, pairs, biases) in zip(self._layers, self._fused):
            W = module.weight
            if R is None:
                R = W.new_zeros(K)
            Ws = P0._sort(W)
            for so, si, mo, db, mi, da, Q, seg in pairs:
                flat = Ws[so, si].reshape(mo, db, mi, da).transpose(1, 2).reshape(mo * mi, db * da)
                R = R.index_add(0, self._c(seg, W), (flat @ self._c(Q, W)).pow(2).sum(0))
            b = getattr(module, "bias", None)
            if self.use_bias and isinstance(b, torch.Tensor):
                bs = b if P0.perm_out is None else b.index_select(0, P0.perm_out.to(b.device))
                for so, mo, db, Q, seg in biases:
                    R = R.index_add(0, self._c(seg, b), (bs[so].reshape(mo, db) @ self._c(Q, b)).pow(2).sum(0))
        return 0.5 * R

    def forward(self) -> torch.Tensor:
        """The penalty :math:`\\sum_k \\lambda_k R_k` to add to the training loss."""
        R = self.regularizers()
        return (self.strengths.to(R.dtype) * R).sum()

    def strength_dict(self) -> dict[str, float]:
        """``{group name: lambda_k}``."""
        return {n: float(s) for n, s in zip(self.names, self.strengths)}

    def regularizer_dict(self) -> dict[str, float]:
        """``{group name: R_k}`` at the current weights."""
        with torch.no_grad():
            return {n: float(r) for n, r in zip(self.names, self.regularizers())}

    @torch.no_grad()
    def step(self) -> bool:
        """Call once at the end of every epoch. Returns True when the strengths were re-weighted.

        In the ``window`` epochs up to ``adjust_at`` it records each regulariser's minimum; at epoch
        ``adjust_at`` it sets :math:`\\lambda_k \\leftarrow \\lambda_k (\\min_j \\hat R_j / \\hat R_k)^p`
        (groups with :math:`\\lambda_k = 0` are ignored in the minimum).
        """
        self.epoch += 1
        e = int(self.epoch)
        R = self.regularizers().detach().to(torch.float64)
        self.history.append({"epoch": e, **{f"R[{n}]": float(r) for n, r in zip(self.names, R)}})
        if self.adjust_at is None or self.adjusted:
            return False
        if self.adjust_at - self.window < e <= self.adjust_at:
            self.minima.copy_(torch.minimum(self.minima, R))
        if e == self.adjust_at:
            self._adjust()
            return True
        return False

    @torch.no_grad()
    def _adjust(self) -> None:
        active = self.strengths > 0
        if not bool(active.any()):
            return
        m = self.minima.clamp_min(torch.finfo(torch.float64).tiny)
        ref = m[active].min()
        factor = torch.where(active, (ref / m) ** self.power, torch.ones_like(m))
        self.strengths.mul_(factor)
        self.adjusted = True

    @torch.no_grad()
    def decay_(self, lr: float) -> None:
        """Decoupled regularisation step, applied after the optimiser's step (instead of adding ``self()`` to the loss).

        For each group in turn, :math:`W \\leftarrow W - (1 - e^{-\\eta \\lambda_k}) (W - P_k W)` (and the
        same for biases): the exact gradient flow of :math:`\\lambda_k R_k` over a time ``lr`` =
        :math:`\\eta`, a contraction towards the equivariant subspace for any step size. Like AdamW's
        decoupled weight decay (Loshchilov and Hutter, ICLR 2019), it keeps the large, stiff penalty
        gradients out of an adaptive optimiser's per-parameter statistics, which otherwise slow down
        learning inside the equivariant subspace. The objective and the strength tuning are unchanged.
        """
        if not lr >= 0:
            raise ValueError(f"lr={lr!r}: expected a number >= 0")
        for k, projs in enumerate(self._projectors):
            c = 1.0 - math.exp(-float(lr) * float(self.strengths[k]))
            if c == 0.0:
                continue
            for (module, _, _), P in zip(self._layers, projs):
                W = module.weight
                W.sub_(c * (W - P.weight(W)))
                b = getattr(module, "bias", None)
                if self.use_bias and isinstance(b, torch.Tensor):
                    b.sub_(c * (b - P.bias(b)))

    @torch.no_grad()
    def project_(self, group) -> None:
        """Replace every regularised layer's weights by their projection: exactly ``group``-equivariant."""
        name = str(get_group(group)) if not (isinstance(group, str) and group in self._groups) else group
        if name not in self._groups:
            raise ValueError(f"group={group!r}: not one of the candidate groups {self.names}")
        projs = self._projectors[self.names.index(name)]
        for (module, _, _), P in zip(self._layers, projs):
            module.weight.copy_(P.weight(module.weight))
            b = getattr(module, "bias", None)
            if isinstance(b, torch.Tensor):
                b.copy_(P.bias(b))

    def extra_repr(self) -> str:
        return f"groups={self.names}, layers={len(self._layers)}, strengths={[round(float(s), 6) for s in self.strengths]}"
