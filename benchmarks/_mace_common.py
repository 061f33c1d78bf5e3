"""Shared set-up of the MACE benchmarks: the same model in mace-torch 0.3.16 and in equiv, same data.

Used by ``potential_speed.py``, ``rmd17.py`` and ``acac.py`` (this file is not a benchmark itself).

The reference configuration is mace-torch's ``ScaleShiftMACE`` with its command-line defaults
(``RealAgnosticResidualInteractionBlock`` for every layer, radial MLP [64, 64, 64], 8 Bessel
functions, p = 5 envelope, read-out MLP 16x0e, SiLU) and the sizes of the issue: hidden
``64x0e + 64x1o``, edge spherical harmonics to ``max_ell = 3``, correlation 3, two layers,
r_max = 5 Å. equiv's :class:`equiv.models.MACE` is built with the same hyper-parameters.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
import warnings
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import torch  # noqa: E402

CUTOFF = 5.0
CONFIG = dict(hidden_irreps="64x0e + 64x1o", max_ell=3, correlation=3, num_interactions=2, num_bessel=8,
              num_polynomial_cutoff=5, radial_mlp=[64, 64, 64], readout_hidden=16)


def build_mace_torch(species, cutoff, atomic_energies, avg_num_neighbors, scale, shift, config=CONFIG):
    """mace-torch ``ScaleShiftMACE`` with the benchmark configuration (default dtype)."""
    from e3nn import o3
    from mace import modules

    block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
    return modules.ScaleShiftMACE(
        r_max=float(cutoff), num_bessel=config["num_bessel"], num_polynomial_cutoff=config["num_polynomial_cutoff"],
        max_ell=config["max_ell"], interaction_cls=block, interaction_cls_first=block,
        num_interactions=config["num_interactions"], num_elements=len(species),
        hidden_irreps=o3.Irreps(config["hidden_irreps"]), MLP_irreps=o3.Irreps(f"{config['readout_hidden']}x0e"),
        atomic_energies=np.asarray(atomic_energies, dtype=np.float64), avg_num_neighbors=float(avg_num_neighbors),
        atomic_numbers=list(species), correlation=config["correlation"], gate=torch.nn.functional.silu,
        atomic_inter_scale=float(scale), atomic_inter_shift=float(shift), radial_MLP=list(config["radial_mlp"]),
    )


def build_equiv(species, cutoff, atomic_energies, avg_num_neighbors, scale, shift, tp="cg", config=CONFIG):
    """equiv's MACE with the same configuration."""
    from equiv.models import MACE

    return MACE(species=list(species), cutoff=float(cutoff), atomic_energies=list(atomic_energies),
                avg_num_neighbors=float(avg_num_neighbors), scale=float(scale), shift=float(shift), tp=tp, **config)


def mace_inputs(batch, species) -> dict:
    """An :class:`equiv.data.Batch` as mace-torch's input dictionary (same graph, same edge order)."""
    z = torch.as_tensor(list(species), device=batch.atomic_numbers.device)
    onehot = (batch.atomic_numbers[:, None] == z[None, :]).to(batch.positions.dtype)
    return dict(positions=batch.positions, node_attrs=onehot, edge_index=batch.edge_index, shifts=batch.shifts,
                unit_shifts=batch.unit_shifts.to(batch.positions.dtype), cell=batch.cell.reshape(-1, 3),
                batch=batch.batch, ptr=batch.ptr)


def mace_predict(model, batch, species, training: bool):
    """Energy and forces from mace-torch (its own autograd forces)."""
    out = model(mace_inputs(batch, species), training=training, compute_force=True)
    return out["energy"], out["forces"]


def statistics(train, e0: dict):
    """avg_num_neighbors, scale, shift of the training structures exactly as ``equiv train potential``
    computes them (:func:`equiv.train.potential.data_statistics`), for both models."""
    from equiv.data import AtomsDataset
    from equiv.train.potential import data_statistics

    cutoff = CUTOFF
    return data_statistics(AtomsDataset(train, cutoff), e0)


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{platform.machine()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
            f"load average {load:.1f} at start")


# ---------------------------------------------------------------------------------------------------
# equal-budget training: equiv through `equiv train potential`, mace-torch through the loop below


def _load():
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def seed_long_run(source: Path, target: Path, kept: Path | None = None) -> Path:
    """Start a long run from an equal-budget run's checkpoint (copied once), so that resuming the long
    run never moves the checkpoint behind the equal-budget table. Without a local checkpoint (a fresh
    clone: ``runs/`` is not versioned), the one kept with the results (``kept/checkpoint.pt``, see
    `keep_checkpoint`) seeds it, so a long run resumes exactly in another checkout."""
    if not (target / "checkpoint.pt").exists():
        for origin in (source, kept):
            if origin is not None and (origin / "checkpoint.pt").exists():
                target.mkdir(parents=True, exist_ok=True)
                names = ["checkpoint.pt"] if origin == kept else [f.name for f in origin.iterdir() if f.is_file()]
                for name in names:
                    if (origin / name).exists():
                        shutil.copy2(origin / name, target / name)
                break
    return target


#: Training checkpoints up to this size are kept with the results (versioned); larger ones stay in
#: ``runs/`` only (the 128-channel model's is 33 MB), and a fresh clone restarts from the kept
#: ``model.pt`` with ``--restart-from`` instead of resuming exactly.
KEEP_CHECKPOINT_MAX_BYTES = 16 << 20


def keep_checkpoint(run_dir: Path, kept: Path, max_bytes: int = KEEP_CHECKPOINT_MAX_BYTES) -> bool:
    """Copy a long run's training checkpoint (model, optimiser, EMA, schedule, RNG: about 8 MB for the
    rMD17 model in float64) next to its results, so that the run can resume exactly from a fresh clone.
    A checkpoint larger than ``max_bytes`` is not copied (a stale copy is removed); returns whether
    one was kept."""
    src, dst = run_dir / "checkpoint.pt", kept / "checkpoint.pt"
    if not src.exists():
        return False
    if src.stat().st_size > max_bytes:
        dst.unlink(missing_ok=True)
        print(f"checkpoint ({src.stat().st_size / 2**20:.0f} MB) left in {run_dir} only: above "
              f"{max_bytes / 2**20:.0f} MB; from a fresh clone, continue with --restart-from {kept / 'model.pt'}",
              flush=True)
        return False
    kept.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    return True


def run_equiv(cfg: dict, tp: str, out_dir: Path, keep_dir: Path, config: dict = CONFIG) -> dict:
    """Train equiv's MACE with the workflow (resumes from ``out_dir`` when a checkpoint is there)."""
    from equiv.train.potential import train_potential

    run_cfg = dict(cfg, model="mace", model_kwargs=dict(config, tp=tp), output_dir=str(out_dir))
    load0, t0 = _load(), time.perf_counter()
    report = train_potential(run_cfg)
    report["wall_s"], report["load_avg_start"], report["load_avg_end"] = time.perf_counter() - t0, load0, _load()
    history = out_dir / "history.json"
    report["epochs_completed"] = len(json.loads(history.read_text())) if history.exists() else 0
    if report.get("interrupted"):  # stopped by a signal: the checkpoint resumes it; keep nothing
        return report
    keep_dir.mkdir(parents=True, exist_ok=True)
    for f in ("model.pt", "test_report.json", "test_report.md", "history.json"):
        if (out_dir / f).exists():
            shutil.copy2(out_dir / f, keep_dir / f)
    return report


def run_mace_torch(cfg: dict, out_dir: Path, keep_dir: Path) -> dict:
    """Train mace-torch's ScaleShiftMACE with a minimal loop that mirrors ``equiv train potential``.

    Same data and split (``load_data``), same statistics and E0, same batches (``make_loader`` with the
    same seed), loss, AMSGrad/Adam, gradient clipping, EMA, plateau schedule, early stopping, and the
    same budget rule (only time inside the training loop counts; the run stops mid-epoch when the
    budget is spent; the tested model is the EMA model of the best validation so far, or the current
    EMA model when no epoch was completed). Checkpoints every epoch and at the stop, and resumes
    exactly from ``out_dir``.
    """
    from equiv.data import AtomsDataset, make_loader
    from equiv.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
    from equiv.train.ema import ExponentialMovingAverage
    from equiv.train.metrics import ErrorAccumulator
    from equiv.train.potential import _validation_loss, data_statistics, load_data

    dtype = getattr(torch, cfg["dtype"])
    device = torch.device("cuda" if cfg["device"] == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg["device"] == "auto" else cfg["device"]))
    if cfg["num_threads"]:
        torch.set_num_threads(cfg["num_threads"])
    train, valid, tests, e0 = load_data(cfg)
    species = sorted(e0)
    train_ds, valid_ds = AtomsDataset(train, cfg["cutoff"]), AtomsDataset(valid, cfg["cutoff"])
    stats = data_statistics(train_ds, e0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(cfg["seed"])
        model = build_mace_torch(species, cfg["cutoff"], [e0[z] for z in species], stats["avg_num_neighbors"],
                                 stats["scale"], stats["shift"]).to(device=device, dtype=dtype)
    finally:
        torch.set_default_dtype(prev)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"],
                                 amsgrad=cfg["optimizer"] == "amsgrad")
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg["lr_factor"],
                                                           patience=cfg["scheduler_patience"], min_lr=cfg["min_lr"])
    ema = ExponentialMovingAverage(model, cfg["ema_decay"])
    state = dict(epoch=0, step_in_epoch=0, global_step=0, best_metric=math.inf, best_epoch=-1, bad_evals=0,
                 train_time_s=0.0, history=[], finished=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt, best_path = out_dir / "checkpoint.pt", out_dir / "best_ema_state.pt"
    if cfg["resume"] and ckpt.is_file():
        s = load_checkpoint(ckpt, map_location="cpu")
        model.load_state_dict(s["model"])
        optimizer.load_state_dict(s["optimizer"])
        scheduler.load_state_dict(s["scheduler"])
        ema.load_state_dict(s["ema"])
        state.update(s["state"])
        set_rng_state(s["rng"])
        print(f"mace-torch: resuming from {ckpt} (epoch {state['epoch']}, step {state['global_step']})")

    def checkpoint():
        save_checkpoint(ckpt, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "ema": ema.state_dict(), "state": state,
                               "rng": rng_state()})

    def predict(batch, training):
        energy, forces = mace_predict(model, batch, species, training)
        return energy, forces

    def evaluate(dataset):
        acc = ErrorAccumulator()
        for batch in make_loader(dataset, cfg["valid_batch_size"]):
            batch = batch.to(device=device, dtype=dtype)
            e, f = predict(batch, False)
            acc.add(e.detach(), batch.energy, batch.n_atoms, f.detach(), batch.forces)
        return acc.compute()

    loader = make_loader(train_ds, cfg["batch_size"], shuffle=True, seed=cfg["seed"])
    sampler = loader.batch_sampler
    budget_s = 60 * cfg["time_budget_minutes"] if cfg["time_budget_minutes"] is not None else math.inf
    stop_reason, load0, t_wall = "", _load(), time.perf_counter()
    while state["epoch"] < cfg["epochs"] and not state["finished"]:
        sampler.set_epoch(state["epoch"], skip_batches=state["step_in_epoch"])
        model.train()
        t_start, stop = time.perf_counter(), False
        for batch in loader:
            batch = batch.to(device=device, dtype=dtype)
            e, f = predict(batch, True)
            loss = cfg["energy_weight"] * (((e - batch.energy) / batch.n_atoms.to(dtype)) ** 2).mean()
            loss = loss + cfg["forces_weight"] * ((f - batch.forces) ** 2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg["clip_grad"] is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["clip_grad"])
            optimizer.step()
            ema.update()
            state["global_step"] += 1
            state["step_in_epoch"] += 1
            if state["train_time_s"] + time.perf_counter() - t_start >= budget_s:
                stop, stop_reason = True, "time_budget"
                break
            if cfg["max_steps"] is not None and state["global_step"] >= cfg["max_steps"]:
                stop, stop_reason = True, "max_steps"
                break
        state["train_time_s"] += time.perf_counter() - t_start
        if stop and state["step_in_epoch"] < len(sampler.global_batches()):
            checkpoint()
            break
        with ema.average_parameters():
            vm = evaluate(valid_ds)
        metric = _validation_loss(vm, cfg)
        scheduler.step(metric)
        record = {"epoch": state["epoch"] + 1, "step": state["global_step"], "time_s": round(state["train_time_s"], 2),
                  "lr": optimizer.param_groups[0]["lr"], "valid": vm, "valid_loss": metric}
        if metric < state["best_metric"]:
            state["best_metric"], state["best_epoch"], state["bad_evals"] = metric, state["epoch"] + 1, 0
            with ema.average_parameters():
                save_checkpoint(best_path, {"model": model.state_dict()})
        else:
            state["bad_evals"] += 1
        if cfg["patience"] is not None and state["bad_evals"] >= cfg["patience"]:
            state["finished"], stop_reason = True, "early_stopping"
        print(f"mace-torch epoch {state['epoch'] + 1}: valid E {vm['energy_per_atom_mae']:.2f} meV/atom, "
              f"F {vm['forces_mae']:.1f} meV/Å" + (" *" if state["best_epoch"] == state["epoch"] + 1 else ""),
              flush=True)
        state["history"].append(record)
        state["epoch"] += 1
        state["step_in_epoch"] = 0
        checkpoint()
        if stop:
            break
    # test the best EMA model (or the current EMA model when no epoch was completed)
    if best_path.is_file():
        model.load_state_dict(load_checkpoint(best_path, map_location="cpu")["model"])
    else:
        ema.copy_to()
    model.eval()
    report = {"model": "mace-torch ScaleShiftMACE", "best_epoch": state["best_epoch"],
              "global_step": state["global_step"], "epochs_completed": state["epoch"],
              "train_time_s": state["train_time_s"], "n_parameters": n_params, "stop_reason": stop_reason or "epochs",
              "tests": {}}
    for name, data in tests.items():
        m = evaluate(AtomsDataset(data, cfg["cutoff"]))
        m["n_structures"] = len(data)
        report["tests"][name] = m
    report["wall_s"], report["load_avg_start"], report["load_avg_end"] = time.perf_counter() - t_wall, load0, _load()
    keep_dir.mkdir(parents=True, exist_ok=True)
    # the coupling tensors (U_matrix buffers) are rebuilt by the constructor: not stored (load with strict=False)
    weights = {k: v for k, v in model.state_dict().items() if "U_matrix" not in k}
    save_checkpoint(keep_dir / "mace_torch_model.pt", {"state_dict": weights, "config": CONFIG,
                                                       "species": species, "e0": e0, "statistics": stats,
                                                       "cutoff": cfg["cutoff"], "dtype": cfg["dtype"]})
    (keep_dir / "test_report.json").write_text(json.dumps(report, indent=2))
    return report


def comparison_tables(reports: dict, test_names: list[str]) -> list[str]:
    """Markdown rows: one line per model and test set (MAE and RMSE, meV and meV/Å)."""
    lines = ["| model | steps | epochs | train time (min) | test set | E MAE (meV) | E RMSE (meV) | "
             "F MAE (meV/Å) | F RMSE (meV/Å) |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in reports.items():
        epochs = r.get("epochs_completed", r.get("best_epoch", "?"))
        for t in test_names:
            m = r["tests"].get(t, {})
            lines.append(f"| {name} | {r['global_step']} | {epochs} | {r['train_time_s'] / 60:.1f} | {t} | "
                         f"{m.get('energy_mae', float('nan')):.1f} | {m.get('energy_rmse', float('nan')):.1f} | "
                         f"{m.get('forces_mae', float('nan')):.1f} | {m.get('forces_rmse', float('nan')):.1f} |")
    return lines
