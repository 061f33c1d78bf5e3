"""``equiv nero CHECKPOINT --group so3 --out report/``: orbit (NERO) report of a trained model.

Loads a checkpoint written by ``equiv train nbody`` (N-body models), by
:func:`equiv.models.digits.save_digits_checkpoint` (the 8x8 digits classifier) or a saved interatomic
potential (``model.pt`` of ``equiv train potential``, with ``--data``: its forces on those structures),
evaluates the model on test inputs along their orbits under the group
(:func:`equiv.symmetry.orbit_evaluation`) and writes PNG plots and a Markdown page ``report.md`` to
``--out``:

- against the ground truth (test targets or labels) and against the consensus (no labels needed);
- a dataset-level view (mean over the test samples) and a per-sample view.

Examples::

    equiv nero runs/nbody-egnn/best.pt --group so3 --out report/egnn
    equiv nero runs/digits.pt --group so2 --num-points 72 --out report/digits
    equiv nero runs/ethanol/model.pt --data rmd17:ethanol --samples 16 --group o3 --out report/ethanol
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from equiv.cli import add_threads_argument, apply_threads

__all__ = ["add_arguments", "run", "load_for_nero", "write_report", "PotentialForces"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="an N-body checkpoint (equiv train nbody), a digits checkpoint, or a saved "
                                           "potential (model.pt of equiv train potential, with --data)")
    parser.add_argument("--data", default=None, help="for a potential: extxyz file or rmd17:<molecule>[:train|test] "
                                                     "(as equiv evaluate); the structures must be non-periodic")
    parser.add_argument("--group", default=None, help="so2[_x|_y|_z], o2_z, so3, o3, translations_xy, scaling (default: so3 for N-body, so2 for digits)")
    parser.add_argument("--out", default="nero-report", help="output folder (PNG + report.md)")
    parser.add_argument("--num-points", type=int, default=None, help="group grid size (default 72 for SO(2), 200 sphere points for SO(3))")
    parser.add_argument("--num-angles", type=int, default=4, help="roll angles per sphere point (SO(3), O(3))")
    parser.add_argument("--samples", type=int, default=None, help="number of test inputs (default 200; 16 structures for a potential)")
    parser.add_argument("--metric", default=None, help="mse, mae, l2, accuracy, confidence, ... (default: l2 for N-body, "
                                                       "confidence for digits, mae of the forces for a potential)")
    parser.add_argument("--title", default=None, help="title of the report")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"], help="evaluation precision")
    parser.add_argument("--sample-plots", type=int, default=8, help="samples drawn in the per-sample view (0: none)")
    add_threads_argument(parser)


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


class PotentialForces(torch.nn.Module):
    """A saved potential as a batch-first map for `orbit_evaluation`: positions ``(S, N, 3)`` of copies of
    ``structures`` (in order, repeated) -> forces ``(S, N, 3)``.

    The neighbour lists of the given structures are reused for the moved copies: rotations,
    reflections and translations keep every interatomic distance (scaling would not, and is refused
    by ``equiv nero``).
    """

    def __init__(self, model, structures, dtype):
        super().__init__()
        self.model, self.structures, self.dtype = model, structures, dtype
        self._batches = {}

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        from equiv.data import collate
        from equiv.train import predict_properties

        k, rest = divmod(positions.shape[0], len(self.structures))
        if rest:
            raise ValueError(f"PotentialForces: {positions.shape[0]} structures are not copies of {len(self.structures)}")
        if k not in self._batches:
            self._batches[k] = collate(self.structures * k).to(dtype=self.dtype)
        batch = dataclasses.replace(self._batches[k], positions=positions.reshape(-1, 3).to(self.dtype))
        with torch.enable_grad():
            forces = predict_properties(self.model, batch)["forces"]
        return forces.detach().view(positions.shape)


def _potential(path, samples, dtype, data):
    from equiv.train.evaluate_cli import load_eval_data
    from equiv.train.saved_model import load_potential

    if data is None:
        raise ValueError("a saved potential needs --data (an extxyz file or rmd17:<molecule>[:split]) to evaluate on")
    model = load_potential(path, dtype=dtype)
    structures = load_eval_data(data)
    if not structures:
        raise ValueError(f"--data {data!r}: no structures")
    first = structures[0].atomic_numbers
    same = [d for d in structures if torch.equal(d.atomic_numbers, first)][:samples]
    if any(d.pbc is not None and bool(d.pbc.any()) for d in same):
        raise ValueError(f"--data {data!r}: periodic structures are not supported (the cell would have to move too)")
    if any(d.forces is None for d in same):
        raise ValueError(f"--data {data!r}: the structures need reference forces")
    same = [d.with_graph(model.cutoff) for d in same]
    spec = {
        "task": "potential",
        "inputs": (torch.stack([d.positions for d in same]).to(dtype),),
        "targets": torch.stack([d.forces for d in same]).to(dtype),
        "input_kinds": ["cartesian_points"],
        "output_kind": "cartesian_vectors",
        "metric": "mae",
        "group": "so3",
        "batch_size": 256,
        "info": {"model": type(model).__name__, "data": data, "structures": len(same), "atoms": int(first.numel()),
                 "skipped (other composition)": len(structures) - len([d for d in structures if torch.equal(d.atomic_numbers, first)])},
    }
    return PotentialForces(model, same, dtype), spec


def load_for_nero(path, samples: int | None = None, dtype=torch.float64, data=None):
    """``(model, spec)`` for a checkpoint: the model and how the group acts on its test inputs
    (``data``: the structures a saved potential is evaluated on, as ``equiv evaluate --data``)."""
    from equiv.train.checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    fmt = load_checkpoint(path).get("format")
    if fmt == "equiv-digits-v1":
        return _digits(path, samples or 200, dtype)
    if fmt == "equiv-nbody-v1":
        return _nbody(path, samples or 200, dtype)
    if fmt == "equiv-potential":
        return _potential(path, samples or 16, dtype, data)
    raise ValueError(f"checkpoint {str(path)!r} has format {fmt!r}; expected an N-body, a digits or a potential checkpoint")


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

    apply_threads(args)
    dtype = getattr(torch, args.dtype)
    try:
        model, spec = load_for_nero(args.checkpoint, samples=args.samples, dtype=dtype, data=getattr(args, "data", None))
    except ValueError as exc:
        print(f"equiv nero: {exc}")
        return 2
    group = args.group or spec["group"]
    try:
        G = get_group(group)
    except ValueError as exc:
        print(f"equiv nero: {exc}")
        return 2
    if spec["task"] == "potential" and G.name.lower().startswith("scal"):
        print("equiv nero: a potential's orbit under scaling would change its neighbour lists; use an isometry group")
        return 2
    num_points = args.num_points or _default_points(G)
    metric = args.metric or spec["metric"]
    grid_kwargs = {"num_angles": args.num_angles} if G.name in ("SO(3)", "O(3)", "E(3)") else None
    common = dict(input_kinds=spec["input_kinds"], output_kind=spec["output_kind"], grid_kwargs=grid_kwargs, progress=True,
                  batch_size=spec.get("batch_size", 4096))
    with torch.no_grad():  # the model runs once: the consensus view rescores the kept outputs
        truth = orbit_evaluation(model, spec["inputs"], group, num_points, metric, targets=spec["targets"],
                                 keep_outputs=True, **common)
        cons_metric = "accuracy" if metric in ("confidence", "cross_entropy") else metric
        consensus = truth.rescore(cons_metric)
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
