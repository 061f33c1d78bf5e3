"""equiv.nn layers and TensorSquare against e3nn 0.4.4: the same function, timed side by side.

For each layer, equiv's and e3nn's modules compute the same output on the same inputs (checked: the
maximum difference is recorded; e3nn's Monte-Carlo activation constants are passed to equiv with
``normalize=False`` where they differ), then forward and forward + backward (gradient of a random
projection w.r.t. the input and the parameters) are timed interleaved, after warm-up, process CPU time
on one thread. Ratio = e3nn / equiv (higher is better for equiv).

Layers: ``Linear`` (MACE's hidden irreps; mixed multiplicities with biases), ``Gate`` (NequIP-style
hidden irreps), ``NormActivation``, ``BatchNorm`` (training mode),
``Norm``, ``FullyConnectedNet`` (a radial MLP), ``TensorSquare`` (no weights and with ``irreps_out``),
``SO3Activation`` (a tenth of the batch: its grid has 6912 points), ``Extract``.

Usage: ``.venv/bin/python benchmarks/nn_layers.py [--quick] [--threads 1]``. Results:
``benchmarks/results/nn_layers.{json,md}`` (``nn_layers_quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as common  # noqa: E402

common.setup()

import torch  # noqa: E402
from torch.nn.functional import silu  # noqa: E402

from equiv import nn as enn  # noqa: E402
from equiv.so3 import Irreps  # noqa: E402
from equiv.tp import TensorSquare  # noqa: E402


def _scaled(fn, c):
    def f(x):
        return fn(x) * c
    return f


def _cases(e3nn_nn, o3, normalize2mom, n):
    """(name, equiv module, e3nn module, input irreps, parameters to copy) per layer."""
    c_silu, c_sig = normalize2mom(silu).cst, normalize2mom(torch.sigmoid).cst
    hidden = "64x0e + 32x1o + 32x1e + 16x2e + 16x2o"
    scalars, gated = "64x0e", "32x1o + 32x1e + 16x2e + 16x2o"
    gate_e = enn.Gate(scalars, [_scaled(silu, c_silu)], "96x0e", [_scaled(torch.sigmoid, c_sig)], gated, normalize=False)
    gate_r = e3nn_nn.Gate(scalars, [silu], "96x0e", [torch.sigmoid], gated)
    yield "Gate", gate_e, gate_r, gate_e.irreps_in
    yield "NormActivation", enn.NormActivation(hidden, torch.sigmoid), e3nn_nn.NormActivation(o3.Irreps(hidden), torch.sigmoid), Irreps(hidden)
    yield "BatchNorm (training)", enn.BatchNorm(hidden), e3nn_nn.BatchNorm(hidden), Irreps(hidden)
    yield "Norm", enn.Norm(hidden), o3.Norm(hidden), Irreps(hidden)
    fc_r = e3nn_nn.FullyConnectedNet([8, 64, 64, 128], silu)
    fc_e = enn.FullyConnectedNet([8, 64, 64, 128], _scaled(silu, c_silu), normalize=False)
    fc_e.load_state_dict(fc_r.state_dict())
    yield "FullyConnectedNet 8-64-64-128", fc_e, fc_r, Irreps("8x0e")
    small = "16x0e + 8x1o + 4x2e"
    yield "TensorSquare (no weights)", TensorSquare(small), o3.TensorSquare(small), Irreps(small)
    sq_r = o3.TensorSquare(small, irreps_out=small)
    sq_e = TensorSquare(small, irreps_out=small)
    with torch.no_grad():
        sq_e.weight.copy_(sq_r.weight)
    yield "TensorSquare (weights)", sq_e, sq_r, Irreps(small)
    so3_e = enn.SO3Activation(2, 2, _scaled(silu, c_silu), 6, normalize=False)
    so3_r = e3nn_nn.SO3Activation(2, 2, silu, 6)
    yield "SO3Activation (l <= 2, resolution 6)", so3_e, so3_r, so3_e.irreps_in, max(n // 10, 1)
    for name, i_in, i_out, biases in (("Linear (MACE hidden)", "64x0e + 64x1o + 64x2e", "64x0e + 64x1o + 64x2e", False),
                                      ("Linear (mixed, biases)", "32x0e + 16x1o + 8x2e", "16x0e + 32x1o + 4x2e", True)):
        lin_r = o3.Linear(i_in, i_out, biases=biases)
        lin_e = enn.Linear(i_in, i_out, biases=biases)
        with torch.no_grad():
            lin_e.weight.copy_(lin_r.weight)
            if biases:
                lin_e.bias.copy_(lin_r.bias)
        yield name, lin_e, lin_r, Irreps(i_in)
    ext = "32x0e + 16x1o + 8x2e + 16x1o"
    yield "Extract", enn.Extract(ext, ["16x1o + 16x1o", "32x0e"], [(1, 3), (0,)]), \
        e3nn_nn.Extract(ext, ["16x1o + 16x1o", "32x0e"], [(1, 3), (0,)]), Irreps(ext)


def _cat(out):
    """One tensor from a layer's output (Extract returns a tuple)."""
    return torch.cat(out, -1) if isinstance(out, tuple) else out


def _fwd_bwd(module, x):
    params = [p for p in module.parameters() if p.requires_grad]
    probe = torch.randn_like(_cat(module(x)))

    def fwd():
        with torch.no_grad():
            module(x)

    def fwd_bwd():
        torch.autograd.grad((_cat(module(x)) * probe).sum(), [x] + params)

    return fwd, fwd_bwd


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="batch 2000 and a short time budget")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from e3nn import nn as e3nn_nn
    from e3nn import o3
    from e3nn.math import normalize2mom

    n = 2000 if args.quick else 10000
    start = time.time()
    load = os.getloadavg()[0]
    rows = []
    for name, ours, ref, irreps, *batch in _cases(e3nn_nn, o3, normalize2mom, n):
        batch = batch[0] if batch else n
        x = irreps.randn(batch, -1, requires_grad=True)
        torch.manual_seed(0)
        a = _cat(ours(x))
        torch.manual_seed(0)
        b = _cat(ref(x))
        fns = {}
        fns["equiv_fwd"], fns["equiv_fwd+bwd"] = _fwd_bwd(ours, x)
        fns["e3nn_fwd"], fns["e3nn_fwd+bwd"] = _fwd_bwd(ref, x)
        times = common.compare(fns, warmup=2, repeat=5, budget_s=6.0 if args.quick else 20.0)
        row = {"layer": name, "batch": batch, "irreps_in": str(irreps), "max_abs_diff": (a - b).abs().max().item(),
               "times": times}
        for k in ("fwd", "fwd+bwd"):
            row[f"ratio_{k}"] = times[f"e3nn_{k}"]["median_s"] / times[f"equiv_{k}"]["median_s"]
        rows.append(row)
        print(f"{name:32s} fwd {row['ratio_fwd']:.2f}x  fwd+bwd {row['ratio_fwd+bwd']:.2f}x e3nn  "
              f"(max diff {row['max_abs_diff']:.1e})", flush=True)
    res = {"benchmark": "nn_layers", "command": " ".join(["benchmarks/nn_layers.py"] + sys.argv[1:]),
           "minutes": (time.time() - start) / 60, "load_start": load, "machine": common.machine_info(), "rows": rows}
    m = res["machine"]
    lines = ["# equiv.nn layers and TensorSquare vs e3nn 0.4.4", "",
             f"Command: `{res['command']}` ({res['minutes']:.1f} min). CPU: {m['cpu']}, {args.threads} thread(s), torch "
             f"{m['torch']}, e3nn {m.get('e3nn', '—')}. Load average at start: {load:.1f} (the 2 cores are shared "
             "with other jobs: times are process CPU time, interleaved, medians).", "",
             "Same function in both libraries (max abs diff below; float32). fwd+bwd: gradient of a random "
             "projection w.r.t. the input and the parameters. Ratio = e3nn / equiv.", "",
             "| layer | batch | irreps in | equiv fwd (ms) | e3nn fwd (ms) | ratio fwd | equiv fwd+bwd (ms) | "
             "e3nn fwd+bwd (ms) | ratio fwd+bwd | max abs diff |", "|" + "---|" * 10]
    for r in rows:
        t = r["times"]
        lines.append(f"| {r['layer']} | {r['batch']} | {r['irreps_in']} | {t['equiv_fwd']['median_s'] * 1e3:.2f} | "
                     f"{t['e3nn_fwd']['median_s'] * 1e3:.2f} | {r['ratio_fwd']:.2f} | "
                     f"{t['equiv_fwd+bwd']['median_s'] * 1e3:.2f} | {t['e3nn_fwd+bwd']['median_s'] * 1e3:.2f} | "
                     f"{r['ratio_fwd+bwd']:.2f} | {r['max_abs_diff']:.1e} |")
    for path in common.write_results("nn_layers_quick" if args.quick else "nn_layers", res, "\n".join(lines) + "\n"):
        print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
