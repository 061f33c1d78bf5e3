"""``equiv evaluate``: errors of a saved potential on a dataset, with a parity plot; predictions
written to extxyz (labelled or not).

Examples::

    equiv evaluate --model runs/ethanol/model.pt --data rmd17:ethanol
    equiv evaluate --model runs/acac/model.pt --data acac/test_MD_600K.xyz --parity-plot acac600.png
    equiv evaluate --model runs/acac/model.pt --data new_structures.xyz --predictions predicted.xyz
"""

from __future__ import annotations

import argparse
import json

import torch

from equiv.cli import add_threads_argument, apply_threads

__all__ = ["add_arguments", "run", "load_eval_data", "write_predictions"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="saved potential (model.pt)")
    parser.add_argument("--data", required=True,
                        help="extxyz file (relative paths also tried under the data folder), or "
                             "rmd17:<molecule>[:train|test] (default split: test)")
    parser.add_argument("--energy-key", default=None, help="extxyz energy key (default: REF_energy, energy, ...)")
    parser.add_argument("--forces-key", default=None, help="extxyz forces key (default: REF_forces, forces, ...)")
    parser.add_argument("--max-structures", type=int, default=None, help="evaluate only the first N")
    parser.add_argument("--batch-size", type=int, default=10, help="default 10")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None, help="default: the model's")
    parser.add_argument("--output", default=None, help="write the metrics as JSON here")
    parser.add_argument("--parity-plot", default=None, help="write a parity plot PNG here")
    parser.add_argument("--predictions", default=None, metavar="XYZ",
                        help="write every structure with its predicted energy, forces (and stress, periodic cells) "
                             "to this extxyz file; structures need no labels")
    parser.add_argument("--prefix", default="equiv_",
                        help="key prefix of the predictions in --predictions (default equiv_: equiv_energy, "
                             "equiv_forces, equiv_stress)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    add_threads_argument(parser)


def load_eval_data(spec: str, energy_key=None, forces_key=None, require=("energy", "forces")):
    """Structures named by ``spec`` (see ``--data``); labelled isolated-atom frames (E0 references) are
    left out. ``require=()`` accepts structures without labels."""
    from equiv.data.extxyz import _is_isolated, read_extxyz
    from equiv.data.rmd17 import read_rmd17

    if spec.startswith("rmd17:"):
        parts = spec.split(":")
        split = parts[2] if len(parts) > 2 else "test"
        return read_rmd17(parts[1], split)
    data = read_extxyz(spec, energy_key=energy_key, forces_key=forces_key, require=require)
    return [d for d in data if not (_is_isolated(d) and d.energy is not None)]


def write_predictions(path, data, pred, prefix: str = "equiv_") -> None:
    """Write ``data`` (AtomicData) to extxyz with its labels (``REF_energy``, ``REF_forces``, ``REF_stress``)
    and the predictions ``pred`` of `equiv.train.potential.evaluate` (``<prefix>energy``,
    ``<prefix>forces``, ``<prefix>stress`` in Voigt order xx yy zz yz xz xy, eV/Å³)."""
    import numpy as np
    from ase.io import write

    forces = np.split(pred["forces"], np.cumsum(pred["n_atoms"])[:-1])
    frames = []
    for k, d in enumerate(data):
        atoms = d.to_ase()
        atoms.info.update({key: v for key, v in d.info.items() if key not in ("index", "source")})
        if d.energy is not None:
            atoms.info["REF_energy"] = float(d.energy)
        if d.forces is not None:
            atoms.arrays["REF_forces"] = d.forces.double().numpy()
        atoms.info[prefix + "energy"] = float(pred["energy_pred"][k])
        atoms.arrays[prefix + "forces"] = forces[k]
        if len(pred["stress_pred"]):
            s = pred["stress_pred"][k]
            atoms.info[prefix + "stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        frames.append(atoms)
    write(str(path), frames, format="extxyz")


def run(args: argparse.Namespace) -> int:
    from equiv.data import AtomsDataset
    from equiv.train.metrics import METRIC_UNITS
    from equiv.train.potential import evaluate
    from equiv.train.saved_model import load_potential

    apply_threads(args)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    dtype = getattr(torch, args.dtype) if args.dtype else None
    model = load_potential(args.model, device=device, dtype=dtype)
    dtype = next(model.parameters()).dtype
    data = load_eval_data(args.data, args.energy_key, args.forces_key,
                          require=() if args.predictions else ("energy", "forces"))
    if args.max_structures is not None:
        data = data[: args.max_structures]
    if not data:
        raise ValueError(f"--data: {args.data!r} holds no structures to evaluate")
    ds = AtomsDataset(data, model.cutoff)
    periodic = all(bool(d.pbc.all()) for d in data)
    acc, pred = evaluate(model, ds, args.batch_size, device, dtype, keep_predictions=True, progress=args.progress,
                         predict_stress=bool(args.predictions) and periodic)
    metrics = acc.compute()
    metrics["n_structures"] = len(ds)
    print(f"{args.data}: {len(ds)} structures")
    for k, v in metrics.items():
        if k in METRIC_UNITS:
            print(f"  {k:22s} {v:10.3f} {METRIC_UNITS[k]}")
    if "energy_mae" not in metrics and "forces_mae" not in metrics:
        print("  no reference labels: predictions only")
    if args.predictions:
        write_predictions(args.predictions, data, pred, args.prefix)
        print(f"wrote {args.predictions} ({args.prefix}energy, {args.prefix}forces"
              + (f", {args.prefix}stress" if len(pred["stress_pred"]) else "") + ")")
    if args.output:
        with open(args.output, "w") as fh:
            json.dump({"model": args.model, "data": args.data, "metrics": metrics, "units": METRIC_UNITS}, fh, indent=2)
    if args.parity_plot and "energy_mae" not in metrics:
        print("  no parity plot: the structures have no energy labels")
    elif args.parity_plot:
        from equiv.train.parity import parity_plot

        parity_plot(pred["energy_ref"], pred["energy_pred"], pred["n_atoms"], pred["forces_ref"], pred["forces_pred"],
                    args.parity_plot, title=args.data, metrics=metrics)
    return 0
