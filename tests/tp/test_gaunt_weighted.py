"""The grid Gaunt product with per-degree weights fused into its chunks equals the unfused formula."""

import pytest
import torch

import equiv.tp._gaunt_form as form
from equiv.tp import GauntTensorProduct
from equiv.tp._gaunt_weighted import unfused_weighted_gaunt, weighted_gaunt

CASES = [
    ("3x0e + 3x1o + 3x2e + 3x3o", "0e + 1o + 2e"),  # uvu, edge harmonics
    ("3x0e + 3x2e", "3x1o + 3x2e"),  # uuu, missing degrees
    ("2x3o + 2x1o + 2x0e", "2e + 0e"),  # unsorted irreps
]
OUT = {CASES[0]: "3x0e + 3x1o + 3x2e + 3x3o", CASES[1]: "3x1o + 3x2e + 3x3o", CASES[2]: "2x2e + 2x0e + 2x5o"}


def _inputs(tp, n, shared, need):
    x = tp.irreps_in1.randn(n, -1, dtype=torch.float64).requires_grad_(need[0])
    y = tp.irreps_in2.randn(n, -1, dtype=torch.float64).requires_grad_(need[1])
    w = torch.randn(1 if shared else n, tp.weight_numel, dtype=torch.float64).requires_grad_(need[2])
    return x, y, w


@pytest.mark.parametrize("irreps", CASES)
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("need", [(True, True, True), (True, False, False), (False, True, False), (False, False, True)])
def test_fused_forward_and_backward_match_unfused(irreps, shared, keep, need, monkeypatch):
    monkeypatch.setattr(form, "_CHUNK_BYTES", 2000)  # a few samples per chunk: several chunks
    if not keep:
        monkeypatch.setattr(form, "_KEEP_BYTES", 0)  # the backward recomputes the legs
    tp = GauntTensorProduct(*irreps, OUT[irreps], method="grid", shared_weights=False)
    x, y, w = _inputs(tp, 13, shared, need)
    z, ref = weighted_gaunt(tp._plan, x, y, w), unfused_weighted_gaunt(tp._plan, x, y, w)
    assert (z - ref).abs().max() < 1e-12 * ref.abs().max()
    g = torch.randn_like(z)
    inputs = [v for v in (x, y, w) if v.requires_grad]
    got = torch.autograd.grad(z, inputs, g)
    want = torch.autograd.grad(ref, inputs, g)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        assert (a - b).abs().max() < 1e-12 * b.abs().max()


def test_double_backward_matches_unfused():
    tp = GauntTensorProduct(*CASES[0], OUT[CASES[0]], method="grid", shared_weights=False)
    x, y, w = _inputs(tp, 5, False, (True, True, True))
    v = torch.randn(5, tp.irreps_in1.dim, dtype=torch.float64)
    grads = []
    for fn in (weighted_gaunt, unfused_weighted_gaunt):
        z = fn(tp._plan, x, y, w)
        gx, = torch.autograd.grad(z.square().sum(), x, create_graph=True)  # a force-like gradient
        grads.append(torch.autograd.grad((gx * v).sum(), (x, y, w)))
    for a, b in zip(*grads):
        assert (a - b).abs().max() < 1e-12 * b.abs().max()


def test_module_uses_the_fused_product():
    tp = GauntTensorProduct("2x0e + 2x1o + 2x2e", "0e + 1o", "2x0e + 2x1o + 2x2e", method="grid", shared_weights=False)
    x, y, w = _inputs(tp, 4, False, (True, False, True))
    out = tp(x, y, w)
    fn = out.grad_fn if out.grad_fn.name() != "ViewBackward0" else out.grad_fn.next_functions[0][0]
    assert type(fn).__name__ == "_WeightedGauntBackward"
    assert torch.allclose(out, unfused_weighted_gaunt(tp._plan, x, y, w), atol=1e-13)


def test_gather_rows_both_paths_equal_a_plain_gather():
    from equiv.tp._gaunt_grid import gather_rows

    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 300, generator=g)
    for k in (5, 127, 128, 300):  # below and above the transpose-first threshold
        cols = torch.randperm(300, generator=g)[:k]
        got = gather_rows(x[3:30], cols)
        assert got.shape == (k, 27) and got.is_contiguous()
        assert torch.equal(got, x[3:30, cols].t())
