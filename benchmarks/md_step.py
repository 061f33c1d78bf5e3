"""Molecular-dynamics step latency: one structure, energy + forces, equiv's MACE vs mace-torch 0.3.16.

What an MD run pays per step on a small molecule: the graph of one structure, the energy and the forces
by autograd, no batch to amortise fixed costs. Same model configuration as ``potential_speed.py``
(``_mace_common.CONFIG``; equiv's model gets mace-torch's weights, so both compute the same function),
rMD17 frames, float64, one thread. Each library is timed with its weights frozen (``requires_grad_(False)``,
as ``equiv.calculators.EquivCalculator`` does for a model it loads), and equiv also with trainable weights
(what the step costs when the frozen-weight caches cannot be used). Models interleaved round by round;
median over rounds of the mean step time of ``--steps`` steps (positions moved a little each step).

Run: ``.venv/bin/python benchmarks/md_step.py [--molecules ethanol,aspirin] [--rounds 5]`` (``--quick``:
ethanol, 2 rounds of 5 steps, written to ``md_step_quick``). Writes ``benchmarks/results/md_step.{json,md}``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics as stats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mace_common as common  # noqa: E402
import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--molecules", default="ethanol,aspirin")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="ethanol only, 2 rounds of 5 steps (make bench)")
    args = p.parse_args(argv)
    if args.quick:
        args.molecules, args.rounds, args.steps = "ethanol", 2, 5
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)

    from equiv.data import collate, read_rmd17
    from equiv.data.extxyz import least_squares_e0
    from equiv.models import MACE
    from equiv.train.forces import predict_properties

    report = {"benchmark": "md_step", "command": "python benchmarks/md_step.py " + " ".join(argv or sys.argv[1:]),
              "machine": common.machine(), "threads": args.threads, "dtype": "float64", "config": common.CONFIG,
              "rounds": args.rounds, "steps": args.steps, "molecules": {}}
    for molecule in [m.strip() for m in args.molecules.split(",") if m.strip()]:
        frames = read_rmd17(molecule, indices=range(20))
        species = sorted({int(z) for d in frames for z in d.atomic_numbers})
        e0 = {int(k): float(v) for k, v in least_squares_e0(frames, species).items()}
        st = common.statistics(frames, e0)
        torch.manual_seed(0)
        ref = common.build_mace_torch(species, common.CUTOFF, [e0[z] for z in species], st["avg_num_neighbors"],
                                      st["scale"], st["shift"])
        ours = MACE.from_mace_torch(ref)
        models = {"mace-torch (frozen)": copy.deepcopy(ref).requires_grad_(False),
                  "equiv (frozen)": copy.deepcopy(ours).requires_grad_(False),
                  "equiv (trainable weights)": ours}
        base = frames[0]

        def step(name, k):
            moved = base.positions + 0.002 * torch.sin(torch.arange(base.positions.numel()).view(-1, 3) + k)
            data = dataclasses.replace(base, positions=moved, edge_index=None, unit_shifts=None)
            batch = collate([data.with_graph(common.CUTOFF)]).to(dtype=torch.float64)
            if name.startswith("mace-torch"):
                _, f = common.mace_predict(models[name], batch, species, False)
            else:
                f = predict_properties(models[name], batch)["forces"]
            return f.detach()

        forces = {name: step(name, 0) for name in models}
        diff = max(float((f - forces["mace-torch (frozen)"]).abs().max()) for f in forces.values())
        times = {name: [] for name in models}
        for name in models:
            for k in range(3):
                step(name, k)
        for r in range(args.rounds):
            for name in models:
                t = time.process_time()
                for k in range(args.steps):
                    step(name, k)
                times[name].append((time.process_time() - t) / args.steps)
            print(f"{molecule} round {r + 1}/{args.rounds}: "
                  + ", ".join(f"{n} {v[-1] * 1e3:.1f} ms" for n, v in times.items()), flush=True)
        med = {name: stats.median(v) for name, v in times.items()}
        report["molecules"][molecule] = {
            "atoms": int(base.atomic_numbers.numel()), "max_force_diff_eV_per_A": diff,
            "ms_per_step": {n: 1e3 * v for n, v in med.items()},
            "all_ms": {n: [1e3 * x for x in v] for n, v in times.items()},
            "speedup_vs_mace_torch": {n: med["mace-torch (frozen)"] / v for n, v in med.items()},
        }
    RESULTS.mkdir(exist_ok=True)
    stem = "md_step_quick" if args.quick else "md_step"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=2))
    lines = ["# MD step latency: one structure, energy + forces", "",
             f"Machine: {report['machine']}; CPU, float64, {args.threads} thread(s) (process CPU time). "
             f"Command: `{report['command']}`. Model: `_mace_common.CONFIG` ({common.CONFIG['hidden_irreps']}, "
             f"l <= {common.CONFIG['max_ell']}, correlation {common.CONFIG['correlation']}, "
             f"{common.CONFIG['num_interactions']} layers), equiv's with mace-torch's weights. Median over "
             f"{args.rounds} interleaved rounds of the mean of {args.steps} steps; each step builds the graph.", "",
             "| molecule | atoms | model | ms per step | speed-up vs mace-torch | max force difference (eV/Å) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {molecule} | {row['atoms']} | {name} | {ms:.1f} | {row['speedup_vs_mace_torch'][name]:.2f}× | "
              f"{row['max_force_diff_eV_per_A']:.1e} |"
              for molecule, row in report["molecules"].items() for name, ms in row["ms_per_step"].items()]
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
