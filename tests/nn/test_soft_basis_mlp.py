"""equiv.nn.soft_one_hot_linspace, soft_unit_step, FullyConnectedNet: same values and gradients as
e3nn 0.4.4 (e3nn.math, e3nn.nn), e3nn state dicts load, variance preserved, errors."""

import pytest
import torch
from torch.nn.functional import silu

from equiv.nn import FullyConnectedNet, moment_scale, soft_one_hot_linspace, soft_unit_step

e3nn_math = pytest.importorskip("e3nn.math")
e3nn_nn = pytest.importorskip("e3nn.nn")


@pytest.mark.parametrize("basis", ["gaussian", "cosine", "smooth_finite", "fourier", "bessel"])
@pytest.mark.parametrize("cutoff", [True, False])
def test_soft_one_hot_linspace_matches_e3nn(basis, cutoff, dtype):
    x = torch.linspace(-0.7, 2.3, 301, dtype=dtype)
    if basis == "bessel":
        x = x[x != -0.5]  # r = 0: 0/0 in both
    x.requires_grad_()
    ours = soft_one_hot_linspace(x, -0.5, 1.5, number=5, basis=basis, cutoff=cutoff)
    ref = e3nn_math.soft_one_hot_linspace(x, -0.5, 1.5, number=5, basis=basis, cutoff=cutoff)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    if basis == "smooth_finite" and dtype == torch.float64:
        tol = 1e-7  # e3nn's constant e^2 is a float32 number (torch.exp(torch.tensor(2.0))); ours is exact
    assert ours.shape == (x.shape[0], 5)
    assert (ours - ref).abs().max() <= tol * max(1.0, ref.abs().max().item())
    g = torch.randn_like(ours)
    (ga,), (gb,) = torch.autograd.grad(ours, x, g), torch.autograd.grad(ref, x, g)
    assert (ga - gb).abs().max() <= 10 * tol * max(1.0, gb.abs().max().item())
    if cutoff and basis != "gaussian":  # vanishes outside (start, end)
        outside = (x < -0.5) | (x > 1.5)
        assert ours[outside].abs().max() == 0


def test_soft_one_hot_normalisation():
    x = torch.linspace(0.2, 0.8, 200, dtype=torch.float64)
    for basis in ("gaussian", "cosine", "smooth_finite", "fourier"):
        s = soft_one_hot_linspace(x, 0.0, 1.0, number=20, basis=basis, cutoff=True).pow(2).sum(-1).mean()
        assert 0.8 < s.item() < 1.25, basis  # sum of squares ~ 1 inside the interval


def test_soft_unit_step():
    x = torch.linspace(-2, 5, 141, dtype=torch.float64, requires_grad=True)
    y = soft_unit_step(x)
    ref = e3nn_math.soft_unit_step(x)
    assert torch.allclose(y, ref, atol=1e-15, rtol=0)
    assert y[x <= 0].abs().max() == 0 and torch.isfinite(y).all()
    assert torch.autograd.gradcheck(soft_unit_step, (torch.tensor([-1.0, 0.0, 0.3, 2.0], dtype=torch.float64,
                                                                 requires_grad=True),))
    (g,) = torch.autograd.grad(y.sum(), x)
    (gr,) = torch.autograd.grad(ref.sum(), x)
    assert torch.allclose(g, gr, atol=1e-15, rtol=0) and torch.isfinite(g).all()


def test_soft_one_hot_errors():
    x = torch.rand(4)
    with pytest.raises(ValueError, match="basis must be one of"):
        soft_one_hot_linspace(x, 0.0, 1.0, 4, basis="gauss", cutoff=True)
    with pytest.raises(ValueError, match="cutoff must be True or False"):
        soft_one_hot_linspace(x, 0.0, 1.0, 4, basis="gaussian")
    with pytest.raises(ValueError, match="needs number >= 2"):
        soft_one_hot_linspace(x, 0.0, 1.0, 1, basis="cosine", cutoff=False)
    with pytest.raises(ValueError, match="end > start"):
        soft_one_hot_linspace(x, 1.0, 1.0, 4, basis="cosine", cutoff=True)


@pytest.mark.parametrize("kw", [{}, {"out_act": True}, {"variance_in": 2.0, "variance_out": 0.5}])
def test_fully_connected_net_matches_e3nn(kw, dtype):
    hs = [5, 16, 16, 3]
    ref = e3nn_nn.FullyConnectedNet(hs, silu, **kw).to(dtype)
    c = e3nn_math.normalize2mom(silu).cst

    def scaled(z):
        return silu(z) * c

    ours = FullyConnectedNet(hs, scaled, normalize=False, **kw).to(dtype)
    ours.load_state_dict(ref.state_dict())  # e3nn's parameter names and shapes
    x = torch.randn(7, 5, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (ours(x) - ref(x)).abs().max() <= tol * max(1.0, ref(x).abs().max().item())
    lin_ref = e3nn_nn.FullyConnectedNet([4, 6, 2]).to(dtype)
    lin = FullyConnectedNet([4, 6, 2]).to(dtype)
    lin.load_state_dict(lin_ref.state_dict())
    assert (lin(x[:, :4]) - lin_ref(x[:, :4])).abs().max() <= tol * 10


def test_fully_connected_net_preserves_variance():
    torch.manual_seed(1)
    net = FullyConnectedNet([16] + [128] * 6 + [16], silu).double()
    x = torch.randn(4000, 16, dtype=torch.float64)
    with torch.no_grad():
        y = net(x)
    assert 0.5 < y.pow(2).mean().item() < 2.0  # unit second moment through six activated layers
    assert abs(moment_scale(silu) - 1.6765) < 1e-4


def test_fully_connected_net_errors():
    with pytest.raises(ValueError, match="at least two positive widths"):
        FullyConnectedNet([4])
    with pytest.raises(ValueError, match="act must be callable"):
        FullyConnectedNet([4, 4], act="silu")
    with pytest.raises(ValueError, match="variances must be positive"):
        FullyConnectedNet([4, 4], variance_in=0.0)
