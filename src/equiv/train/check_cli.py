"""``equiv check``: the physics contract of a potential (symmetries, forces = -dE/dr, smooth cut-off,
stress, save/load, unknown elements), for a saved model or a class.

Examples::

    equiv check runs/ethanol/model.pt
    equiv check mace --model-kwargs "{hidden_irreps: 8x0e + 8x1o}" --species H,C,O --cutoff 5
    python -m equiv check mypotential:TinySteerable --model-kwargs "{channels: 8}"
"""

from __future__ import annotations

import argparse
from pathlib import Path

from equiv.cli import add_threads_argument, apply_threads

__all__ = ["add_arguments", "run", "build_for_check"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a saved potential (model.pt), a registered name (mace, nequip, toy) or "
                                      "'module:Class'")
    parser.add_argument("--model-kwargs", default="{}", help="YAML mapping of hyper-parameters (for a class)")
    parser.add_argument("--species", default="H,C,O", help="elements of a freshly built model (default H,C,O)")
    parser.add_argument("--cutoff", type=float, default=5.0, help="cut-off of a freshly built model, Å (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the test structures")
    add_threads_argument(parser)


def build_for_check(name: str, model_kwargs: dict, species: list[int], cutoff: float, seed: int = 0):
    """A freshly initialised potential ``name`` for the contract: E0 zero, neutral statistics."""
    import torch

    from equiv.models import get_potential_class

    cls = get_potential_class(name)
    torch.manual_seed(seed)
    hparams = dict(species=sorted(species), cutoff=cutoff, atomic_energies=[0.0] * len(species),
                   avg_num_neighbors=8.0, scale=1.0, shift=0.0)
    try:
        return cls(**hparams, **model_kwargs)
    except TypeError as exc:
        raise ValueError(f"--model-kwargs: {model_kwargs!r} does not fit {name!r} ({exc})") from None


def _species(text: str) -> list[int]:
    from equiv.data import atomic_number

    try:
        return sorted({atomic_number(token) for token in text.replace(" ", "").split(",")})
    except ValueError as exc:
        raise ValueError(f"--species: {exc}") from None


def run(args: argparse.Namespace) -> int:
    import yaml

    from equiv.train.contract import check_potential

    apply_threads(args)
    if Path(args.model).suffix == ".pt" or Path(args.model).is_file():
        from equiv.train.saved_model import load_potential

        model = load_potential(args.model)
    else:
        kwargs = yaml.safe_load(args.model_kwargs) or {}
        if not isinstance(kwargs, dict):
            raise ValueError(f"--model-kwargs: expected a YAML mapping, got {args.model_kwargs!r}")
        model = build_for_check(args.model, kwargs, _species(args.species), args.cutoff, args.seed)
    report = check_potential(model, seed=args.seed)
    print(report)
    return 0 if report.passed else 1
