"""``equiv info``: what a saved potential is (model, species, cut-off, size, training data, validation
errors, versions), without running it.

Examples::

    equiv info runs/ethanol/model.pt
    equiv info runs/ethanol/model.pt --json
"""

from __future__ import annotations

import argparse
import json

__all__ = ["add_arguments", "run", "potential_info"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a saved potential (model.pt)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def potential_info(path) -> dict:
    """Summary of a saved potential: ``model``, ``class``, ``species`` (symbols), ``cutoff``, ``dtype``,
    ``parameters``, ``hparams``, ``training`` (data, structures, epoch, steps), ``valid_metrics``
    (meV, meV/Å), ``units``, ``versions``.

    >>> import os, tempfile
    >>> from equiv.models import ToyPotential
    >>> from equiv.train import save_potential
    >>> path = os.path.join(tempfile.mkdtemp(), "m.pt")
    >>> save_potential(ToyPotential(species=[1, 8], cutoff=4.0, channels=4), path)
    >>> info = potential_info(path)
    >>> info["model"], info["species"], info["cutoff"], info["parameters"] > 0
    ('toy', ['H', 'O'], 4.0, True)
    """
    from equiv.data import chemical_symbol
    from equiv.train.checkpoint import load_checkpoint
    from equiv.train.saved_model import FORMAT, load_potential

    state = load_checkpoint(path, map_location="cpu")
    if state.get("format") != FORMAT:
        raise ValueError(f"{str(path)!r} is not a saved equiv potential (format {state.get('format')!r})")
    model = load_potential(path)
    meta = state.get("metadata", {})
    cfg = meta.get("config", {})
    data = None
    if cfg:
        data = (f"rmd17:{cfg.get('molecule')}" if cfg.get("dataset") == "rmd17" else cfg.get("train_file"))
    hparams = {k: v for k, v in state["hparams"].items()
               if k not in ("species", "cutoff", "atomic_energies") and not isinstance(v, (list, dict)) or k == "radial_mlp"}
    return {
        "model": state["model"],
        "class": state.get("class"),
        "species": [chemical_symbol(z) for z in state["species"]],
        "cutoff": state["cutoff"],
        "dtype": state.get("dtype"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "hparams": hparams,
        "atomic_energies": dict(zip([chemical_symbol(z) for z in state["species"]],
                                    state["hparams"].get("atomic_energies", []))),
        "training": {"data": data, "structures": meta.get("n_train"), "epoch": meta.get("epoch"),
                     "steps": meta.get("global_step")} if meta else None,
        "valid_metrics": meta.get("valid_metrics") or None,
        "units": state.get("units"),
        "versions": state.get("versions"),
    }


def run(args: argparse.Namespace) -> int:
    info = potential_info(args.model)
    if args.json:
        print(json.dumps(info, indent=1, default=str))
        return 0
    cls = f" ({info['class']})" if info["class"] else ""
    print(f"{args.model}: {info['model']}{cls}, {info['parameters']:,} parameters, {info['dtype']}")
    print(f"  species {', '.join(info['species'])}; cut-off {info['cutoff']} Å")
    print("  " + ", ".join(f"{k}={v}" for k, v in info["hparams"].items()))
    if info["atomic_energies"]:
        print("  E0 (eV): " + ", ".join(f"{k} {v:.4f}" for k, v in info["atomic_energies"].items()))
    t = info["training"]
    if t:
        print(f"  trained on {t['data']} ({t['structures']} structures), saved at epoch {t['epoch']}, step {t['steps']}")
    m = info["valid_metrics"]
    if m:
        print(f"  validation: E MAE {m.get('energy_mae', float('nan')):.2f} meV, "
              f"F MAE {m.get('forces_mae', float('nan')):.2f} meV/Å, F RMSE {m.get('forces_rmse', float('nan')):.2f} meV/Å")
    if info["versions"]:
        print("  written by " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    return 0
