"""Tensor products: equiv vs e3nn 0.4.4, side by side in one process on this CPU.

Sections (``--quick`` runs a smaller grid):

1. **CG** — the channelwise ``uvu`` product of NequIP/MACE, ``C x (0..L)`` features times
   ``1 x (0..L)`` edge spherical harmonics into ``C x (0..L)`` (parities ``(-1)^l``), per-sample
   weights; e3nn ``o3.TensorProduct`` vs ``equiv.tp.ChannelwiseTensorProduct`` with the same
   instructions and weights (outputs compared). C in {16, 64}, batch in {1024, 10000}, L = 1..8.
   A second table runs the SO(3) variant with every triangle path (all parities ``e``), which adds
   the odd paths (more work).
2. **Gaunt** — ``equiv.tp.GauntTensorProduct`` (grid and Fourier) against e3nn restricted to the
   same (even) paths with Gaunt path weights, i.e. identical work (outputs compared), L = 1..12.
3. **Fused message passing** — peak memory (fresh process each) and time of
   ``equiv.tp.message_passing`` against gather -> product -> ``index_add`` (equiv's product and
   e3nn's), 100k edges.

Forward, backward (first order, ``retain_graph``) and double backward (gradient of an
input-gradient, as in force training) are timed separately, after warm-up, construction excluded,
interleaved (same load for both). Achieved GFLOP/s use each implementation's own arithmetic count
and are compared with a measured fp32 matmul peak. Exponents are least-squares fits of
log(time) against log(L). Results: ``benchmarks/results/tensor_products.{json,md,png}``.

Usage: ``.venv/bin/python benchmarks/tensor_products.py [--quick] [--threads N]``.

Repeats of single cases (how far a ratio moves from run to run on a shared machine):
``benchmarks/tensor_products.py --case cg:64:1024:2 --case gaunt:16:1024:8 --rounds 3`` measures each
case ``rounds`` times in one process (section ``cg``, ``cg_all`` or ``gaunt``, then C, batch, L) and
writes ``benchmarks/results/tensor_products_cases.{json,md}`` (the main results are not touched).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.setup()

import torch  # noqa: E402

from equiv import so3  # noqa: E402
from equiv.tp import ChannelwiseTensorProduct, GauntTensorProduct, MessagePassingTensorProduct  # noqa: E402

E3NN_MAX_S = 8.0  # skip an e3nn case whose forward is predicted to take longer than this
E3NN_MAX_ELEMENTS = 6e8  # ... or whose per-path intermediates (B * C * sum d1 d3) exceed this


def _irreps(mul: int, L: int, parity: str) -> str:
    return "+".join(f"{mul}x{l}{'e' if parity == 'e' or l % 2 == 0 else 'o'}" for l in range(L + 1))


def _paths(i1, i2, io):
    return [
        (a, b, c, "uvu", True)
        for a, (m1, r1) in enumerate(i1)
        for b, (_, r2) in enumerate(i2)
        for c, (m3, r3) in enumerate(io)
        if r3 in r1 * r2 and m1 == m3
    ]


def _dense_macs(tp) -> int:
    """Per-sample multiply-adds of a dense per-path contraction (what e3nn computes)."""
    i1, i2, io = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
    return sum(i1[k.i_in1].mul * i1[k.i_in1].ir.dim * i2[k.i_in2].ir.dim * io[k.i_out].ir.dim for k in tp.instructions)


def _modes(fn, x, y, w):
    """Closures timing forward, backward and double backward of ``fn(x, y, w)``."""
    out = fn(x, y, w)
    g = torch.randn_like(out)
    vx, vy = torch.randn_like(x), torch.randn_like(y)
    gx, gy = torch.autograd.grad(fn(x, y, w), (x, y), g, create_graph=True)
    s = (gx * vx).sum() + (gy * vy).sum()

    def fwd():
        fn(x, y, w)

    def bwd():
        torch.autograd.grad(out, (x, y, w), g, retain_graph=True)

    def dbl():
        torch.autograd.grad(s, (x, y, w), retain_graph=True)

    return {"fwd": fwd, "bwd": bwd, "dbl": dbl}


def _e3nn_tp(o3, irreps1, irreps2, irreps_out, instructions, **kw):
    return o3.TensorProduct(irreps1, irreps2, irreps_out, instructions, shared_weights=False, internal_weights=False, **kw)


def bench_cg(o3, C, B, L, parity, repeat, history):
    i1, i2 = _irreps(C, L, parity), _irreps(1, L, parity)
    ins = _paths(o3.Irreps(i1), o3.Irreps(i2), o3.Irreps(i1))
    ours = ChannelwiseTensorProduct(i1, i2, i1, shared_weights=False)
    assert [tuple(i[:3]) for i in ours.instructions] == [tuple(i[:3]) for i in ins]
    x = torch.randn(B, ours.irreps_in1.dim, requires_grad=True)
    y = so3.spherical_harmonics(list(range(L + 1)), torch.randn(B, 3), normalization="component")
    if parity == "e":
        y = torch.randn_like(y)
    y.requires_grad_(True)
    w = torch.randn(B, ours.weight_numel, requires_grad=True)
    row = {"C": C, "B": B, "L": L, "parity": parity, "paths": len(ins),
           "equiv_flops_fwd": 2 * B * ours._groups[0].plan.flops(C), "e3nn_flops_fwd": 2 * B * _dense_macs(ours)}
    fns = {f"equiv_{k}": f for k, f in _modes(ours, x, y, w).items()}
    key = (C, B, parity)
    predicted = _predict(history.get(key), row["e3nn_flops_fwd"])
    elements = B * C * sum(ours.irreps_in1[k.i_in1].ir.dim * ours.irreps_out[k.i_out].ir.dim for k in ours.instructions)
    if predicted > E3NN_MAX_S or elements > E3NN_MAX_ELEMENTS:
        row["e3nn_skipped"] = f"predicted forward {predicted:.0f} s or {elements:.1e} intermediate elements beyond the budget"
    else:
        ref = _e3nn_tp(o3, i1, i2, i1, ins)
        with torch.no_grad():
            row["max_abs_diff_vs_e3nn"] = (ours(x[:256], y[:256], w[:256]) - ref(x[:256], y[:256], w[:256])).abs().max().item()
        fns.update({f"e3nn_{k}": f for k, f in _modes(ref, x, y, w).items()})
    res = common.compare(fns, warmup=1 if predicted > 1.0 else 3, repeat=repeat, budget_s=60.0)
    row["times"] = res
    if "e3nn_fwd" in res and "median_s" in res["e3nn_fwd"]:
        history[key] = (row["e3nn_flops_fwd"], res["e3nn_fwd"]["median_s"])
    return row


def _predict(prev, flops):
    if prev is None:
        return 0.0
    f0, t0 = prev
    return t0 * flops / f0


def bench_gaunt(o3, C, B, L, repeat, history, with_e3nn=True, fourier=True, matrix=True):
    irr, sh = _irreps(C, L, "y"), _irreps(1, L, "y")
    grid = GauntTensorProduct(irr, sh, irr, method="grid", shared_weights=False)
    x = torch.randn(B, grid.irreps_in1.dim, requires_grad=True)
    y = so3.spherical_harmonics(list(range(L + 1)), torch.randn(B, 3), normalization="component").requires_grad_(True)
    w = torch.randn(B, grid.weight_numel, requires_grad=True)
    row = {"C": C, "B": B, "L": L, "paths": len(grid.paths()), "grid_points": grid._plan.points,
           "grid_flops_fwd": 2 * B * C * grid._plan.flops()}
    fns = {f"grid_{k}": f for k, f in _modes(grid, x, y, w).items()}
    predicted = 0.0
    if matrix:  # the same product as a per-sample matrix (one-channel y): equiv.tp._gaunt_matrix
        mat = GauntTensorProduct(irr, sh, irr, method="matrix", shared_weights=False)
        fns.update({f"matrix_{k}": f for k, f in _modes(mat, x, y, w).items()})
        with torch.no_grad():
            row["max_abs_diff_matrix_vs_grid"] = (mat(x[:64], y[:64], w[:64]) - grid(x[:64], y[:64], w[:64])).abs().max().item()
    if fourier:
        four = GauntTensorProduct(irr, sh, irr, method="fourier", shared_weights=False)
        fns["fourier_fwd"] = _modes(four, x, y, w)["fwd"]
        with torch.no_grad():
            row["max_abs_diff_fourier_vs_grid"] = (four(x[:64], y[:64], w[:64]) - grid(x[:64], y[:64], w[:64])).abs().max().item()
    if with_e3nn:
        ins = grid.cg_instructions()
        dense = B * sum(C * (2 * a + 1) * (2 * b + 1) * (2 * c + 1) for a, b, c in (
            (grid._ls1[i], grid._ls2[j], grid._ls3[k]) for i, j, k in grid.paths()))
        row["e3nn_flops_fwd"] = 2 * dense
        predicted = _predict(history.get((C, B, "y")), 2 * dense)
        elements = B * C * sum((2 * grid._ls1[i] + 1) * (2 * grid._ls3[k] + 1) for i, j, k in grid.paths())
        if predicted > E3NN_MAX_S or elements > E3NN_MAX_ELEMENTS:
            row["e3nn_skipped"] = f"predicted forward {predicted:.0f} s or {elements:.1e} intermediate elements beyond the budget"
        else:
            ref = _e3nn_tp(o3, irr, sh, irr, ins, irrep_normalization="none", path_normalization="none")
            wg = grid.cg_weights(w).detach().requires_grad_(True)
            with torch.no_grad():
                row["max_abs_diff_vs_e3nn"] = (grid(x[:64], y[:64], w[:64]) - ref(x[:64], y[:64], wg[:64])).abs().max().item()
            fns.update({f"e3nn_{k}": f for k, f in _modes(ref, x, y, wg).items()})
    res = common.compare(fns, warmup=1 if with_e3nn and predicted > 1.0 else 3, repeat=repeat, budget_s=60.0)
    row["times"] = res
    if "e3nn_fwd" in res and "median_s" in res["e3nn_fwd"]:
        history[(C, B, "y")] = (row["e3nn_flops_fwd"], res["e3nn_fwd"]["median_s"])
    return row


# ------------------------------------------------------------------------- message passing memory
MP_NODE, MP_EDGE = "64x0e + 64x1o", "0e + 1o + 2e + 3o"


def mp_worker(impl: str, edges: int) -> dict:
    """One memory/time measurement of fwd+bwd (run in a fresh process by `bench_message_passing`)."""
    torch.manual_seed(0)
    n = max(1, edges // 20)
    conv = MessagePassingTensorProduct(MP_NODE, MP_EDGE, filter_ir_out="0e + 1o + 2e + 3o")
    h = torch.randn(n, conv.irreps_node.dim, requires_grad=True)
    a = so3.spherical_harmonics([0, 1, 2, 3], torch.randn(edges, 3), normalization="component").requires_grad_(True)
    w = torch.randn(edges, conv.weight_numel, requires_grad=True)
    ei = torch.randint(0, n, (2, edges))
    if impl == "fused":
        fn = conv
    elif impl == "unfused_equiv":
        fn = conv.unfused
    else:
        from e3nn import o3

        ref = _e3nn_tp(o3, str(conv.irreps_node), str(conv.irreps_edge), str(conv.irreps_out),
                       [tuple(i[:5]) for i in conv.instructions])

        def fn(h, a, w, ei, num_nodes=None):
            msg = ref(h[ei[0]], a, w)
            return msg.new_zeros(h.shape[0], msg.shape[1]).index_add(0, ei[1], msg)

    def step():
        out = fn(h, a, w, ei)
        torch.autograd.grad(out, (h, a, w), torch.ones_like(out))

    step()  # warm-up (TorchScript profiling, plan tensors): its memory is released before the measurement
    peak = common.peak_rss_delta(step)
    times = common.compare({"fwd_bwd": step}, warmup=1, repeat=3, budget_s=60)["fwd_bwd"]
    return {"impl": impl, "edges": edges, "nodes": n, "peak_rss_delta_MB": peak / 2**20, "fwd_bwd_s": times.get("median_s")}


def bench_message_passing(edges: int) -> dict:
    rows = [common.run_isolated([__file__, "--mp-worker", impl, str(edges)]) for impl in ("fused", "unfused_equiv", "unfused_e3nn")]
    return {"edges": edges, "node_irreps": MP_NODE, "edge_irreps": MP_EDGE, "rows": rows}


# ------------------------------------------------------------------------- report
_ms = common.median_ms


def _ratio(row, a, b):
    ta, tb = _ms(row, a), _ms(row, b)
    return ta / tb if tb and not math.isnan(ta) and not math.isnan(tb) else math.nan


def _fmt(v, spec=".1f"):
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def markdown(results: dict) -> str:
    m = results["machine"]
    peak = results["matmul_peak_gflops"]
    lines = [
        "# Tensor products: equiv vs e3nn 0.4.4",
        "",
        f"Command: `{results['command']}` ({results['wall_s'] / 60:.1f} min). CPU: {m['cpu']}, "
        f"{m['torch_threads']} threads, torch {m['torch']}, e3nn {m.get('e3nn', '?')}. "
        f"Load average at start/end: {results['load_start']} / {m.get('load_average_1_5_15min')} "
        "(the 2 cores are shared with other jobs: absolute times are noisy, ratios are measured "
        "interleaved in the same process). Measured fp32 matmul peak: "
        f"{peak:.1f} GFLOP/s.",
        "",
        ("Allocator: glibc malloc **tuned** for the whole process, both libraries alike (`--malloc tuned`, "
         "`equiv.tune_cpu_allocator`: freed memory kept for reuse instead of being returned to the OS)."
         if results.get("malloc") == "tuned" else
         "Allocator: glibc malloc with its default settings (see `--malloc tuned` and "
         "`tensor_products_malloc_tuned.md` for the same run with freed memory kept for reuse)."),
        "",
    ]
    upd = results.get("sections_updated") or []
    for u in [upd] if isinstance(upd, dict) else upd:
        peak_note = f" Measured fp32 matmul peak then: {u['matmul_peak_gflops']:.1f} GFLOP/s." if u.get("matmul_peak_gflops") else ""
        lines += [f"Sections {', '.join(u['sections'])} re-measured after the run above, with "
                  f"`{u['command']}` ({u['wall_s'] / 60:.1f} min).{peak_note}", ""]
    lines += [
        "Times are medians in ms (process CPU time with one thread, wall time otherwise); ratio = e3nn / equiv "
        "(higher is better for equiv); fwd+bwd = "
        "forward + first-order backward; dbl = double backward (gradient of an input gradient). "
        "GFLOP/s: each implementation's own forward arithmetic (equiv: shared contraction + "
        "channel products; e3nn: dense per-path contraction) over its forward time.",
        "",
    ]
    lines += targets(results) + [""]
    for parity, title in (("y", "CG channelwise `uvu`, parities (-1)^l (the MACE/NequIP convolution)"),
                          ("e", "CG channelwise `uvu`, SO(3), all triangle paths (odd ones too)")):
        rows = [r for r in results["cg"] if r["parity"] == parity]
        if not rows:
            continue
        lines += [f"## {title}", "",
                  "| C | batch | L | paths | e3nn fwd | equiv fwd | ratio fwd | ratio fwd+bwd | ratio dbl | equiv GFLOP/s (% peak) | e3nn GFLOP/s | max abs diff |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            fb_e = _ms(r, "e3nn_fwd") + _ms(r, "e3nn_bwd")
            fb_q = _ms(r, "equiv_fwd") + _ms(r, "equiv_bwd")
            gq = r["equiv_flops_fwd"] / (_ms(r, "equiv_fwd") / 1e3) / 1e9
            ge = r["e3nn_flops_fwd"] / (_ms(r, "e3nn_fwd") / 1e3) / 1e9
            lines.append(
                f"| {r['C']} | {r['B']} | {r['L']} | {r['paths']} | {_fmt(_ms(r, 'e3nn_fwd'))} | {_fmt(_ms(r, 'equiv_fwd'))} | "
                f"{_fmt(_ratio(r, 'e3nn_fwd', 'equiv_fwd'), '.2f')} | {_fmt(fb_e / fb_q, '.2f')} | "
                f"{_fmt(_ratio(r, 'e3nn_dbl', 'equiv_dbl'), '.2f')} | {_fmt(gq)} ({_fmt(100 * gq / peak, '.0f')}%) | {_fmt(ge)} | "
                f"{_fmt(r.get('max_abs_diff_vs_e3nn'), '.1e')}{' (e3nn skipped)' if 'e3nn_skipped' in r else ''} |"
            )
        lines.append("")
    if results["cg_exponents"]:
        lines += ["Fitted exponent of forward time vs L (L >= 2): " + ", ".join(
            f"{k}: {v:.2f}" for k, v in results["cg_exponents"].items()), ""]
    if results["gaunt"]:
        lines += ["## Gaunt product (grid / Fourier / matrix) vs e3nn on the same even paths with Gaunt path weights", "",
                  "Ratios are e3nn / grid; the matrix columns are the same product by the per-sample matrix route "
                  "(`method=\"matrix\"`), e3nn / matrix.", "",
                  "| C | batch | L | paths | grid points | e3nn fwd | grid fwd | Fourier fwd | matrix fwd | ratio fwd | ratio fwd+bwd | ratio dbl | matrix: ratio fwd+bwd | matrix: ratio dbl | grid GFLOP/s | max abs diff (e3nn, Fourier, matrix) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in results["gaunt"]:
            fb_e = _ms(r, "e3nn_fwd") + _ms(r, "e3nn_bwd")
            fb_g = _ms(r, "grid_fwd") + _ms(r, "grid_bwd")
            fb_m = _ms(r, "matrix_fwd") + _ms(r, "matrix_bwd")
            gg = r["grid_flops_fwd"] / (_ms(r, "grid_fwd") / 1e3) / 1e9
            lines.append(
                f"| {r['C']} | {r['B']} | {r['L']} | {r['paths']} | {r['grid_points']} | {_fmt(_ms(r, 'e3nn_fwd'))} | "
                f"{_fmt(_ms(r, 'grid_fwd'))} | {_fmt(_ms(r, 'fourier_fwd'))} | {_fmt(_ms(r, 'matrix_fwd'))} | "
                f"{_fmt(_ratio(r, 'e3nn_fwd', 'grid_fwd'), '.1f')} | "
                f"{_fmt(fb_e / fb_g, '.1f')} | {_fmt(_ratio(r, 'e3nn_dbl', 'grid_dbl'), '.1f')} | "
                f"{_fmt(fb_e / fb_m, '.1f')} | {_fmt(_ratio(r, 'e3nn_dbl', 'matrix_dbl'), '.1f')} | {_fmt(gg)} | "
                f"{_fmt(r.get('max_abs_diff_vs_e3nn'), '.1e')}, {_fmt(r.get('max_abs_diff_fourier_vs_grid'), '.1e')}, "
                f"{_fmt(r.get('max_abs_diff_matrix_vs_grid'), '.1e')} |"
            )
        lines += ["", "Fitted exponents of time vs L: " + ", ".join(
            f"{k}: {v:.2f}" for k, v in results["gaunt_exponents"].items()), ""]
    mp = results.get("message_passing")
    if mp:
        lines += [f"## Fused message passing, {mp['edges']} edges ({MP_NODE} x {MP_EDGE}, forward + backward)", "",
                  "| implementation | nodes | peak memory added (MB) | fwd+bwd (ms) |", "|---|---|---|---|"]
        for r in mp["rows"]:
            if "error" in r:
                lines.append(f"| ? | | error: {r['error']} | |")
                continue
            lines.append(f"| {r['impl']} | {r['nodes']} | {r['peak_rss_delta_MB']:.0f} | {_fmt(1e3 * r['fwd_bwd_s'] if r['fwd_bwd_s'] else None)} |")
        lines.append("")
        fused = next((r for r in mp["rows"] if r.get("impl") == "fused"), None)
        if fused:
            for r in mp["rows"]:
                if r.get("impl", "").startswith("unfused") and fused.get("peak_rss_delta_MB"):
                    lines.append(f"- {r['impl']} / fused peak memory: {r['peak_rss_delta_MB'] / fused['peak_rss_delta_MB']:.1f}x")
        lines.append("")
    return "\n".join(lines)


def targets(results: dict) -> list[str]:
    """The issue's targets, checked against this run."""
    out = ["## Targets (issue 3) against this run", ""]
    cg = [r for r in results["cg"] if r["parity"] == "y" and r["L"] >= 2 and "e3nn_skipped" not in r]
    if cg:
        fb = [((_ms(r, "e3nn_fwd") + _ms(r, "e3nn_bwd")) / (_ms(r, "equiv_fwd") + _ms(r, "equiv_bwd")), r) for r in cg]
        worst = min(fb, key=lambda t: t[0])
        out.append(f"- CG channelwise, forward+backward >= 2x e3nn for every L >= 2: "
                   f"{'MET' if worst[0] >= 2 else 'MISSED'} (worst {worst[0]:.2f}x at C={worst[1]['C']}, "
                   f"batch {worst[1]['B']}, L={worst[1]['L']}; {sum(v >= 2 for v, _ in fb)}/{len(fb)} cases >= 2x)")
    for L, goal in ((6, 20), (8, 50)):
        rows = [r for r in results["gaunt"] if r["L"] == L and "e3nn_fwd" in r["times"]]
        for r in rows:
            f = _ratio(r, "e3nn_fwd", "grid_fwd")
            fb = (_ms(r, "e3nn_fwd") + _ms(r, "e3nn_bwd")) / (_ms(r, "grid_fwd") + _ms(r, "grid_bwd"))
            out.append(f"- Gaunt grid >= {goal}x e3nn at L={L} (C={r['C']}, batch {r['B']}): forward {f:.1f}x, "
                       f"forward+backward {fb:.1f}x ({'MET' if max(f, fb) >= goal else 'MISSED'})")
            if "matrix_fwd" in r["times"]:
                f = _ratio(r, "e3nn_fwd", "matrix_fwd")
                fb = (_ms(r, "e3nn_fwd") + _ms(r, "e3nn_bwd")) / (_ms(r, "matrix_fwd") + _ms(r, "matrix_bwd"))
                out.append(f"  - same product, matrix route (not the grid algorithm): forward {f:.1f}x, "
                           f"forward+backward {fb:.1f}x ({'>=' if max(f, fb) >= goal else '<'} {goal}x)")
    for k, v in results.get("gaunt_exponents", {}).items():
        if k.startswith("grid"):
            out.append(f"- Gaunt grid time ~ L^{v:.2f} from L=4 to 12 ({k}): {'MET' if v <= 3.5 else 'MISSED'} (target <= 3.5)")
    mp = results.get("message_passing")
    if mp:
        fused = next((r for r in mp["rows"] if r.get("impl") == "fused" and "peak_rss_delta_MB" in r), None)
        for r in mp["rows"]:
            if fused and r.get("impl", "").startswith("unfused") and "peak_rss_delta_MB" in r:
                ratio = r["peak_rss_delta_MB"] / max(fused["peak_rss_delta_MB"], 1e-9)
                out.append(f"- Fused message passing peak memory >= 2x lower than {r['impl']} at {mp['edges']} edges: "
                           f"{ratio:.1f}x ({'MET' if ratio >= 2 else 'MISSED'})")
    out += repeated_targets(results)
    return out


def repeated_targets(results: dict, path=None) -> list[str]:
    """Target lines from the repeated single cases (``tensor_products_cases.json``), if measured with
    the same allocator setting (not for ``--quick`` runs): one run's ratio moves by about 10 % on a
    shared machine, so the median over rounds is the firmer check."""
    path = Path(path or common.RESULTS / "tensor_products_cases.json")
    if not path.exists() or "--quick" in results.get("command", ""):
        return []
    latest = latest_cases(json.loads(path.read_text()), results.get("malloc", "default"))
    if not latest:
        return []
    out = ["- Repeated cases (`tensor_products_cases.md`, the newest run of each), forward+backward ratio median "
           "(min-max) over rounds:"]
    for (section, C, B, L), (k, run, v) in sorted(latest.items()):
        goal = 2 if section.startswith("cg") else {6: 20, 8: 50}.get(L)
        if section == "gaunt_matrix":  # the same product by another algorithm than the target names
            section = "gaunt (matrix route)"
        verdict = "" if goal is None else f" ({'MET' if v[len(v) // 2] >= goal else 'MISSED'}, target {goal}x)"
        out.append(f"  - {section} C={C} batch {B} L={L}: {v[len(v) // 2]:.3f}x ({v[0]:.2f}-{v[-1]:.2f}, "
                   f"{len(v)} rounds, run {k}, code {run.get('commit') or '?'}){verdict}")
    return out


def figure(results: dict):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for C, B in sorted({(r["C"], r["B"]) for r in results["cg"] if r["parity"] == "y"}):
        rows = [r for r in results["cg"] if r["parity"] == "y" and r["C"] == C and r["B"] == B]
        Ls = [r["L"] for r in rows]
        ax.plot(Ls, [_ms(r, "equiv_fwd") + _ms(r, "equiv_bwd") for r in rows], "o-", label=f"equiv C={C} B={B}")
        ax.plot(Ls, [_ms(r, "e3nn_fwd") + _ms(r, "e3nn_bwd") for r in rows], "x--", label=f"e3nn C={C} B={B}")
    ax.set(yscale="log", xlabel="L", ylabel="forward + backward (ms)", title="CG channelwise uvu")
    ax.legend(fontsize=7)
    ax = axes[1]
    for C, B in sorted({(r["C"], r["B"]) for r in results["gaunt"]}):
        rows = [r for r in results["gaunt"] if r["C"] == C and r["B"] == B]
        ax.plot([r["L"] for r in rows], [_ms(r, "grid_fwd") for r in rows], "o-", label=f"Gaunt grid C={C} B={B}")
        ax.plot([r["L"] for r in rows], [_ms(r, "fourier_fwd") for r in rows], "s:", label=f"Gaunt Fourier C={C} B={B}")
        if any("matrix_fwd" in r["times"] for r in rows):
            ax.plot([r["L"] for r in rows], [_ms(r, "matrix_fwd") for r in rows], "d-.", label=f"Gaunt matrix C={C} B={B}")
        ax.plot([r["L"] for r in rows], [_ms(r, "e3nn_fwd") for r in rows], "x--", label=f"e3nn (same paths) C={C} B={B}")
    ax.set(xscale="log", yscale="log", xlabel="L", ylabel="forward (ms)", title="Gaunt product")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _exponents(rows, key_fmt, time_key, lmin, lmax):
    out = {}
    groups = {}
    for r in rows:
        groups.setdefault(key_fmt(r), []).append(r)
    for k, rs in groups.items():
        pts = [(r["L"], _ms(r, time_key)) for r in rs if lmin <= r["L"] <= lmax and not math.isnan(_ms(r, time_key))]
        if len(pts) >= 3:
            out[k] = common.fit_exponent([p[0] for p in pts], [p[1] for p in pts])
    return out


def _merge_previous(name: str, results: dict, skipped) -> dict:
    """Take the skipped sections from the existing ``results/<name>.json`` (``--update``)."""
    path = common.RESULTS / f"{name}.json"
    if not path.exists():
        return results
    old = json.loads(path.read_text())
    keys = {"cg": ["cg", "cg_exponents"], "cg_all": [], "gaunt": ["gaunt", "gaunt_exponents"], "mp": ["message_passing"]}
    measured = [sec for sec in keys if sec not in skipped]
    if "cg" in skipped and "cg_all" in skipped:
        for k in ("cg", "cg_exponents"):
            results[k] = old.get(k, results.get(k))
    for sec in skipped:
        for k in keys[sec]:
            if k in old:
                results[k] = old[k]
    earlier = old.get("sections_updated", [])
    earlier = [earlier] if isinstance(earlier, dict) else earlier
    results["sections_updated"] = earlier + [{"sections": measured, "command": results["command"], "wall_s": results["wall_s"],
                                              "matmul_peak_gflops": results.get("matmul_peak_gflops")}]
    for k in ("command", "load_start", "wall_s", "machine", "matmul_peak_gflops"):
        results[k] = old.get(k, results[k])
    return results


_CASE_SECTIONS = ("cg", "cg_all", "gaunt", "gaunt_matrix")


def parse_case(text: str) -> tuple[str, int, int, int]:
    """``"section:C:batch:L"`` -> ``(section, C, batch, L)``, e.g. ``"cg:64:1024:2"``."""
    parts = text.split(":")
    if len(parts) != 4 or parts[0] not in _CASE_SECTIONS or not all(p.isdigit() and int(p) > 0 for p in parts[1:]):
        raise argparse.ArgumentTypeError(
            f"--case {text!r}: expected SECTION:C:BATCH:L with SECTION in {_CASE_SECTIONS} and positive integers, "
            "e.g. cg:64:1024:2")
    return parts[0], int(parts[1]), int(parts[2]), int(parts[3])


def _fwd_bwd_ratio(row, ref: str, ours: str) -> float:
    t = row["times"]
    try:
        return (t[f"{ref}_fwd"]["median_s"] + t[f"{ref}_bwd"]["median_s"]) / (
            t[f"{ours}_fwd"]["median_s"] + t[f"{ours}_bwd"]["median_s"])
    except KeyError:
        return float("nan")


def run_cases(o3, cases, rounds: int, repeat: int) -> dict:
    """Measure each case ``rounds`` times (fresh modules and inputs each round)."""
    rows = []
    for section, C, B, L in cases:
        for r in range(rounds):
            if section in ("gaunt", "gaunt_matrix"):
                matrix = section == "gaunt_matrix"
                row = bench_gaunt(o3, C, B, L, repeat, {}, fourier=False, matrix=matrix)
                ours = "matrix" if matrix else "grid"
            else:
                row, ours = bench_cg(o3, C, B, L, "y" if section == "cg" else "e", repeat, {}), "equiv"
            row.update(section=section, round=r, ours=ours, ratio_fwd=_ratio(row, "e3nn_fwd", f"{ours}_fwd"),
                       ratio_fwd_bwd=_fwd_bwd_ratio(row, "e3nn", ours))
            rows.append(row)
            if ours == "matrix":  # the grid was timed in the same round, interleaved: a grid case too
                rows.append(_grid_row(row))
            print(f"{section} C={C} B={B} L={L} round {r + 1}/{rounds}: {ours} fwd {_ms(row, f'{ours}_fwd'):.1f} ms, "
                  f"e3nn/{ours} fwd {row['ratio_fwd']:.2f}, fwd+bwd {row['ratio_fwd_bwd']:.2f}", flush=True)
    return {"rows": rows}


def _grid_row(row: dict) -> dict:
    """The grid's result in a ``gaunt_matrix`` round (measured interleaved with it), as a ``gaunt`` row."""
    return dict(row, section="gaunt", ours="grid", ratio_fwd=_ratio(row, "e3nn_fwd", "grid_fwd"),
                ratio_fwd_bwd=_fwd_bwd_ratio(row, "e3nn", "grid"), measured_with="gaunt_matrix")


def _git_commit() -> str | None:
    """The checkout's short commit hash (which code a case run measured), if git is there."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def case_runs(results: dict) -> list[dict]:
    """The runs of a cases file, oldest first (a file from before runs were kept is one run)."""
    return list(results.get("runs") or ([results] if results.get("rows") else []))


def latest_cases(results: dict, malloc: str | None = None) -> dict:
    """``(section, C, B, L) -> (run number from 1, run, [fwd+bwd ratios])`` from the newest run that
    measured each case (only runs with allocator setting ``malloc``, if given)."""
    out = {}
    for k, run in enumerate(case_runs(results), 1):
        if malloc is not None and run.get("malloc", "default") != malloc:
            continue
        groups: dict = {}
        for r in run["rows"]:
            groups.setdefault((r["section"], r["C"], r["B"], r["L"]), []).append(r["ratio_fwd_bwd"])
        for key, v in groups.items():
            out[key] = (k, run, sorted(v))
    return out


def cases_markdown(results: dict) -> str:
    runs = case_runs(results)
    lines = ["# Tensor products: repeated single cases (equiv vs e3nn)", "",
             "Each round builds fresh modules and inputs and times them interleaved with e3nn (medians of "
             "repeats, process CPU time with one thread); the spread across rounds is how far one run's ratio "
             "can move on this shared machine. Runs are kept: a later run of a case replaces it in the summary.",
             "", "| section | C | batch | L | fwd+bwd ratio min / median / max | rounds | run (code) |",
             "|---|---|---|---|---|---|---|"]
    for (sec, C, B, L), (k, run, v) in sorted(latest_cases(results).items()):
        lines.append(f"| {sec} | {C} | {B} | {L} | {v[0]:.2f} / {v[len(v) // 2]:.2f} / {v[-1]:.2f} | {len(v)} | "
                     f"{k} ({run.get('commit') or '?'}) |")
    for k, run in enumerate(runs, 1):
        m = run["machine"]
        lines += ["", f"## Run {k}", "",
                  f"Command: `{run['command']}` ({run['wall_s'] / 60:.1f} min), code {run.get('commit') or '?'}"
                  + (f" ({run['note']})" if run.get("note") else "") + f". CPU: {m['cpu']}, {m['torch_threads']} "
                  f"thread(s), torch {m['torch']}, e3nn {m.get('e3nn', '?')}, malloc {run.get('malloc', 'default')}, "
                  f"{run['repeat']} repeats per timing, load average at start/end {run['load_start']} / "
                  f"{m.get('load_average_1_5_15min')}.", "",
                  "| section | C | batch | L | round | ours fwd (ms) | e3nn fwd (ms) | ratio fwd | ratio fwd+bwd | grid in the same round: ratio fwd+bwd |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in run["rows"]:
            ours = r["ours"]
            grid = _fwd_bwd_ratio(r, "e3nn", "grid") if ours == "matrix" else None
            lines.append(f"| {r['section']} | {r['C']} | {r['B']} | {r['L']} | {r['round'] + 1} | "
                         f"{_fmt(_ms(r, f'{ours}_fwd'))} | {_fmt(_ms(r, 'e3nn_fwd'))} | {_fmt(r['ratio_fwd'], '.2f')} | "
                         f"{_fmt(r['ratio_fwd_bwd'], '.2f')} | {_fmt(grid, '.2f')} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--mp-worker":
        common.setup(1)
        print(json.dumps(mp_worker(sys.argv[2], int(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid (C=16, batch 1024, fewer L), a few minutes")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the 2 cores are shared; with 1 thread times are process CPU time)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["cg", "cg_all", "gaunt", "mp"], help="sections to skip")
    common.add_malloc_argument(parser)
    parser.add_argument("--update", action="store_true",
                        help="keep the skipped sections of the existing results file (re-measure some sections only)")
    parser.add_argument("--case", type=parse_case, action="append", default=[], metavar="SECTION:C:BATCH:L",
                        help="measure only this case (repeatable), --rounds times; writes tensor_products_cases.*")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per --case (default 3)")
    parser.add_argument("--table", action="store_true",
                        help="only rewrite the Markdown and figure from the stored JSON (with --quick / --malloc: that file's)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.table:
        name = "tensor_products" + ("_quick" if args.quick else "") + ("_malloc_tuned" if args.malloc == "tuned" else "")
        results = json.loads((common.RESULTS / f"{name}.json").read_text())
        paths = common.write_results(name, results, markdown(results), figure(results))
        print("wrote", ", ".join(str(p) for p in paths))
        return 0
    common.setup(args.threads, args.malloc)
    from e3nn import o3

    if args.case:
        t0 = time.perf_counter()
        run = {"command": " ".join(["benchmarks/tensor_products.py"] + sys.argv[1:]), "malloc": args.malloc,
               "commit": _git_commit(), "repeat": 5, "load_start": common.machine_info().get("load_average_1_5_15min"),
               **run_cases(o3, args.case, args.rounds, 5)}
        run["machine"] = common.machine_info()
        run["wall_s"] = time.perf_counter() - t0
        path = common.RESULTS / "tensor_products_cases.json"
        results = {"runs": case_runs(json.loads(path.read_text()) if path.exists() else {}) + [run]}
        paths = common.write_results("tensor_products_cases", results, cases_markdown(results))
        print("wrote", ", ".join(str(p) for p in paths))
        return 0

    t_start = time.perf_counter()
    results = {"command": " ".join(["benchmarks/tensor_products.py"] + sys.argv[1:]), "malloc": args.malloc,
               "load_start": common.machine_info().get("load_average_1_5_15min"),
               "matmul_peak_gflops": common.matmul_peak_gflops(), "cg": [], "gaunt": []}
    if args.quick:
        cs, bs, ls, gls, repeat, edges = [16], [1024], [1, 2, 4, 6], [2, 4, 6, 8, 10, 12], 3, 20000
    else:
        cs, bs, ls, gls, repeat, edges = [16, 64], [1024, 10000], list(range(1, 9)), list(range(1, 13)), 5, 100000
    history = {}
    if "cg" not in args.skip:
        for C in cs:
            for B in bs:
                for L in ls:
                    row = bench_cg(o3, C, B, L, "y", repeat, history)
                    results["cg"].append(row)
                    print(f"cg C={C} B={B} L={L}: equiv fwd {_ms(row, 'equiv_fwd'):.1f} ms, e3nn/equiv fwd "
                          f"{_ratio(row, 'e3nn_fwd', 'equiv_fwd'):.2f}, bwd {_ratio(row, 'e3nn_bwd', 'equiv_bwd'):.2f}, "
                          f"dbl {_ratio(row, 'e3nn_dbl', 'equiv_dbl'):.2f}", flush=True)
    if "cg_all" not in args.skip:
        for L in ls:
            row = bench_cg(o3, cs[0], bs[0], L, "e", repeat, history)
            results["cg"].append(row)
            print(f"cg SO(3) all paths C={cs[0]} B={bs[0]} L={L}: e3nn/equiv fwd {_ratio(row, 'e3nn_fwd', 'equiv_fwd'):.2f}, "
                  f"bwd {_ratio(row, 'e3nn_bwd', 'equiv_bwd'):.2f}", flush=True)
    results["cg_exponents"] = {
        **_exponents([r for r in results["cg"] if r["parity"] == "y"], lambda r: f"equiv C={r['C']} B={r['B']}", "equiv_fwd", 2, 8),
        **_exponents([r for r in results["cg"] if r["parity"] == "y"], lambda r: f"e3nn C={r['C']} B={r['B']}", "e3nn_fwd", 2, 8),
    }
    if "gaunt" not in args.skip:
        for C in cs:
            for L in gls:
                row = bench_gaunt(o3, C, bs[0], L, repeat, history, with_e3nn=L <= 10)
                results["gaunt"].append(row)
                print(f"gaunt C={C} B={bs[0]} L={L}: grid fwd {_ms(row, 'grid_fwd'):.1f} ms, e3nn/grid fwd "
                      f"{_ratio(row, 'e3nn_fwd', 'grid_fwd'):.1f}, bwd {_ratio(row, 'e3nn_bwd', 'grid_bwd'):.1f}", flush=True)
    results["gaunt_exponents"] = {
        **_exponents(results["gaunt"], lambda r: f"grid fwd C={r['C']} (L 4..12)", "grid_fwd", 4, 12),
        **_exponents(results["gaunt"], lambda r: f"grid bwd C={r['C']} (L 4..12)", "grid_bwd", 4, 12),
        **_exponents(results["gaunt"], lambda r: f"Fourier fwd C={r['C']} (L 4..12)", "fourier_fwd", 4, 12),
        **_exponents(results["gaunt"], lambda r: f"matrix fwd C={r['C']} (L 4..12)", "matrix_fwd", 4, 12),
        **_exponents(results["gaunt"], lambda r: f"e3nn fwd C={r['C']} (L 4..10)", "e3nn_fwd", 4, 10),
    }
    if "mp" not in args.skip:
        results["message_passing"] = bench_message_passing(edges)
        print("message passing:", json.dumps(results["message_passing"]["rows"]), flush=True)
    results["machine"] = common.machine_info()
    results["wall_s"] = time.perf_counter() - t_start
    name = "tensor_products" + ("_quick" if args.quick else "") + ("_malloc_tuned" if args.malloc == "tuned" else "")
    if args.update:
        results = _merge_previous(name, results, args.skip)
    paths = common.write_results(name, results, markdown(results), figure(results))
    print("wrote", ", ".join(str(p) for p in paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
