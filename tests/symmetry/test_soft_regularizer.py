"""SoftEquivariance: regularisers, automatic strengths, exact constraints, the gated MLP."""

import math

import pytest
import torch
from torch import nn

from equiv.groups import O2, O3, Rep
from equiv.symmetry import assert_equivariant
from equiv.symmetry import EquivariantProjector, GatedMLP, GatedNonlinearity, GatedProducts, SoftEquivariance, make_equivariant_

REP_IN = 3 * Rep.scalar() + 2 * Rep.vector()
REP_H = 4 * Rep.scalar() + 2 * Rep.vector() + 2 * Rep.tensor(2)
REP_OUT = Rep.tensor(2)
GROUPS = ["o3", "o2_x", "o2_y", "o2_z"]


def _model(dtype=torch.float64, **kw):
    return GatedMLP(REP_IN, REP_H, REP_OUT, num_hidden=2, **kw).to(dtype)


def test_regularizer_matches_definition(dtype):
    model = _model(dtype)
    soft = SoftEquivariance(model.layer_reps, GROUPS)
    R = soft.regularizers().detach()
    assert R.shape == (4,) and R.dtype == dtype
    for k, g in enumerate(GROUPS):
        expected = 0.0
        for lin, rin, rout in model.layer_reps:
            P = EquivariantProjector(rin, rout, g)
            M = P.matrix().to(dtype)
            w = lin.weight.detach().reshape(-1)
            b = lin.bias.detach()
            expected += 0.5 * float(((w - M @ w) ** 2).sum()) + 0.5 * float(((b - P.bias(b)) ** 2).sum())
        assert float(R[k]) == pytest.approx(expected, rel=1e-4 if dtype == torch.float32 else 1e-10)
        # the per-projector residual (complement basis) agrees
        per_layer = sum(float(EquivariantProjector(ri, ro, g).residual(lin.weight.detach(), lin.bias.detach())) for lin, ri, ro in model.layer_reps)
        assert per_layer == pytest.approx(expected, rel=1e-4 if dtype == torch.float32 else 1e-10)
    # O(3) contains every O(2): its regulariser is the largest
    assert float(R[0]) >= float(R[1:].max())


def test_regularizer_zero_for_equivariant_layers():
    model = _model()
    soft = SoftEquivariance(model.layer_reps, GROUPS)
    soft.project_("o2_z")
    R = soft.regularizer_dict()
    assert R["O(2)_z"] < 1e-25
    assert min(R["O(3)"], R["O(2)_x"], R["O(2)_y"]) > 1e-3
    soft.project_("o3")
    assert max(soft.regularizer_dict().values()) < 1e-25


def test_regularizer_gradient_is_residual():
    """d/dW (1/2 |W - PW|^2) = (I - P) W: gradient descent moves straight towards the equivariant subspace."""
    lin = nn.Linear(REP_IN.dim, REP_OUT.dim).double()
    soft = SoftEquivariance([(lin, REP_IN, REP_OUT)], ["o3"], strength=1.0)
    soft().backward()
    P = EquivariantProjector(REP_IN, REP_OUT, "o3")
    W = lin.weight.detach()
    assert torch.allclose(lin.weight.grad, W - P.weight(W), atol=1e-12)


def test_automatic_strengths_follow_published_rule():
    model = _model()
    soft = SoftEquivariance(model.layer_reps, GROUPS, strength=3.0, adjust_at=5, window=3)
    seen = []
    gen = torch.Generator().manual_seed(0)
    for epoch in range(1, 8):
        with torch.no_grad():  # weights drift between "epochs"
            for p in model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        seen.append(soft.regularizers().detach())
        adjusted = soft.step()
        assert adjusted == (epoch == 5)
        if epoch == 5:
            Rhat = torch.stack(seen[2:5]).min(0).values  # epochs 3, 4, 5
            expected = 3.0 * (Rhat.min() / Rhat) ** 2
            assert torch.allclose(soft.strengths, expected, rtol=1e-12)
            after = soft.strengths.clone()
    assert torch.equal(soft.strengths, after)  # adjusted once only
    assert len(soft.history) == 7 and "R[O(3)]" in soft.history[0]
    # the strongest symmetry keeps its strength; the ranking is the inverse of the minima
    assert float(soft.strengths.max()) == pytest.approx(3.0)


def test_zero_strength_groups_are_left_out_of_the_minimum():
    model = _model()
    soft = SoftEquivariance(model.layer_reps, ["o3", "o2_z"], adjust_at=1, window=1)
    soft.project_("o2_z")  # R[o2_z] ~ 0 would dominate ...
    soft.strengths[1] = 0.0  # ... but its strength is zero, so O(3) is the reference
    soft.step()
    assert soft.strengths.tolist() == [1.0, 0.0]


def test_soft_penalty_pulls_training_towards_symmetry():
    """With a strong O(2)_z penalty and random targets, training ends near the O(2)_z subspace."""
    torch.manual_seed(0)
    model = _model()
    soft = SoftEquivariance(model.layer_reps, ["o2_z"], strength=10.0)
    x, y = torch.randn(64, REP_IN.dim, dtype=torch.float64), torch.randn(64, 9, dtype=torch.float64)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    start = soft.regularizer_dict()["O(2)_z"]
    for _ in range(60):
        opt.zero_grad()
        (nn.functional.mse_loss(model(x), y) + soft()).backward()
        opt.step()
    assert soft.regularizer_dict()["O(2)_z"] < 1e-2 * start


@pytest.mark.parametrize("group", ["o3", "o2_z", O2([0.0, 1.0, 1.0])])
def test_gated_mlp_exactly_equivariant(group, dtype):
    model = _model(dtype, equivariant_to=group)
    G = model.layer_reps[0][0].parametrizations.weight[0].projector.group
    x = torch.randn(16, REP_IN.dim, dtype=dtype)
    g = G.sample(1, dtype=dtype)[0]
    tol = 1e-4 if dtype == torch.float32 else 1e-11
    with torch.no_grad():
        lhs = model(G.act(g, x, REP_IN))
        rhs = G.act(g, model(x), REP_OUT)
    assert (lhs - rhs).abs().max() < tol * max(1.0, float(rhs.abs().max()))
    # an unconstrained one is not
    free = _model(dtype)
    assert (free(G.act(g, x, REP_IN)) - G.act(g, free(x), REP_OUT)).abs().max() > 1e-3


def test_gated_mlp_with_irreps_is_o3_equivariant():
    model = GatedMLP("3x0e + 2x1o", "4x0e + 2x1o + 1x1e + 1x2e", "1x1o + 1x2e", num_hidden=2, equivariant_to="o3").double()
    x = torch.randn(8, 9, dtype=torch.float64)
    G = O3()
    for g in G.sample(3, dtype=torch.float64):
        assert torch.allclose(model(G.act(g, x, "3x0e + 2x1o")), G.act(g, model(x), "1x1o + 1x2e"), atol=1e-11)
    # and with the library-wide checker (rotations and inversion, float64)
    assert_equivariant(model, [x], ["3x0e + 2x1o"], ["1x1o + 1x2e"], group="O(3)", translations=False)
    free = GatedMLP("3x0e + 2x1o", "4x0e + 2x1o + 1x1e + 1x2e", "1x1o + 1x2e", num_hidden=2).double()
    with pytest.raises(AssertionError):
        assert_equivariant(free, [x], ["3x0e + 2x1o"], ["1x1o + 1x2e"], group="O(3)", translations=False)


def test_gated_nonlinearity():
    rep = 2 * Rep.scalar() + Rep.vector()
    f = GatedNonlinearity(rep)
    x = torch.tensor([[1.0, -2.0, 3.0, 4.0, 5.0, 0.0]])
    out = f(x)
    assert torch.allclose(out[0, :2], nn.functional.silu(x[0, :2]))
    assert torch.allclose(out[0, 2:], 0.5 * x[0, 2:5])  # sigmoid(0) = 1/2
    with pytest.raises(ValueError, match="expected 6"):
        f(torch.zeros(1, 5))


def test_make_equivariant_trains_inside_subspace():
    lin = make_equivariant_(nn.Linear(REP_IN.dim, REP_OUT.dim).double(), REP_IN, REP_OUT, "o3")
    opt = torch.optim.SGD(lin.parameters(), lr=0.1)
    x = torch.randn(32, REP_IN.dim, dtype=torch.float64)
    (lin(x) ** 2).sum().backward()
    opt.step()
    P = EquivariantProjector(REP_IN, REP_OUT, "o3")
    W = lin.weight.detach()
    assert torch.allclose(P.weight(W), W, atol=1e-12)


def test_soft_equivariance_errors_and_state():
    model = _model()
    with pytest.raises(ValueError, match=r"need \(9, 9\)"):
        SoftEquivariance([(model.layer_reps[-1][0], REP_IN, REP_OUT)], GROUPS)
    with pytest.raises(TypeError, match="triple"):
        SoftEquivariance([model.net[0]], GROUPS)
    with pytest.raises(TypeError, match="no 2-D .weight"):
        SoftEquivariance([(nn.ReLU(), REP_IN, REP_OUT)], GROUPS)
    with pytest.raises(ValueError, match="strength=-1"):
        SoftEquivariance(model.layer_reps, GROUPS, strength=-1)
    with pytest.raises(ValueError, match="adjust_at=0"):
        SoftEquivariance(model.layer_reps, GROUPS, adjust_at=0)
    with pytest.raises(ValueError, match="window=20"):
        SoftEquivariance(model.layer_reps, GROUPS, adjust_at=10, window=20)
    with pytest.raises(ValueError, match="not one of the candidate groups"):
        SoftEquivariance(model.layer_reps, GROUPS).project_("so3")
    soft = SoftEquivariance({lin: (ri, ro) for lin, ri, ro in model.layer_reps}, {"full": O3(), "z": "o2_z"}, strength=2.0)
    assert soft.names == ["full", "z"]
    state = soft.state_dict()
    assert set(state) == {"strengths", "minima", "epoch"} and math.isinf(float(state["minima"][0]))
    assert "strengths=[2.0, 2.0]" in repr(soft)


@pytest.mark.parametrize("group", ["o3", "o2_z"])
def test_gated_products_mlp_equivariant_and_quadratic(group):
    """With products the exactly O(3)-equivariant model can express r r^T (the inertia tensor)."""
    model = GatedMLP(REP_IN, REP_H, REP_OUT, num_hidden=2, equivariant_to=group, products=True, skip=True).double()
    assert len(model.layer_reps) == 4 and model.layer_reps[-1][0] is model.skip
    G = model.layer_reps[0][0].parametrizations.weight[0].projector.group
    x = torch.randn(16, REP_IN.dim, dtype=torch.float64)
    g = G.sample(1, dtype=torch.float64)[0]
    assert torch.allclose(model(G.act(g, x, REP_IN)), G.act(g, model(x), REP_OUT), atol=1e-10)
    # scaling the vector inputs by t scales some output terms by t^2: not linear in the vectors
    x0 = x.clone()
    x0[:, 3:] = 0
    f0 = model(x0)
    d1 = model(torch.cat([x[:, :3], x[:, 3:]], 1)) - f0
    d2 = model(torch.cat([x[:, :3], 2 * x[:, 3:]], 1)) - f0
    assert (d2 - 2 * d1).abs().max() > 1e-6


def test_gated_products_layer():
    rep = Rep.scalar() + Rep.vector() + Rep.tensor(2)
    f = GatedProducts(rep)
    assert f.pre_rep.dim == rep.dim + 2 + (3 + 3) + (9 + 3) + (3 + 3)
    x = torch.zeros(1, f.pre_rep.dim, dtype=torch.float64)
    p, q = torch.tensor([1.0, 2, 3]), torch.tensor([4.0, 5, 6])
    x[0, 15:18], x[0, 18:21] = p, q  # scalar factors p, q after 13 features and 2 gates
    out = f(x)
    assert float(out[0, 0]) == pytest.approx(float(p @ q))
    x = torch.zeros(1, f.pre_rep.dim, dtype=torch.float64)
    x[0, 33:36], x[0, 36:39] = p, q  # tensor factors u, w
    assert torch.allclose(f(x)[0, 4:], torch.outer(p, q).double().reshape(9))
    with pytest.raises(ValueError, match="Cartesian scalars, vectors or rank-2"):
        GatedProducts(Rep("1x1o"))


def test_decoupled_decay_is_exact_penalty_flow():
    """decay_(lr) moves W by (1 - exp(-lr lambda)) towards P W; repeated, it converges to the projection."""
    lin = nn.Linear(REP_IN.dim, REP_OUT.dim).double()
    soft = SoftEquivariance([(lin, REP_IN, REP_OUT)], ["o2_z"], strength=2.0)
    P = EquivariantProjector(REP_IN, REP_OUT, "o2_z")
    W0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    soft.decay_(0.1)
    c = 1 - math.exp(-0.2)
    assert torch.allclose(lin.weight, W0 - c * (W0 - P.weight(W0)), atol=1e-14)
    assert torch.allclose(lin.bias, b0 - c * (b0 - P.bias(b0)), atol=1e-14)
    for _ in range(200):
        soft.decay_(0.1)
    assert torch.allclose(lin.weight, P.weight(W0), atol=1e-12)  # the equivariant part is untouched
    with pytest.raises(ValueError, match="lr=-1"):
        soft.decay_(-1)
