r"""Row gathers and scatter-sums that stay whole under ``torch.compile``.

Message passing gathers sender rows (``x[index]``) and sums messages into receiver rows
(``index_add``); each is the other's backward. Eager code calls the ATen kernels directly. Under
``torch.compile`` the same two maps go through the custom operators ``equiv::gather_rows`` and
``equiv::scatter_rows``, which Inductor calls as opaque ATen kernels instead of generating fused
loops for them. Reason: Inductor in torch 2.13 miscompiles ``index_add`` inside some parallel CPU
kernels (an atomic add with a wrong row offset, writing out of bounds). A compiled MACE aborted with
heap corruption at two threads; see docs/potentials.md, Limitations. Both operators have their
autograd formulas registered in terms of each other, so derivatives of any order work (forces
training differentiates twice).

.. math::

    \mathrm{gather}(x, i)_k = x_{i_k},\qquad \mathrm{scatter}(m, i, n)_j = \sum_{k:\,i_k = j} m_k

Examples
--------
>>> import torch
>>> x = torch.arange(6.0).reshape(3, 2)
>>> i = torch.tensor([2, 0, 2])
>>> gather_rows(x, i)
tensor([[4., 5.],
        [0., 1.],
        [4., 5.]])
>>> scatter_rows(gather_rows(x, i), i, 3)
tensor([[ 0.,  1.],
        [ 0.,  0.],
        [ 8., 10.]])
"""

from __future__ import annotations

import torch

__all__ = ["gather_rows", "scatter_rows"]


@torch.library.custom_op("equiv::gather_rows", mutates_args=())
def _gather_op(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return src.index_select(0, index)


@_gather_op.register_fake
def _(src, index):
    return src.new_empty((index.shape[0], *src.shape[1:]))


@torch.library.custom_op("equiv::scatter_rows", mutates_args=())
def _scatter_op(src: torch.Tensor, index: torch.Tensor, num: int) -> torch.Tensor:
    return src.new_zeros((num, *src.shape[1:])).index_add_(0, index, src)


@_scatter_op.register_fake
def _(src, index, num):
    return src.new_empty((num, *src.shape[1:]))


def _gather_setup(ctx, inputs, output):
    src, index = inputs
    ctx.save_for_backward(index)
    ctx.num = src.shape[0]


def _gather_backward(ctx, grad):
    (index,) = ctx.saved_tensors
    return _scatter_op(grad, index, ctx.num), None


def _scatter_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[1])


def _scatter_backward(ctx, grad):
    (index,) = ctx.saved_tensors
    return _gather_op(grad, index), None, None


_gather_op.register_autograd(_gather_backward, setup_context=_gather_setup)
_scatter_op.register_autograd(_scatter_backward, setup_context=_scatter_setup)


def gather_rows(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``src[index]`` along the first axis: ``(N, ...)``, ``(E,)`` → ``(E, ...)``."""
    if torch.compiler.is_compiling():
        return _gather_op(src, index)
    return src.index_select(0, index)


def scatter_rows(src: torch.Tensor, index: torch.Tensor, num: int) -> torch.Tensor:
    """Sum the rows of ``src`` into ``num`` rows by ``index``: ``(E, ...)``, ``(E,)`` → ``(num, ...)``."""
    if torch.compiler.is_compiling():
        return _scatter_op(src, index, num)
    return src.new_zeros((num, *src.shape[1:])).index_add_(0, index, src)
