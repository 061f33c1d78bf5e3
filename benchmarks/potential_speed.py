"""MACE speed: equiv vs mace-torch 0.3.16, same model size, same data, same process.

Models: mace-torch ``ScaleShiftMACE`` (CLI defaults: residual interaction blocks, radial MLP
[64, 64, 64], 8 Bessel, p = 5, read-out 16x0e) and ``equiv.models.MACE`` with ``tp="cg"`` and
``tp="gaunt"``; hidden ``64x0e + 64x1o``, edge harmonics to l = 3, correlation 3, 2 layers,
r_max = 5 Å (``_mace_common.CONFIG``). Data: rMD17 aspirin training frames (21 atoms).

Measured, after warm-up, models interleaved round by round (so a load change on a shared machine
hits all of them alike), median over rounds:

* **training step**: energy + forces (autograd, ``create_graph``), loss
  :math:`\\mathrm{MSE}(E/N) + 100\\,\\mathrm{MSE}(F)`, backward, Adam step — batch of ``--batch-size``;
* **inference**: energy + forces (no graph kept), structures per second on batches of
  ``--infer-batch-size``.

``equiv-cg`` is built from the mace-torch model with ``MACE.from_mace_torch`` (the same function, same
weights; the agreement is printed and recorded).

Run: ``.venv/bin/python benchmarks/potential_speed.py [--quick] [--device cuda] [--dtype float32]``.
Writes ``benchmarks/results/potential_speed.{json,md}``. The default is one intra-op thread (on a
shared CPU, threads mostly add contention); ``--threads`` changes it for both libraries alike.
"""

from __future__ import annotations

import argparse
import json
import statistics as stats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import _mace_common as common  # noqa: E402
import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds (for make bench)")
    p.add_argument("--molecule", default="aspirin")
    p.add_argument("--batch-size", type=int, default=5, help="training batch (structures)")
    p.add_argument("--infer-batch-size", type=int, default=20, help="inference batch (structures)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 7, quick 3)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                   help="float64 is the training default of both mace-torch and equiv")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--models", default="mace-torch,equiv-cg,equiv-gaunt")
    p.add_argument("--output", default=None, help="results path without suffix (default results/potential_speed"
                   "[_malloc_tuned])")
    _common.add_malloc_argument(p)
    args = p.parse_args(argv)
    if args.output is None:
        args.output = str(RESULTS / ("potential_speed_malloc_tuned" if args.malloc == "tuned" else "potential_speed"))
    if args.malloc == "tuned":
        import equiv

        if not equiv.tune_cpu_allocator():
            raise SystemExit("--malloc tuned needs Linux with glibc")
    rounds = args.rounds or (3 if args.quick else 7)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.set_default_dtype(dtype)  # mace-torch builds its buffers in the default dtype

    from equiv.data import collate, read_rmd17
    from equiv.data.extxyz import least_squares_e0
    from equiv.train.forces import predict_properties

    frames = read_rmd17(args.molecule, indices=range(max(args.batch_size, args.infer_batch_size)))
    species = sorted({int(z) for d in frames for z in d.atomic_numbers})
    e0 = {int(k): float(v) for k, v in least_squares_e0(frames, species).items()}
    avg, scale, shift = (common.statistics(frames, e0)[k] for k in ("avg_num_neighbors", "scale", "shift"))
    graphs = [d.with_graph(common.CUTOFF) for d in frames]
    train_batch = collate(graphs[: args.batch_size]).to(device=device, dtype=dtype)
    infer_batch = collate(graphs[: args.infer_batch_size]).to(device=device, dtype=dtype)
    e0_list = [e0[z] for z in species]

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    models, construct = {}, {}
    for name in names:
        torch.manual_seed(0)
        t = time.perf_counter()
        if name == "mace-torch":
            m = common.build_mace_torch(species, common.CUTOFF, e0_list, avg, scale, shift)
        else:
            m = common.build_equiv(species, common.CUTOFF, e0_list, avg, scale, shift, tp=name.split("-")[1])
        construct[name] = time.perf_counter() - t
        models[name] = m.to(device=device, dtype=dtype)
    agreement = None
    if "mace-torch" in models and "equiv-cg" in models:
        # equiv-cg gets mace-torch's weights: the two models are the same function, timed side by side
        from equiv.models import MACE

        models["equiv-cg"] = MACE.from_mace_torch(models["mace-torch"]).to(device=device, dtype=dtype)
        e_ref, f_ref = common.mace_predict(models["mace-torch"], infer_batch, species, False)
        out = predict_properties(models["equiv-cg"], infer_batch)
        agreement = {"max_abs_energy_diff_eV": float((e_ref - out["energy"]).abs().max()),
                     "max_abs_force_diff_eV_per_A": float((f_ref - out["forces"]).abs().max()),
                     "max_abs_force_eV_per_A": float(f_ref.abs().max())}
        print(f"equiv-cg = mace-torch weights: max |dE| {agreement['max_abs_energy_diff_eV']:.2e} eV, "
              f"max |dF| {agreement['max_abs_force_diff_eV_per_A']:.2e} eV/Å", flush=True)
    n_params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    optim = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}

    def predict(name, batch, training):
        m = models[name]
        if name == "mace-torch":
            return common.mace_predict(m, batch, species, training)
        out = predict_properties(m, batch, training=training)
        return out["energy"], out["forces"]

    def train_step(name):
        batch = train_batch
        optim[name].zero_grad(set_to_none=True)
        e, f = predict(name, batch, True)
        n = batch.n_atoms.to(e.dtype)
        loss = ((e - batch.energy) / n).pow(2).mean() + 100 * (f - batch.forces).pow(2).mean()
        loss.backward()
        optim[name].step()

    def infer(name):
        e, f = predict(name, infer_batch, False)
        return e.detach(), f.detach()

    # same function at initialisation? (both are random models; report energies only as a sanity check)
    times = {k: {"train": [], "infer": []} for k in names}
    for _ in range(args.warmup):
        for name in names:
            train_step(name)
            infer(name)
    for r in range(rounds):
        for name in names:
            _sync(device)
            t = time.perf_counter()
            train_step(name)
            _sync(device)
            times[name]["train"].append(time.perf_counter() - t)
            t = time.perf_counter()
            infer(name)
            _sync(device)
            times[name]["infer"].append(time.perf_counter() - t)
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v['train'][-1]:.3f}s" for k, v in times.items()),
              flush=True)

    res = {}
    for name in names:
        tr, inf = stats.median(times[name]["train"]), stats.median(times[name]["infer"])
        res[name] = {"train_step_s": tr, "train_step_all_s": times[name]["train"], "infer_s": inf,
                     "infer_structures_per_s": args.infer_batch_size / inf, "parameters": n_params[name],
                     "construction_s": construct[name]}
    ref = res.get("mace-torch")
    if ref:
        for name in names:
            res[name]["train_speedup_vs_mace_torch"] = ref["train_step_s"] / res[name]["train_step_s"]
            res[name]["infer_speedup_vs_mace_torch"] = ref["infer_s"] / res[name]["infer_s"]
    report = {
        "benchmark": "potential_speed",
        "command": "python benchmarks/potential_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": common.machine(), "device": str(device), "dtype": args.dtype, "threads": args.threads,
        "malloc": args.malloc, "molecule": args.molecule, "atoms_per_structure": int(train_batch.n_atoms[0]),
        "edges_per_structure": train_batch.edge_index.shape[1] / train_batch.num_graphs,
        "batch_size": args.batch_size, "infer_batch_size": args.infer_batch_size, "rounds": rounds,
        "config": common.CONFIG, "cutoff": common.CUTOFF, "same_weights_agreement": agreement, "results": res,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lines = [
        "# MACE speed: equiv vs mace-torch 0.3.16",
        "",
        f"Machine: {report['machine']}; device {device}, {args.dtype}, {args.threads} thread(s). "
        f"Command: `{report['command']}`. Allocator: glibc malloc "
        + ("tuned for the whole process, all models alike (`--malloc tuned`: freed memory kept for reuse)."
           if args.malloc == "tuned" else "defaults (`--malloc tuned` keeps freed memory for reuse)."),
        "",
        f"Model: hidden {common.CONFIG['hidden_irreps']}, edge SH l <= {common.CONFIG['max_ell']}, correlation "
        f"{common.CONFIG['correlation']}, {common.CONFIG['num_interactions']} layers, r_max {common.CUTOFF} Å, "
        f"{common.CONFIG['num_bessel']} Bessel, radial MLP {common.CONFIG['radial_mlp']}. Data: rMD17 "
        f"{args.molecule} ({report['atoms_per_structure']} atoms, {report['edges_per_structure']:.0f} edges per "
        f"structure). Median of {rounds} interleaved rounds after {args.warmup} warm-up rounds.",
        "",
        f"| model | parameters | training step, batch {args.batch_size} (s) | speed-up | inference "
        f"(structures/s, batch {args.infer_batch_size}) | speed-up | construction (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in names:
        r = res[name]
        lines.append(f"| {name} | {r['parameters']:,} | {r['train_step_s']:.3f} | "
                     f"{r.get('train_speedup_vs_mace_torch', float('nan')):.2f}x | {r['infer_structures_per_s']:.1f} | "
                     f"{r.get('infer_speedup_vs_mace_torch', float('nan')):.2f}x | {r['construction_s']:.2f} |")
    lines += ["", "Speed-up = mace-torch time / model time, same process, same inputs. On a shared CPU the absolute "
              "times drift with the load; the ratios are the result."]
    if agreement:
        lines += ["", f"equiv-cg runs mace-torch's own weights (`MACE.from_mace_torch`): the same function, "
                  f"max |ΔE| = {agreement['max_abs_energy_diff_eV']:.1e} eV, max |ΔF| = "
                  f"{agreement['max_abs_force_diff_eV_per_A']:.1e} eV/Å (forces up to "
                  f"{agreement['max_abs_force_eV_per_A']:.1f} eV/Å) on the inference batch, and the same parameters "
                  "(equiv's symmetric-contraction weights live on mace-torch's coupling paths, evaluated through a "
                  "non-redundant basis). equiv-gaunt is a different model (Gaunt coupling, one radial weight per "
                  "edge degree and channel)."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
