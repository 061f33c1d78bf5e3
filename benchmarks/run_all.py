"""Run every benchmark in this folder (``make bench``), each in its own process, in quick mode
unless ``--full`` is given. Results land in ``benchmarks/results/``."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="full grids (long on a 2-core CPU)")
    parser.add_argument("names", nargs="*", help="only these benchmarks")
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    scripts = sorted(p for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "run_all")
    if args.names:
        scripts = [p for p in scripts if p.stem in args.names]
    failed = []
    for script in scripts:
        cmd = [sys.executable, str(script)] + ([] if args.full else ["--quick"])
        print(f"== {script.stem}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, env=env)
        print(f"== {script.stem}: exit {rc} in {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(script.stem)
    if failed:
        print("failed:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
