"""Plots of orbit evaluations (NERO) with matplotlib (Agg backend, no display needed).

- one-parameter groups (SO(2), O(2)): a polar plot of the metric against the angle -- an equivariant
  model draws a circle; per-sample orbits as thin lines, the dataset aggregate as a thick one;
- SO(3) / O(3): a Mollweide heat map on the sphere of where the rotation sends the north pole
  (averaged over the roll angle), or of the rotation axis (``parametrization="axis_angle"``);
- translations in a plane: a heat map over the translation; scalings and other lines: a line plot.

>>> import torch
>>> from equiv.symmetry import orbit_evaluation
>>> res = orbit_evaluation(lambda p: p[:, 0], torch.randn(8, 3), "so2_z", 24, input_kinds=["cartesian_points"])
>>> fig = plot_orbit(res).figure
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["plot_orbit", "plot_polar", "plot_sphere", "plot_plane", "plot_line", "plot_orbit_samples", "save_figure"]


def _label(result) -> str:
    arrow = "higher is better" if result.higher_is_better else "lower is better"
    return f"{result.metric} vs {result.reference} ({arrow})"


def plot_polar(result, ax=None, samples: int = 5, title: str | None = None, rmax: float | None = None, color="C0"):
    """Polar plot of the metric against the rotation angle (SO(2), O(2)).

    The aggregate over samples is the thick line, up to ``samples`` individual orbits thin lines; the
    dashed circle at the orbit mean is what an equivariant model would draw. For O(2) the reflected
    half of the group is drawn in a second colour.
    """
    if ax is None:
        _, ax = plt.subplots(subplot_kw={"projection": "polar"}, figsize=(4, 4))
    angles = result.grid.coords["angle"].numpy()
    shape = result.grid.shape
    parts = 2 if len(shape) == 2 else 1
    n = shape[-1]
    agg = result.aggregate().numpy()
    vals = result.values.numpy()
    for p in range(parts):
        sl = slice(p * n, (p + 1) * n)
        th = np.append(angles[sl], angles[sl][0] + 2 * math.pi)
        col = color if p == 0 else "C3"
        for i in range(min(samples, vals.shape[1])):
            ax.plot(th, np.append(vals[sl, i], vals[sl, i][0]), color=col, alpha=0.25, lw=0.7)
        ax.plot(th, np.append(agg[sl], agg[sl][0]), color=col, lw=2.2, label="reflected" if p else "mean over samples")
    mean = result.summary()["mean"]
    circle = np.linspace(0, 2 * math.pi, 200)
    ax.plot(circle, np.full_like(circle, mean), "k--", lw=0.8, label="equivariant: a circle")
    if rmax is None and samples > 0:
        # keep the aggregate readable: thin per-sample lines may leave the plot
        rmax = max(1.3 * float(agg.max()), float(np.quantile(vals[:, :samples], 0.9)))
    if rmax is not None and rmax > 0:
        ax.set_rmax(rmax)
        ax.set_rmin(0.0)
    ax.set_rlabel_position(135)
    ax.set_title(title or f"{result.group}: {_label(result)}", fontsize=9)
    ax.legend(loc="lower left", fontsize=6, bbox_to_anchor=(-0.15, -0.15))
    return ax


def plot_sphere(result, ax=None, title: str | None = None, vmin=None, vmax=None, cmap="viridis", part: int = 0, sample: int | None = None):
    """Mollweide heat map of the metric on the sphere (SO(3), O(3) grids).

    Longitude :math:`\\alpha`, latitude :math:`\\pi/2 - \\beta` of the north pole's image (or of the rotation
    axis for ``axis_angle`` grids), averaged over the remaining angle. Dataset-level (mean over samples)
    by default, one sample's orbit with ``sample=i``. For O(3) ``part=1`` shows the improper half.
    """
    if ax is None:
        fig = plt.figure(figsize=(6, 3.4))
        ax = fig.add_subplot(111, projection="mollweide")
    vals = result.on_grid(None if sample is None else result.per_sample(sample))
    if vals.ndim == 4:  # O(3): (2, nb, na, ng)
        vals = vals[part]
    data = vals.mean(-1).numpy()  # (nb, na)
    nb, na = data.shape
    beta = result.grid.coords["beta"].reshape(result.grid.shape)[(0,) * (len(result.grid.shape) - 3)][:, 0, 0].numpy()
    alpha = np.arange(na) * 2 * math.pi / na
    lon = np.append(alpha, 2 * math.pi) - math.pi
    # close the map: wrap in longitude, and extend the first/last Gauss-Legendre rows to the poles
    lat = np.concatenate([[math.pi / 2], math.pi / 2 - beta, [-math.pi / 2]])
    data = np.concatenate([data, data[:, :1]], 1)
    data = np.concatenate([data[:1], data, data[-1:]], 0)
    mesh = ax.pcolormesh(lon, lat, data, shading="gouraud", cmap=cmap, vmin=vmin, vmax=vmax)
    ax.grid(True, alpha=0.3)
    ax.set_xticklabels([])
    cb = plt.colorbar(mesh, ax=ax, orientation="horizontal", pad=0.05, fraction=0.06)
    cb.set_label(_label(result), fontsize=7)
    where = "rotation axis" if result.grid.meta.get("parametrization") == "axis_angle" else "image of the z axis"
    ax.set_title(title or f"{result.group}: by {where}", fontsize=9)
    return ax


def plot_plane(result, ax=None, title: str | None = None, vmin=None, vmax=None, cmap="viridis"):
    """Heat map over a plane of translations (or the middle slice of a cube)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 3.4))
    vals = result.on_grid().numpy()
    names = list(result.grid.coords)
    if vals.ndim == 3:
        vals = vals[:, :, vals.shape[2] // 2]
    a = result.grid.coords[names[0]].numpy()
    b = result.grid.coords[names[1]].numpy()
    extent = [b.min(), b.max(), a.min(), a.max()]
    im = ax.imshow(vals, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xlabel(f"translation {names[1]}")
    ax.set_ylabel(f"translation {names[0]}")
    plt.colorbar(im, ax=ax).set_label(_label(result), fontsize=7)
    ax.set_title(title or f"{result.group}", fontsize=9)
    return ax


def plot_line(result, ax=None, samples: int = 8, title: str | None = None, color="C0"):
    """Line plot against the group parameter (scalings: log scale)."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3))
    key = "scale" if "scale" in result.grid.coords else next(iter(result.grid.coords))
    x = result.grid.coords[key].numpy()
    vals = result.values.numpy()
    for i in range(min(samples, vals.shape[1])):
        ax.plot(x, vals[:, i], color=color, alpha=0.25, lw=0.7)
    ax.plot(x, result.aggregate().numpy(), color=color, lw=2.2, label="mean over samples")
    if key == "scale":
        ax.set_xscale("log")
    ax.set_xlabel(key)
    ax.set_ylabel(_label(result), fontsize=8)
    ax.set_title(title or f"{result.group}", fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_orbit(result, ax=None, **kwargs):
    """Dispatch on the grid layout: circle -> polar, sphere -> Mollweide, plane/cube -> heat map, line -> line."""
    layout = result.grid.layout
    if layout == "circle":
        if ax is not None and getattr(ax, "name", "") != "polar":
            raise ValueError("plot_orbit: a one-parameter orbit needs a polar axis (subplot_kw={'projection': 'polar'})")
        return plot_polar(result, ax=ax, **kwargs)
    if layout == "sphere":
        return plot_sphere(result, ax=ax, **kwargs)
    if layout in ("plane", "cube"):
        return plot_plane(result, ax=ax, **kwargs)
    return plot_line(result, ax=ax, **kwargs)


def plot_orbit_samples(result, indices=None, ncols: int = 4, titles=None):
    """Per-sample view: one small plot per sample's orbit (polar for one-parameter groups)."""
    indices = list(range(min(8, result.num_samples))) if indices is None else list(indices)
    nrows = max(1, math.ceil(len(indices) / ncols))
    polar = result.grid.layout == "circle"
    projection = {"circle": "polar", "sphere": "mollweide"}.get(result.grid.layout)
    size = (3.2, 2.3) if projection == "mollweide" else (2.3, 2.4)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), subplot_kw={"projection": projection} if projection else {},
        squeeze=False,
    )
    sub = _Subset(result)
    for k, ax in enumerate(axes.flat):
        if k >= len(indices):
            ax.axis("off")
            continue
        r = sub.of(indices[k])
        title = titles[k] if titles is not None else f"sample {indices[k]}"
        if polar:
            plot_polar(r, ax=ax, samples=0, title=title)
            ax.get_legend().remove()
            ax.tick_params(labelsize=5)
        else:
            plot_orbit(r, ax=ax, title=title)
            if projection == "mollweide":
                ax.set_yticklabels([])
    if projection != "mollweide":
        fig.tight_layout()
    return fig


class _Subset:
    def __init__(self, result):
        self.result = result

    def of(self, i):
        import dataclasses

        return dataclasses.replace(self.result, values=self.result.values[:, i : i + 1], outputs=None)


def save_figure(fig_or_ax, path, dpi: int = 110, compact: bool = False) -> Path:
    """Save a figure (or an axis's figure) as PNG and close it; returns the path.

    ``compact=True`` re-encodes the PNG with a 256-colour adaptive palette (Pillow), typically 2-3x
    smaller: for figures committed to the repository.
    """
    fig = fig_or_ax.figure if hasattr(fig_or_ax, "figure") and not isinstance(fig_or_ax, plt.Figure) else fig_or_ax
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    if compact:
        from PIL import Image

        with Image.open(path) as im:
            small = im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)
    return path
