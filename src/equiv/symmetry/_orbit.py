"""Orbit evaluation (NERO): how a model's quality varies along the orbits of its inputs under a group.

Zhao, Matsuzawa, Irvine, Maire and Kindlmann, "Visual analysis of neural network equivariance with
NERO: Non-Equivariance Revealed on Orbits" (2023). For each input :math:`x` and each element :math:`g`
of a regular grid on the group, the model is evaluated on :math:`g\\cdot x` and its output mapped back,

.. math:: \\hat y_g(x) = g^{-1} \\cdot f(g \\cdot x) ,

(no map back when the output is invariant), and a metric :math:`m(\\hat y_g(x), y)` is recorded against
the ground truth :math:`y`, or -- without labels -- against the **consensus**, the orbit mean
:math:`\\bar y(x) = \\sum_g w_g\\, \\hat y_g(x)` (quadrature weights :math:`w_g` of the grid). An
equivariant model gives the same value for every :math:`g`: a circle in the polar plot, a uniform
sphere. The metric as a function of :math:`g` shows *where* a model breaks the symmetry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from equiv.groups import Group, OrbitGrid, get_group

__all__ = ["orbit_evaluation", "OrbitResult", "METRICS"]


def _per_sample_mean(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).mean(-1) if t.ndim > 1 else t


def _mse(pred, ref):
    return _per_sample_mean((pred - ref) ** 2)


def _mae(pred, ref):
    return _per_sample_mean((pred - ref).abs())


def _rmse(pred, ref):
    return _mse(pred, ref).sqrt()


def _l2(pred, ref):
    """Euclidean distance over the last axis, averaged over the others (e.g. per-particle error)."""
    return _per_sample_mean((pred - ref).norm(dim=-1)) if pred.ndim > 1 else (pred - ref).abs()


def _labels(ref):
    return ref if not ref.is_floating_point() else ref.argmax(-1)


def _accuracy(pred, ref):
    return (pred.argmax(-1) == _labels(ref)).to(pred.dtype)


def _confidence(pred, ref):
    return torch.softmax(pred, -1).gather(-1, _labels(ref)[:, None])[:, 0]


def _cross_entropy(pred, ref):
    return torch.nn.functional.cross_entropy(pred, _labels(ref), reduction="none")


#: name -> (function(pred, ref) -> (B,), higher is better, consensus averages probabilities)
METRICS: dict[str, tuple[Callable, bool, bool]] = {
    "mse": (_mse, False, False),
    "mae": (_mae, False, False),
    "rmse": (_rmse, False, False),
    "l2": (_l2, False, False),
    "accuracy": (_accuracy, True, True),
    "confidence": (_confidence, True, True),
    "cross_entropy": (_cross_entropy, False, True),
}


@dataclass
class OrbitResult:
    """Per-element, per-sample metric values along orbits (see :func:`orbit_evaluation`).

    Attributes
    ----------
    group : Group
    grid : OrbitGrid
        the group elements, their plotting coordinates and grid shape.
    values : Tensor ``(G, B)``
        the metric for group element ``g`` and sample ``b``.
    metric : str
    reference : str
        ``"ground truth"`` or ``"consensus"``.
    higher_is_better : bool
    outputs : Tensor ``(G, B, ...)`` or None
        the mapped-back outputs :math:`g^{-1} f(g x)` when ``keep_outputs=True``.

    Examples
    --------
    >>> import torch
    >>> res = orbit_evaluation(lambda p: p.norm(dim=-1, keepdim=True), torch.randn(5, 3), "so2_z", 12,
    ...                        input_kinds=["cartesian_points"])
    >>> tuple(res.values.shape), res.reference, tuple(res.aggregate().shape)
    ((12, 5), 'consensus', (12,))
    >>> res.summary()["orbit_std"] < 1e-6       # an invariant model scores the same on the whole orbit
    True
    """

    group: Group
    grid: OrbitGrid
    values: torch.Tensor
    metric: str
    reference: str
    higher_is_better: bool = False
    outputs: torch.Tensor | None = None
    meta: dict = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return self.values.shape[1]

    def rescore(self, metric: str | Callable = "mse", targets: torch.Tensor | None = None) -> "OrbitResult":
        """The same orbit scored with another metric or reference (``targets``, else the consensus),
        without running the model again; needs the outputs (``orbit_evaluation(..., keep_outputs=True)``).

        >>> import torch
        >>> x = torch.randn(6, 3)
        >>> res = orbit_evaluation(lambda p: 2 * p, x, "so2_z", 8, "l2", input_kinds=["cartesian_points"],
        ...                        output_kind="cartesian_points", targets=2 * x, keep_outputs=True)
        >>> res.reference, res.rescore("mse").reference, res.rescore("mse").summary()["mean"] < 1e-10
        ('ground truth', 'consensus', True)
        """
        if self.outputs is None:
            raise ValueError("rescore: the outputs were not kept (orbit_evaluation(..., keep_outputs=True))")
        return _score(self.group, self.grid, self.outputs, metric, targets, self.meta, keep_outputs=True)

    def aggregate(self, reduce: str = "mean") -> torch.Tensor:
        """Dataset-level view: the metric per group element over all samples, ``(G,)``."""
        if reduce == "mean":
            return self.values.mean(1)
        if reduce == "median":
            return self.values.median(1).values
        if reduce == "max":
            return self.values.max(1).values
        if reduce == "min":
            return self.values.min(1).values
        raise ValueError(f"reduce={reduce!r}: expected 'mean', 'median', 'max' or 'min'")

    def per_sample(self, index: int) -> torch.Tensor:
        """The orbit of one sample: its metric per group element, ``(G,)``."""
        if not -self.num_samples <= index < self.num_samples:
            raise ValueError(f"index={index}: expected 0 <= index < {self.num_samples}")
        return self.values[:, index]

    def on_grid(self, values: torch.Tensor | None = None) -> torch.Tensor:
        """Reshape ``(G, ...)`` values (default: the aggregate) to the grid's shape."""
        v = self.aggregate() if values is None else values
        return v.reshape(*self.grid.shape, *v.shape[1:])

    def summary(self) -> dict[str, float]:
        """Scalar summaries.

        ``mean``: weighted orbit mean of the aggregate; ``orbit_std``: its weighted standard deviation
        over the group (0 for an equivariant model); ``best`` / ``worst``: the extreme group elements'
        aggregate; ``sample_orbit_std``: the mean over samples of each sample's orbit standard
        deviation. Against the consensus, ``mean`` itself measures non-equivariance (0 for an
        equivariant model); against ground truth, ``orbit_std`` shows how the quality varies.
        """
        w = self.grid.weights.to(self.values.dtype)
        agg = self.aggregate()
        mean = float((w * agg).sum())
        std = float((w * (agg - mean) ** 2).sum().clamp_min(0).sqrt())
        per = (w[:, None] * self.values).sum(0)
        sample_std = ((w[:, None] * (self.values - per) ** 2).sum(0).clamp_min(0).sqrt()).mean()
        best, worst = (agg.max(), agg.min()) if self.higher_is_better else (agg.min(), agg.max())
        return {"mean": mean, "orbit_std": std, "best": float(best), "worst": float(worst), "sample_orbit_std": float(sample_std)}

    def plot(self, ax=None, **kwargs):
        """Plot by grid layout: polar (one-parameter), Mollweide (SO(3)), heat map, or line. See :mod:`._plots`."""
        from ._plots import plot_orbit

        return plot_orbit(self, ax=ax, **kwargs)

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"OrbitResult({self.group}, {len(self.grid)} elements x {self.num_samples} samples, {self.metric} vs "
            f"{self.reference}: mean {s['mean']:.4g}, orbit std {s['orbit_std']:.3g})"
        )


def _as_tuple(inputs) -> tuple[torch.Tensor, ...]:
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(t, torch.Tensor) for t in inputs):
        return tuple(inputs)
    raise TypeError(f"inputs: expected a tensor or a tuple of tensors, got {type(inputs).__name__}")


def orbit_evaluation(
    model: Callable,
    inputs,
    group,
    num_points: int = 36,
    metric: str | Callable = "mse",
    *,
    input_kinds: Sequence | None = None,
    output_kind=None,
    targets: torch.Tensor | None = None,
    batch_size: int = 4096,
    grid_kwargs: dict | None = None,
    keep_outputs: bool = False,
    progress: bool = False,
) -> OrbitResult:
    """Evaluate ``model`` along the orbits of ``inputs`` under ``group`` (NERO).

    Parameters
    ----------
    model : callable
        ``model(*inputs) -> Tensor (B, ...)``, batch first (wrap graph models accordingly).
    inputs : Tensor or tuple of Tensors
        each with the batch on its first axis.
    group : Group or name
        ``"so2"`` (about z; ``"so2_x"``...), ``"o2_z"``, ``"so3"``, ``"o3"``, ``"translations_xy"``,
        ``"scaling"``, ... (:func:`equiv.groups.get_group`).
    num_points : int
        size of the group grid (:meth:`equiv.groups.Group.orbit`; for SO(3) the number of sphere
        points, times ``grid_kwargs["num_angles"]`` roll angles).
    metric : str or callable
        ``"mse"``, ``"mae"``, ``"rmse"``, ``"l2"`` (Euclidean error on the last axis, averaged over
        the rest), ``"accuracy"``, ``"confidence"`` (probability of the reference class),
        ``"cross_entropy"``, or ``f(pred, ref) -> (B,)``.
    input_kinds : sequence
        how the group acts on each input (:meth:`equiv.groups.Group.act`): ``"cartesian_points"``,
        ``"cartesian_vectors"``, ``"image"``, irreps, :class:`~equiv.groups.Rep`, or ``None``.
    output_kind : kind or None
        how the group acts on the output; ``None`` for an invariant output (classification logits,
        energies). Equivariant outputs are mapped back with :math:`g^{-1}`.
    targets : Tensor or None
        ground truth (labels ``(B,)`` for classification metrics); ``None`` compares with the consensus.
    batch_size : int
        number of (element, sample) pairs per model call.
    grid_kwargs : dict
        extra arguments of ``group.orbit`` (``num_angles``, ``parametrization``, ``extent``).

    Returns
    -------
    OrbitResult
        ``values (G, B)``, with ``.aggregate()``, ``.per_sample(i)``, ``.summary()`` and ``.plot()``.

    Examples
    --------
    A rotation-invariant function (the norm) against a non-invariant one (the x coordinate):

    >>> import torch
    >>> x = torch.randn(16, 3)
    >>> inv = orbit_evaluation(lambda p: p.norm(dim=-1), x, "so2_z", 12, input_kinds=["cartesian_points"])
    >>> inv.summary()["orbit_std"] < 1e-6
    True
    >>> res = orbit_evaluation(lambda p: p[:, 0], x, "so2_z", 12, input_kinds=["cartesian_points"])
    >>> res.summary()["orbit_std"] > 0.01
    True
    """
    G = get_group(group)
    xs = _as_tuple(inputs)
    B = xs[0].shape[0]
    if any(t.shape[0] != B for t in xs):
        raise ValueError(f"inputs: every input needs the same batch size on axis 0, got {[tuple(t.shape) for t in xs]}")
    if input_kinds is None:
        raise ValueError("input_kinds: give one kind per input (e.g. ['cartesian_points'] or ['image']); None = untouched")
    kinds = list(input_kinds) if isinstance(input_kinds, (list, tuple)) else [input_kinds]
    if len(kinds) != len(xs):
        raise ValueError(f"input_kinds={input_kinds!r}: {len(kinds)} kinds for {len(xs)} inputs")
    fn, higher, probs, name = _metric(metric)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected a positive integer")
    if targets is not None and targets.shape[0] != B:
        raise ValueError(f"targets has {targets.shape[0]} samples, inputs have {B}")

    dtype = next((t.dtype for t in xs if t.is_floating_point()), torch.get_default_dtype())
    device = xs[0].device
    grid = G.orbit(num_points, dtype=dtype, **(grid_kwargs or {}))
    elements = grid.elements.to(device)
    ginv = G.inverse(elements)
    n_el = len(grid)

    per_call = max(1, batch_size // B)
    outputs = []
    chunks = range(0, n_el, per_call)
    if progress:
        from tqdm.auto import tqdm

        chunks = tqdm(chunks, desc=f"orbit {G}", leave=False)
    with torch.no_grad():
        for start in chunks:
            g = elements[start : start + per_call]
            k = g.shape[0]
            gb = g.repeat_interleave(B, 0)  # (k*B, d, d): element-major
            moved = [G.act(gb, t.repeat(k, *([1] * (t.ndim - 1))), kind) for t, kind in zip(xs, kinds)]
            y = model(*moved)
            if not isinstance(y, torch.Tensor) or y.shape[0] != k * B:
                raise ValueError(f"model must return a tensor with batch axis {k * B}, got {getattr(y, 'shape', type(y))}")
            if output_kind is not None:
                y = G.act(ginv[start : start + k].repeat_interleave(B, 0), y, output_kind)
            outputs.append(y.reshape(k, B, *y.shape[1:]))
    Y = torch.cat(outputs)  # (G, B, ...)

    meta = {"num_points": num_points, "output_kind": str(output_kind), "input_kinds": [str(k) for k in kinds]}
    return _score(G, grid, Y, metric, targets, meta, keep_outputs)


def _metric(metric):
    """``(fn, higher_is_better, on_probabilities, name)`` of a metric name or callable."""
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"metric={metric!r}: expected one of {sorted(METRICS)} or a callable")
        fn, higher, probs = METRICS[metric]
        return fn, higher, probs, metric
    if callable(metric):
        return metric, False, False, getattr(metric, "__name__", "custom")
    raise TypeError(f"metric={metric!r}: expected a name or a callable")


def _score(G, grid, Y, metric, targets, meta, keep_outputs) -> "OrbitResult":
    """The metric of the mapped-back outputs ``Y (G, B, ...)`` against ``targets`` or their consensus."""
    fn, higher, probs, name = _metric(metric)
    n_el, B = Y.shape[0], Y.shape[1]
    if targets is not None:
        if targets.shape[0] != B:
            raise ValueError(f"targets has {targets.shape[0]} samples, inputs have {B}")
        ref, reference = targets.to(Y.device), "ground truth"
    else:
        w = grid.weights.to(device=Y.device, dtype=Y.dtype).reshape(-1, *([1] * (Y.ndim - 1)))
        ref = (w * (torch.softmax(Y, -1) if probs else Y)).sum(0)
        reference = "consensus"
    values = torch.stack([fn(Y[i], ref) for i in range(n_el)])
    if values.shape != (n_el, B):
        raise ValueError(f"metric returned shape {tuple(values.shape[1:])} per element; expected ({B},)")
    return OrbitResult(group=G, grid=grid, values=values.detach().cpu(), metric=name, reference=reference,
                       higher_is_better=higher, outputs=Y.cpu() if keep_outputs else None, meta=dict(meta))
