"""equiv.nn.Linear: same weights -> same output as e3nn.o3.Linear; equivariance; errors."""

import pytest
import torch

from equiv.nn import Linear
from equiv.symmetry import assert_equivariant

o3 = pytest.importorskip("e3nn.o3")


@pytest.mark.parametrize("irreps_in,irreps_out,kw", [
    ("4x0e + 16x1o", "8x0e + 8x1o", {}),
    ("3x0e + 7x0e + 2x1o + 1x2e", "5x0e + 3x1o + 2x2e + 1x1e", {}),
    ("3x0e + 2x1o", "4x0e + 2x1o", {"biases": True}),
    ("3x0e + 4x0e + 2x1o", "4x0e + 2x1o", {"path_normalization": "path"}),
    ("3x0e + 4x0e", "4x0e + 2x0e", {"instructions": [(0, 0), (1, 1), (1, 0)], "biases": [True, False]}),
    ("64x0e + 64x1o + 48x2e + 4x2e", "32x0e + 64x1o + 40x2e", {}),  # large and small paths: both routes
])
def test_matches_e3nn(irreps_in, irreps_out, kw, dtype):
    ours = Linear(irreps_in, irreps_out, **kw).to(dtype)
    ref = o3.Linear(irreps_in, irreps_out, **kw).to(dtype)
    assert ours.weight_numel == ref.weight_numel and ours.bias_numel == ref.bias_numel
    with torch.no_grad():
        ours.weight.copy_(ref.weight)
        if ours.bias_numel:
            ref.bias.normal_()
            ours.bias.copy_(ref.bias)
    x = torch.randn(6, ours.irreps_in.dim, dtype=dtype, requires_grad=True)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    a, b = ours(x), ref(x)
    assert (a - b).abs().max() < tol * max(1.0, b.abs().max().item())
    assert torch.equal(ours.output_mask, ref.output_mask)
    probe = torch.randn_like(a)
    ga = torch.autograd.grad((a * probe).sum(), [x, ours.weight])
    gb = torch.autograd.grad((b * probe).sum(), [x, ref.weight])
    for u, v in zip(ga, gb):
        assert (u - v).abs().max() < tol * max(1.0, v.abs().max().item())


def test_both_product_routes_are_exercised():
    """Small multiplicities go through x @ (W kron I_d), large ones through the per-component product."""
    from equiv.nn._linear import _kronecker_pays

    assert _kronecker_pays(4, 2, 5) and _kronecker_pays(16, 32, 3)
    assert not _kronecker_pays(64, 64, 3) and not _kronecker_pays(48, 40, 5)


def test_compiles_without_graph_breaks():
    lin = Linear("32x0e + 16x1o + 8x2e + 64x1e", "16x0e + 32x1o + 4x2e + 64x1e", biases=True)
    x = torch.randn(7, lin.irreps_in.dim)
    assert torch.allclose(torch.compile(lin, fullgraph=True)(x), lin(x), atol=1e-5)


def test_per_sample_weights_match_e3nn():
    ours = Linear("3x0e + 2x1o", "2x0e + 2x1o", shared_weights=False)
    ref = o3.Linear("3x0e + 2x1o", "2x0e + 2x1o", shared_weights=False).double()
    x = torch.randn(5, 9, dtype=torch.float64)
    w = torch.randn(5, ours.weight_numel, dtype=torch.float64)
    assert (ours(x, w) - ref(x, w)).abs().max() < 1e-12


def test_equivariant(dtype):
    lin = Linear("3x0e + 2x1o + 2x2e + 1x1e", "2x0e + 3x1o + 1x2e + 2x1e", biases=True).to(dtype)
    x = lin.irreps_in.randn(7, -1, dtype=dtype)
    assert_equivariant(lin, [x], [lin.irreps_in], [lin.irreps_out], translations=False)


def test_weight_views_and_batch_shape():
    lin = Linear("2x0e + 1x1o", "3x0e + 2x1o")
    assert [tuple(v.shape) for v in lin.weight_views()] == [(2, 3), (1, 2)]
    assert lin(torch.randn(4, 5, 5)).shape == (4, 5, 9)


def test_errors():
    with pytest.raises(ValueError, match="irreps must be equal"):
        Linear("1x0e", "1x1o", instructions=[(0, 0)])
    with pytest.raises(ValueError, match="only 0e outputs"):
        Linear("1x1o", "1x1o", biases=[True])
    with pytest.raises(ValueError, match="irreps_in.dim=4"):
        Linear("1x0e + 1x1o", "1x0e")(torch.randn(3, 5))
    with pytest.raises(ValueError, match="weight is required"):
        Linear("1x0e", "1x0e", shared_weights=False)(torch.randn(2, 1))
    assert repr(Linear("2x0e", "3x0e")) == "Linear(2x0e -> 3x0e | 6 weights)"
