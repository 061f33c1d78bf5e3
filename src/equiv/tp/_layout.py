r"""Column permutations between e3nn's ``mul_ir`` layout and the kernels' layouts, as gathers.

``select(x, perm, inv)`` returns ``x[:, perm]``; ``place(z, inv, perm)`` is its adjoint: it puts the
columns of ``z`` back where they came from (``zeros`` elsewhere). Both are gathers, and each is the
other's backward, so first, second and higher derivatives never need a scatter-add (which is
slow on CPU). ``perm`` lists source columns (each at most once); ``inv[j]`` is the position of
column ``j`` in ``perm`` or ``len(perm)`` (a zero column) when ``j`` is not selected.

>>> import torch
>>> perm, inv = inverse_permutation([2, 0], 3)
>>> x = torch.tensor([[1., 2., 3.]])
>>> select(x, perm, inv), place(select(x, perm, inv), inv, perm)
(tensor([[3., 1.]]), tensor([[1., 0., 3.]]))
"""

from __future__ import annotations

import torch

__all__ = ["select", "place", "inverse_permutation", "flatten_batch"]


def inverse_permutation(perm, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(perm, inv)`` as long tensors for `select`/`place` on ``width`` columns."""
    perm = torch.as_tensor(perm, dtype=torch.long)
    inv = torch.full((width,), len(perm), dtype=torch.long)
    inv[perm] = torch.arange(len(perm))
    return perm, inv


class _Select(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, perm, inv):
        ctx.perm, ctx.inv = perm, inv
        return x.index_select(1, perm)

    @staticmethod
    def backward(ctx, g):
        return place(g, ctx.inv, ctx.perm), None, None


class _Place(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, inv, perm):
        ctx.perm, ctx.inv = perm, inv
        return _place(z, inv, perm)

    @staticmethod
    def backward(ctx, g):
        return select(g, ctx.perm, ctx.inv), None, None


def select(x: torch.Tensor, perm: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """``x[:, perm]`` for ``x`` of shape ``(n, width)`` (gather forward and backward)."""
    if torch.compiler.is_compiling():
        return x.index_select(1, perm)
    return _Select.apply(x, perm, inv)


def place(z: torch.Tensor, inv: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Adjoint of `select`: ``out[:, perm] = z``, zeros elsewhere (gather forward and backward)."""
    if torch.compiler.is_compiling():
        return _place(z, inv, perm)
    return _Place.apply(z, inv, perm)


def _place(z, inv, perm):
    if len(perm) == len(inv):  # a permutation: no zero column needed
        return z.index_select(1, inv)
    return torch.cat([z, z.new_zeros(z.shape[0], 1)], 1).index_select(1, inv)


def flatten_batch(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, shared_weights: bool):
    """Broadcast the leading (batch) dimensions of ``x``, ``y`` and, unless ``shared_weights``, of
    ``w``, and flatten them: returns ``(batch_shape, n, x (n, dx), y (n, dy), w (1 or n, dw))``
    (``w`` is passed through as ``None``).

    >>> batch, n, x, y, w = flatten_batch(torch.ones(2, 3, 4), torch.ones(1, 5), torch.ones(7), True)
    >>> batch, n, tuple(x.shape), tuple(y.shape), tuple(w.shape)
    (torch.Size([2, 3]), 6, (6, 4), (6, 5), (1, 7))
    """
    shapes = [x.shape[:-1], y.shape[:-1]] + ([] if shared_weights or w is None else [w.shape[:-1]])
    try:
        batch = torch.broadcast_shapes(*shapes)
    except RuntimeError as err:
        names = ("x", "y", "weight")
        raise ValueError("the batch (leading) dimensions do not broadcast: "
                         + ", ".join(f"{n} {tuple(s)}" for n, s in zip(names, shapes))) from err
    n = 1
    for s in batch:
        n *= s
    x = x.broadcast_to(batch + x.shape[-1:]).reshape(n, x.shape[-1])
    y = y.broadcast_to(batch + y.shape[-1:]).reshape(n, y.shape[-1])
    if w is not None:
        w = w.reshape(1, -1) if shared_weights else w.broadcast_to(batch + w.shape[-1:]).reshape(n, w.shape[-1])
    return batch, n, x, y, w
