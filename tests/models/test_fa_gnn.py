import pytest
import torch

from equiv.models.fa_gnn import FrameAveragedGNN, PlainGNN
from equiv.symmetry import assert_equivariant, equivariance_error

from nbody_case import KINDS, PERM, nbody_inputs


_inputs = nbody_inputs


@pytest.mark.parametrize("layerwise", [True, False])
def test_fa_gnn_is_e3_equivariant(layerwise):
    model = FrameAveragedGNN(hidden=12, num_layers=3, layerwise=layerwise).double()
    rep = assert_equivariant(model, list(_inputs()), *KINDS, group="O(3)", **PERM,
                             generator=torch.Generator().manual_seed(0))
    assert rep.max_relative_error < 1e-10


def test_so3_frames_are_not_reflection_equivariant():
    model = FrameAveragedGNN(hidden=12, num_layers=2, group="SO(3)").double()
    assert_equivariant(model, list(_inputs()), *KINDS, group="SO(3)", **PERM,
                       generator=torch.Generator().manual_seed(0))
    rep = equivariance_error(model, list(_inputs()), *KINDS, group="O(3)",
                             generator=torch.Generator().manual_seed(0))
    assert rep.rel_errors[torch.linalg.det(rep.matrices) < 0].min() > 1e-4


def test_plain_gnn_alone_is_not_equivariant():
    with pytest.raises(AssertionError):
        assert_equivariant(PlainGNN(hidden=12, num_layers=2).double(), list(_inputs()), *KINDS, group="SO(3)",
                           translations=False)


def test_batched_equals_single_and_dtypes(dtype):
    model = FrameAveragedGNN(hidden=12, num_layers=2).to(dtype)
    x, v, q = _inputs(batch=3, dtype=dtype)
    out = model(x, v, q)
    assert out.shape == (3, 5, 3) and out.dtype == dtype
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out[2], model(x[2], v[2], q[2]), atol=tol, rtol=tol)


def test_repr_reset_and_errors():
    model = FrameAveragedGNN(hidden=6, num_layers=1)
    text = repr(model)
    assert text.startswith("FrameAveragedGNN(\n  hidden=6, num_layers=1, group=O(3), layerwise=True")
    assert "FrameAveraging(\n    group=O(3), frames=8" in text
    w = model.gnn.embedding.weight.clone()
    model.reset_parameters()
    assert not torch.equal(w, model.gnn.embedding.weight)
    assert len(model.state_dict()) == len({id(p) for p in model.state_dict().values()})
    with pytest.raises(ValueError, match="divisible by 3"):
        FrameAveragedGNN(hidden=10)
    with pytest.raises(ValueError, match="group"):
        FrameAveragedGNN(hidden=6, group="SE(2)")
