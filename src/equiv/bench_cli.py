"""``equiv bench NAME [ARGS...]``: run ``benchmarks/NAME.py`` from a source checkout.

Benchmarks compare equiv with its competitors (e3nn, mace-torch) in the same process and write
JSON + Markdown (+ PNG) to ``benchmarks/results/``. They need the ``bench`` extra
(``pip install -e '.[bench]'`` or ``make bench``).

>>> # equiv bench tensor_products --quick
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def benchmarks_dir() -> Path:
    """The ``benchmarks/`` folder of the source checkout (``EQUIV_BENCHMARKS`` overrides)."""
    env = os.environ.get("EQUIV_BENCHMARKS")
    candidates = [Path(env)] if env else []
    candidates += [Path(__file__).resolve().parents[2] / "benchmarks", Path.cwd() / "benchmarks"]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        "benchmarks/ not found: run from a source checkout of equiv or set EQUIV_BENCHMARKS"
    )


def available() -> list[str]:
    return sorted(
        p.stem for p in benchmarks_dir().glob("*.py") if not p.stem.startswith("_") and p.stem != "run_all"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="benchmark name (omit to list them)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the benchmark")


def run(args: argparse.Namespace) -> int:
    names = available()
    if not args.name:
        print("available benchmarks:", ", ".join(names) or "(none)")
        return 0
    if args.name not in names:
        print(f"equiv bench: unknown benchmark {args.name!r}; expected one of {names}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    script = benchmarks_dir() / f"{args.name}.py"
    return subprocess.call([sys.executable, str(script), *args.args], env=env)
