"""`torch.compile` of the N-body models on this CPU: one training step, eager against compiled.

For each model at its published size (`equiv.train.nbody.MODELS`), one step of the training loop of
`equiv train nbody` (forward on a batch of 100 systems, MSE, backward, Adam) is timed eagerly and with
`torch.compile(model)` (Inductor), interleaved in one process after warm-up, one thread. The compiled
model's outputs and parameter gradients are compared with the eager ones (same random draws), and the
first compiled call (the compilation, with an empty Inductor cache) is timed separately. `equiv train nbody --compile` uses the same call.

Usage: ``.venv/bin/python benchmarks/nbody_compile.py [--quick] [--models egnn,segnn]``.
Writes ``benchmarks/results/nbody_compile.{json,md}`` (``nbody_compile_quick.*`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# a fresh Inductor cache, so that the compile time is that of a first run
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="equiv-inductor-"))

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.setup(1)

import torch  # noqa: E402
import torch._inductor.config as inductor_config  # noqa: E402

from equiv.train.nbody import MODELS, build_model  # noqa: E402

#: small sizes for --quick (seconds, not minutes, of compilation)
QUICK = {"egnn": dict(hidden=16, num_layers=2), "fa-gnn": dict(hidden=12, num_layers=2)}


def bench(name: str, kwargs: dict, repeat: int, batch: int = 100) -> dict:
    torch.manual_seed(0)
    model = build_model(name, **kwargs).train()
    g = torch.Generator().manual_seed(1)
    x, v = torch.randn(batch, 5, 3, generator=g), torch.randn(batch, 5, 3, generator=g)
    q = torch.randint(0, 2, (batch, 5, 1), generator=g).float() * 2 - 1
    y = x + 0.5 * v + 0.1 * torch.randn(batch, 5, 3, generator=g)
    model(x, v, q)  # PONITA calibrates its kernels on the first training call
    opt = torch.optim.Adam(model.parameters(), lr=1e-6)
    compiled = torch.compile(model)
    params = list(model.parameters())

    def grads(fn):
        torch.manual_seed(2)  # the same random draws (PONITA rotates its grid in training) in both calls
        with inductor_config.patch(fallback_random=True):
            out = fn(x, v, q)
        return out, torch.autograd.grad(((out - y) ** 2).mean(), params, allow_unused=True)

    t0 = time.perf_counter()
    out_c, g_c = grads(compiled)  # the compilation
    compile_s = time.perf_counter() - t0
    out_e, g_e = grads(model)
    scale = max(float(b.abs().max()) for b in g_e if b is not None)
    grad_diff = max(float((a - b).abs().max()) for a, b in zip(g_c, g_e) if a is not None and b is not None) / scale

    def step(fn):
        def run():
            opt.zero_grad()
            ((fn(x, v, q) - y) ** 2).mean().backward()
            opt.step()
        return run

    times = common.compare({"eager": step(model), "compiled": step(compiled)}, warmup=2, repeat=repeat,
                           budget_s=60.0)
    return {"model": name, "model_kwargs": kwargs, "batch": batch, "compile_s": compile_s,
            "max_abs_output_diff": float((out_c - out_e).abs().max()), "max_rel_grad_diff": grad_diff,
            "times": times}


_ms = common.median_ms


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# N-body models: eager against `torch.compile` on the CPU", "",
        "One training step (forward on 100 systems, MSE, backward, Adam) at the published model size; median of "
        "interleaved rounds (process CPU time, one thread), after warm-up. Compile time: the first compiled call. "
        "Differences: compiled against eager, outputs (absolute) and parameter gradients (relative to the largest). "
        f"Command: `{results['command']}` ({results['wall_s'] / 60:.1f} min). CPU: {m.get('cpu', '?')}, "
        f"torch {m.get('torch', '?')}.", "",
        "| model | eager (ms) | compiled (ms) | eager / compiled | compile time (s) | output diff | gradient diff |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        e, c = _ms(r, "eager"), _ms(r, "compiled")
        lines.append(f"| {r['model']} | {e:.1f} | {c:.1f} | {e / c:.2f} | {r['compile_s']:.0f} | "
                     f"{r['max_abs_output_diff']:.1e} | {r['max_rel_grad_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="EGNN and FA-GNN at small sizes")
    parser.add_argument("--models", default="egnn,fa-gnn,segnn,ponita",
                        help="comma list (default egnn,fa-gnn,segnn,ponita)")
    parser.add_argument("--repeat", type=int, default=10, help="interleaved rounds per model (default 10)")
    args = parser.parse_args()
    names = list(QUICK) if args.quick else args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {sorted(MODELS)}")
    t0 = time.perf_counter()
    rows = []
    for name in names:
        row = bench(name, QUICK[name] if args.quick else {}, 3 if args.quick else args.repeat)
        rows.append(row)
        print(f"{name}: eager {_ms(row, 'eager'):.1f} ms, compiled {_ms(row, 'compiled'):.1f} ms "
              f"({_ms(row, 'eager') / _ms(row, 'compiled'):.2f}x), compile {row['compile_s']:.0f} s, "
              f"gradient diff {row['max_rel_grad_diff']:.1e}", flush=True)
    common.save_rows("nbody_compile", rows, t0, args.quick, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
