"""Orbit (NERO) evaluation: metric along group orbits, against ground truth or the consensus."""

import math

import pytest
import torch

from equiv.groups import SO2, Rep
from equiv.symmetry import METRICS, OrbitResult, orbit_evaluation


def _pts(n=12, dtype=torch.float64):
    return torch.randn(n, 3, dtype=dtype, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("group,kw", [("so2_z", {}), ("o2_x", {}), ("so3", {"num_angles": 3}), ("o3", {"num_angles": 2})])
def test_invariant_and_equivariant_models_are_flat(group, kw, dtype):
    x = _pts(dtype=dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    inv = orbit_evaluation(lambda p: p.norm(dim=-1, keepdim=True), x, group, 40, input_kinds=["cartesian_points"], grid_kwargs=kw)
    assert inv.summary()["orbit_std"] < tol and inv.summary()["mean"] < tol  # equals its consensus
    eqv = orbit_evaluation(lambda p: 2 * p * p.norm(dim=-1, keepdim=True), x, group, 40,
                           input_kinds=["cartesian_points"], output_kind="cartesian_points", grid_kwargs=kw)
    assert eqv.values.abs().max() < tol
    bad = orbit_evaluation(lambda p: p + p[:, 1:2] ** 2, x, group, 40,
                           input_kinds=["cartesian_points"], output_kind="cartesian_points", grid_kwargs=kw)
    assert bad.summary()["orbit_std"] > 1e-3


def test_orbit_reveals_which_axis_is_symmetric():
    """f(p) = A p with A = diag(1, 1, 2) commutes with rotations about z only."""
    A = torch.diag(torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64))
    x = _pts()
    res = {
        ax: orbit_evaluation(lambda p: p @ A, x, f"so2_{ax}", 24, input_kinds=["cartesian_vectors"], output_kind="cartesian_vectors")
        for ax in "xyz"
    }
    assert res["z"].values.abs().max() < 1e-12
    # against the consensus the orbit mean itself measures the non-equivariance
    for ax in "xy":
        assert res[ax].summary()["mean"] > 1e-2
    # against ground truth the error about x is zero at angle 0 and largest at pi/2 (analytically)
    r = orbit_evaluation(lambda p: p @ A, x, "so2_x", 4, input_kinds=["cartesian_vectors"],
                         output_kind="cartesian_vectors", targets=x @ A)
    agg = r.aggregate()
    assert float(agg[0]) < 1e-12 and int(agg.argmax()) in (1, 3)
    assert torch.allclose(agg[1], agg[3])


def test_consensus_is_orbit_mean():
    x = _pts(5)
    f = lambda p: p + 0.3 * p[:, :1] ** 2  # noqa: E731
    res = orbit_evaluation(f, x, "so2_z", 8, input_kinds=["cartesian_points"], output_kind="cartesian_points", keep_outputs=True)
    assert res.outputs.shape == (8, 5, 3) and res.reference == "consensus"
    consensus = res.outputs.mean(0)
    expected = ((res.outputs - consensus) ** 2).mean(-1)
    assert torch.allclose(res.values, expected, atol=1e-12)
    # the outputs are mapped back: g^-1 f(g x)
    R = SO2("z").element(torch.tensor(2 * math.pi / 8, dtype=torch.float64))
    assert torch.allclose(res.outputs[1], f(x @ R.T) @ R, atol=1e-12)


def test_ground_truth_and_metrics():
    x = _pts(6)
    res = orbit_evaluation(lambda p: p, x, "so3", 20, metric="l2", input_kinds=["cartesian_points"],
                           output_kind="cartesian_points", targets=x + torch.tensor([3.0, 4.0, 0.0], dtype=torch.float64),
                           grid_kwargs={"num_angles": 2})
    assert torch.allclose(res.values, torch.full_like(res.values, 5.0))
    assert res.reference == "ground truth" and res.summary()["orbit_std"] < 1e-12
    for name in ("mae", "rmse"):
        r = orbit_evaluation(lambda p: p, x, "so2", 6, metric=name, input_kinds=["cartesian_points"],
                             output_kind="cartesian_points", targets=x + 1.0)
        assert torch.allclose(r.values, torch.ones_like(r.values))
    custom = orbit_evaluation(lambda p: p, x, "so2", 6, metric=lambda a, b: (a - b)[:, 0], input_kinds=["cartesian_points"],
                              output_kind="cartesian_points", targets=x - 2.0)
    assert torch.allclose(custom.values, torch.full_like(custom.values, 2.0)) and custom.metric == "<lambda>"


def test_classification_metrics_on_images():
    """A classifier of image mass in the upper half: its accuracy varies with rotation, exactly at 90 degrees."""
    gen = torch.Generator().manual_seed(1)
    imgs = torch.rand(10, 1, 8, 8, generator=gen, dtype=torch.float64)
    imgs[:5, :, :4] += 2.0  # bright top half: class 1
    imgs[5:, :, 4:] += 2.0  # bright bottom half: class 0
    labels = torch.tensor([1] * 5 + [0] * 5)

    def model(x):
        top, bottom = x[..., :4, :].sum((-1, -2, -3)), x[..., 4:, :].sum((-1, -2, -3))
        return torch.stack([bottom - top, top - bottom], -1)

    res = orbit_evaluation(model, imgs, "so2", 4, metric="accuracy", input_kinds=["image"], targets=labels)
    agg = res.aggregate().tolist()  # 0, 90, 180, 270 degrees
    assert agg[0] == 1.0 and agg[2] == 0.0 and 0.0 < agg[1] < 1.0
    assert res.higher_is_better
    conf = orbit_evaluation(model, imgs, "so2", 4, metric="confidence", input_kinds=["image"])
    assert conf.reference == "consensus" and conf.values.shape == (4, 10)
    ce = orbit_evaluation(model, imgs, "so2", 4, metric="cross_entropy", input_kinds=["image"], targets=labels)
    assert float(ce.aggregate()[0]) < float(ce.aggregate()[2])
    inv = orbit_evaluation(lambda x: x.sum((-1, -2, -3))[:, None].repeat(1, 2), imgs, "so2", 4, metric="mse", input_kinds=["image"])
    assert inv.values.abs().max() < 1e-20  # sums are exactly invariant at right angles


def test_multiple_inputs_kinds_and_chunking():
    gen = torch.Generator().manual_seed(2)
    pos, vel = (torch.randn(7, 4, 3, generator=gen, dtype=torch.float64) for _ in range(2))
    q = torch.randn(7, 4, 1, generator=gen, dtype=torch.float64)

    def model(p, v, c):  # positions after a step, depends on a fixed direction: not equivariant
        return p + 0.1 * v + 0.01 * c * torch.tensor([0.0, 0.0, 1.0], dtype=p.dtype)

    kw = dict(input_kinds=["cartesian_points", "cartesian_vectors", None], output_kind="cartesian_points")
    a = orbit_evaluation(model, (pos, vel, q), "so3", 30, grid_kwargs={"num_angles": 2}, batch_size=7, **kw)
    b = orbit_evaluation(model, (pos, vel, q), "so3", 30, grid_kwargs={"num_angles": 2}, batch_size=10_000, **kw)
    assert torch.allclose(a.values, b.values, atol=1e-14)
    s = a.summary()
    assert set(s) == {"mean", "orbit_std", "best", "worst", "sample_orbit_std"} and s["orbit_std"] > 0
    assert a.on_grid().shape == a.grid.shape and a.per_sample(3).shape == (len(a.grid),)
    assert "SO(3)" in repr(a) and isinstance(a, OrbitResult)
    # rotations about z leave the field direction alone: equivariant there
    z = orbit_evaluation(model, (pos, vel, q), "so2_z", 12, **kw)
    assert z.values.abs().max() < 1e-12


def test_rep_outputs_and_translations():
    x = _pts(4)
    f = lambda p: torch.cat([p.norm(dim=-1, keepdim=True), p], -1)  # noqa: E731  scalar + vector features
    r = orbit_evaluation(f, x, "o3", 20, input_kinds=[Rep.vector()], output_kind=Rep.scalar() + Rep.vector(), grid_kwargs={"num_angles": 2})
    assert r.values.abs().max() < 1e-12
    clouds = torch.randn(4, 5, 3, dtype=torch.float64)
    t = orbit_evaluation(lambda p: p.mean(1, keepdim=True).expand_as(p), clouds, "translations_xy", 25,
                         input_kinds=["cartesian_points"], output_kind="cartesian_points")
    assert t.grid.layout == "plane" and t.values.abs().max() < 1e-12


def test_errors():
    x = _pts(3)
    with pytest.raises(ValueError, match="input_kinds"):
        orbit_evaluation(lambda p: p, x, "so2", 4)
    with pytest.raises(ValueError, match="2 kinds for 1 inputs"):
        orbit_evaluation(lambda p: p, x, "so2", 4, input_kinds=["cartesian_points", None])
    with pytest.raises(ValueError, match="metric='psnr'"):
        orbit_evaluation(lambda p: p, x, "so2", 4, metric="psnr", input_kinds=["cartesian_points"])
    with pytest.raises(ValueError, match="same batch size"):
        orbit_evaluation(lambda p, q: p, (x, x[:2]), "so2", 4, input_kinds=["cartesian_points", None])
    with pytest.raises(ValueError, match="targets has 2 samples"):
        orbit_evaluation(lambda p: p, x, "so2", 4, input_kinds=["cartesian_points"], targets=x[:2])
    with pytest.raises(TypeError, match="inputs"):
        orbit_evaluation(lambda p: p, [1, 2], "so2", 4, input_kinds=["cartesian_points"])
    with pytest.raises(ValueError, match="batch axis"):
        orbit_evaluation(lambda p: p[:1], x, "so2", 4, input_kinds=["cartesian_points"])
    with pytest.raises(ValueError, match="reduce='sum'"):
        orbit_evaluation(lambda p: p, x, "so2", 4, input_kinds=["cartesian_points"]).aggregate("sum")
    assert set(METRICS) >= {"mse", "accuracy", "confidence", "l2"}


def test_rescore_equals_a_second_evaluation():
    """Rescoring kept outputs gives what a second run against the consensus gives (the model runs once)."""
    torch.manual_seed(0)
    x, calls = torch.randn(9, 3, dtype=torch.float64), []

    def model(p):
        calls.append(1)
        return p + 0.1 * p[:, :1] ** 2  # not equivariant

    kw = dict(input_kinds=["cartesian_points"], output_kind="cartesian_points")
    truth = orbit_evaluation(model, x, "so3", 12, "mse", targets=x, keep_outputs=True, grid_kwargs={"num_angles": 2}, **kw)
    n = len(calls)
    rescored = truth.rescore("l2")
    assert len(calls) == n  # no model call
    direct = orbit_evaluation(model, x, "so3", 12, "l2", grid_kwargs={"num_angles": 2}, **kw)
    assert rescored.reference == direct.reference == "consensus"
    assert torch.allclose(rescored.values, direct.values, atol=1e-12) and rescored.values.abs().max() > 1e-4
    with pytest.raises(ValueError, match="keep_outputs"):
        orbit_evaluation(model, x, "so2_z", 4, "mse", **kw).rescore("l2")
