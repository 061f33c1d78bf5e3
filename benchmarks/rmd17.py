"""rMD17 at equal wall-clock budget: equiv's MACE vs mace-torch 0.3.16, same data, same recipe.

Both models (``_mace_common.CONFIG``: hidden 64x0e + 64x1o, edge harmonics to l = 3, correlation 3,
2 layers, r_max 5 Å) train on the same 950 frames (the workflow's reproducible 950/50 split of the
1000 rMD17 training frames), with the same E0 (least squares), statistics, batches, loss
(energy weight 1, force weight 100), AMSGrad (lr 0.01), EMA 0.99, plateau schedule, for the same
budget of training-loop time; then the best-validation EMA model of each is tested on the 1000 test
frames (energy and force MAE/RMSE). equiv trains through ``equiv train potential`` (its real
workflow); mace-torch through the minimal loop in ``_mace_common.run_mace_torch`` that mirrors it.

Runs are sequential in one process (equiv, then mace-torch). Rerunning the same command with a
larger ``--budget-minutes`` resumes both runs exactly from their checkpoints (``runs/bench/``), so
long comparisons can continue across sessions.

Run: ``.venv/bin/python benchmarks/rmd17.py --budget-minutes 30 --molecule ethanol``
(``--quick``: 1 minute each, 100 test frames). Writes ``benchmarks/results/rmd17.{json,md}`` (one
section per molecule)
and keeps the trained models in ``benchmarks/results/models/``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mace_common as common  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--molecule", default="ethanol")
    p.add_argument("--budget-minutes", type=float, default=30.0, help="training-loop time per model")
    p.add_argument("--quick", action="store_true", help="1 minute per model, 100 test frames")
    p.add_argument("--max-test", type=int, default=None, help="test on the first N test frames (default all 1000)")
    p.add_argument("--models", default="equiv-cg,mace-torch", help="comma list of equiv-cg, equiv-gaunt, mace-torch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (both libraries)")
    p.add_argument("--batch-size", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden-irreps", default=None,
                   help=f"equiv's hidden irreps (default {common.CONFIG['hidden_irreps']!r}, the equal-budget size); another "
                        "size is a separate run, named after it (e.g. equiv-cg-128x0e+128x1o+128x2e)")
    p.add_argument("--runs-dir", default=str(ROOT / "runs" / "bench"), help="checkpoints (resumable)")
    p.add_argument("--fresh", action="store_true", help="ignore existing checkpoints")
    p.add_argument("--table", action="store_true", help="only rewrite the Markdown from the JSON (with --long: the long runs')")
    p.add_argument("--long", action="store_true",
                   help="long run: continue in runs/long/ (seeded from the equal-budget checkpoint in --runs-dir) and "
                        "write rmd17_long.{json,md}, leaving the equal-budget comparison untouched")
    p.add_argument("--restart-from", default=None, metavar="MODEL_PT",
                   help="with --long, when the run's checkpoint is gone: continue from this saved model's (EMA) weights "
                        "with a fresh optimiser at --lr; the run's history and training time continue from the kept "
                        "history, and the restart is recorded")
    args = p.parse_args(argv)
    if args.restart_from and not args.long:
        p.error("--restart-from needs --long")
    if args.table:
        suffix = "_long" if args.long else ""
        runs = json.loads((HERE / "results" / f"rmd17{suffix}.json").read_text())["runs"]
        _write_md(runs, suffix)
        if args.long:
            _plot_long(runs)
        return 0
    budget = 1.0 if args.quick and args.budget_minutes == 30.0 else args.budget_minutes
    max_test = 100 if args.quick and args.max_test is None else args.max_test

    import torch

    from equiv.train._potential_config import DEFAULTS

    torch.set_num_threads(args.threads)
    cfg = dict(DEFAULTS, dataset="rmd17", molecule=args.molecule, n_train=950, n_valid=50, cutoff=common.CUTOFF,
               dtype=args.dtype, batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
               num_threads=args.threads, time_budget_minutes=budget, max_test=max_test, epochs=100000,
               resume=not args.fresh, progress=False, parity_plot=True)
    tag = f"rmd17_{args.molecule}"
    suffix = "_long" if args.long else ""
    path = HERE / "results" / f"rmd17{suffix}.json"
    runs = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    config, key = common.CONFIG, args.molecule
    if args.hidden_irreps and args.hidden_irreps.replace(" ", "") != common.CONFIG["hidden_irreps"].replace(" ", ""):
        if "mace-torch" in names:
            p.error("--hidden-irreps: equiv runs only (the equal-budget comparison keeps one size for both libraries)")
        size = args.hidden_irreps.replace(" ", "")
        config = dict(common.CONFIG, hidden_irreps=args.hidden_irreps)
        names, key = [f"{n}-{size}" for n in names], f"{args.molecule} ({size})"
    restarts = list(runs.get(key, {}).get("restarts", [])) if args.long else []
    reports = {}
    for name in names:
        run_dir = Path(args.runs_dir) / f"{tag}_{name}"
        keep = HERE / "results" / "models" / f"{tag}_{name}{suffix}"
        if args.long:
            run_dir = common.seed_long_run(run_dir, ROOT / "runs" / "long" / f"{tag}_{name}", kept=keep)
        run_cfg = dict(cfg)
        if args.restart_from and not (run_dir / "checkpoint.pt").exists():
            if name == "mace-torch":
                raise SystemExit("--restart-from: only equiv runs can restart from a saved model")
            restarts.append(_new_restart(keep, args.restart_from, args.lr, len(restarts) + 1))
        offset = restarts[-1] if restarts else None
        if offset:  # the budget counts the whole run's training time, restarts included; the restarted
            # run's learning rate is part of its identity (resuming it with another lr is refused)
            run_cfg.update(init_model=str(args.restart_from or offset["init_model"]), lr=offset["lr"],
                           time_budget_minutes=max(budget - offset["at_minutes"], 0.0))
        print(f"== {name}: {budget} min of training on {args.molecule}"
              + (f" ({run_cfg['time_budget_minutes']:.1f} min after restart {len(restarts)})" if offset else ""), flush=True)
        if name == "mace-torch":
            reports[name] = common.run_mace_torch(run_cfg, run_dir, keep)
        else:
            reports[name] = common.run_equiv(run_cfg, name.split("-")[1], run_dir, keep, config)
        if offset and not reports[name].get("interrupted"):
            _merge_restarted_history(keep, run_dir, offset, reports[name])
        if args.long:
            common.keep_checkpoint(run_dir, keep)
    stopped = [k for k, r in reports.items() if r.get("interrupted")]
    if stopped:
        print(f"interrupted ({', '.join(stopped)}): nothing recorded; run the same command again to resume", flush=True)
        return 130
    out = {"benchmark": "rmd17", "molecule": args.molecule, "budget_minutes_per_model": budget,
           "command": "python benchmarks/rmd17.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
           "machine": common.machine(), "device": args.device, "dtype": args.dtype, "threads": args.threads,
           "config": config, "training": {k: cfg[k] for k in ("batch_size", "lr", "optimizer", "energy_weight",
                                                                      "forces_weight", "ema_decay", "n_train", "n_valid")},
           "max_test": max_test, "reports": reports}
    if restarts:
        out["restarts"] = restarts
    out["segments"] = _segments(runs.get(key), out) if args.long else []
    runs[key] = out
    path.write_text(json.dumps({"benchmark": "rmd17", "runs": runs}, indent=2, default=str))
    _write_md(runs, suffix)
    if args.long:
        _plot_long(runs)
    return 0


#: Published energy / force MAE (meV, meV/Å) after full training on 950 frames, and issue 6's aspiration.
PUBLISHED = {"ethanol": {"MACE": (0.4, 2.1), "NequIP": (0.4, 2.8), "PONITA": (0.4, 2.5), "aspiration": (None, 3.0)},
             "aspirin": {"MACE": (2.2, 6.6), "NequIP": (2.3, 8.2), "PONITA": (1.7, 5.8), "aspiration": (None, 8.0)}}


def _plot_long(runs: dict) -> None:
    """results/rmd17_long.png: the learning curves of the long runs (one row per molecule), from the
    histories kept in results/models/, with the published numbers and the stretches not on a CPU shaded."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    from equiv.train.curves import learning_curve

    rows = [(o["molecule"], HERE / "results" / "models" / f"rmd17_{o['molecule']}_{name}_long" / "history.json", o, name)
            for o in runs.values() for name in o["reports"]]
    rows = [r for r in rows if r[1].exists()]
    if not rows:
        return
    fig, axes = plt.subplots(len(rows), 2, figsize=(10, 3.8 * len(rows)), squeeze=False)
    for ax, (mol, hist, o, name) in zip(axes, rows):
        starts = [0.0] + [g["until_minutes"] for g in o.get("segments", [])]
        spans = [(a / 60, g["until_minutes"] / 60, f"{g['device']}: {g['machine'].split(',')[0]}") for a, g in zip(starts, o.get("segments", []))
                 if g["device"] != "cpu"]
        test = o["reports"][name].get("tests", {}).get("test", {})
        marks = [(r["at_minutes"] / 60, f"restart {r['restart']}: saved weights, fresh optimiser") for r in o.get("restarts", [])]
        drawn = learning_curve(json.loads(hist.read_text()), axes=ax, references=PUBLISHED.get(mol), spans=spans, marks=marks,
                               title=f"{mol}, {name}: test E / F MAE {test.get('energy_mae', float('nan')):.1f} meV / "
                                     f"{test.get('forces_mae', float('nan')):.1f} meV/Å")
        print(f"{mol}: {drawn['hours']:.2f} h, best validation {drawn['best_valid']}", flush=True)
    fig.suptitle("rMD17 long runs: errors against training time (validation on 50 frames, EMA weights)", fontsize=10)
    fig.tight_layout()
    fig.savefig(HERE / "results" / "rmd17_long.png", dpi=110)
    plt.close(fig)


def _write_md(runs: dict, suffix: str) -> None:
    """Write results/rmd17{suffix}.md from the JSON runs."""
    md = (["# rMD17: long runs (resumed across sessions)", ""] if suffix
          else ["# rMD17: equiv vs mace-torch at equal training budget", ""])
    for mol, o in runs.items():
        reps = o["reports"]
        md += [f"## {mol}", "",
               f"Budget: {o['budget_minutes_per_model']} min of training-loop time per model (validation and test "
               f"excluded), {o['device']}, {o['dtype']}, {o['threads']} thread(s). Machine: {o['machine']}.",
               f"Command: `{o['command']}`. Test frames: {o['max_test'] or 1000} of the 1000 rMD17 test frames.",
               "", *common.comparison_tables(reps, ["test"]), "",
               "Load average (1 min) at the start / end of each run: "
               + ", ".join(f"{k} {r.get('load_avg_start', float('nan')):.1f}/{r.get('load_avg_end', float('nan')):.1f}"
                           for k, r in reps.items()) + ". On a shared CPU each run gets a different share of the "
               "machine; the step counts show how far each got.", ""]
        for r in o.get("restarts", []):
            md[-1:-1] = [f"Restart {r['restart']} at {r['at_minutes']:g} min (epoch {r['at_epoch']}, step {r['at_step']}): "
                         f"continued from `{r['init_model']}` at lr {r['lr']:g}: {r['why']}"]
        if len(o.get("segments", [])) > 1:
            md[-1:-1] = ["Hardware by stretch of training time: " + "; ".join(
                f"{a:g}–{g['until_minutes']:g} min on {g['device']} ({g['machine']})"
                for a, g in zip([0] + [g["until_minutes"] for g in o["segments"]], o["segments"])) + "."]
    md += ["Published (full training on 950 frames; energy MAE in meV, force MAE in meV/Å): MACE ethanol 0.4 / 2.1, "
           "aspirin 2.2 / 6.6; NequIP ethanol 0.4 / 2.8, aspirin 2.3 / 8.2; PONITA ethanol 0.4 / 2.5, aspirin 1.7 / 5.8."]
    if suffix:
        md += ["", "Learning curves (validation every epoch, published numbers as dashed lines): `rmd17_long.png`.", "",
               "![rMD17 long runs](rmd17_long.png)"]
    (HERE / "results" / f"rmd17{suffix}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def _new_restart(keep: Path, init_model: str, lr: float, k: int) -> dict:
    """Record a restart of a long run from a saved model: where the kept history stops (its epochs,
    steps and training time carry on) and a copy of that history (``history_before_restart_<k>.json``)."""
    history = json.loads((keep / "history.json").read_text())
    (keep / f"history_before_restart_{k}.json").write_text(json.dumps(history))
    last = history[-1]
    return {"restart": k, "at_minutes": round(last["time_s"] / 60, 2), "at_epoch": last["epoch"], "at_step": last["step"],
            "init_model": str(init_model), "lr": lr,
            "why": "the run's checkpoint (optimiser state) was lost with the machine; the saved model holds the EMA "
                   "weights of the best validation epoch. Optimiser moments, EMA and the plateau schedule start afresh."}


def _merge_restarted_history(keep: Path, run_dir: Path, restart: dict, report: dict) -> None:
    """After a restarted stretch: kept history = history before the restart + this run's, with epochs,
    steps and times continued; the report's step count and training time likewise."""
    before = json.loads((keep / f"history_before_restart_{restart['restart']}.json").read_text())
    after = json.loads((run_dir / "history.json").read_text()) if (run_dir / "history.json").exists() else []
    for r in after:
        r = dict(r)
        r["epoch"] += restart["at_epoch"]
        r["step"] += restart["at_step"]
        r["time_s"] += 60 * restart["at_minutes"]
        before.append(r)
    (keep / "history.json").write_text(json.dumps(before))
    report["train_time_s"] = report.get("train_time_s", 0.0) + 60 * restart["at_minutes"]
    report["global_step"] = report.get("global_step", 0) + restart["at_step"]
    if "epochs_completed" in report:
        report["epochs_completed"] += restart["at_epoch"]
    if "best_epoch" in report:
        report["best_epoch"] += restart["at_epoch"]
    report["restart"] = restart["restart"]


def _segments(previous: dict | None, out: dict) -> list:
    """Where each stretch of a long run trained: the previous entry's stretches, then this call's
    (consecutive calls on the same device and machine are merged)."""
    def machine(o):
        return o["machine"].split(", load average")[0]

    def minutes(o):  # training time actually reached (a run can stop before its budget)
        done = [r["train_time_s"] / 60 for r in o.get("reports", {}).values() if "train_time_s" in r]
        return round(max(done), 2) if done else o["budget_minutes_per_model"]

    segs = list((previous or {}).get("segments") or [])
    if previous and not segs:
        segs = [dict(device=previous["device"], machine=machine(previous), until_minutes=minutes(previous))]
    here = dict(device=out["device"], machine=machine(out), until_minutes=minutes(out))
    if segs and (segs[-1]["device"], segs[-1]["machine"]) == (here["device"], here["machine"]):
        segs[-1] = here
    else:
        segs.append(here)
    return segs


if __name__ == "__main__":
    raise SystemExit(main())
