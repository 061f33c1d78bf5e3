"""The dense small-problem form of the channelwise product agrees with the block-sparse engine."""

import pytest
import torch

from equiv.tp import TensorProduct
from equiv.tp._channelwise import channelwise_product
from equiv.tp._dense_channelwise import DenseChannelwise


def _tp(mode, has_weight):
    i1, i2, io = "4x0e + 4x1o", "1x0e + 1x1o", "4x0e + 4x1o + 4x1e"
    if mode == "uvv":
        i1, i2 = i2, i1
    ins = []
    for a in range(2):
        for b in range(2):
            for c, (l3, p3) in enumerate([(0, 1), (1, -1), (1, 1)]):
                la, lb = (a, b) if mode == "uvu" else (b, a)
                pa, pb = (-1) ** la, (-1) ** lb
                if abs(la - lb) <= l3 <= la + lb and pa * pb == p3:
                    ins.append((a, b, c, mode, has_weight))
    return TensorProduct(i1, i2, io, ins, shared_weights=False, internal_weights=False)


@pytest.mark.parametrize("mode", ["uvu", "uvv"])
@pytest.mark.parametrize("has_weight", [True, False])
def test_dense_matches_engine_and_is_differentiable(mode, has_weight):
    torch.manual_seed(0)
    tp = _tp(mode, has_weight).double()
    group = tp._groups[0]
    dense_form = DenseChannelwise(group.plan)
    n = 7
    x = torch.randn(n, group.plan.dim_x, group.mul, dtype=torch.float64, requires_grad=True)
    y = torch.randn(n, group.plan.dim_y, dtype=torch.float64, requires_grad=True)
    w = torch.randn(n, max(group.plan.num_weights, 0), group.mul, dtype=torch.float64, requires_grad=True)
    dense = dense_form(x, y, w)
    sparse = channelwise_product(group.plan, x, y, w)
    assert (dense - sparse).abs().max().item() < 1e-12
    inputs = (x, y, w) if has_weight else (x, y)
    fn = (lambda a, b, c: dense_form(a, b, c)) if has_weight else (lambda a, b: dense_form(a, b, w))
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


def _channelwise(L, C=16):
    from equiv.tp import ChannelwiseTensorProduct

    irreps = "+".join(f"{C}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1))
    sh = "+".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1))
    return ChannelwiseTensorProduct(irreps, sh, irreps, shared_weights=False)


def test_dense_form_is_chosen_for_small_products_only():
    assert _channelwise(1)._groups[0].dense is not None
    assert _channelwise(4)._groups[0].dense is None
    assert _channelwise(1)._groups[0].dense.use(64, 10000, 4)


def test_small_dense_rule_needs_the_tuned_allocator(monkeypatch):
    import equiv.tp._dense_channelwise as dcw

    dense2 = _channelwise(2)._groups[0].dense
    monkeypatch.setattr(dcw, "cpu_allocator_tuned", lambda: False)
    assert not dense2.use(16, 1024, 4)
    # with the tuned allocator: dense for small batches only (intermediates within SMALL_BYTES)
    monkeypatch.setattr(dcw, "cpu_allocator_tuned", lambda: True)
    assert dense2.use(16, 1024, 4) and not dense2.use(16, 10000, 4) and not dense2.use(64, 1024, 4)


@pytest.mark.parametrize("L", [1, 2])  # L = 2: the small-batch rule of the tuned allocator
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_dense_path_matches_engine_through_the_module(dtype, tol, L, monkeypatch):
    import equiv.tp._dense_channelwise as dcw

    monkeypatch.setattr(dcw, "cpu_allocator_tuned", lambda: True)
    torch.manual_seed(1)
    tp = _channelwise(L).to(dtype)
    assert tp._groups[0].dense.use(tp._groups[0].mul, 5, 4)
    x = torch.randn(5, tp.irreps_in1.dim, dtype=dtype)
    y = torch.randn(5, tp.irreps_in2.dim, dtype=dtype)
    w = torch.randn(5, tp.weight_numel, dtype=dtype)
    out = tp(x, y, w)
    tp._groups[0].dense = None
    ref = tp(x, y, w)
    assert (out - ref).abs().max().item() < tol * ref.abs().max().item()


@pytest.mark.parametrize("L", [1, 3])  # dense form and block-sparse engine
def test_empty_batch(L):
    tp = _channelwise(L)
    x = torch.randn(0, tp.irreps_in1.dim, requires_grad=True)
    out = tp(x, torch.randn(0, tp.irreps_in2.dim), torch.randn(0, tp.weight_numel))
    out.sum().backward()
    assert out.shape == (0, tp.irreps_out.dim) and x.grad.shape == x.shape
