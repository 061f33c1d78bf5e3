"""NERO figures for the README: where models break rotation symmetry (orbit evaluation).

1. Digits (scikit-learn's bundled 8x8 images, real data): a small CNN trained on upright digits and the
   same CNN trained with random-rotation augmentation, evaluated on the test digits rotated by 72
   angles (SO(2), bilinear resampling). Polar plots of the mean confidence in the true class and of
   the accuracy: the augmented model draws (nearly) a circle, the plain one collapses away from 0 deg.
2. Charged 5-body system: EGNN (E(3)-equivariant), and an MLP on raw coordinates trained without and
   with random-rotation augmentation (``equiv train nbody``), evaluated on test systems rotated over an
   SO(3) grid (where the rotation sends the z axis x roll). Mollweide maps of the mean position error:
   uniform for EGNN; for the MLP lowest near the identity, flattened (but higher) with augmentation.

Writes docs/figures/nero_*.png (small PNGs) and benchmarks/results/nero.{json,md}. Trained checkpoints
are cached in runs/nero/ (``--retrain`` to redo). ``--quick``: tiny training, figures to
benchmarks/results/nero_quick/ (the README figures are left alone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from equiv.models.digits import load_digits_checkpoint, load_digits_tensors, save_digits_checkpoint, train_digits  # noqa: E402
from equiv.symmetry import orbit_evaluation  # noqa: E402
from equiv.symmetry._plots import plot_polar, plot_sphere, save_figure  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def digits_part(args, figdir: Path, runs: Path) -> dict:
    data = load_digits_tensors(seed=0)
    out, results = {}, {}
    for aug in ("none", "rotation"):
        ckpt = runs / f"digits_{aug}.pt"
        if ckpt.is_file() and not args.retrain:
            model, info = load_digits_checkpoint(ckpt)
        else:
            t0 = time.perf_counter()
            model, info = train_digits(aug, epochs=args.digits_epochs, seed=0, data=data, progress=True)
            info["train_seconds"] = time.perf_counter() - t0
            save_digits_checkpoint(ckpt, model, info)
        model.eval()
        kw = dict(input_kinds=["image"], targets=data.test_labels)
        conf = orbit_evaluation(model, data.test_images, "so2", args.angles, "confidence", **kw)
        acc = orbit_evaluation(model, data.test_images, "so2", args.angles, "accuracy", **kw)
        cons = orbit_evaluation(model, data.test_images, "so2", args.angles, "accuracy", input_kinds=["image"])
        results[aug] = (conf, acc)
        out[aug] = {
            "test_accuracy_upright": info["test_accuracy"],
            "epochs": info["epochs"],
            "confidence": conf.summary(),
            "accuracy": acc.summary(),
            "accuracy_vs_consensus": cons.summary(),
            "accuracy_by_angle_deg": {f"{360 * k / args.angles:.0f}": float(v) for k, v in enumerate(acc.aggregate())},
        }
        print(f"digits ({aug}): upright test accuracy {info['test_accuracy']:.3f}; over all angles {acc.summary()['mean']:.3f}")

    fig, axes = plt.subplots(1, 2, subplot_kw={"projection": "polar"}, figsize=(8.6, 4.2), gridspec_kw={"wspace": 0.45})
    for ax, aug in zip(axes, ("none", "rotation")):
        conf, acc = results[aug]
        plot_polar(conf, ax=ax, samples=0, rmax=1.0, title=f"trained {'with' if aug == 'rotation' else 'without'} rotation augmentation")
        th = acc.grid.coords["angle"].numpy()
        a = acc.aggregate().numpy()
        ax.plot(list(th) + [th[0] + 2 * math.pi], list(a) + [a[0]], color="C2", lw=1.5, label="accuracy")
        ax.set_rmax(1.0)
        ax.set_rticks([0.25, 0.5, 0.75, 1.0])
        ax.legend(loc="lower left", fontsize=6, bbox_to_anchor=(-0.15, -0.15))
    fig.suptitle("8x8 digits under rotation: mean confidence in the true class (blue) and accuracy (green)", fontsize=9)
    save_figure(fig, figdir / "nero_digits_polar.png", dpi=90, compact=True)

    # per-sample view: a few test digits and their orbits under both models
    picks = [int(torch.nonzero(data.test_labels == c)[0]) for c in (0, 1, 4, 6, 7, 9)]
    fig = plt.figure(figsize=(10, 5.6))
    for j, i in enumerate(picks):
        ax = fig.add_subplot(3, len(picks), j + 1)
        ax.imshow(data.test_images[i, 0], cmap="gray_r")
        ax.set_axis_off()
        ax.set_title(f"label {int(data.test_labels[i])}", fontsize=8)
        for r, aug in enumerate(("none", "rotation")):
            axp = fig.add_subplot(3, len(picks), (r + 1) * len(picks) + j + 1, projection="polar")
            conf = results[aug][0]
            th = conf.grid.coords["angle"].numpy()
            v = conf.per_sample(i).numpy()
            axp.plot(list(th) + [th[0] + 2 * math.pi], list(v) + [v[0]], color="C0" if r == 0 else "C1", lw=1.4)
            axp.set_rmax(1.0)
            axp.set_rticks([0.5, 1.0])
            axp.set_xticks([0, math.pi / 2, math.pi, 3 * math.pi / 2])
            axp.set_xticklabels(["0°", "", "180°", ""])
            axp.tick_params(labelsize=5, pad=-2)
            if j == 0:
                axp.set_ylabel("plain" if r == 0 else "augmented", fontsize=7, labelpad=18)
    fig.suptitle("per digit: confidence in the true class vs rotation angle, counter-clockwise from 0 at the right\n"
                 "(middle row: CNN trained on upright digits, bottom row: trained with rotation augmentation)", fontsize=9)
    fig.subplots_adjust(top=0.86, wspace=0.5, hspace=0.35)
    save_figure(fig, figdir / "nero_digits_samples.png", dpi=90, compact=True)
    return out


def nbody_part(args, figdir: Path, runs: Path) -> dict:
    from equiv.symmetry.nero_cli import _nbody_test_data
    from equiv.train.nbody import load_model, train_nbody

    specs = [("egnn", "egnn", "none", "EGNN (E(3)-equivariant)"), ("mlp", "mlp", "none", "MLP, no augmentation"),
             ("mlp_rot", "mlp", "rotation", "MLP, rotation augmentation")]
    x, v, q, y = _nbody_test_data(args.systems, torch.float64)
    out, results = {}, {}
    for name, model_name, aug, label in specs:
        run_dir = runs / f"nbody_{name}"
        best = run_dir / "best.pt"
        if not best.is_file() or args.retrain:
            res = train_nbody(model=model_name, augment=aug, epochs=args.nbody_epochs, out=str(run_dir), num_train=3000,
                              num_valid=500, num_test=500, progress=False, seed=0)
            meta = {"test_mse": res.get("test_mse"), "best_epoch": res.get("best_epoch")}
            (run_dir / "nero_meta.json").write_text(json.dumps(meta))
        meta = json.loads((run_dir / "nero_meta.json").read_text()) if (run_dir / "nero_meta.json").is_file() else {}
        model = load_model(best).to(torch.float64)
        kw = dict(input_kinds=["cartesian_points", "cartesian_vectors", None], output_kind="cartesian_points",
                  grid_kwargs={"num_angles": args.num_angles}, batch_size=20000)
        truth = orbit_evaluation(model, (x, v, q), "so3", args.sphere_points, "l2", targets=y, **kw)
        cons = orbit_evaluation(model, (x, v, q), "so3", args.sphere_points, "l2", **kw)
        results[name] = (truth, cons, label)
        out[name] = {"label": label, "augment": aug, "train": meta, "l2_vs_truth": truth.summary(), "l2_vs_consensus": cons.summary()}
        print(f"nbody {name}: l2 vs truth {truth.summary()['mean']:.4f} (orbit std {truth.summary()['orbit_std']:.2g}), "
              f"vs consensus {cons.summary()['mean']:.3g}")
    vmax = max(float(r[0].aggregate().max()) for r in results.values())
    vmin = min(float(r[0].aggregate().min()) for r in results.values())
    pick = 0  # one test system's orbit
    smax = max(float(r[0].per_sample(pick).max()) for r in results.values())
    smin = min(float(r[0].per_sample(pick).min()) for r in results.values())
    fig = plt.figure(figsize=(12, 6.2))
    for k, (name, (truth, _, label)) in enumerate(results.items()):
        ax = fig.add_subplot(2, 3, k + 1, projection="mollweide")
        plot_sphere(truth, ax=ax, vmin=vmin, vmax=vmax, title=f"{label}\nall {truth.num_samples} test systems (mean)")
        ax = fig.add_subplot(2, 3, k + 4, projection="mollweide")
        plot_sphere(truth, ax=ax, vmin=smin, vmax=smax, sample=pick, title=f"one test system's orbit")
    fig.suptitle("charged 5-body test systems rotated over SO(3): mean position error (l2) by where the rotation sends the z axis",
                 fontsize=9, y=0.99)
    fig.subplots_adjust(top=0.88, wspace=0.08, hspace=0.35)
    save_figure(fig, figdir / "nero_nbody_so3.png", dpi=90, compact=True)
    return out


def markdown(payload) -> str:
    lines = ["# NERO (orbit evaluation) demonstrations", "", "Generated by `python benchmarks/nero.py`"
             + (" --quick" if payload["config"]["quick"] else "") + ". Figures: " + ", ".join(f"`{p}`" for p in payload["figures"]), ""]
    d = payload.get("digits")
    if d:
        lines += ["## Digits under SO(2) (scikit-learn 8x8 test set, 72 angles)", "",
                  "| training | upright test accuracy | accuracy over all angles | worst angle | confidence, mean ± orbit std |", "|---|---|---|---|---|"]
        for aug, r in d.items():
            lines.append(f"| {aug} | {r['test_accuracy_upright']:.3f} | {r['accuracy']['mean']:.3f} | {r['accuracy']['worst']:.3f} | "
                         f"{r['confidence']['mean']:.3f} ± {r['confidence']['orbit_std']:.3f} |")
        lines.append("")
    n = payload.get("nbody")
    if n:
        lines += ["## Charged 5-body under SO(3) (test systems, sphere grid x roll angles)", "",
                  "| model | training test MSE | mean position error vs truth | orbit std | best / worst rotation | error vs consensus |",
                  "|---|---|---|---|---|---|"]
        for name, r in n.items():
            t, c = r["l2_vs_truth"], r["l2_vs_consensus"]
            mse = r["train"].get("test_mse")
            lines.append(f"| {r['label']} | {mse if mse is None else f'{mse:.4g}'} | {t['mean']:.4g} | {t['orbit_std']:.2g} | "
                         f"{t['best']:.4g} / {t['worst']:.4g} | {c['mean']:.3g} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--parts", default="digits,nbody")
    p.add_argument("--retrain", action="store_true")
    p.add_argument("--digits-epochs", dest="digits_epochs", type=int, default=40)
    p.add_argument("--nbody-epochs", dest="nbody_epochs", type=int, default=60)
    p.add_argument("--angles", type=int, default=72)
    p.add_argument("--systems", type=int, default=200)
    p.add_argument("--sphere-points", dest="sphere_points", type=int, default=200)
    p.add_argument("--num-angles", dest="num_angles", type=int, default=4)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    figdir, runs = ROOT / "docs" / "figures", ROOT / "runs" / "nero"
    out_json = RESULTS / "nero.json"
    if args.quick:
        args.digits_epochs, args.nbody_epochs, args.angles, args.systems, args.sphere_points, args.num_angles = 2, 2, 24, 20, 50, 2
        figdir, runs, out_json = RESULTS / "nero_quick", ROOT / "runs" / "nero_quick", RESULTS / "nero_quick" / "nero.json"
    figdir.mkdir(parents=True, exist_ok=True)
    runs.mkdir(parents=True, exist_ok=True)
    payload = {"config": vars(args), "torch": torch.__version__, "figures": []}
    parts = args.parts.split(",")
    if "digits" in parts:
        payload["digits"] = digits_part(args, figdir, runs)
        payload["figures"] += [str((figdir / f).relative_to(ROOT)) for f in ("nero_digits_polar.png", "nero_digits_samples.png")]
    if "nbody" in parts:
        try:
            payload["nbody"] = nbody_part(args, figdir, runs)
            payload["figures"].append(str((figdir / "nero_nbody_so3.png").relative_to(ROOT)))
        except ImportError as exc:
            print(f"nbody part skipped: {exc}", file=sys.stderr)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    if out_json.is_file():  # keep the parts not re-run this time
        old = json.loads(out_json.read_text())
        for key in ("digits", "nbody"):
            if key not in payload and key in old:
                payload[key] = old[key]
        payload["figures"] = sorted(set(old.get("figures", [])) | set(payload["figures"]))
    out_json.write_text(json.dumps(payload, indent=1))
    out_json.with_suffix(".md").write_text(markdown(payload))
    print(f"wrote {out_json} and {out_json.with_suffix('.md')}; figures in {figdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
