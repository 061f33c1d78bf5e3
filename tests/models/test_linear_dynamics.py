"""NBodyLinear: the constant-velocity baseline x + t v of the N-body benchmark."""

import pytest
import torch

from equiv.models import NBodyLinear
from equiv.symmetry import assert_equivariant
from equiv.train.nbody import build_model

KINDS = (["cartesian_points", "cartesian_vectors", None], ["cartesian_points"])


def _data(seed=0, n=64):
    g = torch.Generator().manual_seed(seed)
    x, v = torch.randn(n, 5, 3, generator=g, dtype=torch.float64), torch.randn(n, 5, 3, generator=g, dtype=torch.float64)
    y = x + 0.6 * v + 0.3 * torch.randn(n, 5, 3, generator=g, dtype=torch.float64)  # not exactly linear
    return x, v, y


def test_fit_is_the_least_squares_optimum():
    x, v, y = _data()
    model = NBodyLinear().double().fit(x, v, y)
    q = torch.ones(x.shape[0], 5, 1, dtype=torch.float64)
    # zero gradient of the MSE at the fitted time, and the MSE rises on either side
    loss = ((model(x, v, q) - y) ** 2).mean()
    (grad,) = torch.autograd.grad(loss, model.time)
    assert abs(grad.item()) < 1e-12
    t = model.time.item()
    for dt in (-1e-3, 1e-3):
        with torch.no_grad():
            model.time.fill_(t + dt)
            assert ((model(x, v, q) - y) ** 2).mean() > loss
    assert 0.5 < t < 0.7  # the noise is independent of v, so t ~ 0.6
    # an exactly linear target is fitted exactly
    exact = NBodyLinear().double().fit(x, v, x - 0.25 * v)
    assert exact.time.item() == pytest.approx(-0.25, abs=1e-14)
    torch.testing.assert_close(exact(x, v, q), x - 0.25 * v, rtol=0, atol=1e-14)


def test_gradient_training_reaches_the_closed_form():
    x, v, y = _data(1)
    q = torch.ones(x.shape[0], 5, 1, dtype=torch.float64)
    model = build_model("linear").double()
    assert model.time.item() == pytest.approx(0.7)  # the reference code's initial value
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        ((model(x, v, q) - y) ** 2).mean().backward()
        opt.step()
    assert model.time.item() == pytest.approx(NBodyLinear().double().fit(x, v, y).time.item(), abs=1e-4)


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_equivariant(group):
    x, v, _ = _data(2, n=1)
    model = NBodyLinear(0.8).double()
    assert_equivariant(model, [x[0], v[0], torch.ones(5, 1, dtype=torch.float64)], *KINDS, group=group,
                       permutations=True, node_inputs=(0, 1, 2), node_outputs=(0,))


def test_errors_and_shapes():
    x, v, y = _data(3, n=4)
    with pytest.raises(ValueError, match="shape of positions"):
        NBodyLinear().fit(x, v[:, :4], y)
    with pytest.raises(ValueError, match="velocities are zero"):
        NBodyLinear().fit(x, torch.zeros_like(v), y)
    with pytest.raises(ValueError, match="no systems"):
        NBodyLinear().fit(x[:0], v[:0], y[:0])
    with pytest.raises(ValueError, match="finite"):
        NBodyLinear().fit(x, v, y.clone().fill_(float("nan")))
    with pytest.raises(TypeError, match="number"):
        NBodyLinear("0.7")
    model = NBodyLinear()
    assert model(x[0].float(), v[0].float(), torch.ones(5)).shape == (5, 3)
    assert "time=0.7" in repr(model)
