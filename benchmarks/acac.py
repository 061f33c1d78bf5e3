"""Acetylacetone (BOTNet data) at equal wall-clock budget: equiv's MACE vs mace-torch 0.3.16.

Train on ``acac/train_300K.xyz`` (500 structures; the workflow holds out 10 % for validation with a
fixed seed), E0 from the DFT isolated-atom energies (``acac/isolated_atoms.xyz``), test on
``test_MD_300K`` and ``test_MD_600K`` (extrapolation to a hotter MD), energy and force RMSE (and MAE).
Same model size, recipe and budget rule as ``rmd17.py`` (see ``_mace_common.py``): equiv trains
through ``equiv train potential``, mace-torch through the mirroring loop; runs resume from
``runs/bench/`` when rerun with a larger budget.

Run: ``.venv/bin/python benchmarks/acac.py --budget-minutes 30`` (``--quick``: 1 minute each,
100 test structures per set). Writes ``benchmarks/results/acac.{json,md}``; trained models in
``benchmarks/results/models/``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mace_common as common  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TESTS = ["acac/test_MD_300K.xyz", "acac/test_MD_600K.xyz"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget-minutes", type=float, default=30.0, help="training-loop time per model")
    p.add_argument("--quick", action="store_true", help="1 minute per model, 100 test structures per set")
    p.add_argument("--max-test", type=int, default=None, help="first N structures of each test set (default all)")
    p.add_argument("--models", default="equiv-cg,mace-torch", help="comma list of equiv-cg, equiv-gaunt, mace-torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (both libraries)")
    p.add_argument("--batch-size", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "bench"), help="checkpoints (resumable)")
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    args = p.parse_args(argv)
    budget = 1.0 if args.quick and args.budget_minutes == 30.0 else args.budget_minutes
    max_test = 100 if args.quick and args.max_test is None else args.max_test

    import torch

    from equiv.train._potential_config import DEFAULTS

    torch.set_num_threads(args.threads)
    cfg = dict(DEFAULTS, dataset="extxyz", train_file="acac/train_300K.xyz", valid_fraction=0.1, test_file=TESTS,
               energy_key="energy", forces_key="forces", e0s="acac/isolated_atoms.xyz", cutoff=common.CUTOFF,
               dtype=args.dtype, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
               num_threads=args.threads, time_budget_minutes=budget, max_test=max_test, epochs=100000,
               resume=not args.fresh, progress=False, parity_plot=True)
    reports = {}
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        run_dir = Path(args.runs_dir) / f"acac_{name}"
        keep = HERE / "results" / "models" / f"acac_{name}"
        print(f"== {name}: {budget} min of training on acac train_300K", flush=True)
        if name == "mace-torch":
            reports[name] = common.run_mace_torch(dict(cfg), run_dir, keep)
        else:
            reports[name] = common.run_equiv(dict(cfg), name.split("-", 1)[1], run_dir, keep)
    test_names = sorted({t for r in reports.values() for t in r["tests"]})
    stopped = [k for k, r in reports.items() if r.get("interrupted")]
    if stopped:
        print(f"interrupted ({', '.join(stopped)}): nothing recorded; run the same command again to resume", flush=True)
        return 130
    out = {"benchmark": "acac", "budget_minutes_per_model": budget,
           "command": "python benchmarks/acac.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "machine": common.machine(), "device": args.device, "dtype": args.dtype, "threads": args.threads,
           "config": common.CONFIG, "max_test": max_test, "reports": reports}
    (HERE / "results" / "acac.json").write_text(json.dumps(out, indent=2, default=str))
    md = ["# Acetylacetone: equiv vs mace-torch at equal training budget", "",
          f"Train: acac train_300K (450 train / 50 validation), E0 from isolated atoms. Budget: {budget} min of "
          f"training-loop time per model (validation and test excluded), {args.device}, {args.dtype}, "
          f"{args.threads} thread(s). Machine: {out['machine']}.",
          f"Command: `{out['command']}`. Test structures per set: {max_test or 'all'}.",
          "", *common.comparison_tables(reports, test_names), "",
          "Load average (1 min) at the start / end of each run: "
          + ", ".join(f"{k} {r.get('load_avg_start', float('nan')):.1f}/{r.get('load_avg_end', float('nan')):.1f}"
                      for k, r in reports.items()) + ". On a shared CPU each run gets a different share of the "
          "machine; the step counts show how far each got."]
    (HERE / "results" / "acac.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
