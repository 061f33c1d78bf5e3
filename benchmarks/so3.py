"""equiv.so3 against e3nn 0.4.4: agreement, largest degree checked, construction and run times.

Run: ``.venv/bin/python benchmarks/so3.py [--quick]``. Writes ``benchmarks/results/so3.json``,
``so3.md`` and ``so3.png``. Construction times are measured first, in this fresh process, with
empty caches. Speed ratios compare equiv and e3nn in the same process on the same inputs after
warm-up (CPU, one thread); on a shared machine only the ratios are meaningful.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import time
import warnings
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
warnings.filterwarnings("ignore")

import torch  # noqa: E402

import equiv.so3 as so3  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _triples(lmax):
    for l1, l2 in itertools.product(range(lmax + 1), repeat=2):
        for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1):
            yield l1, l2, l3


def construction_times() -> dict:
    out = {}
    t = time.perf_counter()
    n = sum(1 for _ in (so3.clebsch_gordan(*ls, dtype=torch.float64) for ls in _triples(8)))
    out["clebsch_gordan_all_l<=8_s"] = time.perf_counter() - t
    out["clebsch_gordan_all_l<=8_count"] = n
    t = time.perf_counter()
    for ls in _triples(8):
        so3.gaunt(*ls, dtype=torch.float64)
    out["gaunt_all_l<=8_s"] = time.perf_counter() - t
    t = time.perf_counter()
    so3.clebsch_gordan(20, 20, 40, dtype=torch.float64)
    out["clebsch_gordan_(20,20,40)_s"] = time.perf_counter() - t
    t = time.perf_counter()
    so3.wigner_D_from_matrix(40, torch.eye(3, dtype=torch.float64))
    out["wigner_D_first_call_l=40_s"] = time.perf_counter() - t
    t = time.perf_counter()
    so3.clebsch_gordan(5, 6, 7, dtype=torch.float32)
    out["clebsch_gordan_cached_call_s"] = time.perf_counter() - t
    return out


def agreement(o3) -> dict:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 3, dtype=torch.float64, generator=g)
    ref = o3.spherical_harmonics(list(range(12)), x, True, normalization="component")
    sh = {}
    for dtype in (torch.float32, torch.float64):
        ours = so3.spherical_harmonics(list(range(12)), x.to(dtype), normalization="component").double()
        per_l = []
        for l in range(12):
            s = slice(l * l, (l + 1) ** 2)
            per_l.append((ours[:, s] - ref[:, s]).abs().max().item() / ref[:, s].abs().max().item())
        sh[str(dtype).replace("torch.", "")] = {"max_rel_error_over_l<=11": max(per_l), "per_l": per_l}
    abc = o3.rand_angles(200, dtype=torch.float64)
    d_err = max((so3.wigner_D(l, *abc) - o3.wigner_D(l, *abc)).abs().max().item() for l in range(12))
    cg_err = max(
        (so3.clebsch_gordan(*ls, dtype=torch.float64) - o3.wigner_3j(*ls, dtype=torch.float64)).abs().max().item()
        for ls in _triples(11)
    )
    return {
        "spherical_harmonics_l<=11": sh,
        "wigner_D_max_abs_error_l<=11": d_err,
        "clebsch_gordan_vs_wigner_3j_max_abs_error_all_triples_l<=11": cg_err,
        "clebsch_gordan_triples_compared": sum(1 for _ in _triples(11)),
    }


def high_degree() -> dict:
    out = {}
    grid = so3.sphere_grid(80, dtype=torch.float64)
    Y = so3.spherical_harmonics(list(range(41)), grid.points)
    gram = (Y * grid.weights[:, None]).T @ Y
    out["sh_orthonormality_error_all_l<=40"] = (gram - torch.eye(gram.shape[0], dtype=torch.float64)).abs().max().item()
    grid = so3.sphere_grid(200, dtype=torch.float64)
    Y = so3.spherical_harmonics(100, grid.points)
    gram = (Y * grid.weights[:, None]).T @ Y
    out["sh_orthonormality_error_l=100"] = (gram - torch.eye(201, dtype=torch.float64)).abs().max().item()
    R = so3.random_rotation(16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.randn(16, 8, 3, dtype=torch.float64)
    eq = {}
    for l in (20, 40, 60):
        D = so3.wigner_D_from_matrix(l, R)
        eq[str(l)] = (so3.spherical_harmonics(l, x @ R.transpose(-1, -2)) - so3.spherical_harmonics(l, x) @ D.transpose(-1, -2)).abs().max().item()
    out["sh_equivariance_error_Y(xR^T)-Y(x)D^T"] = eq
    C = so3.clebsch_gordan(20, 20, 40, dtype=torch.float64)
    D1, D3 = so3.wigner_D_from_matrix(20, R[:2]), so3.wigner_D_from_matrix(40, R[:2])
    out["cg_invariance_error_(20,20,40)"] = (torch.einsum("ijk,zia,zjb,zkc->zabc", C, D1, D1, D3) - C).abs().max().item()
    G = so3.gaunt(10, 15, 21, dtype=torch.float64)
    grid = so3.sphere_grid(46, dtype=torch.float64)
    Ys = [so3.spherical_harmonics(l, grid.points) for l in (10, 15, 21)]
    out["gaunt_vs_quadrature_error_(10,15,21)"] = (torch.einsum("n,na,nb,nc->abc", grid.weights, *Ys) - G).abs().max().item()
    return out


def _time(fn, repeat):
    fn()
    fn()
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def speed(o3, quick: bool) -> dict:
    torch.set_num_threads(1)
    repeat = 5 if quick else 20
    n = 20000
    x = torch.randn(n, 3, requires_grad=True)
    rows = []
    for lmax in (1, 2, 3, 4, 6, 8, 11):
        ls = list(range(lmax + 1))
        t_ours = _time(lambda: so3.spherical_harmonics(ls, x), repeat)
        t_ref = _time(lambda: o3.spherical_harmonics(ls, x, True), repeat)
        tb_ours = _time(lambda: so3.spherical_harmonics(ls, x).sum().backward(), repeat)
        tb_ref = _time(lambda: o3.spherical_harmonics(ls, x, True).sum().backward(), repeat)
        rows.append({"what": f"spherical_harmonics lmax={lmax}, {n} vectors", "equiv_ms": 1e3 * t_ours, "e3nn_ms": 1e3 * t_ref,
                     "equiv_fwd_bwd_ms": 1e3 * tb_ours, "e3nn_fwd_bwd_ms": 1e3 * tb_ref})
    R = so3.random_rotation(10000)
    for l in (1, 2, 4, 8):
        t_ours = _time(lambda: so3.wigner_D_from_matrix(l, R), repeat)
        t_ref = _time(lambda: o3.Irrep(l, 1).D_from_matrix(R), repeat)
        rows.append({"what": f"wigner_D_from_matrix l={l}, 10000 rotations", "equiv_ms": 1e3 * t_ours, "e3nn_ms": 1e3 * t_ref})
    for lmax, res, batch in ((4, None, 4096), (8, None, 1024), (8, (100, 101), 256), (16, None, 256), (24, None, 64)):
        to, to_ref = so3.ToS2Grid(lmax, res), o3.ToS2Grid(lmax, res)
        back, back_ref = so3.FromS2Grid((to.res_beta, to.res_alpha), lmax), o3.FromS2Grid((to.res_beta, to.res_alpha), lmax)
        c, f = torch.randn(batch, (lmax + 1) ** 2), torch.randn(batch, to.res_beta, to.res_alpha)
        grid = f"lmax={lmax}, {to.res_beta}x{to.res_alpha} grid, {batch} signals"
        rows.append({"what": f"ToS2Grid {grid}", "equiv_ms": 1e3 * _time(lambda: to(c), repeat),
                     "e3nn_ms": 1e3 * _time(lambda: to_ref(c), repeat)})
        rows.append({"what": f"FromS2Grid {grid}", "equiv_ms": 1e3 * _time(lambda: back(f), repeat),
                     "e3nn_ms": 1e3 * _time(lambda: back_ref(f), repeat)})
    return {"threads": 1, "rows": rows}


def write(results: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "so3.json").write_text(json.dumps(results, indent=2))
    a, h, c = results["agreement_with_e3nn"], results["high_degree"], results["construction"]
    lines = [
        "# equiv.so3 vs e3nn 0.4.4",
        "",
        f"Machine: {results['machine']}. Command: `.venv/bin/python benchmarks/so3.py`.",
        "",
        "## Agreement with e3nn (e3nn stops at l = 11)",
        "",
        "| quantity | max error |",
        "|---|---|",
        f"| spherical harmonics, l <= 11, float64 (relative, per l) | {a['spherical_harmonics_l<=11']['float64']['max_rel_error_over_l<=11']:.1e} |",
        f"| spherical harmonics, l <= 11, float32 (relative, per l) | {a['spherical_harmonics_l<=11']['float32']['max_rel_error_over_l<=11']:.1e} |",
        f"| Wigner D, l <= 11, float64 (absolute) | {a['wigner_D_max_abs_error_l<=11']:.1e} |",
        f"| Clebsch–Gordan vs `wigner_3j`, all {a['clebsch_gordan_triples_compared']} ordered triples l <= 11 (absolute, same signs) | {a['clebsch_gordan_vs_wigner_3j_max_abs_error_all_triples_l<=11']:.1e} |",
        "",
        "## Beyond e3nn (float64)",
        "",
        "| check | error |",
        "|---|---|",
        f"| SH orthonormality on exact grid, all l <= 40 | {h['sh_orthonormality_error_all_l<=40']:.1e} |",
        f"| SH orthonormality on exact grid, l = 100 | {h['sh_orthonormality_error_l=100']:.1e} |",
    ]
    for l, e in h["sh_equivariance_error_Y(xR^T)-Y(x)D^T"].items():
        lines.append(f"| Y(x R^T) - Y(x) D(R)^T, l = {l} | {e:.1e} |")
    lines += [
        f"| CG invariance, (20, 20, 40) | {h['cg_invariance_error_(20,20,40)']:.1e} |",
        f"| Gaunt vs quadrature, (10, 15, 21) | {h['gaunt_vs_quadrature_error_(10,15,21)']:.1e} |",
        "",
        "## Construction (fresh process, empty caches)",
        "",
        "| what | seconds |",
        "|---|---|",
        f"| all {c['clebsch_gordan_all_l<=8_count']} Clebsch–Gordan tensors with l <= 8 | {c['clebsch_gordan_all_l<=8_s']:.3f} |",
        f"| all Gaunt tensors with l <= 8 (after CG) | {c['gaunt_all_l<=8_s']:.3f} |",
        f"| Clebsch–Gordan (20, 20, 40) | {c['clebsch_gordan_(20,20,40)_s']:.3f} |",
        f"| first Wigner D at l = 40 (builds J) | {c['wigner_D_first_call_l=40_s']:.3f} |",
        f"| cached Clebsch–Gordan call (cast to float32) | {c['clebsch_gordan_cached_call_s']:.6f} |",
        "",
        f"## Speed (CPU, {results['speed']['threads']} thread, best of repeats; ratio = e3nn / equiv, > 1 means equiv is faster)",
        "",
        "| what | equiv ms | e3nn ms | ratio | equiv fwd+bwd ms | e3nn fwd+bwd ms | ratio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["speed"]["rows"]:
        bwd = (
            f"{r['equiv_fwd_bwd_ms']:.2f} | {r['e3nn_fwd_bwd_ms']:.2f} | {r['e3nn_fwd_bwd_ms'] / r['equiv_fwd_bwd_ms']:.2f}"
            if "equiv_fwd_bwd_ms" in r
            else "- | - | -"
        )
        lines.append(f"| {r['what']} | {r['equiv_ms']:.2f} | {r['e3nn_ms']:.2f} | {r['e3nn_ms'] / r['equiv_ms']:.2f} | {bwd} |")
    (RESULTS / "so3.md").write_text("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = [r for r in results["speed"]["rows"] if r["what"].startswith("spherical")]
        lmax = [int(r["what"].split("lmax=")[1].split(",")[0]) for r in rows]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(lmax, [r["equiv_fwd_bwd_ms"] for r in rows], "o-", label="equiv fwd+bwd")
        ax.plot(lmax, [r["e3nn_fwd_bwd_ms"] for r in rows], "s--", label="e3nn fwd+bwd")
        ax.plot(lmax, [r["equiv_ms"] for r in rows], "o-", alpha=0.5, label="equiv fwd")
        ax.plot(lmax, [r["e3nn_ms"] for r in rows], "s--", alpha=0.5, label="e3nn fwd")
        ax.set_xlabel("lmax")
        ax.set_ylabel("ms (20000 vectors, 1 CPU thread)")
        ax.set_yscale("log")
        ax.legend()
        ax.set_title("spherical harmonics")
        fig.tight_layout()
        fig.savefig(RESULTS / "so3.png", dpi=120)
    except ImportError:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer timing repeats")
    args = parser.parse_args()
    construction = construction_times()  # first: empty caches
    import e3nn.o3 as o3

    results = {
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "construction": construction,
        "agreement_with_e3nn": agreement(o3),
        "high_degree": high_degree(),
        "speed": speed(o3, args.quick),
    }
    write(results)
    print((RESULTS / "so3.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
