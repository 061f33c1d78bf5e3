"""NERO plots: each orbit layout draws what was measured, and saves a PNG."""

import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from equiv.symmetry import orbit_evaluation  # noqa: E402
from equiv.symmetry._plots import plot_orbit, plot_orbit_samples, plot_polar, save_figure  # noqa: E402


def _points():
    return torch.randn(6, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def _bad(p):
    return p + 0.3 * p[..., :1] ** 2


def test_polar_plot_draws_aggregate_and_circle(tmp_path):
    res = orbit_evaluation(_bad, _points(), "so2_z", 16, input_kinds=["cartesian_points"], output_kind="cartesian_points")
    ax = plot_polar(res, samples=2)
    assert ax.name == "polar"
    thick = [ln for ln in ax.lines if ln.get_linewidth() > 2]
    assert len(thick) == 1
    r = thick[0].get_ydata()
    assert np.allclose(r[:-1], res.aggregate().numpy()) and r[-1] == r[0]  # closed curve
    theta = thick[0].get_xdata()
    assert np.isclose(theta[-1] - theta[0], 2 * math.pi)
    circle = [ln for ln in ax.lines if ln.get_linestyle() == "--"][0]
    assert np.allclose(circle.get_ydata(), res.summary()["mean"])
    path = save_figure(ax, tmp_path / "polar.png")
    assert path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"
    from PIL import Image

    small = save_figure(plot_polar(res, samples=2), tmp_path / "polar_small.png", compact=True)
    with Image.open(small) as im:
        assert im.mode == "P" and im.size[0] > 100


def test_o2_polar_has_reflected_half():
    res = orbit_evaluation(_bad, _points(), "o2_z", 12, input_kinds=["cartesian_points"], output_kind="cartesian_points")
    ax = plot_orbit(res, samples=0)
    thick = [ln for ln in ax.lines if ln.get_linewidth() > 2]
    assert len(thick) == 2 and thick[1].get_label() == "reflected"
    assert np.allclose(thick[1].get_ydata()[:-1], res.aggregate().numpy()[12:])
    plt.close("all")


@pytest.mark.parametrize("group", ["so3", "o3"])
def test_sphere_heat_map(group, tmp_path):
    res = orbit_evaluation(_bad, _points(), group, 50, input_kinds=["cartesian_points"], output_kind="cartesian_points",
                           grid_kwargs={"num_angles": 2})
    ax = plot_orbit(res)
    assert ax.name == "mollweide"
    mesh = ax.collections[0]
    arr = np.asarray(mesh.get_array())
    grid = res.on_grid()
    grid = grid[0] if grid.ndim == 4 else grid
    expected = grid.mean(-1).numpy()
    drawn = arr.reshape(expected.shape[0] + 2, -1)  # pole rows added, last column repeats the first
    assert np.allclose(drawn[1:-1, :-1], expected)
    assert np.allclose(drawn[0], drawn[1]) and np.allclose(drawn[:, -1], drawn[:, 0])
    assert save_figure(ax, tmp_path / "sphere.png").stat().st_size > 5000


def test_plane_line_and_sample_views(tmp_path):
    pts = _points()
    res = orbit_evaluation(_bad, pts, "translations_xy", 25, input_kinds=["cartesian_points"], output_kind="cartesian_points")
    ax = plot_orbit(res)
    assert np.allclose(ax.images[0].get_array(), res.on_grid().numpy())
    save_figure(ax, tmp_path / "plane.png")
    res = orbit_evaluation(lambda p: p**2, pts, "scaling", 9, input_kinds=["cartesian_points"], output_kind="cartesian_points")
    ax = plot_orbit(res)
    assert ax.get_xscale() == "log" and np.allclose(ax.lines[-1].get_ydata(), res.aggregate().numpy())
    save_figure(ax, tmp_path / "line.png")
    res = orbit_evaluation(_bad, pts, "so2", 12, input_kinds=["cartesian_points"], output_kind="cartesian_points")
    fig = plot_orbit_samples(res, indices=[0, 3, 5], ncols=2)
    assert len(fig.axes) == 4 and not fig.axes[3].axison
    thick = [ln for ln in fig.axes[1].lines if ln.get_linewidth() > 2][0]
    assert np.allclose(thick.get_ydata()[:-1], res.per_sample(3).numpy())
    assert save_figure(fig, tmp_path / "samples.png").exists()


def test_plot_errors():
    res = orbit_evaluation(_bad, _points(), "so2", 8, input_kinds=["cartesian_points"], output_kind="cartesian_points")
    _, ax = plt.subplots()
    with pytest.raises(ValueError, match="polar axis"):
        plot_orbit(res, ax=ax)
    plt.close("all")
