import pytest
import torch

from equiv.models.ponita import Ponita
from equiv.nn._ponita import PolynomialFeatures, repulsion_grid
from equiv.symmetry import assert_equivariant, equivariance_error

from nbody_case import nbody_inputs


KINDS = ["cartesian_points", "cartesian_vectors", None]
SMALL = dict(hidden=12, num_layers=2, num_ori=8, basis_dim=12)


_inputs = nbody_inputs


def _trained_like(model):
    """Give the read-outs O(1) weights so that the fibre integration matters."""
    for lin in model.readouts:
        torch.nn.init.normal_(lin.weight, std=1.0)
    return model


def test_exactly_e3_equivariant_when_the_grid_transforms_too():
    model = _trained_like(Ponita(**SMALL).double().eval())
    rep = assert_equivariant(
        lambda x, v, q, grid: model(x, v, q, grid=grid), [*_inputs(), model.grid.double()],
        KINDS + ["cartesian_vectors"], ["cartesian_points"], group="O(3)", permutations=True,
        node_inputs=(0, 1, 2), node_outputs=(0,), generator=torch.Generator().manual_seed(0))
    assert rep.max_relative_error < 1e-12


def test_fixed_grid_translation_and_permutation_exact():
    model = _trained_like(Ponita(**SMALL).double().eval())
    x, v, q = _inputs()
    out = model(x, v, q)
    s = torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(model(x + s, v, q), out + s, rtol=1e-12, atol=1e-12)
    p = torch.randperm(5)
    torch.testing.assert_close(model(x[p], v[p], q[p]), out[p], rtol=1e-12, atol=1e-12)


def test_fixed_grid_rotation_error_shrinks_with_the_grid():
    model = _trained_like(Ponita(**SMALL).double().eval())
    errors = []
    for n in (8, 64):
        grid = repulsion_grid(n, dtype=torch.float64)
        rep = equivariance_error(lambda x, v, q: model(x, v, q, grid=grid), list(_inputs()), KINDS,
                                 ["cartesian_points"], num_samples=6, generator=torch.Generator().manual_seed(1))
        errors.append(rep.rel_errors.mean().item())
    assert errors[0] > 1e-6  # a fixed discretisation of S^2 is not exactly equivariant ...
    assert errors[1] < errors[0] / 4  # ... but converges as the grid is refined
    model.set_orientations(64)
    assert model.grid.shape == (64, 3) and model.num_ori == 64 and model.grid.dtype == torch.float64
    with pytest.raises(ValueError, match="num_ori"):
        model.set_orientations(0)


def test_training_mode_rotates_grid_and_calibrates():
    model = Ponita(**SMALL)
    x, v, q = _inputs(batch=4, dtype=torch.float32)
    assert not bool(model.blocks[0].conv.calibrated)
    a, b = model(x, v, q), model(x, v, q)
    assert bool(model.blocks[0].conv.calibrated)
    assert not torch.allclose(a, b)  # random grid rotation per system
    model.eval()
    torch.testing.assert_close(model(x, v, q), model(x, v, q))
    clone = Ponita(**SMALL)
    clone.load_state_dict(model.state_dict())
    assert bool(clone.blocks[0].conv.calibrated)


def test_batched_equals_single_dtypes_and_gradients(dtype):
    model = Ponita(**SMALL).to(dtype).eval()
    x, v, q = _inputs(batch=3, dtype=dtype)
    out = model(x, v, q)
    assert out.shape == (3, 5, 3) and out.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out[1], model(x[1], v[1], q[1]), atol=tol, rtol=tol)
    xg = x.clone().requires_grad_()
    model(xg, v, q).sum().backward()  # includes self-pairs (zero relative position)
    assert torch.isfinite(xg.grad).all()


def test_repulsion_grid_and_polynomial_features():
    g = repulsion_grid(20, dtype=torch.float64)
    torch.testing.assert_close(g.norm(dim=1), torch.ones(20, dtype=torch.float64))
    # the known minimum of the Thomson problem for 20 charges, 150.881568
    energy = (1 / torch.pdist(g)).sum()
    assert abs(energy.item() - 150.881568) < 1e-4
    assert torch.equal(repulsion_grid(7), repulsion_grid(7))  # deterministic
    a = torch.tensor([[2.0, 3.0]])
    assert PolynomialFeatures(2)(a).tolist() == [[2.0, 3.0, 4.0, 6.0, 6.0, 9.0]]
    with pytest.raises(ValueError, match="n must"):
        repulsion_grid(0)


def test_repr_reset_and_errors():
    model = Ponita(**SMALL)
    assert repr(model).startswith("Ponita(\n  hidden=12, num_layers=2, num_ori=8, basis_dim=12, degree=3, rotate_grid=True")
    w = model.embedding.weight.clone()
    model.reset_parameters()
    assert not torch.equal(w, model.embedding.weight)
    with pytest.raises(ValueError, match="num_ori"):
        Ponita(num_ori=0)
    x, v, q = _inputs(dtype=torch.float32)
    with pytest.raises(ValueError, match="grid"):
        model(x, v, q, grid=torch.zeros(4, 2))


def test_calibration_flag_follows_state_dicts_and_compiles_without_graph_breaks():
    """Once calibrated, a training step reads no tensor value: torch.compile(fullgraph=True) traces it
    (reading the flag buffer was a graph break in every block). Loading a state dict sets the flag."""
    torch.manual_seed(0)
    model = Ponita(**SMALL)
    x, v, q = _inputs(batch=4, dtype=torch.float32)
    model(x, v, q)  # calibrates
    torch.compile(model, fullgraph=True, backend="eager")(x, v, q)  # raises on a graph break
    fresh = Ponita(**SMALL)
    model.load_state_dict(fresh.state_dict())  # an uncalibrated checkpoint: calibrate again
    assert not bool(model.blocks[0].conv.calibrated) and not model.blocks[0].conv._calibration_done
    w = model.blocks[0].conv.kernel_spatial.weight.clone()
    model(x, v, q)
    assert bool(model.blocks[0].conv.calibrated) and not torch.equal(w, model.blocks[0].conv.kernel_spatial.weight)
    fresh.load_state_dict(model.state_dict())  # a calibrated checkpoint: no recalibration
    w = fresh.blocks[0].conv.kernel_spatial.weight.clone()
    fresh.train()(x, v, q)
    assert torch.equal(w, fresh.blocks[0].conv.kernel_spatial.weight)
