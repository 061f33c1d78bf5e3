"""The symmetric group S_N acting on a node axis, as ``N x N`` permutation matrices.

An element :math:`P` with :math:`P_{ij} = 1` when new node ``i`` is old node ``j`` acts on node
features by :math:`x \\mapsto P x` along the node axis, and relabels node indices (``edge_index``)
:math:`j \\mapsto \\sigma(j)` with :math:`P_{\\sigma(j) j} = 1`. Finite generators: the
transposition ``(0 1)`` and the cycle ``(0 1 ... N-1)``.
"""

from __future__ import annotations

import itertools
import math

import torch

from ._base import Group, OrbitGrid
from ._rotations import _check_num

__all__ = ["Permutations"]


class Permutations(Group):
    """Permutations of ``n`` nodes.

    Parameters
    ----------
    n : int
        number of nodes.
    node_axis : int
        the axis of node-valued inputs that :meth:`act` permutes (default 0, as in
        :func:`equiv.symmetry.assert_equivariant`); for a batch of elements ``(B, n, n)`` the axis
        is counted in each sample (``x[b]``).

    Every input kind other than ``None`` and ``"node_index"`` is treated as node-valued.

    >>> import torch
    >>> S = Permutations(3)
    >>> P = S.element(torch.tensor([2, 0, 1]))   # new node i is old node perm[i]
    >>> S.act(P, torch.tensor([10., 20., 30.]), "nodes")
    tensor([30., 10., 20.])
    """

    def __init__(self, n: int, node_axis: int = 0):
        _check_num(n, 1, "n")
        self.n = n
        self.d = n
        self.node_axis = node_axis
        self.name = f"S({n})"

    def element(self, perm: torch.Tensor, dtype=None) -> torch.Tensor:
        """Permutation matrices from index tensors ``(..., n)`` (new node ``i`` is old node ``perm[i]``)."""
        perm = torch.as_tensor(perm)
        if perm.shape[-1:] != (self.n,) or not (perm.sort(-1).values == torch.arange(self.n)).all():
            raise ValueError(f"perm of shape {tuple(perm.shape)} is not a batch of permutations of {self.n} nodes")
        return torch.nn.functional.one_hot(perm, self.n).to(dtype or torch.get_default_dtype())

    def indices(self, g: torch.Tensor) -> torch.Tensor:
        """The index form ``perm`` of permutation matrices (``g[i, perm[i]] = 1``)."""
        return g.argmax(-1)

    def sample(self, n=1, *, generator=None, dtype=None, device=None):
        perms = torch.stack([torch.randperm(self.n, generator=generator) for _ in range(n)])
        return self.element(perms, dtype).to(device)

    def inverse(self, g):
        return g.transpose(-1, -2)

    def contains(self, g, atol=1e-6):
        binary = ((g.abs() <= atol) | ((g - 1).abs() <= atol)).all(-1).all(-1)
        ones = g.sum(-1).sub(1).abs().amax(-1) <= atol
        cols = g.sum(-2).sub(1).abs().amax(-1) <= atol
        return binary & ones & cols

    def discrete_generators(self, dtype=torch.float64, device=None):
        if self.n == 1:
            return torch.zeros(0, 1, 1, dtype=dtype, device=device)
        swap = list(range(self.n))
        swap[0], swap[1] = 1, 0
        cycle = [(i + 1) % self.n for i in range(self.n)]
        return self.element(torch.tensor([swap, cycle]), dtype).to(device)

    def act(self, g, x, kind):
        if kind is None:
            return x
        if not isinstance(g, torch.Tensor) or g.shape[-2:] != (self.n, self.n) or g.ndim not in (2, 3):
            raise ValueError(f"{self.name}.act: g must be ({self.n}, {self.n}) or (B, {self.n}, {self.n})")
        perm = self.indices(g)
        if kind == "node_index":
            new_label = torch.argsort(perm, dim=-1)  # old node j becomes new node new_label[j]
            if g.ndim == 2:
                return new_label[x]
            return torch.stack([new_label[b][x[b]] for b in range(g.shape[0])])
        if g.ndim == 2:
            return torch.index_select(x, self.node_axis, perm.to(x.device))
        return torch.stack([torch.index_select(x[b], self.node_axis, perm[b].to(x.device)) for b in range(g.shape[0])])

    def orbit(self, num_points: int = 120, *, generator=None, dtype=None, **kwargs) -> OrbitGrid:
        """All ``n!`` permutations when ``n! <= num_points``, else ``num_points`` random ones (identity first)."""
        _check_num(num_points, 1)
        if kwargs:
            raise TypeError(f"{self.name}.orbit: unexpected keyword arguments {sorted(kwargs)}")
        if math.factorial(self.n) <= num_points:
            perms = torch.tensor(list(itertools.permutations(range(self.n))))
        else:
            perms = torch.stack([torch.arange(self.n)] + [torch.randperm(self.n, generator=generator) for _ in range(num_points - 1)])
        G = perms.shape[0]
        dtype = dtype or torch.get_default_dtype()
        w = torch.full((G,), 1.0 / G, dtype=dtype)
        return OrbitGrid(self.element(perms, dtype), {"index": torch.arange(G).to(dtype)}, (G,), "line", w)
