r"""Numerical equivariance checks: :math:`f(g \cdot x) = g \cdot f(x)` for random :math:`g`.

A function ``fn(*inputs)`` is checked against random elements :math:`g` of
:math:`E(3) \times S_N` built from

- a Haar-random rotation :math:`R` (`equiv.so3.random_rotation`), composed with the inversion
  :math:`-I` on every second sample when ``group="O(3)"`` (so ``num_samples >= 2`` tests parity);
- a standard-normal translation :math:`t` of every ``"cartesian_points"`` input/output
  (``translations=True``);
- a uniformly random permutation :math:`\pi` of the nodes (``permutations=True``).

For each sample and each output the report holds
:math:`\varepsilon_\mathrm{abs} = \max |f(g\cdot x) - g\cdot f(x)|` and
:math:`\varepsilon_\mathrm{rel} = \varepsilon_\mathrm{abs} / \max |g\cdot f(x)|`. The check passes
when :math:`\varepsilon_\mathrm{abs} \le \mathrm{atol} + \mathrm{rtol} \max|g\cdot f(x)|` everywhere.

How to describe inputs and outputs (one entry of ``irreps_in`` per input, of ``irreps_out`` per
output):

==========================  ===================================================================
entry                        action of :math:`g = (\pm R, t, \pi)`
==========================  ===================================================================
``Irreps`` / ``"8x0e+4x1o"``  last axis has ``irreps.dim`` features: :math:`x \mapsto x D(g)^\top`
                              (parity :math:`p` of each irrep applies for improper :math:`g`)
``"cartesian_points"``        positions ``(..., 3)``: :math:`x \mapsto \pm R x + t` (inverted
                              through the origin for improper :math:`g`, then translated)
``"cartesian_vectors"``       ``(..., 3)`` like ``"1o"``: :math:`v \mapsto \pm R v`, never translated
``CartesianTensor(f)``        ``(..., 3, ..., 3)``: every index rotates, :math:`T \mapsto (\pm R)^{\otimes n} T`
                              (stress, polarisability: ``equiv.so3.CartesianTensor("ij=ji")``)
``None``                      untouched: invariant scalars, masks, charges, integer indices;
                              an output marked ``None`` must be invariant
==========================  ===================================================================

Node-indexed data: ``node_inputs`` (indices into ``inputs``) have the node axis first and are
permuted, :math:`x'_i = x_{\pi(i)}`; ``index_inputs`` are integer tensors whose *values* are node
indices (an ``edge_index`` of shape ``(2, E)``, a ``batch`` vector is *not* one) and are relabelled
:math:`j \mapsto \pi^{-1}(j)`; outputs in ``node_outputs`` are compared after permuting their
axis 0. Inputs that require grad are transformed and given ``requires_grad`` again, so functions
that differentiate with respect to positions (forces) can be checked.

Default tolerances (``atol = rtol``): float64 1e-9, float32 1e-4, float16/bfloat16 1e-2 — a
few orders of magnitude above the rounding of typical deep equivariant networks (float64 errors
are ~1e-15 relative, float32 ~1e-7 to 1e-6), far below a genuine symmetry breaking (O(1)).
This follows the design of ``e3nn.util.test.assert_equivariant``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from equiv.so3 import CartesianTensor, Irreps, random_rotation

__all__ = ["EquivarianceReport", "equivariance_error", "assert_equivariant", "default_tolerance"]

_SPECIAL = ("cartesian_points", "cartesian_vectors")
_GROUPS = {"so(3)": "SO(3)", "so3": "SO(3)", "o(3)": "O(3)", "o3": "O(3)"}


def default_tolerance(dtype: torch.dtype) -> float:
    """Default ``atol`` and ``rtol`` of `assert_equivariant` for a dtype.

    >>> default_tolerance(torch.float64), default_tolerance(torch.float32)
    (1e-09, 0.0001)
    """
    if dtype == torch.float64:
        return 1e-9
    if dtype == torch.float32:
        return 1e-4
    return 1e-2


@dataclass
class EquivarianceReport:
    r"""Equivariance errors per sampled group element (rows) and per output (columns).

    Attributes
    ----------
    group : str
        ``"SO(3)"`` or ``"O(3)"``.
    dtype : torch.dtype
        Floating dtype of the inputs (sets the default tolerances).
    elements : list of str
        Description of each sampled element, e.g. ``"rotation+inversion+translation"``.
    outputs : list of str
        Description of each output (index and type).
    abs_errors : torch.Tensor
        ``(num_samples, num_outputs)`` :math:`\max|f(gx) - g f(x)|`.
    rel_errors : torch.Tensor
        ``(num_samples, num_outputs)`` the same divided by :math:`\max|g f(x)|`.
    scales : torch.Tensor
        ``(num_samples, num_outputs)`` :math:`\max|g f(x)|`.
    atol, rtol : float
        Tolerances used by `passed` (defaults from `default_tolerance`).
    matrices : torch.Tensor
        ``(num_samples, 3, 3)`` the :math:`\pm R` used (det -1 for improper samples).
    translations : torch.Tensor
        ``(num_samples, 3)`` the translations (zeros when not applied).
    permutations : list of torch.Tensor or None
        The node permutations :math:`\pi` used, or ``None``.

    Examples
    --------
    >>> import torch
    >>> report = assert_equivariant(lambda p: p * p.norm(dim=-1, keepdim=True),
    ...                             [torch.randn(10, 3, dtype=torch.float64)], irreps_in=["1o"], irreps_out=["1o"])
    >>> report.group, tuple(report.abs_errors.shape), report.passed(), report.max_error < 1e-12
    ('O(3)', (4, 1), True, True)
    """

    group: str
    dtype: torch.dtype
    elements: list[str]
    outputs: list[str]
    abs_errors: torch.Tensor
    rel_errors: torch.Tensor
    scales: torch.Tensor
    atol: float
    rtol: float
    matrices: torch.Tensor
    translations: torch.Tensor
    permutations: list | None = field(default=None)

    @property
    def max_error(self) -> float:
        """Largest absolute error over all samples and outputs."""
        return float(self.abs_errors.max()) if self.abs_errors.numel() else 0.0

    @property
    def max_relative_error(self) -> float:
        """Largest relative error over all samples and outputs."""
        return float(self.rel_errors.max()) if self.rel_errors.numel() else 0.0

    def failures(self, atol: float | None = None, rtol: float | None = None) -> torch.Tensor:
        """Boolean ``(num_samples, num_outputs)``: where ``abs_error > atol + rtol * scale``, or where the
        output is not finite (NaN or inf never pass)."""
        atol = self.atol if atol is None else atol
        rtol = self.rtol if rtol is None else rtol
        return ~(self.abs_errors <= atol + rtol * self.scales) | ~torch.isfinite(self.scales)

    def passed(self, atol: float | None = None, rtol: float | None = None) -> bool:
        """True when every error is within ``atol + rtol * scale``."""
        return not bool(self.failures(atol, rtol).any())

    def __str__(self) -> str:
        fails = self.failures()
        head = (
            f"EquivarianceReport({self.group}, {str(self.dtype).replace('torch.', '')}, "
            f"{len(self.elements)} samples, atol={self.atol:.0e}, rtol={self.rtol:.0e})"
        )
        width = max([len("element")] + [len(e) for e in self.elements])
        lines = [head]
        for j, name in enumerate(self.outputs):
            lines.append(f"  {name}")
            lines.append(f"    {'#':>2}  {'element':<{width}}  {'max abs err':>11}  {'rel err':>9}  {'scale':>9}")
            for i, element in enumerate(self.elements):
                flag = "  FAIL" if fails[i, j] else ""
                lines.append(
                    f"    {i:>2}  {element:<{width}}  {self.abs_errors[i, j].item():>11.2e}  "
                    f"{self.rel_errors[i, j].item():>9.2e}  {self.scales[i, j].item():>9.2e}{flag}"
                )
        verdict = "PASSED" if not fails.any() else f"FAILED ({int(fails.sum())} of {fails.numel()} exceed the tolerance)"
        lines.append(f"  max abs error {self.max_error:.2e}, max rel error {self.max_relative_error:.2e}: {verdict}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"EquivarianceReport(group={self.group!r}, samples={len(self.elements)}, outputs={len(self.outputs)}, "
            f"max_error={self.max_error:.2e}, max_relative_error={self.max_relative_error:.2e}, passed={self.passed()})"
        )


def _as_list(entries, name: str) -> list:
    if entries is None or isinstance(entries, (str, Irreps)):
        return [entries]
    if isinstance(entries, (list, tuple)):
        return list(entries)
    raise TypeError(f"{name}: expected a list with one entry per {name[:-4]}put, got {entries!r}")


def _parse_kind(entry, where: str):
    if entry is None or (isinstance(entry, str) and entry in _SPECIAL):
        return entry
    try:
        return Irreps(entry)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{where}: {entry!r} is not an irreps, 'cartesian_points', 'cartesian_vectors' or None ({err})"
        ) from None


def _act(x, kind, g: torch.Tensor, t: torch.Tensor, D_cache: dict, where: str):
    """Apply (g, t) to one tensor described by kind."""
    if kind is None:
        return x
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{where}: described as {kind!r} but is not a floating tensor ({type(x).__name__})")
    if kind in _SPECIAL:
        if x.shape[-1:] != (3,):
            raise ValueError(f"{where}: described as {kind!r}, expected shape (..., 3), got {tuple(x.shape)}")
        y = x @ g.to(x).T
        if kind == "cartesian_points":
            y = y + t.to(x)
        return y
    if isinstance(kind, CartesianTensor):  # (..., 3, ..., 3): every index rotates
        n = len(kind.indices)
        if x.shape[x.dim() - n:] != (3,) * n or x.dim() < n:
            raise ValueError(f"{where}: described as CartesianTensor({kind.formula!r}), expected shape "
                             f"(..., {', '.join(['3'] * n)}), got {tuple(x.shape)}")
        gx = g.to(x)
        for axis in range(x.dim() - n, x.dim()):
            x = torch.movedim(torch.movedim(x, axis, -1) @ gx.T, -1, axis)
        return x
    if x.dim() == 0 and kind.dim == 1:  # a 0-d scalar described as "0e" / "0o"
        return _act(x[None], kind, g, t, D_cache, where)[0]
    if x.shape[-1:] != (kind.dim,):
        raise ValueError(f"{where}: described as {kind} (dim {kind.dim}), but its last axis has size {x.shape[-1] if x.dim() else None}")
    key = (kind, x.dtype, x.device)
    if key not in D_cache:
        D_cache[key] = kind.D_from_matrix(g.to(torch.float64)).to(x)
    return x @ D_cache[key].T


def _call(fn, inputs, n_out: int, where: str) -> list:
    out = fn(*inputs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if len(outs) != n_out:
        raise ValueError(f"{where}: fn returned {len(outs)} output(s) but irreps_out describes {n_out}")
    return outs


def equivariance_error(
    fn: Callable,
    inputs: Sequence[Any],
    irreps_in,
    irreps_out,
    *,
    group: str = "O(3)",
    translations: bool = True,
    permutations: bool = False,
    node_inputs: Sequence[int] = (),
    node_outputs: Sequence[int] = (),
    index_inputs: Sequence[int] = (),
    num_samples: int = 4,
    generator: torch.Generator | None = None,
) -> EquivarianceReport:
    r"""Measure :math:`\max|f(g \cdot x) - g \cdot f(x)|` for random group elements.

    Parameters
    ----------
    fn : callable
        Called as ``fn(*inputs)``; returns a tensor or a tuple/list of tensors.
    inputs : sequence
        The inputs (tensors, or anything for entries described by ``None``).
    irreps_in, irreps_out : sequence
        One entry per input / output: an ``Irreps`` (or string), ``"cartesian_points"``,
        ``"cartesian_vectors"`` or ``None`` (see the module docstring for the actions).
    group : {"O(3)", "SO(3)"}
        With ``"O(3)"`` every odd-numbered sample is an improper rotation :math:`-R`.
    translations : bool
        Translate ``"cartesian_points"`` inputs and outputs.
    permutations : bool
        Permute nodes: ``node_inputs`` along axis 0, relabel ``index_inputs``, compare
        ``node_outputs`` permuted along axis 0.
    node_inputs, node_outputs, index_inputs : sequence of int
        Positions in ``inputs`` / outputs.
    num_samples : int
        Number of random group elements.
    generator : torch.Generator, optional
        For reproducible samples.

    Returns
    -------
    EquivarianceReport

    Examples
    --------
    Spherical harmonics of relative positions are translation invariant and O(3) equivariant:

    >>> from equiv.so3 import spherical_harmonics
    >>> pos = torch.randn(5, 3, dtype=torch.float64)
    >>> fn = lambda p: spherical_harmonics([0, 1, 2], p[1:] - p[0])
    >>> report = equivariance_error(fn, [pos], ["cartesian_points"], ["0e + 1o + 2e"])
    >>> report.max_error < 1e-12
    True

    A node-indexed message passing step, with an ``edge_index`` whose values are relabelled:

    >>> edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    >>> feats = torch.randn(4, 3, dtype=torch.float64)  # one vector per node
    >>> def step(x, v, e):
    ...     rel = x[e[1]] - x[e[0]]
    ...     out = torch.zeros_like(v).index_add_(0, e[1], rel * (v[e[0]] * rel).sum(-1, keepdim=True))
    ...     return out
    >>> r = equivariance_error(step, [torch.randn(4, 3, dtype=torch.float64), feats, edge_index],
    ...                        ["cartesian_points", "1o", None], ["1o"], permutations=True,
    ...                        node_inputs=[0, 1], index_inputs=[2], node_outputs=[0])
    >>> r.passed()
    True
    """
    if not callable(fn):
        raise TypeError(f"equivariance_error: fn must be callable, got {type(fn).__name__}")
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    kinds_in = [_parse_kind(e, f"irreps_in[{i}]") for i, e in enumerate(_as_list(irreps_in, "irreps_in"))]
    kinds_out = [_parse_kind(e, f"irreps_out[{i}]") for i, e in enumerate(_as_list(irreps_out, "irreps_out"))]
    if len(kinds_in) != len(inputs):
        raise ValueError(f"irreps_in: has {len(kinds_in)} entries but there are {len(inputs)} inputs (one entry per input)")
    group_name = _GROUPS.get(str(group).lower().replace(" ", ""))
    if group_name is None:
        raise ValueError(f"group: expected 'SO(3)' or 'O(3)', got {group!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples: expected an int >= 1, got {num_samples!r}")
    for name, idx, n in (("node_inputs", node_inputs, len(inputs)), ("index_inputs", index_inputs, len(inputs)), ("node_outputs", node_outputs, len(kinds_out))):
        bad = [i for i in idx if not (isinstance(i, int) and 0 <= i < n)]
        if bad:
            raise ValueError(f"{name}: indices {bad} out of range for {n} {'outputs' if name == 'node_outputs' else 'inputs'}")

    num_nodes = None
    if permutations:
        if not node_inputs:
            raise ValueError("permutations=True needs node_inputs: the inputs whose axis 0 indexes nodes")
        sizes = {int(inputs[i].shape[0]) for i in node_inputs}
        if len(sizes) != 1:
            raise ValueError(f"node_inputs: the inputs {list(node_inputs)} disagree on the number of nodes (axis 0 sizes {sorted(sizes)})")
        num_nodes = sizes.pop()
        for i in index_inputs:
            if not isinstance(inputs[i], torch.Tensor) or inputs[i].is_floating_point():
                raise TypeError(f"index_inputs: input {i} must be an integer tensor of node indices")

    floats = [x for x in inputs if isinstance(x, torch.Tensor) and x.is_floating_point()]
    dtype = floats[0].dtype if floats else torch.get_default_dtype()
    uses_points = "cartesian_points" in kinds_in or "cartesian_points" in kinds_out

    with torch.no_grad():
        rotations = random_rotation(num_samples, generator=generator, dtype=torch.float64)
        shifts = torch.randn(num_samples, 3, generator=generator, dtype=torch.float64)
        perms = [torch.randperm(num_nodes, generator=generator) for _ in range(num_samples)] if permutations else None
    improper = [group_name == "O(3)" and k % 2 == 1 for k in range(num_samples)]
    matrices = torch.stack([-R if inv else R for R, inv in zip(rotations, improper)]) if num_samples else rotations
    if not (translations and uses_points):
        shifts = torch.zeros_like(shifts)

    outputs_ref = _call(fn, inputs, len(kinds_out), "fn(*inputs)")
    abs_err = torch.zeros(num_samples, len(kinds_out), dtype=torch.float64)
    rel_err = torch.zeros_like(abs_err)
    scales = torch.zeros_like(abs_err)
    elements = []
    for k in range(num_samples):
        g, t = matrices[k], shifts[k]
        parts = ["rotation"] + (["inversion"] if improper[k] else []) + (["translation"] if translations and uses_points else [])
        parts += ["permutation"] if permutations else []
        elements.append("+".join(parts))
        D_cache: dict = {}
        with torch.no_grad():
            new_inputs = []
            for i, (x, kind) in enumerate(zip(inputs, kinds_in)):
                y = _act(x, kind, g, t, D_cache, f"inputs[{i}]")
                if permutations and i in node_inputs:
                    y = y[perms[k].to(y.device)]
                if permutations and i in index_inputs:
                    inv = torch.argsort(perms[k]).to(y.device)
                    y = inv[y]
                if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and y is not x:
                    y = y.detach().requires_grad_(x.requires_grad)
                new_inputs.append(y)
        outputs_g = _call(fn, new_inputs, len(kinds_out), "fn(*transformed inputs)")
        with torch.no_grad():
            for j, (y_ref, y_g, kind) in enumerate(zip(outputs_ref, outputs_g, kinds_out)):
                if not isinstance(y_ref, torch.Tensor):
                    raise TypeError(f"output {j} of fn is not a tensor ({type(y_ref).__name__})")
                expected = _act(y_ref.detach(), kind, g, t, D_cache, f"output {j}")
                if permutations and j in node_outputs:
                    expected = expected[perms[k].to(expected.device)]
                y_g = y_g.detach()
                if y_g.shape != expected.shape:
                    raise ValueError(f"output {j}: shape {tuple(y_g.shape)} after the transformation, {tuple(expected.shape)} before")
                diff = (y_g.double() - expected.double()).abs()
                a = diff.max().item() if diff.numel() else 0.0
                s = expected.double().abs().max().item() if expected.numel() else 0.0
                if math.isnan(a):
                    a = math.inf
                abs_err[k, j], scales[k, j] = a, s
                rel_err[k, j] = a / s if s > 0 else (0.0 if a == 0 else math.inf)

    tol = default_tolerance(dtype)
    return EquivarianceReport(
        group=group_name,
        dtype=dtype,
        elements=elements,
        outputs=[f"output {j} ({kind if kind is not None else 'invariant'})" for j, kind in enumerate(kinds_out)],
        abs_errors=abs_err,
        rel_errors=rel_err,
        scales=scales,
        atol=tol,
        rtol=tol,
        matrices=matrices,
        translations=shifts,
        permutations=perms,
    )


def assert_equivariant(
    fn: Callable,
    inputs: Sequence[Any],
    irreps_in,
    irreps_out,
    *,
    group: str = "O(3)",
    translations: bool = True,
    permutations: bool = False,
    node_inputs: Sequence[int] = (),
    node_outputs: Sequence[int] = (),
    index_inputs: Sequence[int] = (),
    num_samples: int = 4,
    generator: torch.Generator | None = None,
    atol: float | None = None,
    rtol: float | None = None,
) -> EquivarianceReport:
    r"""Assert :math:`f(g \cdot x) = g \cdot f(x)`; raise ``AssertionError`` showing the report otherwise.

    Same arguments as `equivariance_error`, plus ``atol`` / ``rtol`` (default: `default_tolerance`
    of the input dtype). Passes when
    :math:`\max|f(gx) - g f(x)| \le \mathrm{atol} + \mathrm{rtol}\,\max|g f(x)|` for every sample
    and output. Use float64 inputs in tests.

    Returns
    -------
    EquivarianceReport

    Examples
    --------
    >>> x = torch.randn(10, 3, dtype=torch.float64)
    >>> _ = assert_equivariant(lambda v: v.norm(dim=-1, keepdim=True), [x], ["1o"], ["0e"])
    >>> try:  # x -> its first component is not invariant
    ...     assert_equivariant(lambda v: v[:, :1], [x], ["1o"], ["0e"])
    ... except AssertionError as err:
    ...     print(str(err).splitlines()[-1].split(":")[-1].strip()[:6])
    FAILED
    """
    report = equivariance_error(
        fn,
        inputs,
        irreps_in,
        irreps_out,
        group=group,
        translations=translations,
        permutations=permutations,
        node_inputs=node_inputs,
        node_outputs=node_outputs,
        index_inputs=index_inputs,
        num_samples=num_samples,
        generator=generator,
    )
    if atol is not None:
        report.atol = float(atol)
    if rtol is not None:
        report.rtol = float(rtol)
    if not report.passed():
        raise AssertionError("fn is not equivariant within tolerance:\n" + str(report))
    return report
