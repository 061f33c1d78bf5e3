"""The fused double backward of the channelwise engine (`_second`) against the composed one (three
products and three VJPs), for every combination of inputs that need gradients, shared and per-sample
weights, unweighted paths, grouped and per-block output groups, and fused gather/scatter."""

import itertools

import numpy as np
import pytest
import torch

import equiv.tp._channelwise as cw
from equiv.so3 import Irreps
from equiv.tp import ChannelwiseTensorProduct, TensorProduct

F64 = torch.float64


def _manual_plan(unweighted: bool):
    eye = np.eye(3)
    paths = [cw.ChannelwisePath(0, 1, 0, 1, 0, 1, 0, np.ones((1, 1, 1))),
             cw.ChannelwisePath(1, 3, 1, 3, 0, 1, -1 if unweighted else 1, eye.reshape(3, 3, 1) / np.sqrt(3)),
             cw.ChannelwisePath(0, 1, 1, 3, 1, 3, 2, eye.reshape(1, 3, 3)),
             cw.ChannelwisePath(5, 1, 0, 1, 4, 1, 3, np.full((1, 1, 1), 0.5))]
    return cw.ChannelwisePlan(paths, 6, 4, 5, 4)


def _module_plan():
    tp = ChannelwiseTensorProduct("3x0e + 3x1o + 3x2e", "0e + 1o + 2e", shared_weights=False, internal_weights=False)
    return tp._groups[0].plan


def _summed_plan():
    """Every path into one output block per irrep (the Gaunt-MACE layout): large multi-block groups."""
    i1, i2 = Irreps("2x0e + 2x1o + 2x2e + 2x3o"), Irreps("0e + 1o + 2e + 3o")
    ins = [(a, b, c, "uvu", True) for a, (_, x) in enumerate(i1) for b, (_, y) in enumerate(i2)
           for c, (_, z) in enumerate(i1) if z in x * y]
    return TensorProduct(i1, i2, i1, ins, shared_weights=False, internal_weights=False)._groups[0].plan


PLANS = {"module": _module_plan, "summed": _summed_plan, "manual": lambda: _manual_plan(False), "unweighted": lambda: _manual_plan(True)}


def _second_derivatives(plan, fused, shared, gather, needs, used, seed=0):
    """Gradients of <c, first derivatives> w.r.t. x, y, w, g with the fused or composed double backward."""
    gen = torch.Generator().manual_seed(seed)
    n, u, nodes = 7, 3, 4
    nx = nodes if gather else n
    x = torch.randn(nx, plan.dim_x, u, dtype=F64, generator=gen).requires_grad_(needs[0])
    y = torch.randn(n, plan.dim_y, dtype=F64, generator=gen).requires_grad_(needs[1])
    w = torch.randn(1 if shared else n, plan.num_weights, u, dtype=F64, generator=gen).requires_grad_(needs[2])
    idx_x = torch.randint(0, nodes, (n,), generator=gen) if gather else None
    idx_out = torch.randint(0, nodes, (n,), generator=gen) if gather else None
    g = torch.randn(nodes if gather else n, plan.dim_g, u, dtype=F64, generator=gen).requires_grad_(True)
    inputs = [t for t, need in zip((x, y, w), needs) if need]
    old = cw.FUSED_DOUBLE_BACKWARD
    cw.FUSED_DOUBLE_BACKWARD = fused
    try:
        out = cw.channelwise_product(plan, x, y, w, idx_x, idx_out, nodes if gather else None)
        firsts = torch.autograd.grad(out, inputs, g, create_graph=True)
        loss = sum((torch.randn(f.shape, dtype=F64, generator=gen) * f).sum()
                   for f, use in zip(firsts, [k for k, need in zip(used, needs) if need]) if use)
        if not torch.is_tensor(loss) or not loss.requires_grad:
            return None
        return torch.autograd.grad(loss, inputs + [g], allow_unused=True)
    finally:
        cw.FUSED_DOUBLE_BACKWARD = old


CASES = [(name, shared, gather, needs, used)
         for name in PLANS
         for shared in (False, True)
         for gather in (False, True)
         for needs in itertools.product((False, True), repeat=3) if any(needs)
         for used in ((True, True, True), (False, True, True), (True, False, False))]


@pytest.mark.parametrize("name,shared,gather,needs,used", CASES)
def test_fused_double_backward_matches_composed(name, shared, gather, needs, used, monkeypatch):
    if gather:  # small chunks: the chunk loop's gathers and scatters
        monkeypatch.setattr(cw, "_CHUNK_BYTES", 1)
    plan = PLANS[name]()
    fused = _second_derivatives(plan, True, shared, gather, needs, used)
    composed = _second_derivatives(plan, False, shared, gather, needs, used)
    assert (fused is None) == (composed is None)
    if fused is None:
        return
    for a, b in zip(fused, composed):
        assert (a is None) == (b is None) or (a if a is not None else b).abs().max() == 0
        if a is not None and b is not None:
            assert a.shape == b.shape
            assert (a - b).abs().max() <= 1e-12 * (1 + b.abs().max())


def test_plans_cover_both_kernels():
    """The summed plan has grouped output groups (index_add kernels in the composed VJP), the others
    per-block groups; the manual ones non-direct weights and unweighted paths."""
    assert any(cw._grouped(g) for g in _summed_plan().groups)
    assert not any(cw._grouped(g) for g in _module_plan().groups)
    manual = _manual_plan(True)
    assert manual.has_unweighted and not manual.direct_w
    assert not any(cw._grouped(g) for g in manual.groups)


def test_fused_gradgradcheck():
    plan = _module_plan()
    x = torch.randn(3, plan.dim_x, 2, dtype=F64, requires_grad=True)
    y = torch.randn(3, plan.dim_y, dtype=F64, requires_grad=True)
    w = torch.randn(3, plan.num_weights, 2, dtype=F64, requires_grad=True)
    assert cw.FUSED_DOUBLE_BACKWARD
    assert torch.autograd.gradgradcheck(lambda *a: cw.channelwise_product(plan, *a), (x, y, w), fast_mode=True)
