"""``equiv nero CHECKPOINT --group so3 --out report/``: orbit (NERO) report of a trained model.

Loads a checkpoint written by ``equiv train nbody`` (N-body models) or by
:func:`equiv.models.digits.save_digits_checkpoint` (the 8x8 digits classifier), evaluates the model on
test inputs along their orbits under the group (:func:`equiv.symmetry.orbit_evaluation`) and writes
PNG plots and a Markdown page ``report.md`` to ``--out``:

- against the ground truth (test targets or labels) and against the consensus (no labels needed);
- a dataset-level view (mean over the test samples) and a per-sample view.

Examples::

    equiv nero runs/nbody-egnn/best.pt --group so3 --out report/egnn
    equiv nero runs/digits.pt --group so2 --num-points 72 --out report/digits
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

__all__ = ["add_arguments", "run", "load_for_nero", "write_report"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="an N-body checkpoint (equiv train nbody) or a digits checkpoint")
    parser.add_argument("--group", default=None, help="so2[_x|_y|_z], o2_z, so3, o3, translations_xy, scaling (default: so3 for N-body, so2 for digits)")
    parser.add_argument("--out", default="nero-report", help="output folder (PNG + report.md)")
    parser.add_argument("--num-points", type=int, default=None, help="group grid size (default 72 for SO(2), 200 sphere points for SO(3))")
    parser.add_argument("--num-angles", type=int, default=4, help="roll angles per sphere point (SO(3), O(3))")
    parser.add_argument("--samples", type=int, default=200, help="number of test inputs")
    parser.add_argument("--metric", default=None, help="mse, l2, accuracy, confidence, ... (default: l2 for N-body, confidence for digits)")
    parser.add_argument("--title", default=None, help="title of the report")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"], help="evaluation precision")
    parser.add_argument("--sample-plots", type=int, default=8, help="samples drawn in the per-sample view (0: none)")


def _digits(path, samples, dtype):
    from equiv.models.digits import load_digits_checkpoint, load_digits_tensors

    model, info = load_digits_checkpoint(path)
    model = model.to(dtype)
    data = load_digits_tensors(seed=info.get("split_seed", 0), dtype=dtype)
    spec = {
        "task": "digits",
        "inputs": (data.test_images[:samples],),
        "targets": data.test_labels[:samples],
        "input_kinds": ["image"],
        "output_kind": None,
        "metric": "confidence",
        "group": "so2",
        "info": info,
    }
    return model, spec


def _nbody_test_data(samples, dtype):
    """The first ``samples`` test systems of the charged 5-body benchmark: (positions, velocities, charges, target)."""
    from equiv.data.nbody import NBodyDataset, generate_charged

    data = generate_charged(subset=(1, 1, samples), progress=False)
    return NBodyDataset("test", data=data, max_samples=samples, dtype=dtype).tensors()


def _nbody(path, samples, dtype):
    from equiv.train.nbody import load_model

    model = load_model(path).to(dtype)
    x, v, q, y = _nbody_test_data(samples, dtype)
    spec = {
        "task": "nbody",
        "inputs": (x, v, q),
        "targets": y,
        "input_kinds": ["cartesian_points", "cartesian_vectors", None],
        "output_kind": "cartesian_points",
        "metric": "l2",
        "group": "so3",
        "info": {"model": getattr(model, "nbody_name", "?")},
    }
    return model, spec


def load_for_nero(path, samples: int = 200, dtype=torch.float64):
    """``(model, spec)`` for a checkpoint: the model and how the group acts on its test inputs."""
    from equiv.train.checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    fmt = load_checkpoint(path).get("format")
    if fmt == "equiv-digits-v1":
        return _digits(path, samples, dtype)
    if fmt == "equiv-nbody-v1":
        return _nbody(path, samples, dtype)
    raise ValueError(f"checkpoint {str(path)!r} has format {fmt!r}; expected an N-body or a digits checkpoint")


def write_report(entries, out_dir, title: str, notes: str = "", sample_plots: int = 8) -> Path:
    """Write PNGs and ``report.md`` for ``entries``: a list of ``(name, OrbitResult, caption)``.

    Each entry gets the dataset-level plot ``<name>.png`` and (``sample_plots > 0``) a per-sample view
    ``<name>_samples.png`` of the first ``sample_plots`` samples; the page has a table of
    :meth:`OrbitResult.summary` values and ``summary.json`` the same numbers.
    """
    from ._plots import plot_orbit, plot_orbit_samples, save_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", "", notes, "", "| plot | group | metric | reference | mean | orbit std | best | worst |", "|---|---|---|---|---|---|---|---|"]
    body, summary = [], {}
    for name, res, caption in entries:
        save_figure(plot_orbit(res), out / f"{name}.png")
        if sample_plots > 0:
            save_figure(plot_orbit_samples(res, indices=range(min(sample_plots, res.num_samples))), out / f"{name}_samples.png")
        s = res.summary()
        summary[name] = {**s, "group": str(res.group), "metric": res.metric, "reference": res.reference}
        lines.append(f"| [{name}]({name}.png) | {res.group} | {res.metric} | {res.reference} | {s['mean']:.4g} | "
                     f"{s['orbit_std']:.3g} | {s['best']:.4g} | {s['worst']:.4g} |")
        body += [f"## {name}", "", caption, "", f"![{name}]({name}.png)", ""]
        if sample_plots > 0:
            body += [f"Per sample: ![{name} samples]({name}_samples.png)", ""]
    page = out / "report.md"
    page.write_text("\n".join(lines + [""] + body))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return page


def _default_points(G) -> int:
    from equiv.groups import E3, SO3, Scaling, Translations

    if isinstance(G, (SO3, E3)):
        return 200
    if isinstance(G, Translations):
        return 121
    if isinstance(G, Scaling):
        return 33
    return 72


def run(args: argparse.Namespace) -> int:
    from equiv.groups import get_group
    from equiv.symmetry import orbit_evaluation

    dtype = getattr(torch, args.dtype)
    model, spec = load_for_nero(args.checkpoint, samples=args.samples, dtype=dtype)
    group = args.group or spec["group"]
    try:
        G = get_group(group)
    except ValueError as exc:
        print(f"equiv nero: {exc}")
        return 2
    num_points = args.num_points or _default_points(G)
    metric = args.metric or spec["metric"]
    grid_kwargs = {"num_angles": args.num_angles} if G.name in ("SO(3)", "O(3)", "E(3)") else None
    common = dict(input_kinds=spec["input_kinds"], output_kind=spec["output_kind"], grid_kwargs=grid_kwargs, progress=True)
    with torch.no_grad():
        truth = orbit_evaluation(model, spec["inputs"], group, num_points, metric, targets=spec["targets"], **common)
        cons_metric = "accuracy" if metric in ("confidence", "cross_entropy") else metric
        consensus = orbit_evaluation(model, spec["inputs"], group, num_points, cons_metric, **common)
    ck = Path(args.checkpoint)
    name = f"{ck.parent.name}/{ck.stem}" if ck.stem in ("best", "checkpoint", "last") else ck.stem
    entries = [
        (f"{group}_{metric}_truth", truth, f"{metric} against the ground truth along {group} orbits of {truth.num_samples} test inputs."),
        (f"{group}_{cons_metric}_consensus", consensus,
         f"{cons_metric} against the consensus (orbit mean of g^-1 f(g x)); zero / flat for an equivariant model."),
    ]
    notes = f"Checkpoint `{args.checkpoint}` ({spec['task']}, {json.dumps(spec['info'], default=str)[:200]})."
    page = write_report(entries, args.out, args.title or f"NERO report: {name} under {group}", notes, args.sample_plots)
    for n, res, _ in entries:
        print(f"{n}: {res}")
    print(f"wrote {page}")
    return 0
