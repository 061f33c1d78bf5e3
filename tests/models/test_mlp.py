import pytest
import torch

from equiv.models.mlp import NBodyMLP
from equiv.symmetry import assert_equivariant, equivariance_error



def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    v = torch.randn(5, 3, generator=g, dtype=torch.float64)
    q = (torch.randint(0, 2, (5, 1), generator=g) * 2 - 1).double()
    return x, v, q


KINDS = (["cartesian_points", "cartesian_vectors", None], ["cartesian_points"])


@pytest.mark.parametrize(
    "kwargs, what",
    [
        (dict(group="SO(3)", translations=False), "rotation"),
        (dict(group="SO(3)", translations=True), "translation"),
        (dict(group="SO(3)", translations=False, permutations=True, node_inputs=(0, 1, 2), node_outputs=(0,)),
         "permutation"),
    ],
)
def test_baseline_fails_assert_equivariant(kwargs, what):
    model = NBodyMLP(hidden=32, num_layers=2).double()
    with pytest.raises(AssertionError):
        assert_equivariant(model, list(_inputs()), *KINDS, generator=torch.Generator().manual_seed(1), **kwargs)
    rep = equivariance_error(model, list(_inputs()), *KINDS, generator=torch.Generator().manual_seed(1), **kwargs)
    assert rep.max_relative_error > 1e-4, what


def test_shapes_dtypes_and_repr(dtype):
    model = NBodyMLP(hidden=16, num_layers=2).to(dtype)
    x = torch.randn(3, 5, 3, dtype=dtype)
    out = model(x, x, torch.ones(3, 5, dtype=dtype))
    assert out.shape == (3, 5, 3) and out.dtype == dtype
    assert torch.allclose(model(x[0], x[0], torch.ones(5, 1, dtype=dtype)), out[0], atol=1e-5)
    assert repr(model).startswith("NBodyMLP(\n  num_particles=5, hidden=16, num_layers=2")


def test_errors_and_reset():
    with pytest.raises(ValueError, match="expected 5 particles"):
        NBodyMLP()(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="hidden"):
        NBodyMLP(hidden=0)
    model = NBodyMLP(hidden=4, num_layers=1)
    w = model.net[0].weight.clone()
    model.reset_parameters()
    assert not torch.equal(w, model.net[0].weight)
