"""Learning curves of training runs (potentials: `learning_curve`; N-body: `mse_curve`), drawn with
matplotlib's Agg.

`equiv train potential` appends one record per epoch to ``history.json``::

    {"epoch": 12, "step": 2280, "lr": 0.01, "time_s": 715.3,
     "train": {"energy_mae": ..., "forces_mae": ...}, "valid": {"energy_mae": ..., "forces_mae": ...}}

(energies in meV, forces in meV/Å; ``time_s`` is training-loop time summed over resumes). The
curves show both errors of the training and validation sets against training time, on log axes,
with the epochs where the plateau schedule lowered the learning rate marked, optional reference
lines (published numbers) and shaded stretches (e.g. hours trained on another device).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

__all__ = ["can_plot", "learning_curve", "load_history", "mse_curve"]

#: (key in the records, axis label) of the two panels.
PANELS = (("energy_mae", "energy MAE (meV)"), ("forces_mae", "force MAE (meV/Å)"))
_REF_COLORS = ("tab:green", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan")


def can_plot(what: str) -> bool:
    """Whether matplotlib is installed (the ``plot`` extra); prints what is skipped when it is not."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        print(f"matplotlib is not installed (pip install 'equiv[plot]'): {what} skipped", flush=True)
        return False
    return True


def _pyplot(caller: str, path, axes):
    """matplotlib.pyplot, with the Agg backend when drawing a new figure to ``path``; exactly one of
    ``path`` and ``axes`` must be given."""
    if (path is None) == (axes is None):
        raise ValueError(f"{caller}: give either an output path or the axes to draw into")
    import matplotlib

    if axes is None:
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def load_history(path: str | os.PathLike) -> list[dict]:
    """The per-epoch records of a run: ``path`` is ``history.json`` or the run's folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "history.json"
    return json.loads(path.read_text())


def learning_curve(history, path: str | os.PathLike | None = None, *, title: str = "",
                   references: dict | None = None, spans=None, marks=None, axes=None) -> dict:
    r"""Plot energy and force MAE (training and validation) against training time in hours.

    Parameters
    ----------
    history : list of dict or str or os.PathLike
        Per-epoch records (see the module docstring), or a path for `load_history`.
    path : str or os.PathLike, optional
        Output PNG (a new figure of two panels). Leave out when drawing into ``axes``.
    title : str
    references : dict, optional
        ``label -> (energy MAE, force MAE)`` drawn as horizontal lines (``None`` skips a panel).
    spans : list of (start_hours, end_hours, label), optional
        Stretches of training time to shade, e.g. ``[(1.08, 1.36, "H100")]``.
    marks : list of (hours, label), optional
        Moments to mark with a vertical line, e.g. ``[(7.45, "restart: fresh optimiser")]``.
    axes : pair of matplotlib axes, optional
        Draw into these instead of a new figure.

    Returns
    -------
    dict
        What was drawn: ``hours`` of training, ``best_valid`` (the record with the lowest validation
        force MAE: ``epoch``, ``hours``, ``energy_mae``, ``forces_mae``) and ``lr_drops`` (hours at
        which the learning rate went down).

    Example
    -------
    >>> import tempfile, os
    >>> hist = [{"epoch": e, "time_s": 60.0 * e, "lr": 0.01 if e < 3 else 0.008,
    ...          "train": {"energy_mae": 9.0 / e, "forces_mae": 30.0 / e},
    ...          "valid": {"energy_mae": 10.0 / e, "forces_mae": 33.0 / e}} for e in range(1, 5)]
    >>> out = learning_curve(hist, os.path.join(tempfile.mkdtemp(), "curve.png"))
    >>> out["best_valid"]["epoch"], out["lr_drops"]
    (4, [0.05])
    """
    if not isinstance(history, list):
        history = load_history(history)
    if not history:
        raise ValueError("learning_curve: the history is empty (no epoch has finished yet)")
    plt = _pyplot("learning_curve", path, axes)
    hours = [r["time_s"] / 3600 for r in history]
    valid = [(h, r) for h, r in zip(hours, history) if r.get("valid")]
    # the best record by force error, or by energy error for data without forces
    key = "forces_mae" if all("forces_mae" in r["valid"] for _, r in valid) else "energy_mae"
    best = min(valid, key=lambda hr: hr[1]["valid"].get(key, math.inf)) if valid else None
    drops = [round(hours[i], 4) for i in range(1, len(history)) if history[i]["lr"] < history[i - 1]["lr"]]
    fig = None
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, (ax, (key, label)) in enumerate(zip(axes, PANELS)):
        for start, end, name in spans or ():
            ax.axvspan(start, end, color="tab:orange", alpha=0.15, lw=0, label=name)
        for at, name in marks or ():
            ax.axvline(at, color="tab:gray", ls="--", lw=0.8, label=name)
        ax.plot(hours, [r["train"].get(key, math.nan) for r in history], lw=0.8, color="tab:blue", label="train")
        if valid:
            ax.plot([h for h, _ in valid], [r["valid"].get(key, math.nan) for _, r in valid], lw=1.0,
                    color="tab:red", label="validation (EMA)")
        for d in drops:
            ax.axvline(d, color="0.6", lw=0.5, ls=":")
        for i, (name, values) in enumerate((references or {}).items()):
            if values is not None and values[k] is not None:
                ax.axhline(values[k], color=_REF_COLORS[i % len(_REF_COLORS)], lw=0.9, ls="--",
                           label=f"{name} {values[k]:g}")
        if best is not None:
            ax.plot([best[0]], [best[1]["valid"].get(key, math.nan)], "o", color="tab:red", ms=4)
        ax.set_yscale("log")
        ax.set_xlabel("training time (h)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both", lw=0.4)
        ax.legend(fontsize=7)
    if title:
        axes[0].set_title(title, fontsize=9, loc="left")
    if fig is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    out = {"hours": round(hours[-1], 4), "lr_drops": drops, "best_valid": None}
    if best is not None:
        out["best_valid"] = {"epoch": best[1]["epoch"], "hours": round(best[0], 4),
                             "energy_mae": best[1]["valid"].get("energy_mae"),
                             "forces_mae": best[1]["valid"].get("forces_mae")}
    return out


def mse_curve(runs, path: str | os.PathLike | None = None, *, title: str = "", published: float | None = None,
              ax=None) -> dict:
    r"""Training (thin) and validation (thick) MSE per epoch of one or more N-body runs, on log axes.

    Parameters
    ----------
    runs : list of dict
        Each with ``label``, ``history`` (columns ``{"epoch", "train_mse", "valid_mse"}`` as in the
        results of `equiv.train.nbody.train_nbody`; ``None`` where an epoch was not validated) and
        optionally ``best_epoch`` (marked).
    path : str or os.PathLike, optional
        Output PNG (a new figure). Leave out when drawing into ``ax``.
    title : str
    published : float, optional
        A published test MSE, drawn as a dashed line.
    ax : matplotlib axes, optional

    Returns
    -------
    dict
        ``label -> (epoch, validation MSE)`` of each run's lowest validation MSE.

    Example
    -------
    >>> import tempfile, os
    >>> h = {"epoch": [1, 2, 3], "train_mse": [0.1, 0.01, 0.005], "valid_mse": [0.1, None, 0.02]}
    >>> mse_curve([{"label": "egnn", "history": h}], os.path.join(tempfile.mkdtemp(), "c.png"), published=0.0071)
    {'egnn': (3, 0.02)}
    """
    if not runs:
        raise ValueError("mse_curve: no runs to draw")
    plt = _pyplot("mse_curve", path, ax)
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.5, 4))
    best = {}
    for i, run in enumerate(runs):
        h, color = run["history"], f"C{i}"
        valid = [(e, v) for e, v in zip(h["epoch"], h["valid_mse"]) if v is not None]
        ax.plot(h["epoch"], h["train_mse"], lw=0.6, alpha=0.6, color=color)
        if valid:
            ax.plot(*zip(*valid), lw=1.1, color=color, label=run["label"])
            best[run["label"]] = min(valid, key=lambda ev: ev[1])
            at = dict(valid).get(run.get("best_epoch"))
            if at is not None:
                ax.plot([run["best_epoch"]], [at], "o", ms=4, color=color)
    if published:
        ax.axhline(published, color="k", ls="--", lw=0.8, label=f"published {published}")
    ax.set(xscale="log", yscale="log", xlabel="epoch", ylabel="MSE (thin: training, thick: validation)", title=title)
    ax.grid(alpha=0.3, which="both", lw=0.4)
    ax.legend(fontsize=7)
    if fig is not None:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
    return best
