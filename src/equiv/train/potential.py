r"""``equiv train potential``: fit an interatomic potential to DFT energies and forces.

The loss per step, over the structures :math:`s` (with :math:`n_s` atoms) and atoms :math:`i` of the
*global* batch, is

.. math::

    \mathcal L = \frac{w_E}{S}\sum_s\Bigl(\frac{\hat E_s - E_s}{n_s}\Bigr)^2
               + \frac{w_F}{3N}\sum_{i,k}(\hat F_{ik} - F_{ik})^2
               + \frac{w_\sigma}{9S}\sum_{s,a,b}(\hat\sigma_{s,ab} - \sigma_{s,ab})^2,

with forces and stress from autograd (:mod:`equiv.train.forces`, ``create_graph=True``); the
optimiser is Adam or AMSGrad (Kingma & Ba 2015; Reddi et al. 2018), the learning rate drops on a
validation plateau, weights are averaged (EMA, :mod:`equiv.train.ema`), and training stops early when
the validation loss stalls. Every epoch (and every ``checkpoint_every`` steps) the full state —
model, optimiser, scheduler, EMA, random generators, epoch and position in it, best metric — goes to
``output_dir/checkpoint.pt`` atomically; rerunning the same command resumes exactly where it stopped
(SIGINT/SIGTERM write a checkpoint before exiting). The best EMA weights are exported to
``output_dir/model.pt`` (:func:`equiv.train.load_potential`), and the final report (energy and force
MAE/RMSE in meV and meV/Å) goes to ``test_report.{json,md}`` with a parity plot per test set.

Under ``torchrun --nproc_per_node=N -m equiv train potential ...`` the model is wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel` and each process takes a share of every global
batch (:mod:`equiv.train.distributed`); the result equals one process up to floating-point order.

Python use::

    from equiv.train.potential import train_potential
    report = train_potential({"molecule": "ethanol", "epochs": 10, "output_dir": "runs/ethanol"})
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import signal
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

from equiv._atomic import atomic_write
from equiv.data import AtomsDataset, atomic_number, chemical_symbol, make_loader
from equiv.data.extxyz import isolated_atom_energies, least_squares_e0, read_extxyz, split_isolated_atoms
from equiv.data.rmd17 import rmd17_splits
from equiv.models import get_potential_class
from equiv.train._potential_config import DEFAULTS, RESUME_MAY_CHANGE, add_options, resolve_config
from equiv.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from equiv.train.curves import can_plot
from equiv.train.distributed import all_reduce_sum, barrier, cleanup_distributed, init_distributed, rank_zero_print
from equiv.train.ema import ExponentialMovingAverage
from equiv.train.forces import predict_properties
from equiv.train._nonfinite import NonFiniteGuard, finite_gradients
from equiv.train.metrics import METRIC_UNITS, ErrorAccumulator
from equiv.train.saved_model import load_potential, save_potential

__all__ = ["add_arguments", "run", "train_potential", "resolve_config", "load_data", "evaluate", "DEFAULTS"]

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"


# ----------------------------------------------------------------------------------------------- CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``equiv train potential`` (every option can also be set in ``--config cfg.yaml``)."""
    parser.epilog = ("Examples:  equiv train potential --molecule ethanol --model mace --epochs 50 --output-dir runs/ethanol\n"
                     "           equiv train potential --config examples/configs/rmd17_ethanol.yaml\n"
                     "           torchrun --nproc_per_node=2 -m equiv train potential --config cfg.yaml\n"
                     "Rerunning a command resumes from <output-dir>/checkpoint.pt.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_options(parser)


def run(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    report = train_potential(cfg)
    return 130 if report.get("interrupted") else 0


# ---------------------------------------------------------------------------------------------- data
def _parse_e0_mapping(mapping: dict) -> dict[int, float]:
    out = {}
    for k, v in mapping.items():
        try:
            z = atomic_number(k) if isinstance(k, str) else int(k)
        except ValueError:
            raise ValueError(f"option e0s: unknown element {k!r}") from None
        out[z] = float(v)
    return out


def load_data(cfg: dict):
    """Read the datasets a config names.

    Returns
    -------
    train, valid : lists of AtomicData
    tests : dict name -> list of AtomicData
    e0 : dict atomic number -> eV
    """
    isolated: dict[int, float] = {}
    if cfg["dataset"] == "rmd17":
        train, valid, test = rmd17_splits(cfg["molecule"], cfg["n_train"], cfg["n_valid"] or 0, cfg["split_seed"])
        tests = {"test": test}
    else:
        keys = dict(energy_key=cfg["energy_key"], forces_key=cfg["forces_key"], stress_key=cfg["stress_key"])
        need = ("energy", "forces") + (("stress",) if cfg["stress_weight"] > 0 else ())
        raw = read_extxyz(cfg["train_file"], require=("energy",), **keys)
        isolated, pool = split_isolated_atoms(raw)
        for k, d in enumerate(pool):
            for kind in need:
                if getattr(d, kind) is None:
                    raise KeyError(f"train_file: structure {d.info.get('index', k)} has no {kind} label")
        if cfg["valid_file"]:
            train, valid = pool, split_isolated_atoms(read_extxyz(cfg["valid_file"], require=need, **keys))[1]
        else:
            perm = np.random.default_rng(cfg["split_seed"]).permutation(len(pool))
            n_valid = int(round(cfg["valid_fraction"] * len(pool)))
            valid = [pool[i] for i in sorted(perm[:n_valid])]
            train = [pool[i] for i in sorted(perm[n_valid:])]
        if cfg["n_train"] is not None and cfg["n_train"] < len(train):
            keep = np.random.default_rng([cfg["split_seed"], 1]).permutation(len(train))[: cfg["n_train"]]
            train = [train[i] for i in sorted(keep)]
        tests = {}
        for path in cfg["test_file"]:
            name = Path(path).stem
            tests[name] = split_isolated_atoms(read_extxyz(path, require=("energy", "forces"), **keys))[1]
    if cfg["max_test"] is not None:
        tests = {k: v[: cfg["max_test"]] for k, v in tests.items()}
    if not train:
        raise ValueError("no training structures (check train_file / n_train)")

    species = sorted({int(z) for d in train + valid for z in d.atomic_numbers.tolist()})
    e0s = cfg["e0s"]
    if isinstance(e0s, dict):
        e0 = _parse_e0_mapping(e0s)
    elif e0s == "auto":
        e0 = isolated if isolated else least_squares_e0(train, species)
    elif e0s == "least_squares":
        e0 = least_squares_e0(train, species)
    elif e0s == "isolated":
        if not isolated:
            raise ValueError("option e0s: 'isolated' but train_file has no isolated-atom frames")
        e0 = isolated
    elif e0s == "zero":
        e0 = {z: 0.0 for z in species}
    else:
        e0 = isolated_atom_energies(e0s)
    missing = [chemical_symbol(z) for z in species if z not in e0]
    if missing:
        raise ValueError(f"option e0s: no isolated-atom energy for element(s) {missing}")
    return train, valid, tests, {z: float(e0[z]) for z in species}


def data_statistics(train: AtomsDataset, e0: dict[int, float]) -> dict[str, float]:
    """``avg_num_neighbors`` (edges per atom), ``shift`` (mean per-atom energy after E0, eV) and
    ``scale`` (RMS force component, eV/Å) of the training set."""
    n_atoms = sum(d.n_atoms for d in train)
    edges = sum(d.n_edges for d in train)
    resid = [(float(d.energy) - sum(e0[z] for z in d.atomic_numbers.tolist())) / d.n_atoms for d in train]
    forces = [d.forces for d in train if d.forces is not None]
    scale = float(torch.cat(forces).pow(2).mean().sqrt()) if forces else 1.0
    return {"avg_num_neighbors": edges / max(n_atoms, 1), "shift": float(np.mean(resid)),
            "scale": scale if scale > 0 else 1.0}


# ------------------------------------------------------------------------------------------ evaluate
def evaluate(model, dataset, batch_size: int, device, dtype, rank: int = 0, world_size: int = 1,
             keep_predictions: bool = False, progress: bool = False, desc: str = "evaluate",
             predict_stress: bool = False):
    """Errors of ``model`` on ``dataset`` (forces by autograd; stress when every structure has one, or
    ``predict_stress``). Structures without labels are predicted and left out of the errors.

    Returns
    -------
    acc : ErrorAccumulator (summed over processes)
    predictions : dict of numpy arrays (this process's share) when ``keep_predictions``: per structure
        ``energy_pred``, ``n_atoms``, ``energy_ref`` (NaN where unlabelled) and ``stress_pred``
        ``(S, 3, 3)`` (when computed); per atom ``forces`` (every structure, in order) and the labelled
        pairs ``forces_ref`` / ``forces_pred``
    """
    from tqdm.auto import tqdm

    acc = ErrorAccumulator()
    preds = {"energy_ref": [], "energy_pred": [], "n_atoms": [], "forces_ref": [], "forces_pred": [], "forces": [],
             "stress_pred": []}
    with_stress = predict_stress or all(d.stress is not None for d in dataset)
    loader = make_loader(dataset, batch_size, shuffle=False, rank=rank, world_size=world_size, even_shards=False)
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
        batch = batch.to(device=device, dtype=dtype)
        out = predict_properties(model, batch, compute_forces=True, compute_stress=with_stress)
        acc.add(out["energy"], batch.energy, batch.n_atoms, out["forces"], batch.forces,
                out.get("stress"), batch.stress)
        if keep_predictions:
            e_pred = out["energy"].double().cpu().numpy()
            preds["energy_ref"].append(batch.energy.double().cpu().numpy() if batch.energy is not None
                                       else np.full_like(e_pred, np.nan))
            preds["energy_pred"].append(e_pred)
            preds["n_atoms"].append(batch.n_atoms.cpu().numpy())
            preds["forces"].append(out["forces"].double().cpu().numpy())
            if batch.forces is not None:
                preds["forces_ref"].append(batch.forces.double().cpu().numpy())
                preds["forces_pred"].append(out["forces"].double().cpu().numpy())
            if "stress" in out:
                preds["stress_pred"].append(out["stress"].detach().double().cpu().numpy())
    acc.all_reduce()
    if not keep_predictions:
        return acc, None
    return acc, {k: (np.concatenate(v) if v else np.zeros((0,))) for k, v in preds.items()}


def _validation_loss(metrics: dict, cfg: dict) -> float:
    """The loss formula on a whole set, from the accumulated errors (meV -> eV)."""
    loss = cfg["energy_weight"] * (metrics.get("energy_per_atom_rmse", 0.0) / 1e3) ** 2
    loss += cfg["forces_weight"] * (metrics.get("forces_rmse", 0.0) / 1e3) ** 2
    if cfg["stress_weight"] > 0:
        loss += cfg["stress_weight"] * (metrics.get("stress_rmse", 0.0) / 1e3) ** 2
    return loss


# ------------------------------------------------------------------------------------------- helpers
class _StopFlag:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop after the current step."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        rank_zero_print(f"\nsignal {signum}: writing a checkpoint after this step (Ctrl-C again to abort)")

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _optimizer(cfg: dict, params):
    name = cfg["optimizer"]
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], amsgrad=False)
    return torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"], amsgrad=name == "amsgrad")


def _write_json(path: Path, obj) -> None:
    atomic_write(path, lambda fh: fh.write(json.dumps(obj, indent=2, default=float).encode()))


def _format_metrics(m: dict) -> str:
    parts = []
    for key, label in (("energy_per_atom_mae", "E/atom MAE"), ("energy_mae", "E MAE"), ("forces_mae", "F MAE")):
        if key in m:
            parts.append(f"{label} {m[key]:.3f} {METRIC_UNITS[key]}")
    return ", ".join(parts)


def _report_markdown(report: dict) -> str:
    lines = [f"# Test report: {report['model']} on {report['data']}", "",
             f"Best epoch {report['best_epoch']}, {report['global_step']} steps, "
             f"training time {report['train_time_s'] / 60:.1f} min on {report['hardware']}.", "",
             "| test set | structures | E MAE (meV) | E RMSE (meV) | E/atom MAE (meV) | F MAE (meV/Å) | F RMSE (meV/Å) |",
             "|---|---|---|---|---|---|---|"]
    for name, m in report["tests"].items():
        lines.append(f"| {name} | {m['n_structures']} | {m.get('energy_mae', float('nan')):.3f} | "
                     f"{m.get('energy_rmse', float('nan')):.3f} | {m.get('energy_per_atom_mae', float('nan')):.3f} | "
                     f"{m.get('forces_mae', float('nan')):.3f} | {m.get('forces_rmse', float('nan')):.3f} |")
    return "\n".join(lines) + "\n"


def _hardware(device) -> str:
    import platform

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


# -------------------------------------------------------------------------------------------- train
def train_potential(cfg: dict | argparse.Namespace) -> dict:
    """Train (or resume training of) a potential; return the final report.

    Parameters
    ----------
    cfg : dict or argparse.Namespace
        Options (see ``equiv train potential --help``); missing ones take their defaults.

    Returns
    -------
    dict
        ``tests`` (metrics per test set, in meV units), ``best_epoch``, ``global_step``,
        ``train_time_s``, ``model_path``, ``interrupted`` (True when stopped by a signal), ``skipped_steps``
        (optimiser steps skipped for a NaN or inf gradient; ``max_nonfinite_steps`` in a row raise
        ``FloatingPointError``).
    """
    cfg = resolve_config(cfg) if not (isinstance(cfg, dict) and set(cfg) >= set(DEFAULTS)) else dict(cfg)
    if cfg.get("tune_malloc", True):
        from equiv import tune_cpu_allocator

        tune_cpu_allocator()
    info = init_distributed(cfg["device"], cfg["num_threads"])
    try:
        return _train(cfg, info)
    finally:
        cleanup_distributed()


def _initial_model(path, species) -> tuple[str, dict, dict]:
    """``(model name, hyper-parameters, state dict)`` of the saved potential ``path`` (option ``init_model``),
    checked against the training data's species."""
    from equiv.models._potential_registry import potential_name

    if not Path(path).is_file():
        raise FileNotFoundError(f"init_model: no saved potential at {str(path)!r} (expected a model.pt written by "
                                "equiv train potential)")
    saved = load_potential(path)
    missing = sorted(set(species) - {int(z) for z in saved.species})
    if missing:
        raise ValueError(f"init_model: {str(path)!r} has no parameters for the species "
                         f"{[chemical_symbol(z) for z in missing]} of the training data")
    return potential_name(saved), dict(saved.hparams), saved.state_dict()


def _train(cfg: dict, info) -> dict:
    from tqdm.auto import tqdm

    out_dir = Path(cfg["output_dir"])
    ckpt_path, model_path = out_dir / CHECKPOINT, out_dir / MODEL
    device, dtype = info.device, getattr(torch, cfg["dtype"])

    resume_state = None
    if cfg["resume"] and ckpt_path.is_file():
        resume_state = load_checkpoint(ckpt_path, map_location="cpu")
        old = resume_state["config"]
        diff = {k: (old.get(k), cfg[k]) for k in cfg if k not in RESUME_MAY_CHANGE and old.get(k) != cfg[k]}
        if diff:
            raise ValueError(f"output_dir {str(out_dir)!r} holds a checkpoint of a different run; options differ: "
                             + ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
                             + ". Use another --output-dir or --no-resume to start over.")
        rank_zero_print(f"resuming from {ckpt_path} (epoch {resume_state['epoch']}, step {resume_state['global_step']})")

    # data
    train_list, valid_list, tests, e0 = load_data(cfg)
    species = sorted(e0)
    train_ds = AtomsDataset(train_list, cfg["cutoff"])
    valid_ds = AtomsDataset(valid_list, cfg["cutoff"]) if valid_list else None

    # model
    torch.manual_seed(cfg["seed"])
    init_state = None
    if resume_state is not None:
        model_name, hparams = resume_state["model_name"], resume_state["hparams"]
    elif cfg["init_model"]:
        model_name, hparams, init_state = _initial_model(cfg["init_model"], species)
        rank_zero_print(f"starting from the weights of {cfg['init_model']} (fresh optimiser)")
    else:
        stats = data_statistics(train_ds, e0)
        model_name = cfg["model"]
        hparams = dict(species=species, cutoff=cfg["cutoff"], atomic_energies=[e0[z] for z in species], **stats,
                       **cfg["model_kwargs"])
    cls = get_potential_class(model_name)
    try:
        model = cls(**hparams).to(device=device, dtype=dtype)
    except TypeError as exc:
        raise ValueError(f"option model_kwargs: {cfg['model_kwargs']!r} does not fit {model_name!r} ({exc})") from None
    if init_state is not None:
        model.load_state_dict(init_state)
    n_params = sum(p.numel() for p in model.parameters())
    ddp_model = model
    if info.distributed:
        # Force training differentiates twice; the second backward hands DDP gradients whose strides differ
        # from its buckets' (a copy, not an error). Keep the log readable.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True)
    optimizer = _optimizer(cfg, model.parameters())
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=cfg["lr_factor"],
                                                           patience=cfg["scheduler_patience"], min_lr=cfg["min_lr"])
    ema = ExponentialMovingAverage(model, cfg["ema_decay"]) if cfg["ema"] else None
    train_acc = ErrorAccumulator()

    state = dict(epoch=0, step_in_epoch=0, global_step=0, best_metric=math.inf, best_epoch=-1, bad_evals=0,
                 train_time_s=0.0, history=[], finished=False, skipped_steps=0)
    if resume_state is not None:
        model.load_state_dict(resume_state["model_state"])
        optimizer.load_state_dict(resume_state["optimizer_state"])
        scheduler.load_state_dict(resume_state["scheduler_state"])
        if ema is not None:
            ema.load_state_dict(resume_state["ema_state"])
        train_acc.load_state_dict(resume_state["train_acc"])
        for k in state:
            state[k] = resume_state.get(k, state[k])  # keys added since the checkpoint was written keep defaults
        set_rng_state(resume_state["rng"])

    use_stress = cfg["stress_weight"] > 0
    loader = make_loader(train_ds, cfg["batch_size"], shuffle=True, seed=cfg["seed"], rank=info.rank,
                         world_size=info.world_size)
    sampler = loader.batch_sampler
    if info.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
        rank_zero_print(f"{model_name}: {n_params} parameters, species {[chemical_symbol(z) for z in species]}, "
                        f"{len(train_ds)} train / {len(valid_list)} valid structures, "
                        f"{info.world_size} process(es) on {device}, {cfg['dtype']}")

    def checkpoint():
        if info.is_main:
            save_checkpoint(ckpt_path, {
                "kind": "equiv-train-potential", "config": cfg, "model_name": model_name, "hparams": hparams,
                "model_state": model.state_dict(), "optimizer_state": optimizer.state_dict(),
                "scheduler_state": scheduler.state_dict(), "ema_state": ema.state_dict() if ema else None,
                "train_acc": train_acc.state_dict(), "rng": rng_state(), **state})
        barrier()

    def export_model(metrics=None):
        if info.is_main:
            meta = {"config": cfg, "epoch": state["epoch"], "global_step": state["global_step"],
                    "valid_metrics": metrics or {}, "n_train": len(train_ds)}
            if ema is not None:
                with ema.average_parameters():
                    save_potential(model, model_path, meta)
            else:
                save_potential(model, model_path, meta)
        barrier()

    def should_stop(stop_flag, t_start) -> tuple[bool, str]:
        elapsed = state["train_time_s"] + (time.perf_counter() - t_start)
        reasons = torch.tensor([float(stop_flag.requested),
                                float(cfg["max_steps"] is not None and state["global_step"] >= cfg["max_steps"]),
                                float(cfg["time_budget_minutes"] is not None
                                      and elapsed >= 60 * cfg["time_budget_minutes"])])
        if info.distributed:
            reasons = all_reduce_sum(reasons.to(device)).cpu()
        names = ["signal", "max_steps", "time_budget"]
        hit = [n for n, r in zip(names, reasons.tolist()) if r > 0]
        return bool(hit), (hit[0] if hit else "")

    interrupted, stop_reason = False, ""
    guard = NonFiniteGuard(cfg["max_nonfinite_steps"], f"the last checkpoint is {ckpt_path}")
    with _StopFlag() as stop_flag:
        while state["epoch"] < cfg["epochs"] and not state["finished"]:
            epoch = state["epoch"]
            sampler.set_epoch(epoch, skip_batches=state["step_in_epoch"])
            model.train()
            t_start = time.perf_counter()
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg['epochs']}", disable=not (cfg["progress"] and info.is_main),
                       leave=False, dynamic_ncols=True, initial=state["step_in_epoch"],
                       total=state["step_in_epoch"] + len(sampler))
            stop = False
            for batch in bar:
                batch = batch.to(device=device, dtype=dtype)
                counts = torch.tensor([batch.num_graphs, batch.forces.numel() if batch.forces is not None else 0,
                                       batch.stress.numel() if use_stress else 0], dtype=dtype, device=device)
                counts = all_reduce_sum(counts) if info.distributed else counts
                out = predict_properties(ddp_model, batch, compute_forces=True, compute_stress=use_stress,
                                         training=True)
                loss = cfg["energy_weight"] * (((out["energy"] - batch.energy) / batch.n_atoms.to(dtype)) ** 2).sum() / counts[0]
                if batch.forces is not None and cfg["forces_weight"] > 0:
                    loss = loss + cfg["forces_weight"] * ((out["forces"] - batch.forces) ** 2).sum() / counts[1]
                if use_stress:
                    loss = loss + cfg["stress_weight"] * ((out["stress"] - batch.stress) ** 2).sum() / counts[2]
                loss = loss * info.world_size  # DDP averages gradients over processes
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                state["global_step"] += 1
                state["step_in_epoch"] += 1
                # the gradients are all-reduced, so every process takes the same decision here
                where = f"epoch {epoch + 1}, step {state['global_step']}"
                if not guard.ok(finite_gradients(model, cfg["clip_grad"]), where):
                    state["skipped_steps"] += 1
                    optimizer.zero_grad(set_to_none=True)
                    rank_zero_print(f"{where}: the gradient is not finite (loss {float(loss.detach()) / info.world_size:.4g});"
                                    f" step skipped ({guard.in_a_row} in a row)")
                    stop, stop_reason = should_stop(stop_flag, t_start)
                    if stop:
                        break
                    continue
                optimizer.step()
                if ema is not None:
                    ema.update()
                train_acc.add(out["energy"], batch.energy, batch.n_atoms, out["forces"], batch.forces)
                if bar.disable is False:
                    m = train_acc.compute()
                    bar.set_postfix_str(f"loss {float(loss.detach()) / info.world_size:.4g} | E {m.get('energy_per_atom_mae', 0):.2f} "
                                        f"meV/atom | F {m.get('forces_mae', 0):.1f} meV/Å", refresh=False)
                stop, stop_reason = should_stop(stop_flag, t_start)
                if cfg["checkpoint_every"] and state["global_step"] % cfg["checkpoint_every"] == 0 and not stop:
                    state["train_time_s"] += time.perf_counter() - t_start
                    t_start = time.perf_counter()
                    checkpoint()
                if stop:
                    break
            bar.close()
            state["train_time_s"] += time.perf_counter() - t_start
            if stop and state["step_in_epoch"] < len(sampler.global_batches()):
                # stopped inside the epoch: save the position in it and leave
                checkpoint()
                interrupted = stop_reason == "signal"
                break

            # ---- end of epoch: validation, schedule, best model, early stopping
            reduced = ErrorAccumulator()
            reduced.load_state_dict(train_acc.state_dict())
            reduced.all_reduce()
            record = {"epoch": epoch + 1, "step": state["global_step"], "lr": optimizer.param_groups[0]["lr"],
                      "time_s": round(state["train_time_s"], 2), "train": reduced.compute(),
                      "skipped_steps": state["skipped_steps"]}
            if (epoch + 1) % cfg["eval_interval"] == 0 or epoch + 1 == cfg["epochs"]:
                if valid_ds is not None:
                    ctx = ema.average_parameters() if ema is not None else contextlib.nullcontext()
                    with ctx:
                        vacc, _ = evaluate(model, valid_ds, cfg["valid_batch_size"], device, dtype, info.rank,
                                           info.world_size)
                    vm = vacc.compute()
                    metric = _validation_loss(vm, cfg)
                    record["valid"] = vm
                else:
                    metric = _validation_loss(record["train"], cfg)
                record["valid_loss"] = metric
                scheduler.step(metric)
                if metric < state["best_metric"]:
                    state["best_metric"], state["best_epoch"], state["bad_evals"] = metric, epoch + 1, 0
                    export_model(record.get("valid"))
                else:
                    state["bad_evals"] += 1
                if cfg["patience"] is not None and state["bad_evals"] >= cfg["patience"]:
                    state["finished"] = True
                    stop_reason = stop_reason or "early_stopping"
                rank_zero_print(f"epoch {epoch + 1}: train {_format_metrics(record['train'])}"
                                + (f" | valid {_format_metrics(record['valid'])}" if "valid" in record else "")
                                + f" | lr {record['lr']:.3g}" + (" *" if state["best_epoch"] == epoch + 1 else ""))
            state["history"].append(record)
            state["epoch"] += 1
            state["step_in_epoch"] = 0
            train_acc.reset()
            checkpoint()
            if info.is_main:
                _write_json(out_dir / "history.json", state["history"])
            if stop:
                interrupted = stop_reason == "signal"
                break

    if not model_path.exists():  # stopped before the first validation: export the current weights
        export_model()
    if info.is_main and cfg["learning_curve"] and state["history"] and can_plot("learning_curve.png"):
        from equiv.train.curves import learning_curve

        learning_curve(state["history"], out_dir / "learning_curve.png",
                       title=f"{model_name} on {cfg['molecule'] if cfg['dataset'] == 'rmd17' else cfg['train_file']}")
    report = {"model": model_name, "data": cfg["molecule"] if cfg["dataset"] == "rmd17" else cfg["train_file"],
              "best_epoch": state["best_epoch"], "global_step": state["global_step"],
              "train_time_s": state["train_time_s"], "hardware": _hardware(device), "world_size": info.world_size,
              "n_parameters": n_params, "model_path": str(model_path), "stop_reason": stop_reason or "epochs",
              "interrupted": interrupted, "skipped_steps": state["skipped_steps"], "tests": {}}
    if interrupted:
        rank_zero_print(f"stopped by a signal; checkpoint in {ckpt_path}. Rerun the same command to resume.")
        return report
    if cfg["test"] and tests:
        if info.is_main:
            _test(cfg, tests, model_path, device, dtype, out_dir, report)
        barrier()
    return report


def _test(cfg, tests, model_path, device, dtype, out_dir, report):
    from equiv.train.parity import parity_plot

    best = load_potential(model_path, device=device, dtype=dtype)
    for name, data in tests.items():
        ds = AtomsDataset(data, cfg["cutoff"])
        acc, pred = evaluate(best, ds, cfg["valid_batch_size"], device, dtype, keep_predictions=True,
                             progress=cfg["progress"], desc=f"test {name}")
        m = acc.compute()
        m["n_structures"] = len(ds)
        report["tests"][name] = m
        if cfg["parity_plot"] and can_plot(f"parity_{name}.png"):
            parity_plot(pred["energy_ref"], pred["energy_pred"], pred["n_atoms"], pred["forces_ref"],
                        pred["forces_pred"], out_dir / f"parity_{name}.png",
                        title=f"{report['model']} on {report['data']} ({name})", metrics=m)
    _write_json(out_dir / "test_report.json", report)
    md = _report_markdown(report)
    (out_dir / "test_report.md").write_text(md)
    print(md, flush=True)
