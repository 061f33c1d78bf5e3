import pytest
import torch

from equiv.models.egnn import EGNN, EGNNLayer
from equiv.symmetry import assert_equivariant

from nbody_case import nbody_inputs as _nbody_inputs


def nbody_inputs(batch=None, dtype=torch.float64, seed=0):
    return _nbody_inputs(batch, dtype, seed, spread=1.0)


def test_egnn_equivariant_o3_translation_permutation():
    model = EGNN(hidden=16, num_layers=3).double()
    report = assert_equivariant(
        model, list(nbody_inputs()), ["cartesian_points", "cartesian_vectors", None], ["cartesian_points"],
        group="O(3)", permutations=True, node_inputs=(0, 1, 2), node_outputs=(0,),
        generator=torch.Generator().manual_seed(0),
    )
    assert report.max_relative_error < 1e-12


def _reference_egnn_vel(model, x, v, q):
    """The paper's edge-list formulation (scatter over 20 directed edges), same weights."""
    n = x.shape[0]
    rows, cols = zip(*[(i, j) for i in range(n) for j in range(n) if i != j])
    rows, cols = torch.tensor(rows), torch.tensor(cols)
    h = model.embedding(v.norm(dim=1, keepdim=True))
    a = torch.cat([q[rows] * q[cols], ((x[rows] - x[cols]) ** 2).sum(1, keepdim=True)], 1)
    for layer in model.layers:
        diff = x[rows] - x[cols]
        radial = (diff**2).sum(1, keepdim=True)
        m = layer.edge_mlp(torch.cat([h[rows], h[cols], radial, a], 1))
        trans = (diff * layer.coord_mlp(m)).clamp(-100, 100)
        agg = torch.zeros_like(x).index_add_(0, rows, trans)
        count = torch.zeros(n, 1, dtype=x.dtype).index_add_(0, rows, torch.ones_like(radial))
        x = x + agg / count + layer.vel_mlp(h) * v
        msum = torch.zeros(n, m.shape[1], dtype=x.dtype).index_add_(0, rows, m)
        h = h + layer.node_mlp(torch.cat([h, msum], 1))
    return x


def test_dense_equals_edge_list_reference():
    model = EGNN(hidden=12, num_layers=2).double()
    for layer in model.layers:  # make the coordinate branch matter
        torch.nn.init.normal_(layer.coord_mlp[-1].weight, std=0.3)
    x, v, q = nbody_inputs()
    torch.testing.assert_close(model(x, v, q), _reference_egnn_vel(model, x, v, q), rtol=1e-12, atol=1e-12)


def test_batched_equals_single(dtype):
    model = EGNN(hidden=8, num_layers=2).to(dtype)
    x, v, q = nbody_inputs(batch=3, dtype=dtype)
    out = model(x, v, q)
    assert out.shape == (3, 5, 3) and out.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out[1], model(x[1], v[1], q[1]), rtol=tol, atol=tol)
    torch.testing.assert_close(model(x, v, q[..., 0]), out)  # (B, N) charges accepted


def test_reset_parameters_and_repr():
    model = EGNN(hidden=8, num_layers=2)
    before = [p.clone() for p in model.parameters()]
    model.reset_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # the last coordinate layer starts small (Xavier gain 1e-3)
    assert model.layers[0].coord_mlp[-1].weight.abs().max() < 1e-3
    text = repr(model)
    assert text.startswith("EGNN(\n  hidden=8, num_layers=2")
    assert "EGNNLayer(\n      hidden=8, edge_dim=2" in text
    assert "hidden=4, edge_dim=2" in repr(EGNNLayer(4, 2))


def test_learns_a_small_batch():
    model = EGNN(hidden=16, num_layers=2)
    x, v, q = nbody_inputs(batch=16, dtype=torch.float32)
    target = x + 0.3 * v
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    losses = []
    for _ in range(40):
        loss = (model(x, v, q) - target).pow(2).mean()
        losses.append(loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert losses[-1] < 0.1 * losses[0]


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(5, 1)), ValueError, "positions"),
        ((torch.zeros(5, 3), torch.zeros(4, 3), torch.zeros(5, 1)), ValueError, "velocities"),
        ((torch.zeros(5, 3), torch.zeros(5, 3), torch.zeros(5, 2)), ValueError, "charges"),
        ((torch.zeros(5, 3), torch.zeros(5, 3), [1.0] * 5), TypeError, "charges"),
    ],
)
def test_bad_inputs(args, exc, match):
    with pytest.raises(exc, match=match):
        EGNN(hidden=4, num_layers=1)(*args)
    with pytest.raises(ValueError, match="num_layers"):
        EGNN(num_layers=0)
