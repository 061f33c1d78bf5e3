"""The matrix route of the Gaunt product: its chunked kernel (weights fused, matrices kept or rebuilt)
equals the plain whole-batch formula, and the parity blocks cover every case of missing degrees."""

import pytest
import torch

import equiv.tp._gaunt_matrix as matrix
from equiv.tp import GauntTensorProduct

CASES = [
    ("3x0e + 3x1o + 3x2e + 3x3o", "0e + 1o + 2e + 3o", "3x0e + 3x1o + 3x2e + 3x3o + 3x4e"),  # edge harmonics
    ("2x0e + 2x2e", "1o + 3o", "2x1o + 2x3o + 2x5o"),  # only even x, only odd y: one parity block each
    ("2x3o + 2x1o + 2x0e", "2e + 0e", "2x2e + 2x0e + 2x5o"),  # unsorted irreps
]


def _inputs(tp, n, shared, need):
    x = tp.irreps_in1.randn(n, -1, dtype=torch.float64).requires_grad_(need[0])
    y = tp.irreps_in2.randn(n, -1, dtype=torch.float64).requires_grad_(need[1])
    w = torch.randn(1 if shared else n, tp.weight_numel, dtype=torch.float64).requires_grad_(need[2])
    return x, y, w


@pytest.mark.parametrize("irreps", CASES)
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("need", [(True, True, True), (True, False, False), (False, True, False), (False, False, True)])
def test_fused_kernel_matches_the_plain_formula(irreps, shared, keep, need, monkeypatch):
    monkeypatch.setattr(matrix, "CHUNK_BYTES", 3000)  # a few samples per chunk: several chunks
    if not keep:
        monkeypatch.setattr(matrix, "KEEP_BYTES", 0)  # the backward rebuilds the matrices
    tp = GauntTensorProduct(*irreps, method="matrix", shared_weights=False)
    x, y, w = _inputs(tp, 13, shared, need)
    z = matrix.weighted_gaunt_matrix(tp._layout, x, y, w, tp._generic)
    tp._fn = matrix._plain  # the reference: whole-batch operations, differentiated by autograd
    ref = tp._generic(x, y, w)
    assert (z - ref).abs().max() < 1e-12 * ref.abs().max()
    g = torch.randn_like(z)
    inputs = [v for v in (x, y, w) if v.requires_grad]
    got = torch.autograd.grad(z, inputs, g)
    want = torch.autograd.grad(ref, inputs, g)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        assert (a - b).abs().max() < 1e-12 * b.abs().max()


def test_double_backward_matches_the_plain_formula():
    tp = GauntTensorProduct(*CASES[0], method="matrix", shared_weights=False)
    x, y, w = _inputs(tp, 5, False, (True, True, True))
    v = torch.randn(5, tp.irreps_in1.dim, dtype=torch.float64)
    grads = []
    for fused in (True, False):
        if not fused:
            tp._fn = matrix._plain
        z = matrix.weighted_gaunt_matrix(tp._layout, x, y, w, tp._generic) if fused else tp._generic(x, y, w)
        gx, = torch.autograd.grad(z.square().sum(), x, create_graph=True)  # a force-like gradient
        grads.append(torch.autograd.grad((gx * v).sum(), (x, y, w)))
    for a, b in zip(*grads):
        assert (a - b).abs().max() < 1e-12 * b.abs().max()


def test_module_uses_the_fused_kernel_and_uuu_the_plain_formula():
    tp = GauntTensorProduct("2x0e + 2x1o + 2x2e", "0e + 1o", "2x0e + 2x1o + 2x2e", method="matrix")
    out = tp(torch.randn(4, tp.irreps_in1.dim), torch.randn(4, 4))
    fn = out.grad_fn if out.grad_fn.name() != "ViewBackward0" else out.grad_fn.next_functions[0][0]
    assert type(fn).__name__ == "_WeightedMatrixBackward"
    uuu = GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o", method="matrix")
    assert uuu._layout is None
    grid = GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o", method="grid")
    x, y = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    assert (uuu.double()(x, y) - grid.double()(x, y)).abs().max() < 1e-12


def test_plan_parity_blocks_and_sparsity():
    plan = matrix.matrix_plan(tuple(range(7)), tuple(range(7)), tuple(range(7)))
    assert plan.rows == (49, 49, 49) and plan.even == (28, 28, 28)
    dense = plan.rows[0] * plan.rows[1] * plan.rows[2]
    assert plan.build_macs * 2 <= dense + plan.rows[1] * plan.rows[0]  # the parity blocks halve the build
    # every non-zero Gaunt coefficient lies in a block of the build
    g = torch.as_tensor(plan._g)
    assert g.count_nonzero() == plan.nnz
    total = sum(torch.as_tensor(m).count_nonzero() for m in plan._build)
    assert total == plan.nnz
