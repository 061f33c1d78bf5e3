"""``equiv evaluate``: errors of a saved potential on a dataset, with a parity plot.

Examples::

    equiv evaluate --model runs/ethanol/model.pt --data rmd17:ethanol
    equiv evaluate --model runs/acac/model.pt --data acac/test_MD_600K.xyz --parity-plot acac600.png
"""

from __future__ import annotations

import argparse
import json

import torch

from equiv.cli import add_threads_argument, apply_threads

__all__ = ["add_arguments", "run", "load_eval_data"]


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
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    add_threads_argument(parser)


def load_eval_data(spec: str, energy_key=None, forces_key=None):
    """Structures named by ``spec`` (see ``--data``)."""
    from equiv.data.extxyz import read_extxyz, split_isolated_atoms
    from equiv.data.rmd17 import read_rmd17

    if spec.startswith("rmd17:"):
        parts = spec.split(":")
        split = parts[2] if len(parts) > 2 else "test"
        return read_rmd17(parts[1], split)
    return split_isolated_atoms(read_extxyz(spec, energy_key=energy_key, forces_key=forces_key))[1]


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
    data = load_eval_data(args.data, args.energy_key, args.forces_key)
    if args.max_structures is not None:
        data = data[: args.max_structures]
    ds = AtomsDataset(data, model.cutoff)
    acc, pred = evaluate(model, ds, args.batch_size, device, dtype, keep_predictions=True, progress=args.progress)
    metrics = acc.compute()
    metrics["n_structures"] = len(ds)
    print(f"{args.data}: {len(ds)} structures")
    for k, v in metrics.items():
        if k in METRIC_UNITS:
            print(f"  {k:22s} {v:10.3f} {METRIC_UNITS[k]}")
    if args.output:
        with open(args.output, "w") as fh:
            json.dump({"model": args.model, "data": args.data, "metrics": metrics, "units": METRIC_UNITS}, fh, indent=2)
    if args.parity_plot:
        from equiv.train.parity import parity_plot

        parity_plot(pred["energy_ref"], pred["energy_pred"], pred["n_atoms"], pred["forces_ref"], pred["forces_pred"],
                    args.parity_plot, title=args.data, metrics=metrics)
    return 0
