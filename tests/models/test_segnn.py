import pytest
import torch

from equiv.models.segnn import SEGNN, SteerableTensorProduct, weight_balanced_irreps
from equiv.symmetry import assert_equivariant, equivariance_error

from nbody_case import KINDS, PERM, nbody_inputs


_inputs = nbody_inputs


@pytest.mark.parametrize("product", ["cg", "gaunt"])
def test_segnn_is_e3_equivariant(product):
    model = SEGNN(hidden=8, num_layers=2, product=product).double()
    rep = assert_equivariant(model, list(_inputs()), *KINDS, group="O(3)", **PERM,
                             generator=torch.Generator().manual_seed(0))
    assert rep.max_relative_error < 1e-12


def test_lmax2_is_equivariant():
    model = SEGNN(hidden=8, num_layers=1, lmax=2, lmax_attr=2).double()
    assert str(model.hidden_irreps) == "3x0e+3x1o+3x2e"  # 11 paths: 11 n^2 >= 64
    assert_equivariant(model, list(_inputs(seed=1)), *KINDS, group="O(3)", **PERM)


def test_weight_balanced_irreps_matches_segnn():
    # 64 features with lmax 1 attributes: 4 n^2 paths >= 64^2 -> n = 32 (SEGNN's N-body model)
    assert str(weight_balanced_irreps(64, "1x0e + 1x1o", 1)) == "32x0e+32x1o"
    assert str(weight_balanced_irreps(64, "1x0e", 0)) == "64x0e"


def test_gate_and_bias_are_equivariant_and_scalar_only():
    tp = SteerableTensorProduct("4x0e + 2x1o", "1x0e + 1x1o", "3x0e + 2x1o + 1x2e", gate=True).double()
    assert tp.num_bias == 3 + 3  # scalars and gates
    x = torch.randn(6, 10, dtype=torch.float64)
    a = torch.randn(6, 4, dtype=torch.float64)
    assert_equivariant(tp, [x, a], ["4x0e + 2x1o", "1x0e + 1x1o"], ["3x0e + 2x1o + 1x2e"])
    assert tp(x, a).shape == (6, 3 + 6 + 5)
    assert "4x0e+2x1o x 1x0e+1x1o -> 3x0e+2x1o+1x2e, product='cg', gate=True" in repr(tp)


def test_batched_equals_single_and_dtypes(dtype):
    model = SEGNN(hidden=8, num_layers=1).to(dtype)
    x, v, q = _inputs(batch=3, dtype=dtype)
    out = model(x, v, q)
    assert out.shape == (3, 5, 3) and out.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out[2], model(x[2], v[2], q[2]), atol=tol, rtol=tol)


def test_repr_reset_and_errors():
    model = SEGNN(hidden=8, num_layers=1)
    assert repr(model).startswith("SEGNN(\n  hidden=8 (4x0e+4x1o), num_layers=1, lmax=1, lmax_attr=1, product='cg'")
    w = model.embedding.tp.weight.clone()
    model.reset_parameters()
    assert not torch.equal(w, model.embedding.tp.weight)
    with pytest.raises(ValueError, match="product"):
        SEGNN(product="fourier")
    with pytest.raises(ValueError, match="lmax"):
        SEGNN(lmax=-1)
    with pytest.raises(ValueError, match="gate=True"):
        SteerableTensorProduct("1x0e", "1x0e", "1x1o", gate=True)
