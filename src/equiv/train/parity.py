"""Parity plots (predicted against reference energies and forces), written with matplotlib's Agg."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["parity_plot"]


def parity_plot(energy_ref, energy_pred, n_atoms, forces_ref, forces_pred, path: str | os.PathLike,
                title: str = "", metrics: dict | None = None) -> None:
    """Two panels: per-atom energy (meV/atom, shifted by the reference mean) and force components (eV/Å).

    Parameters
    ----------
    energy_ref, energy_pred, n_atoms : array-like, shape (S,)
    forces_ref, forces_pred : array-like, shape (N, 3)
    path : str or os.PathLike
        Output PNG.
    title : str
    metrics : dict, optional
        Shown in the panel titles (``energy_per_atom_mae`` meV/atom, ``forces_mae`` meV/Å).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    e_ref = np.asarray(energy_ref, dtype=float) / np.asarray(n_atoms, dtype=float)
    e_pred = np.asarray(energy_pred, dtype=float) / np.asarray(n_atoms, dtype=float)
    mean = e_ref.mean() if e_ref.size else 0.0
    e_ref, e_pred = 1e3 * (e_ref - mean), 1e3 * (e_pred - mean)
    f_ref = np.asarray(forces_ref, dtype=float).ravel()
    f_pred = np.asarray(forces_pred, dtype=float).ravel()
    metrics = metrics or {}
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, x, y, label, mae, unit in (
        (axes[0], e_ref, e_pred, "energy per atom − mean (meV/atom)", metrics.get("energy_per_atom_mae"), "meV/atom"),
        (axes[1], f_ref, f_pred, "force component (eV/Å)", metrics.get("forces_mae"), "meV/Å"),
    ):
        ax.scatter(x, y, s=3, alpha=0.4, rasterized=True)
        if x.size:
            lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"predicted {label}")
        if mae is not None:
            ax.set_title(f"MAE {mae:.3g} {unit}")
        ax.set_aspect("equal", adjustable="datalim")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
