r"""Fused message passing: gather senders, channelwise tensor product, scatter-sum to receivers.

The convolution of NequIP/MACE-style networks is

.. math::

    m_i = \sum_{e = (j \to i)} \operatorname{TP}_{\text{uvu}}\big(h_j,\; Y(\hat r_e),\; W_e\big),

written naively as ``tp(h[sender], Y, W)`` followed by ``index_add`` over receivers, which
materialises several ``(E, channels, dim)`` tensors (the gathered features, the product's
intermediates and the per-edge messages) and keeps them for the backward pass. `message_passing`
evaluates the same sum edge-chunk by edge-chunk inside one autograd function
(`equiv.tp._channelwise`): the gather and the scatter happen per chunk, nothing per-edge is kept
(the backward recomputes), and its backward is itself differentiable, so forces
(:math:`-\partial E/\partial r`, double backward in training) work. Peak memory is measured against
the unfused path in ``benchmarks/tensor_products.py``.
"""

from __future__ import annotations

import torch

from ._sub import ChannelwiseTensorProduct
from ._tensor_product import TensorProduct, assemble_outputs

__all__ = ["message_passing", "MessagePassingTensorProduct"]


def _check_tp(tp):
    if not isinstance(tp, TensorProduct):
        raise TypeError(f"message_passing: tp must be an equiv.tp.TensorProduct, got {type(tp).__name__}")
    bad = [ins for ins in tp.instructions if ins.connection_mode != "uvu"]
    if bad:
        raise ValueError(
            f"message_passing: every instruction of tp must be channelwise 'uvu' (sender features x edge "
            f"attributes), got {[i.connection_mode for i in bad]}"
        )
    if tp.shared_weights:
        raise ValueError("message_passing: tp must have shared_weights=False (per-edge weights)")


def message_passing(
    tp: TensorProduct,
    node_feats: torch.Tensor,
    edge_attrs: torch.Tensor,
    edge_weights: torch.Tensor,
    edge_index: torch.Tensor,
    num_nodes: int | None = None,
) -> torch.Tensor:
    r"""Fused :math:`m_i = \sum_{e=(j \to i)} \mathrm{tp}(h_j, a_e, w_e)` for a channelwise ``tp``.

    Equal to ``torch.zeros(num_nodes, d).index_add(0, receiver, tp(node_feats[sender], edge_attrs,
    edge_weights))`` but without per-edge intermediates (see the module docstring).

    Parameters
    ----------
    tp : TensorProduct
        Only ``uvu`` instructions, ``shared_weights=False`` (e.g. `ChannelwiseTensorProduct`).
    node_feats : torch.Tensor
        ``(N, tp.irreps_in1.dim)`` sender features :math:`h`.
    edge_attrs : torch.Tensor
        ``(E, tp.irreps_in2.dim)`` edge attributes (spherical harmonics of the edge vectors).
    edge_weights : torch.Tensor
        ``(E, tp.weight_numel)`` per-edge weights (e.g. from a radial MLP), e3nn layout.
    edge_index : torch.Tensor
        ``(2, E)`` integer ``[sender, receiver]``.
    num_nodes : int, optional
        Number of output rows (default ``N``).

    Returns
    -------
    torch.Tensor
        ``(num_nodes, tp.irreps_out.dim)``.

    Examples
    --------
    >>> import torch
    >>> from equiv.tp import ChannelwiseTensorProduct, message_passing
    >>> tp = ChannelwiseTensorProduct("8x0e + 8x1o", "0e + 1o", "8x0e + 8x1o", shared_weights=False)
    >>> h, a = torch.randn(5, 32), torch.randn(12, 4)
    >>> w, edges = torch.randn(12, tp.weight_numel), torch.randint(0, 5, (2, 12))
    >>> fused = message_passing(tp, h, a, w, edges)
    >>> unfused = torch.zeros(5, 32).index_add(0, edges[1], tp(h[edges[0]], a, w))
    >>> bool(torch.allclose(fused, unfused, atol=1e-5))
    True
    """
    _check_tp(tp)
    if not isinstance(node_feats, torch.Tensor) or node_feats.dim() != 2 or node_feats.shape[1] != tp.irreps_in1.dim:
        raise ValueError(
            f"message_passing: node_feats must be (N, {tp.irreps_in1.dim}), got {tuple(getattr(node_feats, 'shape', ()))}"
        )
    if not isinstance(edge_index, torch.Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"message_passing: edge_index must be (2, E), got {tuple(getattr(edge_index, 'shape', ()))}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"message_passing: edge_index must be an integer tensor, got {edge_index.dtype}")
    n_edges = edge_index.shape[1]
    if edge_attrs.shape != (n_edges, tp.irreps_in2.dim):
        raise ValueError(
            f"message_passing: edge_attrs must be (E={n_edges}, {tp.irreps_in2.dim}), got {tuple(edge_attrs.shape)}"
        )
    if edge_weights.shape != (n_edges, tp.weight_numel):
        raise ValueError(
            f"message_passing: edge_weights must be (E={n_edges}, weight_numel={tp.weight_numel}), got {tuple(edge_weights.shape)}"
        )
    n = node_feats.shape[0]
    num_nodes = n if num_nodes is None else int(num_nodes)
    sender, receiver = edge_index[0].long(), edge_index[1].long()
    if n_edges and not torch.compiler.is_compiling():
        if int(sender.min()) < 0 or int(sender.max()) >= n:
            raise ValueError(f"message_passing: sender indices must be in [0, {n}), got [{int(sender.min())}, {int(sender.max())}]")
        if int(receiver.min()) < 0 or int(receiver.max()) >= num_nodes:
            raise ValueError(
                f"message_passing: receiver indices must be in [0, {num_nodes}), got [{int(receiver.min())}, {int(receiver.max())}]"
            )
    if tp._single_group:
        return tp._groups[0].product(node_feats, edge_attrs, edge_weights, sender, receiver, num_nodes)
    parts: dict[int, list] = {}
    for grp in tp._groups:
        for i_out, t in grp.run(node_feats, edge_attrs, edge_weights, sender, receiver, num_nodes):
            parts.setdefault(i_out, []).append(t)
    return assemble_outputs(tp.irreps_out, parts, node_feats, num_nodes)


class MessagePassingTensorProduct(torch.nn.Module):
    r"""Module form of `message_passing` around a `ChannelwiseTensorProduct`.

    .. math::

        m_i = \sum_{e=(j \to i)} \sum_{(a, b) \to c} \alpha_{abc} \sum_v W_{e,uv}^{(abc)}
        \big(h^{(a)}_{j,u} \otimes Y^{(b)}_{e,v}\big)_{l_c}

    Parameters
    ----------
    irreps_node : Irreps or str
        Sender features (``irreps_in1`` of the product).
    irreps_edge : Irreps or str
        Edge attributes (``irreps_in2``), e.g. ``"0e + 1o + 2e + 3o"`` spherical harmonics.
    irreps_out : Irreps or str, optional
        Explicit output irreps (every allowed ``uvu`` path into them), or ``None`` for MACE's
        recipe: one output block per path, restricted to ``filter_ir_out``, sorted.
    filter_ir_out : Irreps or list of Irrep, optional
    instructions : list, optional
        Explicit ``uvu`` instructions (with ``irreps_out``); overrides the recipe.
    irrep_normalization, path_normalization : str
        As in `TensorProduct`.

    Shapes
    ------
    ``forward(node_feats (N, irreps_node.dim), edge_attrs (E, irreps_edge.dim),
    edge_weights (E, weight_numel), edge_index (2, E) [sender, receiver], num_nodes=None)
    -> (num_nodes, irreps_out.dim)``

    Examples
    --------
    >>> import torch
    >>> from equiv.tp import MessagePassingTensorProduct
    >>> conv = MessagePassingTensorProduct("8x0e + 8x1o", "0e + 1o + 2e", filter_ir_out="0e + 1o + 2e")
    >>> conv.irreps_out  # one block per path, sorted (MACE's recipe)
    8x0e+8x0e+8x1o+8x1o+8x1o+8x2e+8x2e
    >>> out = conv(torch.randn(4, 32), torch.randn(10, 9), torch.randn(10, conv.weight_numel),
    ...            torch.randint(0, 4, (2, 10)))
    >>> out.shape
    torch.Size([4, 168])
    """

    def __init__(
        self,
        irreps_node,
        irreps_edge,
        irreps_out=None,
        *,
        filter_ir_out=None,
        instructions=None,
        irrep_normalization: str | None = None,
        path_normalization: str | None = None,
    ):
        super().__init__()
        kw = dict(
            shared_weights=False,
            internal_weights=False,
            irrep_normalization=irrep_normalization,
            path_normalization=path_normalization,
        )
        if instructions is not None:
            if irreps_out is None:
                raise ValueError("MessagePassingTensorProduct: instructions need explicit irreps_out")
            self.tp = TensorProduct(irreps_node, irreps_edge, irreps_out, instructions, **kw)
        else:
            self.tp = ChannelwiseTensorProduct(irreps_node, irreps_edge, irreps_out, filter_ir_out, **kw)
        _check_tp(self.tp)
        self.irreps_in1 = self.irreps_node = self.tp.irreps_in1
        self.irreps_in2 = self.irreps_edge = self.tp.irreps_in2
        self.irreps_out = self.tp.irreps_out
        self.instructions = self.tp.instructions
        self.weight_numel = self.tp.weight_numel

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.irreps_node} x {self.irreps_edge} -> {self.irreps_out} | "
            f"{self.weight_numel} weights per edge)"
        )

    def forward(self, node_feats, edge_attrs, edge_weights, edge_index, num_nodes: int | None = None):
        """Fused messages summed on receivers, ``(num_nodes, irreps_out.dim)``."""
        return message_passing(self.tp, node_feats, edge_attrs, edge_weights, edge_index, num_nodes)

    def unfused(self, node_feats, edge_attrs, edge_weights, edge_index, num_nodes: int | None = None):
        """Reference: gather, product, ``index_add`` (materialises per-edge tensors)."""
        num_nodes = node_feats.shape[0] if num_nodes is None else num_nodes
        msg = self.tp(node_feats[edge_index[0]], edge_attrs, edge_weights)
        return msg.new_zeros(num_nodes, msg.shape[1]).index_add(0, edge_index[1], msg)
