"""The ``equiv`` command.

Each subcommand lives in its own module, which defines two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

and is registered in :data:`COMMANDS` below (module imported lazily, so ``equiv --help`` is fast and a
subcommand whose optional dependencies are missing does not break the others).

>>> from equiv.cli import main
>>> main(["--version"])  # doctest: +SKIP
equiv 0.1.0
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from equiv import __version__

#: name -> (module path, one-line help). ``train`` has its own sub-subcommands (nbody, potential).
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("equiv.demo", "run the main job on an embedded default (what `make demo` runs)"),
    "train": ("equiv.train.cli", "train a model: `equiv train nbody ...`, `equiv train potential ...`"),
    "evaluate": ("equiv.train.evaluate_cli", "evaluate a trained checkpoint on a test set"),
    "nero": ("equiv.symmetry.nero_cli", "orbit (NERO) report of a trained model under a group"),
    "bench": ("equiv.bench_cli", "run a benchmark from benchmarks/"),
    "md": ("equiv.calculators.md_cli", "molecular dynamics with a trained potential (ASE)"),
    "info": ("equiv.train.info_cli", "what a saved potential is: model, species, cut-off, size, training, errors"),
    "check": ("equiv.train.check_cli", "check a potential's physics: symmetries, forces = -dE/dr, cut-off, stress"),
}


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: CPU threads of this process (PyTorch's default is one per core, which thrashes
    when other jobs share the cores: measured 20x slower on a busy 2-core machine)."""
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default: PyTorch's, one per core; use 1 on a shared machine)")


def apply_threads(args: argparse.Namespace) -> None:
    """Apply ``--threads`` (see `add_threads_argument`)."""
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            raise SystemExit(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def _load(name: str):
    module_path, _ = COMMANDS[name]
    return importlib.import_module(module_path)


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="equiv",
        description="equiv: equivariant deep learning in plain PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"equiv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == load:
            _load(name).add_arguments(p)
    return parser


def _install_hint(module: str | None) -> str:
    """How to install a missing optional package: its equiv extra where there is one."""
    extra = {"ase": "atoms", "matplotlib": "plot", "e3nn": "bench", "mace": "bench"}.get(str(module).split(".")[0])
    return f"pip install 'equiv[{extra}]'" if extra else f"pip install {module}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Only the chosen subcommand's module is imported.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    load = chosen if chosen in COMMANDS else None
    if load is not None:
        try:
            _load(load)
        except ModuleNotFoundError as exc:  # an optional dependency or a not-yet-built command
            print(f"equiv {load}: unavailable ({exc}; {_install_hint(exc.name)})", file=sys.stderr)
            return 2
    parser = build_parser(load)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(_load(args.command).run(args) or 0)
    except ModuleNotFoundError as exc:  # an optional dependency this command needs
        if os.environ.get("EQUIV_TRACEBACK") or exc.name in (None, "equiv") or str(exc.name).startswith("equiv."):
            raise
        print(f"equiv {args.command}: error: this command needs the optional package {exc.name!r} "
              f"({_install_hint(exc.name)})", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError, KeyError, FloatingPointError) as exc:
        # a user's mistake (a missing file, a bad option, a data label) or a diverged run: the message
        # says what to change, a traceback would bury it
        if os.environ.get("EQUIV_TRACEBACK"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"equiv {args.command}: error: {message}\n(set EQUIV_TRACEBACK=1 for the full traceback)",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
