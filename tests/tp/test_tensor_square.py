"""equiv.tp.TensorSquare: same irreps, weights and outputs as e3nn.o3.TensorSquare; equivariance;
the square has no repeated or vanishing paths; errors."""

import pytest
import torch

from equiv.so3 import Irreps
from equiv.symmetry import assert_equivariant
from equiv.tp import FullTensorProduct, TensorSquare

o3 = pytest.importorskip("e3nn.o3")

CASES = [
    ("2x1o", {}),
    ("3x0e + 2x1o + 1x2e", {}),
    ("3x0e + 2x1o + 1x2e", {"irrep_normalization": "norm"}),
    ("2x1o", {"irrep_normalization": "none"}),
    ("2x0e + 2x1o", {"filter_ir_out": ["0e", "1e"]}),
    ("3x0e + 2x1o + 1x2e", {"irreps_out": "4x0e + 3x1o + 2x2e + 1x1e"}),
    ("2x1o + 2x2e", {"irreps_out": "3x0e + 2x2e", "irrep_normalization": "norm"}),
]


@pytest.fixture
def default_dtype(dtype):
    """Build e3nn's modules in the test dtype (it computes its coefficients in the default dtype)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    yield dtype
    torch.set_default_dtype(old)


@pytest.mark.parametrize("irreps,kw", CASES)
def test_matches_e3nn(irreps, kw, default_dtype):
    dtype = default_dtype
    ours = TensorSquare(irreps, **kw)
    ref = o3.TensorSquare(irreps, **kw)
    assert ours.irreps_out == Irreps(str(ref.irreps_out)) and ours.weight_numel == ref.weight_numel
    if ours.weight_numel:
        with torch.no_grad():
            ours.weight.copy_(ref.weight)
    x = torch.randn(6, ours.irreps_in.dim, dtype=dtype, requires_grad=True)
    a, b = ours(x), ref(x)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert (a - b).abs().max() <= tol * max(1.0, b.abs().max().item())
    g = torch.randn_like(a)
    (ga,), (gb,) = torch.autograd.grad(a, x, g), torch.autograd.grad(b, x, g)
    assert (ga - gb).abs().max() <= tol * max(1.0, gb.abs().max().item())


def test_equivariant(dtype):
    for kw in ({}, {"irreps_out": "3x0e + 2x1o + 1x1e + 2x2e"}):
        sq = TensorSquare("2x0e + 2x1o + 1x2e", **kw).to(dtype)
        x = sq.irreps_in.randn(5, -1, dtype=dtype)
        assert_equivariant(sq, [x], [sq.irreps_in], [sq.irreps_out], translations=False)


def test_no_repeated_pairs():
    """The square keeps the unordered pairs of channels and, for a channel with itself, the symmetric
    part only (0e + 2e of a vector): its output is the symmetric square, n (n + 1) / 2 numbers."""
    irreps = Irreps("3x1o")
    sq, full = TensorSquare(irreps), FullTensorProduct(irreps, irreps)
    n = irreps.dim
    assert sq.irreps_out.dim == n * (n + 1) // 2  # the symmetric square of the 9-dim space
    assert full.irreps_out.dim == n * n
    x = irreps.randn(4, -1, dtype=torch.float64)
    assert sq(x).norm() > 0


def test_errors():
    with pytest.raises(ValueError, match="not both"):
        TensorSquare("1x1o", irreps_out="1x0e", filter_ir_out=["0e"])
    with pytest.raises(ValueError, match="irrep_normalization"):
        TensorSquare("1x1o", irrep_normalization="integral")
