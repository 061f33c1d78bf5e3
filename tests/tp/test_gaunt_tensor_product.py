"""GauntTensorProduct: grid == Fourier == Clebsch-Gordan product with Gaunt path weights; parity rules."""

import pytest
import torch

from equiv import so3
from equiv.symmetry import assert_equivariant
from equiv.tp import GauntTensorProduct, TensorProduct, gaunt_path_coefficient

CASES = [
    ("4x0e + 4x1o + 4x2e + 4x3o", "0e + 1o + 2e", "4x0e + 4x1o + 4x2e + 4x3o"),  # uvu, edge harmonics
    ("3x0e + 3x2e", "3x1o + 3x2e", "3x1o + 3x2e + 3x3o"),  # uuu, missing degrees
    ("2x1e + 2x2o", "1o + 3o", "2x0o + 2x2o + 2x4o"),  # pseudo-harmonic input (s1 = -1)
    ("2x3o + 2x1o + 2x0e", "2e + 0e", "2x2e + 2x0e + 2x5o"),  # unsorted irreps
]


@pytest.mark.parametrize("irreps", CASES)
@pytest.mark.parametrize("method", ["grid", "fourier", "matrix"])
@pytest.mark.parametrize("chunked", [False, True])
def test_matches_clebsch_gordan_with_gaunt_weights(irreps, method, chunked, dtype, monkeypatch):
    if chunked:  # many chunks: the mul_ir gathers and write-backs of every chunk
        import equiv.tp._gaunt_form as form
        import equiv.tp._gaunt_matrix as matrix

        monkeypatch.setattr(form, "_CHUNK_BYTES", 1)
        monkeypatch.setattr(matrix, "CHUNK_BYTES", 1)
    tp = GauntTensorProduct(*irreps, method=method, shared_weights=False).to(dtype)
    cg = TensorProduct(*irreps, tp.cg_instructions(), irrep_normalization="none", path_normalization="none",
                       shared_weights=False).to(dtype)
    n = 6
    x = tp.irreps_in1.randn(n, -1, dtype=dtype)
    y = tp.irreps_in2.randn(n, -1, dtype=dtype)
    w = torch.randn(n, tp.weight_numel, dtype=dtype)
    out, ref = tp(x, y, w), cg(x, y, tp.cg_weights(w))
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert (out - ref).abs().max() < tol * ref.abs().max()


def test_grid_and_fourier_agree_at_high_degree():
    irreps, sh = "2x0e + 2x3o + 2x6e + 2x9o", "0e + 1o + 4e + 7o"
    g = GauntTensorProduct(irreps, sh, irreps, method="grid")
    f = GauntTensorProduct(irreps, sh, irreps, method="fourier")
    x = g.irreps_in1.randn(4, -1, dtype=torch.float64)
    y = g.irreps_in2.randn(4, -1, dtype=torch.float64)
    a, b = g.double()(x, y), f.double()(x, y)
    assert (a - b).abs().max() < 1e-10 * a.abs().max()


def test_path_coefficient_is_gaunt_over_clebsch_gordan():
    for l1, l2, l3 in [(1, 1, 2), (2, 3, 3), (4, 2, 6), (1, 1, 1)]:
        c = gaunt_path_coefficient(l1, l2, l3)
        G = so3.gaunt(l1, l2, l3, dtype=torch.float64)
        C = so3.clebsch_gordan(l1, l2, l3, dtype=torch.float64)
        assert (G - c * C).abs().max() < 1e-14
    assert gaunt_path_coefficient(1, 1, 1) == 0.0


@pytest.mark.parametrize("method", ["grid", "fourier", "matrix"])
def test_equivariant(method, dtype):
    tp = GauntTensorProduct("3x0e + 3x1o + 3x2e", "0e + 1o + 2e + 3o", "3x0e + 3x1o + 3x2e + 3x3o", method=method)
    tp = tp.to(dtype)
    with torch.no_grad():
        tp.weight.normal_()
    x = tp.irreps_in1.randn(5, -1, dtype=dtype)
    y = tp.irreps_in2.randn(5, -1, dtype=dtype)
    assert_equivariant(tp, [x, y], [tp.irreps_in1, tp.irreps_in2], [tp.irreps_out], translations=False)


@pytest.mark.parametrize("method", ["grid", "fourier", "matrix"])
@pytest.mark.parametrize("keep", [True, False])
def test_gradcheck_and_double_backward(method, keep, monkeypatch):
    import equiv.tp._gaunt_form as form
    import equiv.tp._gaunt_matrix as matrix

    monkeypatch.setattr(form, "_CHUNK_BYTES", 1)  # one sample per chunk
    monkeypatch.setattr(matrix, "CHUNK_BYTES", 1)
    if not keep:  # intermediates recomputed in the backward
        monkeypatch.setattr(form, "_KEEP_BYTES", 0)
        monkeypatch.setattr(matrix, "KEEP_BYTES", 0)
    tp = GauntTensorProduct("2x0e + 2x1o + 2x2e", "0e + 1o", "2x0e + 2x1o + 2x2e", method=method, shared_weights=False)
    x = tp.irreps_in1.randn(3, -1, dtype=torch.float64).requires_grad_()
    y = tp.irreps_in2.randn(3, -1, dtype=torch.float64).requires_grad_()
    w = torch.randn(3, tp.weight_numel, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tp, (x, y, w), fast_mode=True)
    assert torch.autograd.gradgradcheck(tp, (x, y, w), fast_mode=True)


@pytest.mark.parametrize("method", ["grid", "fourier", "matrix"])
def test_gradcheck_shared_weights(method):
    tp = GauntTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o", method=method, shared_weights=True,
                            internal_weights=False)
    x = tp.irreps_in1.randn(3, -1, dtype=torch.float64).requires_grad_()
    y = tp.irreps_in2.randn(3, -1, dtype=torch.float64).requires_grad_()
    w = torch.randn(tp.weight_numel, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tp, (x, y, w))
    assert torch.autograd.gradgradcheck(tp, (x, y, w))


@pytest.mark.parametrize("method", ["grid", "fourier", "matrix"])
@pytest.mark.parametrize("shared", [True, False])
def test_empty_batch_and_broadcast_batch(method, shared):
    tp = GauntTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o", method=method, shared_weights=shared)
    extra = () if shared else (torch.randn(0, tp.weight_numel),)
    x = torch.randn(0, tp.irreps_in1.dim, requires_grad=True)
    out = tp(x, torch.randn(0, 4), *extra)
    out.sum().backward()
    assert out.shape == (0, tp.irreps_out.dim) and x.grad.shape == x.shape
    x, y = torch.randn(2, 3, tp.irreps_in1.dim), torch.randn(1, 4)  # y broadcast over the batch
    extra = () if shared else (torch.randn(2, 3, tp.weight_numel),)
    out = tp(x, y, *extra)
    flat = tp(x.reshape(6, -1), y.expand(6, 4), *(e.reshape(6, -1) for e in extra))
    assert torch.allclose(out.reshape(6, -1), flat, atol=1e-6)


def test_shared_internal_weights_and_repr():
    tp = GauntTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o", method="grid")
    assert tp.weight_numel == 2 * 2 + 1 * 2 + 2 * 2
    assert isinstance(tp.weight, torch.nn.Parameter) and torch.all(tp.weight == 1)
    assert repr(tp) == "GauntTensorProduct(2x0e+2x1o x 1x0e+1x1o -> 2x0e+2x1o | method='grid' | 10 weights)"
    x, y = torch.randn(7, 3, 8), torch.randn(7, 3, 4)
    assert tp(x, y).shape == (7, 3, 8)
    tp(x, y).square().sum().backward()
    assert tp.weight.grad is not None and tp.weight.grad.abs().sum() > 0


def test_auto_method():
    assert GauntTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o").method == "matrix"  # one-channel y
    assert GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o").method == "grid"  # uuu
    def signal(c, lmax):
        return " + ".join(f"{c}x{l}{'eo'[l % 2]}" for l in range(lmax + 1))

    # L**3 <= 45 C: up to L = 8 for 16 channels, L = 14 for 64
    assert GauntTensorProduct(signal(16, 8), "0e + 1o", signal(16, 8)).method == "matrix"
    assert GauntTensorProduct(signal(16, 9), "0e + 1o", signal(16, 9)).method == "grid"
    assert GauntTensorProduct(signal(64, 14), "0e + 1o", signal(64, 14)).method == "matrix"
    assert GauntTensorProduct(signal(64, 15), "0e + 1o", signal(64, 15)).method == "grid"


def test_parity_restriction_and_errors():
    with pytest.raises(ValueError, match="only l1\\+l2\\+l3 even"):
        GauntTensorProduct("4x1o", "1o", "4x1e")  # the cross product is an odd path
    with pytest.raises(ValueError, match="unreachable"):
        GauntTensorProduct("4x1o", "1o", "4x3o")
    with pytest.raises(ValueError, match="repeats a degree"):
        GauntTensorProduct("2x1o + 2x1e", "0e", "2x1o")
    with pytest.raises(ValueError, match="parities s\\*\\(-1\\)\\^l"):
        GauntTensorProduct("2x0e + 2x1e", "0e", "2x0e")
    with pytest.raises(ValueError, match="one multiplicity"):
        GauntTensorProduct("2x0e + 3x1o", "0e", "2x0e")
    with pytest.raises(ValueError, match="in \\[1, 4\\]"):
        GauntTensorProduct("4x0e", "2x0e", "4x0e")
    with pytest.raises(ValueError, match="method"):
        GauntTensorProduct("4x0e", "0e", "4x0e", method="fft")
    tp = GauntTensorProduct("4x0e", "0e", "4x0e", shared_weights=False)
    with pytest.raises(ValueError, match="weight is required"):
        tp(torch.randn(2, 4), torch.randn(2, 1))
    with pytest.raises(ValueError, match="last dimension 4"):
        tp(torch.randn(2, 5), torch.randn(2, 1), torch.randn(2, tp.weight_numel))
    for method in ("grid", "fourier", "matrix"):  # mixed dtypes: a clear error, not a kernel's
        mixed = GauntTensorProduct("4x0e + 4x1o", "0e + 1o", "4x0e + 4x1o", method=method)
        with pytest.raises(ValueError, match="same floating-point dtype"):
            mixed(torch.randn(3, 16), torch.randn(3, 4, dtype=torch.float64))
        with pytest.raises(ValueError, match="same floating-point dtype"):
            mixed(torch.ones(3, 16, dtype=torch.long), torch.ones(3, 4, dtype=torch.long))


def test_torch_compile_fullgraph():
    tp = GauntTensorProduct("2x0e + 2x1o + 2x2e", "0e + 1o", "2x0e + 2x1o + 2x2e")
    x, y = torch.randn(4, 18, requires_grad=True), torch.randn(4, 4)
    eager = tp(x, y)
    compiled = torch.compile(tp, fullgraph=True, backend="aot_eager")(x, y)
    assert (eager - compiled).abs().max() < 1e-5
    g1 = torch.autograd.grad(eager.square().sum(), x)[0]
    g2 = torch.autograd.grad(compiled.square().sum(), x)[0]
    assert (g1 - g2).abs().max() < 1e-4


def test_weights_must_match_the_inputs_dtype():
    tp = GauntTensorProduct("4x0e + 4x1o", "0e + 1o", "4x0e + 4x1o", shared_weights=False)
    x, y = torch.randn(3, 16), torch.randn(3, 4)
    with pytest.raises(ValueError, match="weights"):
        tp(x, y, torch.randn(3, tp.weight_numel, dtype=torch.float64))
    internal = GauntTensorProduct("4x0e + 4x1o", "0e + 1o", "4x0e + 4x1o")
    with pytest.raises(ValueError, match="convert the module"):
        internal(x.double(), y.double())
    assert internal.double()(x.double(), y.double()).dtype == torch.float64
