"""``equiv train <task>``: one module per task, each with ``add_arguments(parser)`` and ``run(args)``."""

from __future__ import annotations

import argparse
import importlib

#: task -> (module path, help)
TASKS: dict[str, tuple[str, str]] = {
    "nbody": ("equiv.train.nbody", "charged 5-body benchmark (EGNN, PONITA, FA-GNN, SEGNN, MLP baseline)"),
    "potential": ("equiv.train.potential", "interatomic potential on DFT data (MACE-style)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, (module_path, help_text) in TASKS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            importlib.import_module(module_path).add_arguments(p)
        except ModuleNotFoundError:
            pass  # task not available in this install; `run` reports it


def run(args: argparse.Namespace) -> int:
    module_path, _ = TASKS[args.task]
    return int(importlib.import_module(module_path).run(args) or 0)
