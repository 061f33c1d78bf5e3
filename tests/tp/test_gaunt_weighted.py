"""The fused Gaunt kernels (grid route: `_gaunt_weighted`; matrix route: `_gaunt_matrix`), with the
per-degree weights applied inside their chunks, equal their unfused whole-batch formulas: forward,
backward for every subset of inputs, shared or per-sample weights, intermediates kept or recomputed,
and double backward."""

import pytest
import torch

import equiv.tp._gaunt_form as form
import equiv.tp._gaunt_matrix as matrix
from equiv.tp import GauntTensorProduct
from equiv.tp._gaunt_weighted import unfused_weighted_gaunt, weighted_gaunt

CASES = [
    ("3x0e + 3x1o + 3x2e + 3x3o", "0e + 1o + 2e", "3x0e + 3x1o + 3x2e + 3x3o"),  # uvu, edge harmonics
    ("3x0e + 3x2e", "3x1o + 3x2e", "3x1o + 3x2e + 3x3o"),  # uuu, missing degrees (grid only)
    ("2x3o + 2x1o + 2x0e", "2e + 0e", "2x2e + 2x0e + 2x5o"),  # unsorted irreps
    ("2x0e + 2x2e", "1o + 3o", "2x1o + 2x3o + 2x5o"),  # only even x, only odd y: one parity block each
]


def _route(method, irreps, monkeypatch, keep=True):
    """``(module, fused(x, y, w), unfused(x, y, w))`` of a route, with a few samples per chunk."""
    tp = GauntTensorProduct(*irreps, method=method, shared_weights=False)
    if method == "grid":
        monkeypatch.setattr(form, "_CHUNK_BYTES", 2000)
        if not keep:
            monkeypatch.setattr(form, "_KEEP_BYTES", 0)  # the backward recomputes the legs
        return tp, lambda x, y, w: weighted_gaunt(tp._plan, x, y, w), lambda x, y, w: unfused_weighted_gaunt(tp._plan, x, y, w)
    monkeypatch.setattr(matrix, "CHUNK_BYTES", 3000)
    if not keep:
        monkeypatch.setattr(matrix, "KEEP_BYTES", 0)  # the backward rebuilds the matrices
    fused = tp._generic  # captured before the swap below: the module's whole-batch path
    plain = GauntTensorProduct(*irreps, method="matrix", shared_weights=False)
    plain._fn = matrix._plain  # the reference: whole-batch operations, differentiated by autograd
    return tp, lambda x, y, w: matrix.weighted_gaunt_matrix(tp._layout, x, y, w, fused), plain._generic


def _inputs(tp, n, shared, need):
    x = tp.irreps_in1.randn(n, -1, dtype=torch.float64).requires_grad_(need[0])
    y = tp.irreps_in2.randn(n, -1, dtype=torch.float64).requires_grad_(need[1])
    w = torch.randn(1 if shared else n, tp.weight_numel, dtype=torch.float64).requires_grad_(need[2])
    return x, y, w


# the matrix route's fused kernel is for one-channel y (uuu takes the plain formula)
ROUTES = [("grid", c) for c in CASES] + [("matrix", c) for c in CASES if c is not CASES[1]]


@pytest.mark.parametrize("method, irreps", ROUTES)
@pytest.mark.parametrize("shared", [False, True])
@pytest.mark.parametrize("keep", [True, False])
@pytest.mark.parametrize("need", [(True, True, True), (True, False, False), (False, True, False), (False, False, True)])
def test_fused_forward_and_backward_match_unfused(method, irreps, shared, keep, need, monkeypatch):
    tp, fused, unfused = _route(method, irreps, monkeypatch, keep)
    x, y, w = _inputs(tp, 13, shared, need)
    z, ref = fused(x, y, w), unfused(x, y, w)
    assert (z - ref).abs().max() < 1e-12 * ref.abs().max()
    g = torch.randn_like(z)
    inputs = [v for v in (x, y, w) if v.requires_grad]
    got = torch.autograd.grad(z, inputs, g)
    want = torch.autograd.grad(ref, inputs, g)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        assert (a - b).abs().max() < 1e-12 * b.abs().max()


@pytest.mark.parametrize("method", ["grid", "matrix"])
def test_double_backward_matches_unfused(method, monkeypatch):
    tp, fused, unfused = _route(method, CASES[0], monkeypatch)
    x, y, w = _inputs(tp, 5, False, (True, True, True))
    v = torch.randn(5, tp.irreps_in1.dim, dtype=torch.float64)
    grads = []
    for fn in (fused, unfused):
        z = fn(x, y, w)
        gx, = torch.autograd.grad(z.square().sum(), x, create_graph=True)  # a force-like gradient
        grads.append(torch.autograd.grad((gx * v).sum(), (x, y, w)))
    for a, b in zip(*grads):
        assert (a - b).abs().max() < 1e-12 * b.abs().max()


@pytest.mark.parametrize("method, backward", [("grid", "_WeightedGauntBackward"), ("matrix", "_WeightedMatrixBackward")])
def test_module_uses_the_fused_product(method, backward):
    tp = GauntTensorProduct("2x0e + 2x1o + 2x2e", "0e + 1o", "2x0e + 2x1o + 2x2e", method=method, shared_weights=False)
    x, y, w = _inputs(tp, 4, False, (True, False, True))
    out = tp(x, y, w)
    fn = out.grad_fn if out.grad_fn.name() != "ViewBackward0" else out.grad_fn.next_functions[0][0]
    assert type(fn).__name__ == backward
    ref = GauntTensorProduct("2x0e + 2x1o + 2x2e", "0e + 1o", "2x0e + 2x1o + 2x2e", method="fourier", shared_weights=False)
    assert torch.allclose(out, ref.double()(x, y, w), atol=1e-13)


def test_gather_rows_both_paths_equal_a_plain_gather():
    from equiv.tp._gaunt_grid import gather_rows

    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 300, generator=g)
    for k in (5, 127, 128, 300):  # below and above the transpose-first threshold
        cols = torch.randperm(300, generator=g)[:k]
        got = gather_rows(x[3:30], cols)
        assert got.shape == (k, 27) and got.is_contiguous()
        assert torch.equal(got, x[3:30, cols].t())


@pytest.mark.parametrize("small_block", [0, 10**6])
@pytest.mark.parametrize("slab_min", [0, 10**6])
@pytest.mark.parametrize("shared", [False, True])
def test_matrix_kernel_variants(small_block, slab_min, shared, monkeypatch):
    # blocks of M accumulate by baddbmm_ (large) or a product and an addition (small); per-degree
    # weights multiply by broadcasting over channel slabs (many channels) or spread by a gather (few)
    monkeypatch.setattr(matrix, "SMALL_BLOCK", small_block)
    monkeypatch.setattr(matrix, "SLAB_MIN_CHANNELS", slab_min)
    tp, fused, unfused = _route("matrix", CASES[2], monkeypatch)
    x, y, w = _inputs(tp, 7, shared, (True, True, True))
    z, ref = fused(x, y, w), unfused(x, y, w)
    assert (z - ref).abs().max() < 1e-12 * ref.abs().max()
    g = torch.randn_like(z)
    for a, b in zip(torch.autograd.grad(z, (x, y, w), g), torch.autograd.grad(ref, (x, y, w), g)):
        assert (a - b).abs().max() < 1e-12 * b.abs().max()


@pytest.mark.parametrize("need", [(True, True, True), (True, False, False), (False, True, False), (False, False, True)])
def test_matrix_rows_recomputed_with_kept_matrices(need, monkeypatch):
    # large channel counts: the gathered rows exceed the budget while the matrices fit
    monkeypatch.setattr(matrix, "_keep_rows", lambda *args: False)
    tp, fused, unfused = _route("matrix", CASES[0], monkeypatch)
    x, y, w = _inputs(tp, 9, False, need)
    z, ref = fused(x, y, w), unfused(x, y, w)
    g = torch.randn_like(z)
    inputs = [v for v in (x, y, w) if v.requires_grad]
    for a, b in zip(torch.autograd.grad(z, inputs, g), torch.autograd.grad(ref, inputs, g)):
        assert (a - b).abs().max() < 1e-12 * b.abs().max()
