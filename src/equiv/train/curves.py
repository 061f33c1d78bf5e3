"""Learning curves of a potential's training run, written with matplotlib's Agg.

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

__all__ = ["learning_curve", "load_history"]

#: (key in the records, axis label) of the two panels.
PANELS = (("energy_mae", "energy MAE (meV)"), ("forces_mae", "force MAE (meV/Å)"))
_REF_COLORS = ("tab:green", "tab:purple", "tab:brown", "tab:gray", "tab:olive", "tab:cyan")


def load_history(path: str | os.PathLike) -> list[dict]:
    """The per-epoch records of a run: ``path`` is ``history.json`` or the run's folder."""
    path = Path(path)
    if path.is_dir():
        path = path / "history.json"
    return json.loads(path.read_text())


def learning_curve(history, path: str | os.PathLike | None = None, *, title: str = "",
                   references: dict | None = None, spans=None, axes=None) -> dict:
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
    if (path is None) == (axes is None):
        raise ValueError("learning_curve: give either an output path or the axes to draw into")
    import matplotlib

    if axes is None:
        matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    hours = [r["time_s"] / 3600 for r in history]
    valid = [(h, r) for h, r in zip(hours, history) if r.get("valid")]
    best = min(valid, key=lambda hr: hr[1]["valid"]["forces_mae"]) if valid else None
    drops = [round(hours[i], 4) for i in range(1, len(history)) if history[i]["lr"] < history[i - 1]["lr"]]
    fig = None
    if axes is None:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for k, (ax, (key, label)) in enumerate(zip(axes, PANELS)):
        for start, end, name in spans or ():
            ax.axvspan(start, end, color="tab:orange", alpha=0.15, lw=0, label=name)
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
                             "forces_mae": best[1]["valid"]["forces_mae"]}
    return out
