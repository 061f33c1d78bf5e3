"""Options of ``equiv train potential``: one table drives the YAML config, the flags and the defaults.

Precedence: built-in defaults < ``--config cfg.yaml`` < flags given on the command line. YAML keys
may use ``_`` or ``-``; unknown keys are an error (so a typo never passes silently).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["OPTIONS", "DEFAULTS", "add_options", "resolve_config", "RESUME_MAY_CHANGE"]


def _yaml_value(text):
    if not isinstance(text, str):
        return text
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise argparse.ArgumentTypeError(f"not valid YAML: {text!r} ({exc})") from None


def _dict(value):
    v = _yaml_value(value)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(f"expected a mapping such as '{{channels: 32}}', got {value!r}")
    glued = [k for k, x in v.items() if x is None and isinstance(k, str) and ":" in k]
    if glued:
        raise argparse.ArgumentTypeError(f"{value!r} parses as keys {glued} without values; YAML needs a space "
                                         "after each colon, e.g. '{channels: 32, hidden: 64}'")
    return v


def _optional(kind):
    def conv(value):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        return kind(value)

    conv.__name__ = kind.__name__
    return conv


def _bool(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on"):
        return True
    if isinstance(value, str) and value.lower() in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {value!r}")


def _str_list(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    raise argparse.ArgumentTypeError(f"expected a file name or a list of them, got {value!r}")


def _e0s(value):
    v = _yaml_value(value)
    if isinstance(v, dict):
        return v
    if isinstance(v, str):
        return v
    raise argparse.ArgumentTypeError(
        f"expected 'auto', 'least_squares', 'isolated', 'zero', an extxyz path or a mapping, got {value!r}")


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    type: Any
    help: str
    choices: tuple | None = None
    group: str = "training"


OPTIONS: list[Option] = [
    # data
    Option("dataset", "rmd17", str, "dataset kind", ("rmd17", "extxyz"), "data"),
    Option("molecule", "ethanol", str, "rMD17 molecule (dataset=rmd17)", None, "data"),
    Option("n_train", 950, _optional(int), "training structures (rMD17: from the 1000 training frames; extxyz: "
           "subsample, none = all)", None, "data"),
    Option("n_valid", 50, _optional(int), "validation structures (rMD17)", None, "data"),
    Option("split_seed", 0, int, "seed of the train/validation split", None, "data"),
    Option("train_file", None, _optional(str), "extxyz training file (dataset=extxyz)", None, "data"),
    Option("valid_file", None, _optional(str), "extxyz validation file (default: valid_fraction of train_file)",
           None, "data"),
    Option("valid_fraction", 0.05, float, "fraction of train_file held out for validation", None, "data"),
    Option("test_file", [], _str_list, "extxyz test file(s); rMD17 always uses its 1000 test frames", None, "data"),
    Option("max_test", None, _optional(int), "evaluate only the first N test structures (none = all)", None, "data"),
    Option("energy_key", None, _optional(str), "extxyz energy key (default: REF_energy, energy, ...)", None, "data"),
    Option("forces_key", None, _optional(str), "extxyz forces key (default: REF_forces, forces, ...)", None, "data"),
    Option("stress_key", None, _optional(str), "extxyz stress key (default: REF_stress, stress, ...)", None, "data"),
    Option("e0s", "auto", _e0s, "isolated-atom energies: auto (isolated frames in train_file, else "
           "least_squares), least_squares, isolated, zero, an extxyz path, or a mapping {Z: eV}", None, "data"),
    # model
    Option("model", "mace", str, "registered potential name: mace (default), nequip, toy (a small "
           "workflow-test model) or 'module:Class' (equiv.models.available_potentials())", None, "model"),
    Option("model_kwargs", {}, _dict, "model hyper-parameters as a YAML mapping, e.g. '{channels: 32}'", None,
           "model"),
    Option("init_model", None, _optional(str), "start from this saved potential (a model.pt): its model, "
           "hyper-parameters, E0 and weights, with a fresh optimiser (fine-tuning, or continuing a run whose "
           "checkpoint is lost); ignored when resuming from a checkpoint", None, "model"),
    Option("cutoff", 5.0, float, "cut-off radius (Å)", None, "model"),
    Option("dtype", "float64", str, "floating-point precision", ("float32", "float64"), "model"),
    # optimisation
    Option("epochs", 100, int, "maximum number of epochs"),
    Option("max_steps", None, _optional(int), "stop after this many optimiser steps in total (none = no limit)"),
    Option("time_budget_minutes", None, _optional(float), "stop after this much training time (summed over "
           "resumes), then test"),
    Option("batch_size", 5, int, "global training batch size (structures, summed over processes)"),
    Option("valid_batch_size", 10, int, "validation/test batch size"),
    Option("optimizer", "amsgrad", str, "optimiser", ("adam", "amsgrad", "adamw")),
    Option("lr", 0.01, float, "learning rate"),
    Option("weight_decay", 0.0, float, "weight decay (L2 for adam/amsgrad, decoupled for adamw)"),
    Option("energy_weight", 1.0, float, "weight of the per-atom energy MSE (eV^2/atom^2) in the loss"),
    Option("forces_weight", 100.0, float, "weight of the force-component MSE ((eV/Å)^2) in the loss"),
    Option("stress_weight", 0.0, float, "weight of the stress MSE ((eV/Å^3)^2); used when > 0"),
    Option("clip_grad", 100.0, _optional(float), "clip the gradient norm to this (none = no clipping)"),
    Option("max_nonfinite_steps", 10, int, "skip optimiser steps whose gradient is NaN or inf; stop with an error "
           "after this many in a row"),
    Option("scheduler_patience", 5, int, "ReduceLROnPlateau: evaluations without improvement before lowering lr"),
    Option("lr_factor", 0.8, float, "ReduceLROnPlateau factor"),
    Option("min_lr", 0.0, float, "ReduceLROnPlateau lower bound"),
    Option("ema", True, _bool, "keep an exponential moving average of the weights (evaluation uses it)"),
    Option("ema_decay", 0.99, float, "EMA decay"),
    Option("patience", 30, _optional(int), "early stopping: evaluations without improvement (none = off)"),
    Option("eval_interval", 1, int, "validate every N epochs"),
    Option("seed", 0, int, "seed of weight initialisation and batch order"),
    # run
    Option("output_dir", "runs/potential", str, "folder for checkpoint.pt, model.pt, reports and plots", None, "run"),
    Option("resume", True, _bool, "resume from output_dir/checkpoint.pt when it exists", None, "run"),
    Option("checkpoint_every", None, _optional(int), "also checkpoint every N steps (always at epoch end)", None,
           "run"),
    Option("device", "auto", str, "auto, cpu, cuda or cuda:<i>", None, "run"),
    Option("num_threads", None, _optional(int), "CPU threads per process", None, "run"),
    Option("tune_malloc", True, _bool, "keep freed memory for reuse in glibc malloc (equiv.tune_cpu_allocator): "
           "fewer page faults per step", None, "run"),
    Option("progress", True, _bool, "show a progress bar", None, "run"),
    Option("test", True, _bool, "evaluate the best model on the test set(s) at the end", None, "run"),
    Option("parity_plot", True, _bool, "write parity_<test>.png (needs matplotlib)", None, "run"),
    Option("learning_curve", True, _bool, "write learning_curve.png: errors against training time (needs "
           "matplotlib)", None, "run"),
]

DEFAULTS: dict[str, Any] = {o.name: o.default for o in OPTIONS}
_BY_NAME = {o.name: o for o in OPTIONS}
#: Options that may differ between a checkpoint and the run resuming it.
RESUME_MAY_CHANGE = {"epochs", "max_steps", "time_budget_minutes", "output_dir", "resume", "checkpoint_every",
                     "device", "num_threads", "tune_malloc", "progress", "test", "parity_plot", "learning_curve", "max_test",
                     "valid_batch_size",
                     "patience", "init_model", "max_nonfinite_steps"}


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and one flag per option (defaults left as ``None`` so the YAML can fill them)."""
    parser.add_argument("--config", default=None, metavar="YAML", help="YAML file of options (flags override it)")
    groups = {}
    for o in OPTIONS:
        if o.group not in groups:
            groups[o.group] = parser.add_argument_group(o.group)
        flag = "--" + o.name.replace("_", "-")
        default_text = o.default if not isinstance(o.default, (dict, list)) or o.default else "none"
        kwargs = dict(dest=o.name, default=None, help=f"{o.help} (default: {default_text})")
        if o.type is _bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif o.type is _str_list:
            kwargs.update(nargs="+", metavar="FILE")
        else:
            kwargs.update(type=o.type)
            if o.choices:
                kwargs["choices"] = o.choices
        groups[o.group].add_argument(flag, **kwargs)


def _check(name: str, value):
    o = _BY_NAME[name]
    try:
        v = o.type(value) if value is not None or o.type is not _bool else value
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        raise ValueError(f"option {name}: invalid value {value!r} ({exc})") from None
    if o.choices and v not in o.choices:
        raise ValueError(f"option {name}: {v!r} is not one of {list(o.choices)}")
    return v


def resolve_config(args: argparse.Namespace | dict | None = None, config_path: str | Path | None = None) -> dict:
    """Merge defaults, a YAML file and explicit values into a validated config dict.

    Parameters
    ----------
    args : argparse.Namespace or dict, optional
        Explicit values (``None`` entries mean "not given"). A ``config`` entry names the YAML file.
    config_path : path, optional
        YAML file (overrides ``args.config``).

    Examples
    --------
    >>> cfg = resolve_config({"lr": 0.005, "model_kwargs": "{channels: 8}"})
    >>> cfg["lr"], cfg["model_kwargs"], cfg["optimizer"]
    (0.005, {'channels': 8}, 'amsgrad')
    """
    explicit = dict(vars(args)) if isinstance(args, argparse.Namespace) else dict(args or {})
    config_path = config_path or explicit.pop("config", None)
    for k in ("command", "task"):
        explicit.pop(k, None)
    cfg = dict(DEFAULTS)
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise FileNotFoundError(f"config: no YAML file at {str(path)!r}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config: {str(path)!r} must hold a mapping of option: value")
        for key, value in loaded.items():
            name = str(key).replace("-", "_")
            if name not in _BY_NAME:
                raise ValueError(f"config: unknown option {key!r} in {str(path)!r}; valid options: {sorted(_BY_NAME)}")
            cfg[name] = _check(name, value)
    for name, value in explicit.items():
        if name not in _BY_NAME:
            raise ValueError(f"unknown option {name!r}; valid options: {sorted(_BY_NAME)}")
        if value is not None:
            cfg[name] = _check(name, value)
    for name in ("epochs", "batch_size", "valid_batch_size", "eval_interval", "max_nonfinite_steps"):
        if cfg[name] < 1:
            raise ValueError(f"option {name}: must be >= 1, got {cfg[name]}")
    for name in ("n_train", "max_steps", "patience", "checkpoint_every", "num_threads", "max_test"):
        if cfg.get(name) is not None and cfg[name] < 1:
            raise ValueError(f"option {name}: must be >= 1 (or none), got {cfg[name]}")
    for name in ("clip_grad", "time_budget_minutes"):
        if cfg.get(name) is not None and not cfg[name] > 0:
            raise ValueError(f"option {name}: must be > 0, got {cfg[name]}")
    for name in ("lr", "energy_weight", "forces_weight", "stress_weight", "weight_decay", "min_lr"):
        if not cfg[name] >= 0:
            raise ValueError(f"option {name}: must be >= 0, got {cfg[name]}")
    for name in ("ema_decay", "lr_factor"):
        if not 0.0 < cfg[name] < 1.0:
            raise ValueError(f"option {name}: must be in (0, 1), got {cfg[name]}")
    if not (cfg["device"] in ("auto", "cpu", "cuda") or str(cfg["device"]).startswith("cuda:")):
        raise ValueError(f"option device: expected auto, cpu, cuda or cuda:<i>, got {cfg['device']!r}")
    if not 0.0 <= cfg["valid_fraction"] < 1.0:
        raise ValueError(f"option valid_fraction: must be in [0, 1), got {cfg['valid_fraction']}")
    if cfg["cutoff"] <= 0:
        raise ValueError(f"option cutoff: must be > 0 Å, got {cfg['cutoff']}")
    if cfg["dataset"] == "extxyz" and not cfg["train_file"]:
        raise ValueError("option train_file: required with dataset=extxyz")
    return cfg
