"""Fused message passing: equals gather -> product -> index_add (ours and e3nn's), gradients to second order."""

import pytest
import torch

from equiv import so3
from equiv.symmetry import assert_equivariant
from equiv.tp import ChannelwiseTensorProduct, MessagePassingTensorProduct, TensorProduct, message_passing


def _graph(n_nodes, n_edges, generator=None):
    return torch.randint(0, n_nodes, (2, n_edges), generator=generator)


def test_matches_unfused_and_e3nn(dtype):
    o3 = pytest.importorskip("e3nn.o3")
    conv = MessagePassingTensorProduct("4x0e + 4x1o + 2x2e", "0e + 1o + 2e", filter_ir_out="0e + 1o + 2e")
    n, e = 6, 40
    h = conv.irreps_node.randn(n, -1, dtype=dtype)
    a = conv.irreps_edge.randn(e, -1, dtype=dtype)
    w = torch.randn(e, conv.weight_numel, dtype=dtype)
    edges = _graph(n, e)
    fused = conv(h, a, w, edges)
    unfused = conv.unfused(h, a, w, edges)
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref_tp = o3.TensorProduct(str(conv.irreps_node), str(conv.irreps_edge), str(conv.irreps_out),
                                  [tuple(i[:5]) for i in conv.instructions], shared_weights=False, internal_weights=False)
    finally:
        torch.set_default_dtype(old)
    ref_tp = ref_tp.to(dtype)
    ref = torch.zeros(n, conv.irreps_out.dim, dtype=dtype).index_add(0, edges[1], ref_tp(h[edges[0]], a, w))
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert fused.shape == (n, conv.irreps_out.dim)
    assert (fused - unfused).abs().max() < tol * ref.abs().max()
    assert (fused - ref).abs().max() < tol * ref.abs().max()


def test_num_nodes_and_empty_receivers():
    conv = MessagePassingTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o")
    h, a = torch.randn(3, 8), torch.randn(4, 4)
    w, edges = torch.randn(4, conv.weight_numel), torch.tensor([[0, 1, 2, 0], [0, 0, 4, 4]])
    out = conv(h, a, w, edges, num_nodes=6)
    assert out.shape == (6, 8)
    assert out[[1, 2, 3, 5]].abs().max() == 0  # no incoming edges
    assert torch.allclose(out, conv.unfused(h, a, w, edges, num_nodes=6), atol=1e-6)


def test_gradcheck_and_double_backward(monkeypatch):
    """First and second derivatives (forces need the second) w.r.t. nodes, edge attributes and weights."""
    import equiv.tp._channelwise as cw

    monkeypatch.setattr(cw, "_CHUNK_BYTES", 1)  # one edge per chunk: exercises the chunked gather/scatter
    conv = MessagePassingTensorProduct("2x0e + 1x1o", "0e + 1o", filter_ir_out="0e + 1o + 1e")
    n, e = 3, 5
    h = conv.irreps_node.randn(n, -1, dtype=torch.float64).requires_grad_()
    a = torch.randn(e, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(e, conv.weight_numel, dtype=torch.float64, requires_grad=True)
    edges = _graph(n, e)

    def fn(h, a, w):
        return conv(h, a, w, edges)

    assert torch.autograd.gradcheck(fn, (h, a, w), fast_mode=True)
    assert torch.autograd.gradgradcheck(fn, (h, a, w), fast_mode=True)


def test_forces_match_unfused():
    """Energy -> forces -> loss -> parameter gradient through positions (double backward), fused vs unfused."""
    conv = MessagePassingTensorProduct("3x0e + 3x1o", "0e + 1o + 2e", filter_ir_out="0e")
    n, e = 5, 16
    pos = torch.randn(n, 3, dtype=torch.float64, requires_grad=True)
    edges = _graph(n, e)
    edges = edges[:, edges[0] != edges[1]]
    h = conv.irreps_node.randn(n, -1, dtype=torch.float64)
    theta = torch.randn(conv.weight_numel, dtype=torch.float64, requires_grad=True)
    results = []
    for fused in (True, False):
        vec = pos[edges[1]] - pos[edges[0]]
        sh = so3.spherical_harmonics([0, 1, 2], vec, normalize=True, normalization="component")
        w = theta * torch.exp(-vec.norm(dim=-1, keepdim=True))
        f = conv if fused else conv.unfused
        energy = f(h, sh, w, edges, n).sum()
        forces = -torch.autograd.grad(energy, pos, create_graph=True)[0]
        loss = forces.square().sum()
        results.append((forces.detach(), torch.autograd.grad(loss, theta)[0]))
    assert (results[0][0] - results[1][0]).abs().max() < 1e-10
    assert (results[0][1] - results[1][1]).abs().max() < 1e-10


def test_equivariant_and_permutation_equivariant(dtype):
    conv = MessagePassingTensorProduct("3x0e + 3x1o + 2x2e", "0e + 1o + 2e", filter_ir_out="0e + 1o + 1e + 2e")
    n, e = 5, 14
    h = conv.irreps_node.randn(n, -1, dtype=dtype)
    a = conv.irreps_edge.randn(e, -1, dtype=dtype)
    w = torch.randn(e, conv.weight_numel, dtype=dtype)
    edges = _graph(n, e)
    assert_equivariant(
        lambda h, a, w, ei: conv(h, a, w, ei),
        [h, a, w, edges],
        [conv.irreps_node, conv.irreps_edge, None, None],
        [conv.irreps_out],
        translations=False,
        permutations=True,
        node_inputs=(0,),
        index_inputs=(3,),
        node_outputs=(0,),
    )


def test_errors():
    tp = ChannelwiseTensorProduct("2x0e", "0e", "2x0e", shared_weights=False)
    h, a, w = torch.randn(3, 2), torch.randn(4, 1), torch.randn(4, tp.weight_numel)
    with pytest.raises(ValueError, match="edge_index must be"):
        message_passing(tp, h, a, w, torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        message_passing(tp, h, a, w, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="sender indices"):
        message_passing(tp, h, a, w, torch.tensor([[0, 1, 2, 3], [0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="edge_weights"):
        message_passing(tp, h, a, w[:, :1][:2], torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="shared_weights=False"):
        message_passing(ChannelwiseTensorProduct("2x0e", "0e", "2x0e"), h, a, w, torch.zeros(2, 4, dtype=torch.long))
    uvw = TensorProduct("2x0e", "1x0e", "2x0e", [(0, 0, 0, "uvw", True)], shared_weights=False)
    with pytest.raises(ValueError, match="'uvu'"):
        message_passing(uvw, h, a, torch.randn(4, 4), torch.zeros(2, 4, dtype=torch.long))
    conv = MessagePassingTensorProduct("2x0e", "0e", "2x0e")
    assert repr(conv) == "MessagePassingTensorProduct(2x0e x 1x0e -> 2x0e | 2 weights per edge)"
