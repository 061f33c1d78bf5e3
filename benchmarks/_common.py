"""Shared benchmark utilities (this file is not a benchmark itself).

- `setup`: environment for e3nn 0.4.4 under torch >= 2.6, quiet warnings, thread count.
- `compare`: interleaved, warmed-up timing of several callables (construction excluded by the caller);
  per callable the median and minimum over repeats, adaptively repeated up to a time budget.
- `peak_rss_delta`: peak resident memory added by a callable (Linux ``/proc``; reset with
  ``clear_refs``), and `run_isolated` to run such a measurement in a fresh process so that memory
  kept by the allocator from earlier work cannot hide a peak.
- `matmul_peak_gflops`: measured fp32 matrix-multiply rate of this machine (the reference for
  achieved GFLOP/s).
- `fit_exponent`: least-squares slope of log(time) against log(size).
- `machine_info`, `write_results`: JSON + Markdown (+ PNG) into ``benchmarks/results/``.

>>> from _common import fit_exponent
>>> round(fit_exponent([1, 2, 4], [1.0, 8.0, 64.0]), 6)
3.0
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def setup(threads: int | None = None, malloc: str = "default") -> None:
    """Environment for the benchmarks (call before importing e3nn).

    ``malloc="tuned"`` applies `equiv.tune_cpu_allocator` (glibc keeps freed memory) to the whole
    process, so every library measured in it runs under the same allocator settings.
    """
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    warnings.filterwarnings("ignore")
    if threads:
        torch.set_num_threads(threads)
    if malloc == "tuned":
        import equiv

        if not equiv.tune_cpu_allocator():
            raise SystemExit("--malloc tuned needs Linux with glibc")
    elif malloc != "default":
        raise ValueError(f"malloc must be 'default' or 'tuned', got {malloc!r}")


def add_malloc_argument(parser) -> None:
    parser.add_argument("--malloc", choices=["default", "tuned"], default="default",
                        help="glibc malloc settings for the whole process (both libraries): 'tuned' keeps freed "
                             "memory for reuse (equiv.tune_cpu_allocator); results go to a *_malloc_tuned file")


def _stats(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "repeats": len(times)}


def median_ms(row: dict, name: str) -> float:
    """The median time of ``name`` in ``row["times"]`` (a `compare` result) in ms; NaN if it failed."""
    return row["times"].get(name, {}).get("median_s", float("nan")) * 1e3


def compare(fns: dict, warmup: int = 2, repeat: int = 5, budget_s: float = 20.0, min_repeat: int = 1,
            clock=None) -> dict:
    """Time callables side by side: warm each up, then run them in turn ``repeat`` times.

    Interleaving puts every callable under the same machine load. Stops early (after at least
    ``min_repeat`` rounds) once the rounds have used ``budget_s`` seconds. ``clock`` defaults to
    `cpu_clock` (process CPU time with one thread, robust to other jobs taking the core; wall time
    otherwise). Returns ``{name: {"median_s", "min_s", "repeats"}}``; a callable that raises is
    reported as ``{"error": message}``.
    """
    clock = clock or cpu_clock()
    out, live = {}, {}
    for name, fn in fns.items():
        try:
            for _ in range(warmup):
                fn()
            live[name] = fn
        except Exception as exc:  # noqa: BLE001 - report, do not crash a long benchmark
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    times = {name: [] for name in live}
    start = time.perf_counter()
    for r in range(repeat):
        for name, fn in live.items():
            t = clock()
            fn()
            times[name].append(clock() - t)
        if r + 1 >= min_repeat and time.perf_counter() - start > budget_s:
            break
    out.update({name: _stats(ts) for name, ts in times.items()})
    return out


def cpu_clock():
    """``time.process_time`` when torch runs one thread (CPU time: what the code costs, even on a
    shared machine), else ``time.perf_counter`` (wall time; CPU time would add the threads up)."""
    return time.process_time if torch.get_num_threads() == 1 else time.perf_counter


def _proc_status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def peak_rss_delta(fn) -> int:
    """Bytes by which the peak resident set grows while ``fn()`` runs (Linux only).

    Resets the high-water mark (``echo 5 > /proc/self/clear_refs``), runs ``fn`` and returns
    ``VmHWM - VmRSS(before)``. Memory the allocator kept from earlier work can be reused without
    raising the peak, so measure in a fresh process (`run_isolated`).
    """
    before = _proc_status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    fn()
    return _proc_status("VmHWM") - before


def run_isolated(args: list[str], timeout: float = 1800) -> dict:
    """Run ``python <args>`` in a fresh process; it must print one JSON object as its last line."""
    env = dict(os.environ)
    proc = subprocess.run([sys.executable] + args, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1][:300] if (proc.stderr or proc.stdout) else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def matmul_peak_gflops(n: int = 2048, repeat: int = 5, dtype=torch.float32) -> float:
    """Best fp32 GEMM rate (GFLOP/s) of an ``n x n`` product with the current thread count."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def fit_exponent(sizes, times) -> float:
    """Slope of the least-squares line through ``(log size, log time)``."""
    xs = [math.log(s) for s in sizes]
    ys = [math.log(t) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)


def machine_info() -> dict:
    """Python/torch versions, CPU, thread count and the load average (other jobs share the CPU)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        info["load_average_1_5_15min"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    try:
        import e3nn

        info["e3nn"] = e3nn.__version__
    except ImportError:
        pass
    return info


def write_results(name: str, results: dict, markdown: str, figure=None) -> list[Path]:
    """Write ``results/<name>.json``, ``results/<name>.md`` and, given a matplotlib figure, ``.png``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = [RESULTS / f"{name}.json", RESULTS / f"{name}.md"]
    paths[0].write_text(json.dumps(results, indent=2, default=str))
    paths[1].write_text(markdown)
    if figure is not None:
        paths.append(RESULTS / f"{name}.png")
        figure.savefig(paths[-1], dpi=120, bbox_inches="tight")
    return paths


def save_rows(script: str, rows: list, started: float, quick: bool, markdown) -> dict:
    """Write ``results/<script>[_quick].{json,md}`` for a benchmark that measured ``rows``: the command,
    the rows, the machine and the wall time since ``started`` (``time.perf_counter``); returns the results."""
    results = {"command": " ".join([f"benchmarks/{script}.py"] + sys.argv[1:]), "rows": rows,
               "machine": machine_info(), "wall_s": time.perf_counter() - started}
    paths = write_results(script + ("_quick" if quick else ""), results, markdown(results))
    print("wrote", ", ".join(str(p) for p in paths))
    return results
