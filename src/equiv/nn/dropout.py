r"""Equivariant dropout: whole irrep copies are dropped (e3nn's ``Dropout``)."""

from __future__ import annotations

import torch
from torch import nn

from .activation import _irreps
from .gate import _blocks, _component_index, _per_component

__all__ = ["Dropout"]


class Dropout(nn.Module):
    r"""Dropout of whole irrep copies: in training each copy :math:`v` (all :math:`2l+1` components
    together) is kept with probability :math:`1 - p` and scaled by :math:`1/(1 - p)`, or zeroed.

    Dropping single components of a vector would not commute with rotations; dropping the whole copy
    does (the mask is invariant). In evaluation, and for ``p = 0``, the identity.

    Parameters
    ----------
    irreps : Irreps or str
    p : float
        Drop probability, in ``[0, 1]``.

    Shapes: ``(..., irreps.dim)`` → same; one draw per irrep copy and leading index.

    Examples
    --------
    >>> import torch
    >>> drop = Dropout("8x0e + 4x1o", p=0.5)
    >>> y = drop(torch.ones(2, 20))
    >>> sorted(set(y.flatten().tolist())) in ([0.0, 2.0], [0.0], [2.0])
    True
    >>> torch.equal(drop.eval()(torch.ones(2, 20)), torch.ones(2, 20))
    True
    """

    def __init__(self, irreps, p: float) -> None:
        super().__init__()
        self.irreps = _irreps(irreps, "Dropout")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.register_buffer("index", _component_index(self.irreps), persistent=False)
        self._blocks = _blocks(self.irreps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.irreps.dim:
            raise ValueError(f"Dropout: input last dimension {x.shape[-1]} != irreps.dim={self.irreps.dim}")
        if not self.training or self.p == 0.0:
            return x
        shape = x.shape[:-1] + (self.irreps.num_irreps,)
        if self.p == 1.0:
            keep = x.new_zeros(shape)
        else:
            keep = x.new_empty(shape).bernoulli_(1.0 - self.p).div_(1.0 - self.p)
        return x * _per_component(keep, self.index, self._blocks)

    def extra_repr(self) -> str:
        return f"{self.irreps}, p={self.p}"
