"""Acetylacetone beyond the training distribution: a dihedral scan and the proton-transfer path.

The two potentials of ``benchmarks/acac.py`` (equiv's MACE and mace-torch, same size, trained for the
same 30 minutes of CPU time on ``train_300K``; kept in ``benchmarks/results/models/``) predict the
energy along two paths of the BOTNet acetylacetone data that no training structure comes near:

* ``test_dihedral.xyz``: 45 structures, rotation about one C-C bond of the conjugated system from 1°
  to 177° (energies up to about 1 eV above the minimum);
* ``test_H_transfer.xyz``: 15 images of the nudged-elastic-band path of the proton transfer between
  the two enol forms (barrier about 0.2 eV in the DFT data).

Energies are compared relative to each path's first structure (what the published curves show:
Kovács et al., "Evaluation of the MACE force field architecture", J. Chem. Phys. 159, 044118 (2023),
Figs. 4-5), so a constant offset does not count. Reported: RMSE and largest error of the relative
energy along each path, the DFT and predicted barrier (highest minus first), and a figure.

Run: ``.venv/bin/python benchmarks/acac_paths.py`` (seconds). Writes
``benchmarks/results/acac_paths.{json,md,png}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mace_common as common  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODELS = RESULTS / "models"
PATHS = {"dihedral": ("acac/test_dihedral.xyz", "dihedral angle (°)"),
         "H_transfer": ("acac/test_H_transfer.xyz", "NEB image")}


def _structures(rel):
    from equiv.data import data_dir, read_extxyz

    return read_extxyz(data_dir() / rel, energy_key="energy", require=("energy",))


def _equiv_energies(structures):
    from equiv.data import collate
    from equiv.train import load_potential, predict_properties

    model = load_potential(MODELS / "acac_equiv-cg" / "model.pt", dtype=torch.float64)
    batch = collate([d.with_graph(model.cutoff) for d in structures]).to(dtype=torch.float64)
    return predict_properties(model, batch, compute_forces=False)["energy"].detach()


def _mace_torch_energies(structures):
    from equiv.data import collate
    from equiv.train.checkpoint import load_checkpoint

    state = load_checkpoint(MODELS / "acac_mace-torch" / "mace_torch_model.pt")
    species, stats = state["species"], state["statistics"]
    e0 = [state["e0"][z] for z in species]
    torch.set_default_dtype(torch.float64)
    model = common.build_mace_torch(species, state["cutoff"], e0, stats["avg_num_neighbors"], stats["scale"],
                                    stats["shift"], state["config"])
    missing, unexpected = model.load_state_dict(state["state_dict"], strict=False)
    if unexpected or any("U_matrix" not in k for k in missing):
        raise RuntimeError(f"mace-torch weights do not fit: missing {missing}, unexpected {unexpected}")
    batch = collate([d.with_graph(state["cutoff"]) for d in structures]).to(dtype=torch.float64)
    out = model(common.mace_inputs(batch, species), training=False, compute_force=False)
    return out["energy"].detach()


def main(argv=None) -> int:
    import argparse

    import ase.io

    from equiv.data import data_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the same run (it takes seconds); for make bench")
    parser.parse_args(argv)

    torch.set_num_threads(1)
    results = {"machine": common.machine(), "paths": {}}
    for name, (rel, label) in PATHS.items():
        structures = _structures(rel)
        frames = ase.io.read(data_dir() / rel, index=":")
        x = [float(a.info["dihedral_angle"]) for a in frames] if name == "dihedral" else list(range(len(frames)))
        ref = torch.tensor([float(d.energy) for d in structures], dtype=torch.float64)
        preds = {"equiv-cg": _equiv_energies(structures), "mace-torch": _mace_torch_energies(structures)}
        row = {"n": len(structures), "x": x, "x_label": label, "dft_rel_eV": (ref - ref[0]).tolist(),
               "dft_barrier_meV": 1e3 * float((ref - ref[0]).max()), "models": {}}
        for model, e in preds.items():
            rel_e, rel_ref = e - e[0], ref - ref[0]
            err = rel_e - rel_ref
            row["models"][model] = {"rel_eV": rel_e.tolist(), "rmse_meV": 1e3 * float(err.pow(2).mean().sqrt()),
                                    "max_abs_err_meV": 1e3 * float(err.abs().max()),
                                    "barrier_meV": 1e3 * float(rel_e.max()),
                                    "offset_meV": 1e3 * float((e - ref).mean())}
        results["paths"][name] = row
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "acac_paths.json").write_text(json.dumps(results, indent=1))
    lines = ["# Acetylacetone: dihedral scan and proton transfer (extrapolation)", "",
             "Models: the 30-minute equal-budget runs of `benchmarks/acac.py` (trained on `train_300K` only), "
             f"float64. Machine: {results['machine']}. Command: `.venv/bin/python benchmarks/acac_paths.py`.", "",
             "Energies relative to the first structure of each path (constant offsets removed).", "",
             "| path | structures | DFT barrier (meV) | model | predicted barrier (meV) | RMSE (meV) | max error (meV) |",
             "|---|---|---|---|---|---|---|"]
    for name, row in results["paths"].items():
        for model, m in row["models"].items():
            lines.append(f"| {name} | {row['n']} | {row['dft_barrier_meV']:.0f} | {model} | {m['barrier_meV']:.0f} | "
                         f"{m['rmse_meV']:.1f} | {m['max_abs_err_meV']:.1f} |")
    lines += ["", "![paths](acac_paths.png)", ""]
    (RESULTS / "acac_paths.md").write_text("\n".join(lines))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for ax, (name, row) in zip(axes, results["paths"].items()):
            ax.plot(row["x"], [1e3 * v for v in row["dft_rel_eV"]], "k-", lw=2, label="DFT")
            for (model, m), style in zip(row["models"].items(), ("o-", "s--")):
                label = f"{model} (RMSE {m['rmse_meV']:.2g} meV)"
                ax.plot(row["x"], [1e3 * v for v in m["rel_eV"]], style, ms=3, label=label)
            ax.set_xlabel(row["x_label"])
            ax.set_ylabel("E − E(first) (meV)")
            ax.set_title(name.replace("_", " "))
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(RESULTS / "acac_paths.png", dpi=120)
    except ImportError:
        pass
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
