"""Tensor products on a GPU: equiv vs e3nn side by side, same process, same inputs.

Channelwise ``uvu`` product ``C×(0..L) ⊗ 1×(0..L) → C×(0..L)`` with per-sample weights (the NequIP/MACE
convolution), forward and forward+backward, timed with CUDA events after warm-up (construction
excluded); the Gaunt grid product on the same irreps; and the fused message-passing primitive against
gather → product → ``index_add`` (time and peak GPU memory from ``torch.cuda.max_memory_allocated``).

Run on a machine with CUDA (e3nn installed, any version)::

    python benchmarks/tp_gpu.py            # C=64, batch 10000, L=1..6; 100k edges for message passing
    python benchmarks/tp_gpu.py --quick

Writes ``benchmarks/results/tp_gpu.{json,md}`` with the device named. Without CUDA it exits with a message.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import torch  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def cuda_time(fn, warmup=3, repeat=10) -> float:
    """Median milliseconds of ``fn()`` measured with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return sorted(times)[len(times) // 2]


def peak_mb(fn) -> float:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def fwd_bwd(tp, *args):
    def run():
        out = tp(*args)
        out.square().sum().backward()
    return run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--channels", type=int, default=64)
    p.add_argument("--batch", type=int, default=10000)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("tp_gpu: no CUDA device; nothing to do", file=sys.stderr)
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from e3nn import __version__ as e3nn_version
    from e3nn import o3

    from equiv.so3 import Irreps
    from equiv.tp import ChannelwiseTensorProduct, GauntTensorProduct, message_passing

    dev = torch.device("cuda")
    # e3nn 0.5 changed the sign of some Clebsch-Gordan tensors (equiv.so3.convention_sign)
    convention = "e3nn-0.4" if e3nn_version.startswith(("0.3", "0.4")) else "e3nn-0.5"
    C, B = args.channels, args.batch
    Ls = [1, 2, 4] if args.quick else [1, 2, 3, 4, 5, 6]
    rows = []
    for L in Ls:
        irr = Irreps(" + ".join(f"{C}x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1)))
        sh = Irreps(" + ".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1)))
        ours = ChannelwiseTensorProduct(str(irr), str(sh), shared_weights=False, internal_weights=False,
                                        cg_convention=convention).to(dev)
        irr_out = ours.irreps_out
        ins = [tuple(i[:5]) for i in ours.instructions]
        ref = o3.TensorProduct(str(irr), str(sh), str(irr_out), ins, shared_weights=False,
                               internal_weights=False).to(dev)
        x = torch.randn(B, irr.dim, device=dev, requires_grad=True)
        y = torch.randn(B, sh.dim, device=dev)
        w = torch.randn(B, ours.weight_numel, device=dev, requires_grad=True)
        with torch.no_grad():
            got = ours(x[:64], y[:64], w[:64])
            diff = (got - ref(x[:64], y[:64], w[:64])).abs().max().item()
            cpu = copy.deepcopy(ours).to("cpu", torch.float64)
            diff_cpu = (got.double().cpu() - cpu(x[:64].double().cpu(), y[:64].double().cpu(), w[:64].double().cpu())).abs().max().item()
        row = dict(L=L, C=C, batch=B, max_abs_diff_vs_e3nn=diff, max_abs_diff_vs_cpu_float64=diff_cpu)
        with torch.no_grad():
            row["equiv_fwd_ms"] = cuda_time(lambda: ours(x, y, w))
            row["e3nn_fwd_ms"] = cuda_time(lambda: ref(x, y, w))
        row["equiv_fwdbwd_ms"] = cuda_time(fwd_bwd(ours, x, y, w))
        row["e3nn_fwdbwd_ms"] = cuda_time(fwd_bwd(ref, x, y, w))
        gaunt = GauntTensorProduct(str(irr), str(sh), str(irr), method="grid").to(dev)
        matrix = GauntTensorProduct(str(irr), str(sh), str(irr), method="matrix").to(dev)
        with torch.no_grad():
            row["gaunt_grid_fwd_ms"] = cuda_time(lambda: gaunt(x, y))
            row["gaunt_matrix_fwd_ms"] = cuda_time(lambda: matrix(x, y))
        row["speedup_fwd"] = row["e3nn_fwd_ms"] / row["equiv_fwd_ms"]
        row["speedup_fwdbwd"] = row["e3nn_fwdbwd_ms"] / row["equiv_fwdbwd_ms"]
        print(f"L={L}: equiv fwd {row['equiv_fwd_ms']:.2f} ms, e3nn {row['e3nn_fwd_ms']:.2f} ms "
              f"({row['speedup_fwd']:.2f}x); fwd+bwd {row['equiv_fwdbwd_ms']:.2f} vs {row['e3nn_fwdbwd_ms']:.2f} ms "
              f"({row['speedup_fwdbwd']:.2f}x); gaunt grid fwd {row['gaunt_grid_fwd_ms']:.2f} ms, "
              f"matrix {row['gaunt_matrix_fwd_ms']:.2f} ms; "
              f"max |diff| vs e3nn {diff:.1e}, vs equiv CPU float64 {diff_cpu:.1e}", flush=True)
        rows.append(row)
        del ours, ref, gaunt, matrix, x, y, w
        torch.cuda.empty_cache()

    # fused message passing vs gather -> product -> index_add, 100k edges
    L, N, E = 2, 10000, 20000 if args.quick else 100000
    irr = Irreps(f"{C}x0e + {C}x1o + {C}x2e")
    sh = Irreps("0e + 1o + 2e")
    tp = ChannelwiseTensorProduct(str(irr), str(sh), shared_weights=False, internal_weights=False).to(dev)
    h = torch.randn(N, irr.dim, device=dev, requires_grad=True)
    a = torch.randn(E, sh.dim, device=dev)
    w = torch.randn(E, tp.weight_numel, device=dev, requires_grad=True)
    ei = torch.randint(0, N, (2, E), device=dev)

    def fused():
        message_passing(tp, h, a, w, ei, N).square().sum().backward()

    def unfused():
        m = tp(h[ei[0]], a, w)
        torch.zeros(N, m.shape[1], device=dev, dtype=m.dtype).index_add(0, ei[1], m).square().sum().backward()

    mp = dict(nodes=N, edges=E, irreps=str(irr), fused_fwdbwd_ms=cuda_time(fused, 2, 5),
              unfused_fwdbwd_ms=cuda_time(unfused, 2, 5), fused_peak_mb=peak_mb(fused), unfused_peak_mb=peak_mb(unfused))
    mp["memory_ratio"] = mp["unfused_peak_mb"] / mp["fused_peak_mb"]
    print(f"message passing {E} edges: fused {mp['fused_fwdbwd_ms']:.1f} ms / {mp['fused_peak_mb']:.0f} MB, "
          f"unfused {mp['unfused_fwdbwd_ms']:.1f} ms / {mp['unfused_peak_mb']:.0f} MB "
          f"({mp['memory_ratio']:.2f}x less memory)", flush=True)

    info = dict(device=torch.cuda.get_device_name(), torch=torch.__version__, e3nn=e3nn_version,
                dtype="float32", quick=args.quick, cg_convention=convention)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tp_gpu.json").write_text(json.dumps(dict(info=info, channelwise=rows, message_passing=mp), indent=2))
    md = [f"# Tensor products on GPU: equiv vs e3nn {e3nn_version}", "",
          f"Device: {info['device']}, torch {info['torch']}, float32, CUDA-event medians after warm-up. "
          f"Command: `python benchmarks/tp_gpu.py{' --quick' if args.quick else ''}`. equiv built with "
          f"`cg_convention=\"{convention}\"` to match this e3nn's Clebsch-Gordan signs.", "",
          "| L | C | batch | equiv fwd (ms) | e3nn fwd (ms) | speed-up | equiv fwd+bwd (ms) | e3nn fwd+bwd (ms) | speed-up | Gaunt grid fwd (ms) | Gaunt matrix fwd (ms) | max abs diff vs e3nn | vs equiv CPU float64 |",
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['L']} | {r['C']} | {r['batch']} | {r['equiv_fwd_ms']:.2f} | {r['e3nn_fwd_ms']:.2f} | "
                  f"{r['speedup_fwd']:.2f}x | {r['equiv_fwdbwd_ms']:.2f} | {r['e3nn_fwdbwd_ms']:.2f} | "
                  f"{r['speedup_fwdbwd']:.2f}x | {r['gaunt_grid_fwd_ms']:.2f} | {r.get('gaunt_matrix_fwd_ms', float('nan')):.2f} | "
                  f"{r['max_abs_diff_vs_e3nn']:.1e} | "
                  f"{r['max_abs_diff_vs_cpu_float64']:.1e} |")
    md += ["", f"Fused message passing, {mp['edges']} edges, {mp['nodes']} nodes, {mp['irreps']} ⊗ 0e+1o+2e, "
           f"forward+backward: fused {mp['fused_fwdbwd_ms']:.1f} ms, peak {mp['fused_peak_mb']:.0f} MB; "
           f"unfused {mp['unfused_fwdbwd_ms']:.1f} ms, peak {mp['unfused_peak_mb']:.0f} MB "
           f"(**{mp['memory_ratio']:.2f}x** less peak memory)."]
    (RESULTS / "tp_gpu.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
