"""Tensor products in a force-training step: equiv vs e3nn side by side, same process, same inputs.

Training an interatomic potential on forces differentiates the model twice: the forces are input
gradients taken with ``create_graph=True``, and the loss on them is differentiated again. This
benchmark times that step for one product, ``out = tp(x, y, w)``:

1. the forward,
2. ``g_x, g_y = grad(out, (x, y), v, create_graph=True)`` (the "forces"),
3. the gradient of ``<g_x, a> + <g_y, b> + <out, v>`` with respect to ``x``, ``y`` and the weights,

for the channelwise Clebsch–Gordan product ``C×(0..L) ⊗ 1×(0..L) → C×(0..L)`` (all paths, the
NequIP/MACE convolution; `ChannelwiseTensorProduct`) and the Gaunt product on the same irreps
(`GauntTensorProduct`, matrix and grid routes), each against e3nn with the same paths (Gaunt path
weights for the Gaunt product, so the work is identical). Per-sample weights, batch 1024, one thread,
interleaved rounds after warm-up (`_common.compare`), construction excluded.

Usage: ``.venv/bin/python benchmarks/tp_forces.py [--quick]``. Writes ``benchmarks/results/tp_forces.{json,md}``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.setup(1)

import torch  # noqa: E402

from equiv import so3  # noqa: E402
from equiv.tp import ChannelwiseTensorProduct, GauntTensorProduct  # noqa: E402


def _irreps(mul: int, L: int) -> str:
    return "+".join(f"{mul}x{l}{'eo'[l % 2]}" for l in range(L + 1))


def _step(fn, x, y, w):
    """One force-like training step of ``fn(x, y, w)`` (see the module docstring)."""
    g = torch.Generator().manual_seed(0)
    out = fn(x, y, w)
    v = torch.randn(out.shape, generator=g, dtype=out.dtype)
    a, b = torch.randn(x.shape, generator=g, dtype=x.dtype), torch.randn(y.shape, generator=g, dtype=y.dtype)

    def step():
        out = fn(x, y, w)
        gx, gy = torch.autograd.grad(out, (x, y), v, create_graph=True)
        loss = (gx * a).sum() + (gy * b).sum() + (out * v).sum()
        return torch.autograd.grad(loss, (x, y, w))

    return step


def bench(o3, kind: str, C: int, L: int, B: int, repeat: int) -> dict:
    i1, sh = _irreps(C, L), _irreps(1, L)
    x = torch.randn(B, o3.Irreps(i1).dim, requires_grad=True)
    y = so3.spherical_harmonics(list(range(L + 1)), torch.randn(B, 3), normalization="component").requires_grad_(True)
    fns, row = {}, {"product": kind, "C": C, "L": L, "B": B}
    if kind == "cg":
        ours = ChannelwiseTensorProduct(i1, sh, i1, shared_weights=False)
        w = torch.randn(B, ours.weight_numel, requires_grad=True)
        ref = o3.TensorProduct(i1, sh, i1, [tuple(i[:5]) for i in ours.instructions], shared_weights=False, internal_weights=False)
        wr = w
        fns["equiv"] = _step(ours, x, y, w)
    else:
        mat = GauntTensorProduct(i1, sh, i1, method="matrix", shared_weights=False)
        grid = GauntTensorProduct(i1, sh, i1, method="grid", shared_weights=False)
        w = torch.randn(B, mat.weight_numel, requires_grad=True)
        ref = o3.TensorProduct(i1, sh, i1, mat.cg_instructions(), shared_weights=False, internal_weights=False,
                               irrep_normalization="none", path_normalization="none")
        wr = mat.cg_weights(w).detach().requires_grad_(True)
        fns["equiv"] = _step(mat, x, y, w)
        fns["equiv_grid"] = _step(grid, x, y, w)
        ours = mat
    with torch.no_grad():
        row["max_abs_diff_vs_e3nn"] = (ours(x[:64], y[:64], w[:64]) - ref(x[:64], y[:64], wr[:64])).abs().max().item()
    fns["e3nn"] = _step(ref, x, y, wr)
    row["times"] = common.compare(fns, warmup=2, repeat=repeat, budget_s=60.0)
    return row


_ms = common.median_ms


def markdown(results: dict) -> str:
    m = results["machine"]
    lines = [
        "# Tensor products in a force-training step: equiv vs e3nn", "",
        "Forward, input gradients with `create_graph=True`, and the gradient of a loss on them (x, y and the "
        "per-sample weights): the double-backward step of force training, for one product. Channelwise CG: all "
        "paths of `C×(0..L) ⊗ 1×(0..L) → C×(0..L)`; Gaunt: the same irreps, e3nn restricted to the even paths "
        "with Gaunt path weights (identical work). Median of interleaved rounds (process CPU time, one thread). "
        f"Command: `{results['command']}` ({results['wall_s'] / 60:.1f} min). CPU: {m.get('cpu', '?')}, "
        f"torch {m.get('torch', '?')}, e3nn {m.get('e3nn', '?')}.", "",
        "| product | C | L | batch | equiv (ms) | e3nn (ms) | e3nn / equiv | Gaunt grid route (ms) | max abs diff vs e3nn |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        eq, e3 = _ms(r, "equiv"), _ms(r, "e3nn")
        route = "CG (channelwise)" if r["product"] == "cg" else "Gaunt (matrix route)"
        grid = f"{_ms(r, 'equiv_grid'):.1f}" if r["product"] == "gaunt" else "—"
        lines.append(f"| {route} | {r['C']} | {r['L']} | {r['B']} | {eq:.1f} | {e3:.1f} | {e3 / eq:.2f} | {grid} | "
                     f"{r['max_abs_diff_vs_e3nn']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="C = 16, L = 2 and 3 only")
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds per case (default 5)")
    args = parser.parse_args()
    from e3nn import o3

    cases = [("cg", 16, 2), ("gaunt", 16, 3)] if args.quick else [
        ("cg", 16, 2), ("cg", 64, 2), ("cg", 64, 3), ("gaunt", 64, 2), ("gaunt", 64, 3), ("gaunt", 16, 6)]
    t0 = time.perf_counter()
    rows = []
    for kind, C, L in cases:
        row = bench(o3, kind, C, L, 1024, args.repeat)
        rows.append(row)
        print(f"{kind} C={C} L={L}: equiv {_ms(row, 'equiv'):.1f} ms, e3nn {_ms(row, 'e3nn'):.1f} ms, "
              f"ratio {_ms(row, 'e3nn') / _ms(row, 'equiv'):.2f}", flush=True)
    common.save_rows("tp_forces", rows, t0, args.quick, markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
