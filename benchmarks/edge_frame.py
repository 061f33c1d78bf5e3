"""The SO(2) route (`equiv.tp.EdgeFrameTensorProduct`) against the direct products and e3nn 0.4.4.

The channelwise ``uvu`` product of NequIP/MACE, ``C x (0..L)`` features times the edge harmonics
``Y(r)`` (``1 x (0..L)``) into ``C x (0..L)``, parities ``(-1)^l``, per-edge weights (a radial
network's output, the message-passing case) or shared weights. Four implementations of the same
function, in one process on identical inputs, interleaved, after warm-up, construction excluded:

- ``e3nn``: ``o3.TensorProduct`` given ``y = Y(r)`` (harmonics not timed);
- ``direct``: ``equiv.tp.ChannelwiseTensorProduct`` given ``y`` (harmonics not timed);
- ``frame``: ``EdgeFrameTensorProduct`` given precomputed frames (`edge_frames`, shared by the layers
  of a network as the harmonics are), gradients w.r.t. features and weights;
- ``frame+build``: ``EdgeFrameTensorProduct`` from the edge vectors, frames built inside and
  differentiated (gradients w.r.t. features, weights and vectors): the whole cost.

A third table runs the fully connected ``uvw`` product (``FullyConnectedTensorProduct``, shared
weights: SEGNN's product, eSCN's SO(2) linear layer when done in the frame).

Forward and forward+backward (``fwd+bwd``: forward, then the gradient of a random projection) are
timed; outputs are compared with e3nn. A force-training step (double backward, from the edge
vectors) is timed for per-edge weights. A second table compares the Gaunt product (shared per-degree
weights) by its matrix route with the frame route. Results: ``benchmarks/results/edge_frame.{json,md,png}``.

Usage: ``.venv/bin/python benchmarks/edge_frame.py [--quick] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.setup()

import torch  # noqa: E402

from equiv import so3  # noqa: E402
from equiv.tp import (  # noqa: E402
    ChannelwiseTensorProduct,
    EdgeFrameTensorProduct,
    FullyConnectedTensorProduct,
    GauntTensorProduct,
    edge_frames,
)


def _irreps(mul: int, L: int) -> str:
    return "+".join(f"{mul}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1))


def _fwd_bwd(fn, inputs):
    """Closures: forward, and forward + gradient of a fixed random projection w.r.t. ``inputs``."""
    probe = torch.randn_like(fn())

    def fwd():
        with torch.no_grad():
            fn()

    def fwd_bwd():
        torch.autograd.grad((fn() * probe).sum(), inputs)

    return fwd, fwd_bwd


def bench_cg(o3, C, B, L, shared, repeat, e3nn_max_L, mode="uvu"):
    i1, i2 = _irreps(C, L), _irreps(1, L)
    if mode == "uvw":
        tp = FullyConnectedTensorProduct(i1, i2, i1)
    else:
        tp = ChannelwiseTensorProduct(i1, i2, i1, shared_weights=shared)
    fast = EdgeFrameTensorProduct(tp, method="frame")
    gen = torch.Generator().manual_seed(L)
    x = torch.randn(B, tp.irreps_in1.dim, generator=gen, requires_grad=True)
    r = torch.randn(B, 3, generator=gen, requires_grad=True)
    y = so3.spherical_harmonics(i2, r.detach(), normalization="component").requires_grad_()
    frames = [d.detach() for d in edge_frames(r.detach(), L)]
    if shared:
        w = tp.weight
        wt = w.detach()
    else:
        w = torch.randn(B, tp.weight_numel, generator=gen, requires_grad=True)
        wt = w
    row = {"C": C, "B": B, "L": L, "mode": mode, "weights": "shared" if shared else "per-edge", "paths": len(tp.instructions),
           "frame_coefficients": len(fast._vals)}
    fns = {}
    for name, fn, inputs in [
        ("direct", lambda: tp(x, y, None if shared else w), (x, y, w)),
        ("frame", lambda: fast(x, weight=None if shared else w, frames=frames), (x, w)),
        ("frame+build", lambda: fast(x, r, None if shared else w), (x, r, w)),
    ]:
        fns[f"{name}_fwd"], fns[f"{name}_fwd+bwd"] = _fwd_bwd(fn, inputs)
    with torch.no_grad():
        ref_direct = tp(x, y, None if shared else w)
        row["max_abs_diff_frame_vs_direct"] = (fast(x, r, None if shared else w) - ref_direct).abs().max().item()
    if L <= e3nn_max_L:
        ins = [tuple(i[:5]) for i in tp.instructions]
        if mode == "uvw":
            ref = o3.TensorProduct(i1, i2, i1, ins, shared_weights=True, internal_weights=False)
            wb = wt
        else:
            ref = o3.TensorProduct(i1, i2, i1, ins, shared_weights=False, internal_weights=False)
            wb = wt.expand(B, -1) if shared else wt
        with torch.no_grad():
            row["max_abs_diff_frame_vs_e3nn"] = (fast(x, r, None if shared else w) - ref(x, y, wb)).abs().max().item()
        fns["e3nn_fwd"], fns["e3nn_fwd+bwd"] = _fwd_bwd(lambda: ref(x, y, wb), (x, y) if shared else (x, y, w))
    else:
        row["e3nn_skipped"] = f"L > {e3nn_max_L} (budget)"
    row["times"] = common.compare(fns, warmup=2, repeat=repeat, budget_s=40.0)
    return row


def bench_force_step(o3, C, B, L, repeat, e3nn_max_L):
    """A force-training step through the product: energy-like projection, its gradient w.r.t. the edge
    vectors with ``create_graph``, a loss on that "force", and its gradient w.r.t. features and weights.
    Every implementation starts from the edge vectors (harmonics or frames inside), per-edge weights."""
    i1, i2 = _irreps(C, L), _irreps(1, L)
    tp = ChannelwiseTensorProduct(i1, i2, i1, shared_weights=False)
    fast = EdgeFrameTensorProduct(tp, method="frame")
    gen = torch.Generator().manual_seed(200 + L)
    x = torch.randn(B, tp.irreps_in1.dim, generator=gen, requires_grad=True)
    r = torch.randn(B, 3, generator=gen, requires_grad=True)
    w = torch.randn(B, tp.weight_numel, generator=gen, requires_grad=True)
    probe = torch.randn(B, tp.irreps_out.dim, generator=gen)

    def step(fn):
        def run():
            (g,) = torch.autograd.grad((fn() * probe).sum(), r, create_graph=True)
            torch.autograd.grad(g.square().sum(), (x, w))
        return run

    fns = {"direct": step(lambda: tp(x, so3.spherical_harmonics(i2, r, normalization="component"), w)),
           "frame+build": step(lambda: fast(x, r, w))}
    row = {"C": C, "B": B, "L": L}
    if L <= e3nn_max_L:
        ref = o3.TensorProduct(i1, i2, i1, [tuple(i[:5]) for i in tp.instructions],
                               shared_weights=False, internal_weights=False)
        fns["e3nn"] = step(lambda: ref(x, o3.spherical_harmonics(i2, r, True, normalization="component"), w))
    row["times"] = common.compare(fns, warmup=1, repeat=repeat, budget_s=40.0)
    return row


def bench_gaunt(C, B, L, repeat):
    i1, i2 = _irreps(C, L), _irreps(1, L)
    tp = GauntTensorProduct(i1, i2, i1, method="matrix")
    with torch.no_grad():
        tp.weight.normal_()
    fast = EdgeFrameTensorProduct(tp, sh_normalization="integral", method="frame")
    gen = torch.Generator().manual_seed(100 + L)
    x = torch.randn(B, tp.irreps_in1.dim, generator=gen, requires_grad=True)
    r = torch.randn(B, 3, generator=gen, requires_grad=True)
    y = so3.spherical_harmonics(i2, r.detach()).requires_grad_()
    row = {"C": C, "B": B, "L": L}
    fns = {}
    for name, fn, inputs in [("matrix", lambda: tp(x, y), (x, y)), ("frame+build", lambda: fast(x, r), (x, r))]:
        fns[f"{name}_fwd"], fns[f"{name}_fwd+bwd"] = _fwd_bwd(fn, inputs)
    with torch.no_grad():
        row["max_abs_diff"] = (fast(x, r) - tp(x, y)).abs().max().item()
    row["times"] = common.compare(fns, warmup=2, repeat=repeat, budget_s=30.0)
    return row


_ms = common.median_ms


def _f(v, spec=".2f"):
    return "—" if v != v else format(v, spec)


def markdown(res: dict) -> str:
    m = res["machine"]
    lines = ["# Edge-frame (SO(2)) products vs direct products and e3nn 0.4.4", "",
             f"Command: `{res['command']}` ({res['minutes']:.1f} min). CPU: {m['cpu']}, {m['torch_threads']} thread(s), "
             f"torch {m['torch']}, e3nn {m.get('e3nn', '—')}. Load average at start: {res['load_start']} (the 2 cores "
             "are shared with other jobs; times are process CPU time with one thread, interleaved).", "",
             "Channelwise `uvu`, `C x (0..L)` ⊗ `Y(r)` → `C x (0..L)`, parities (-1)^l. Times: median ms. "
             "Ratios: e3nn / implementation (higher is better for equiv). `frame` = frames given (shared by all "
             "layers on the same edges, gradients w.r.t. features and weights); `frame+build` = from the edge "
             "vectors, frames built and differentiated inside (the whole cost, gradients also w.r.t. the vectors). "
             "e3nn and `direct` are given the harmonics.", ""]
    for mode, weights in (("uvu", "per-edge"), ("uvu", "shared"), ("uvw", "shared")):
        rows = [r for r in res["cg"] if r["weights"] == weights and r.get("mode", "uvu") == mode]
        if not rows:
            continue
        title = (f"CG channelwise `uvu`, {weights} weights" if mode == "uvu" else
                 "CG fully connected `uvw` (e3nn `FullyConnectedTensorProduct`, SEGNN/eSCN-style), shared weights")
        lines += [f"## {title}", "",
                  "| C | batch | L | paths | e3nn fwd | direct fwd | frame fwd | frame+build fwd | e3nn fwd+bwd | direct fwd+bwd | "
                  "frame fwd+bwd | frame+build fwd+bwd | frame+build / direct (fwd+bwd) | e3nn / frame+build (fwd+bwd) | "
                  "max abs diff (vs direct, vs e3nn) |",
                  "|" + "---|" * 15]
        for r in rows:
            e, d, f, fb = (_ms(r, f"{k}_fwd") for k in ("e3nn", "direct", "frame", "frame+build"))
            e2, d2, f2, fb2 = (_ms(r, f"{k}_fwd+bwd") for k in ("e3nn", "direct", "frame", "frame+build"))
            diff = f"{r['max_abs_diff_frame_vs_direct']:.1e}, " + (
                f"{r['max_abs_diff_frame_vs_e3nn']:.1e}" if "max_abs_diff_frame_vs_e3nn" in r else "—")
            lines.append(f"| {r['C']} | {r['B']} | {r['L']} | {r['paths']} | {_f(e, '.1f')} | {_f(d)} | {_f(f)} | {_f(fb)} | "
                         f"{_f(e2, '.1f')} | {_f(d2)} | {_f(f2)} | {_f(fb2)} | {_f(d2 / fb2)}x | {_f(e2 / fb2, '.1f')}x | {diff} |")
        lines.append("")
    if res.get("force"):
        lines += ["## Force-training step (per-edge weights, from the edge vectors)", "",
                  "Projection of the output, its gradient w.r.t. the edge vectors (`create_graph`), a loss on "
                  "that gradient, and the loss's gradient w.r.t. features and weights: the double backward of "
                  "force training. Harmonics (e3nn's own for e3nn) or frames are computed inside.", "",
                  "| C | batch | L | e3nn | direct | frame+build | e3nn / frame+build | direct / frame+build |",
                  "|" + "---|" * 8]
        for r in res["force"]:
            e, d, f = (_ms(r, k) for k in ("e3nn", "direct", "frame+build"))
            lines.append(f"| {r['C']} | {r['B']} | {r['L']} | {_f(e, '.1f')} | {_f(d)} | {_f(f)} | "
                         f"{_f(e / f, '.1f')}x | {_f(d / f)}x |")
        lines.append("")
    if res.get("gaunt"):
        lines += ["## Gaunt product (shared per-degree weights): matrix route vs frame route", "",
                  "| C | batch | L | matrix fwd | frame+build fwd | matrix fwd+bwd | frame+build fwd+bwd | matrix / frame+build (fwd+bwd) | max abs diff |",
                  "|" + "---|" * 9]
        for r in res["gaunt"]:
            a, b = _ms(r, "matrix_fwd"), _ms(r, "frame+build_fwd")
            a2, b2 = _ms(r, "matrix_fwd+bwd"), _ms(r, "frame+build_fwd+bwd")
            lines.append(f"| {r['C']} | {r['B']} | {r['L']} | {_f(a)} | {_f(b)} | {_f(a2)} | {_f(b2)} | {_f(a2 / b2)}x | {r['max_abs_diff']:.1e} |")
        lines.append("")
    return "\n".join(lines)


def figure(res: dict):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, weights in zip(axes, ("per-edge", "shared")):
        rows = [r for r in res["cg"] if r["weights"] == weights and r.get("mode", "uvu") == "uvu"]
        Ls = [r["L"] for r in rows]
        for name, style in [("e3nn", "k-o"), ("direct", "b-s"), ("frame", "g--^"), ("frame+build", "g-^")]:
            ax.plot(Ls, [_ms(r, f"{name}_fwd+bwd") for r in rows], style, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("L")
        ax.set_ylabel("forward + backward (ms)")
        ax.set_title(f"CG uvu, C={rows[0]['C'] if rows else '?'}, batch {rows[0]['B'] if rows else '?'}, {weights} weights")
        ax.legend()
    fig.tight_layout()
    return fig


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="L <= 4, fewer repeats (a minute)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--lmax", type=int, default=8)
    p.add_argument("--e3nn-max-l", type=int, default=8)
    p.add_argument("--uvw-max-l", type=int, default=6, help="largest L of the fully connected (uvw) table")
    p.add_argument("--uvw-e3nn-max-l", type=int, default=5)
    p.add_argument("--force-max-l", type=int, default=6, help="largest L of the force-step table")
    p.add_argument("--force-e3nn-max-l", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from e3nn import o3

    t0 = time.perf_counter()
    Lmax = min(args.lmax, 4) if args.quick else args.lmax
    repeat = 3 if args.quick else 7
    res = {"benchmark": "edge_frame", "command": "benchmarks/edge_frame.py " + " ".join(sys.argv[1:]),
           "machine": common.machine_info(), "load_start": common.machine_info().get("load_average_1_5_15min"),
           "cg": [], "gaunt": []}
    for shared in (False, True):
        for L in range(1, Lmax + 1):
            row = bench_cg(o3, args.channels, args.batch, L, shared, repeat, args.e3nn_max_l)
            res["cg"].append(row)
            print(f"cg {row['weights']} L={L}: fwd+bwd e3nn {_ms(row, 'e3nn_fwd+bwd'):.1f} direct {_ms(row, 'direct_fwd+bwd'):.2f} "
                  f"frame {_ms(row, 'frame_fwd+bwd'):.2f} frame+build {_ms(row, 'frame+build_fwd+bwd'):.2f} ms", flush=True)
    for L in range(1, min(Lmax, args.uvw_max_l) + 1):
        row = bench_cg(o3, args.channels, args.batch, L, True, repeat, args.uvw_e3nn_max_l, mode="uvw")
        res["cg"].append(row)
        print(f"uvw L={L}: fwd+bwd e3nn {_ms(row, 'e3nn_fwd+bwd'):.1f} direct {_ms(row, 'direct_fwd+bwd'):.2f} "
              f"frame {_ms(row, 'frame_fwd+bwd'):.2f} frame+build {_ms(row, 'frame+build_fwd+bwd'):.2f} ms", flush=True)
    res["force"] = []
    for L in range(1, min(Lmax, args.force_max_l) + 1):
        row = bench_force_step(o3, args.channels, args.batch, L, repeat, args.force_e3nn_max_l)
        res["force"].append(row)
        print(f"force step L={L}: e3nn {_ms(row, 'e3nn'):.1f} direct {_ms(row, 'direct'):.2f} "
              f"frame+build {_ms(row, 'frame+build'):.2f} ms", flush=True)
    for L in range(2, Lmax + 1, 2):
        row = bench_gaunt(args.channels, args.batch, L, repeat)
        res["gaunt"].append(row)
        print(f"gaunt L={L}: fwd+bwd matrix {_ms(row, 'matrix_fwd+bwd'):.2f} frame+build {_ms(row, 'frame+build_fwd+bwd'):.2f} ms",
              flush=True)
    res["minutes"] = (time.perf_counter() - t0) / 60
    name = "edge_frame_quick" if args.quick else "edge_frame"
    for path in common.write_results(name, res, markdown(res), figure(res)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
