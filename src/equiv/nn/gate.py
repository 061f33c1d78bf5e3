r"""Nonlinearities for features of any degree: the gated nonlinearity (`Gate`) and the norm
nonlinearity (`NormActivation`), with e3nn's semantics and layouts.

A pointwise function of a vector's components is not equivariant; two constructions are. A **gate**
multiplies each irrep by a learned scalar that went through a nonlinearity (Weiler et al., *3D
Steerable CNNs*, NeurIPS 2018; the nonlinearity of NequIP, SEGNN, Allegro). A **norm nonlinearity**
rescales each irrep by a function of its own (invariant) norm (Worrall et al., *Harmonic Networks*,
CVPR 2017).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from equiv.so3 import Irrep, Irreps

from .activation import Activation, _irreps

__all__ = ["Gate", "NormActivation", "Norm"]


def _component_index(irreps: Irreps) -> torch.Tensor:
    """For each component of ``irreps`` the index of its irrep copy (``0 .. num_irreps - 1``)."""
    idx, k = [], 0
    for mul, ir in irreps:
        for _ in range(mul):
            idx.extend([k] * ir.dim)
            k += 1
    return torch.tensor(idx, dtype=torch.long)


def _blocks(irreps: Irreps) -> tuple[tuple[int, int], ...]:
    """``(multiplicity, 2l+1)`` of each block of ``irreps``, consecutive blocks of one dimension merged."""
    out: list[list[int]] = []
    for mul, ir in irreps:
        if mul == 0:
            continue
        if out and out[-1][1] == ir.dim:
            out[-1][0] += mul
        else:
            out.append([mul, ir.dim])
    return tuple((m, d) for m, d in out)


# One value per irrep copy <-> one per component. Eager code gathers / scatters with the component
# index (one kernel each, the fastest on a CPU). Under torch.compile the same maps are broadcasts and
# sums block by block instead: Inductor in torch 2.13 miscompiles the index_add of a gather's backward
# inside some fused CPU kernels (an atomic add with a wrong row stride, writing out of bounds; seen in
# SEGNN's compiled backward, which aborted with heap corruption).


def _per_component(values: torch.Tensor, index: torch.Tensor, blocks: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """``(..., num_irreps)`` → ``(..., dim)``: each irrep copy's value repeated over its components."""
    if not torch.compiler.is_compiling() or not blocks:
        return values.index_select(-1, index)
    parts, k = [], 0
    for mul, d in blocks:
        v = values[..., k:k + mul]
        parts.append(v if d == 1 else v.unsqueeze(-1).expand(*v.shape, d).flatten(-2))
        k += mul
    return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def _sum_components(x: torch.Tensor, index: torch.Tensor, blocks: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """``(..., dim)`` → ``(..., num_irreps)``: the sum over the components of each irrep copy."""
    num = sum(m for m, _ in blocks)
    if not torch.compiler.is_compiling() or not blocks:
        return x.new_zeros(x.shape[:-1] + (num,)).index_add_(-1, index, x)
    parts, c = [], 0
    for mul, d in blocks:
        v = x[..., c:c + mul * d]
        parts.append(v if d == 1 else v.unflatten(-1, (mul, d)).sum(-1))
        c += mul * d
    return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def _as_list(acts, n: int, name: str) -> list:
    if acts is None or callable(acts):
        return [acts] * n
    acts = list(acts)
    if len(acts) != n:
        raise ValueError(f"Gate: {len(acts)} {name} for {n} blocks")
    return acts


class Gate(nn.Module):
    r"""Gated nonlinearity (e3nn's ``Gate``): activations on scalars, and every higher-degree irrep
    multiplied by an activated scalar gate of its own.

    The input holds ``[scalars, gates, gated]``:

    .. math::

        \bigl[s,\ g,\ v\bigr] \;\mapsto\; \bigl[\,\sigma_s(s),\ \sigma_g(g_k)\, v_k\ (k = 1..K)\,\bigr],

    with one gate :math:`g_k` per irrep copy :math:`v_k` of ``irreps_gated`` (so
    ``irreps_gates.num_irreps == irreps_gated.num_irreps``). Each activation goes through
    `Activation`, so activations of pseudo-scalars must be odd or even, and (``normalize``, default)
    are scaled to unit second moment. A gate of parity :math:`p` multiplies the parity of the irrep it
    gates by :math:`p` (after its activation: an even activation of a ``0o`` gate gives ``0e``).

    Layout, as e3nn's ``Gate``: ``irreps_in`` is the concatenation ``scalars + gates + gated`` sorted
    by irrep (degree, then ``o`` before ``e``; stable) and simplified. With even scalars and gates and
    gated irreps in increasing degree (the usual case, and `Gate.for_irreps`) that is the plain
    concatenation; with pseudo-scalars the ``0o`` blocks come first.

    Parameters
    ----------
    irreps_scalars, irreps_gates, irreps_gated : Irreps or str
        Scalars (``l = 0``), gates (``l = 0``), gated irreps (any; usually ``l > 0``).
    act_scalars, act_gates : callable or list of callables
        One activation for all blocks, or one per block of ``irreps_scalars`` / ``irreps_gates``.
    normalize : bool
        Scale the activations to unit second moment (`equiv.nn.moment_scale`; default True).

    Attributes: ``irreps_in`` (``scalars + gates + gated``, simplified) and ``irreps_out``.
    Shapes: ``(..., irreps_in.dim)`` → ``(..., irreps_out.dim)``.

    See `Gate.for_irreps` to build the gate that produces given output irreps.

    Examples
    --------
    >>> import torch
    >>> from torch.nn.functional import silu
    >>> gate = Gate("8x0e", silu, "4x0e + 2x0e", torch.sigmoid, "4x1o + 2x2e")
    >>> gate.irreps_in, gate.irreps_out
    (14x0e+4x1o+2x2e, 8x0e+4x1o+2x2e)
    >>> gate(torch.randn(10, gate.irreps_in.dim)).shape
    torch.Size([10, 30])
    """

    def __init__(self, irreps_scalars, act_scalars, irreps_gates, act_gates, irreps_gated,
                 normalize: bool = True) -> None:
        super().__init__()
        scalars = _irreps(irreps_scalars, "Gate")
        gates = _irreps(irreps_gates, "Gate")
        gated = _irreps(irreps_gated, "Gate")
        for name, irr in (("irreps_scalars", scalars), ("irreps_gates", gates)):
            if any(ir.l != 0 for _, ir in irr):
                raise ValueError(f"Gate: {name} must be scalars (l = 0), got {irr}")
        if gates.num_irreps != gated.num_irreps:
            raise ValueError(f"Gate: {gates.num_irreps} gates ({gates}) for {gated.num_irreps} gated irreps ({gated}); "
                             "one gate per gated irrep copy")
        self.act_scalars = Activation(scalars, _as_list(act_scalars, len(scalars), "scalar activations"), normalize)
        self.act_gates = Activation(gates, _as_list(act_gates, len(gates), "gate activations"), normalize)
        self.irreps_scalars, self.irreps_gates, self.irreps_gated = scalars, gates, gated
        # the input is the concatenation sorted by irrep (stably), as e3nn's Gate reads it
        cat = scalars + gates + gated
        order = cat.sort()
        self.irreps_in = order.irreps.simplify()
        starts = [0]
        for mul, ir in order.irreps:
            starts.append(starts[-1] + mul * ir.dim)
        gather = [starts[order.p[i]] + k for i, (mul, ir) in enumerate(cat) for k in range(mul * ir.dim)]
        identity = gather == list(range(cat.dim))
        self.register_buffer("input_index", None if identity else torch.tensor(gather, dtype=torch.long),
                             persistent=False)
        # output parity of each gated copy: its own times its gate's (after the gate's activation)
        gate_parities = [ir.p for mul, ir in self.act_gates.irreps_out for _ in range(mul)]
        out_gated, k = [], 0
        for mul, ir in gated:
            ps = gate_parities[k:k + mul]
            k += mul
            start = 0  # split the block where the gates' parities change
            for i in range(1, mul + 1):
                if i == mul or ps[i] != ps[start]:
                    out_gated.append((i - start, Irrep(ir.l, ir.p * ps[start])))
                    start = i
        self.irreps_out = (self.act_scalars.irreps_out + Irreps(out_gated)).simplify()
        self.normalize = bool(normalize)
        self._ns, self._ng = scalars.dim, gates.dim
        self.register_buffer("gate_index", _component_index(gated), persistent=False)
        self._gated_blocks = _blocks(gated)

    @classmethod
    def for_irreps(cls, irreps_out, act_scalars: Callable | None = None, act_pseudo: Callable | None = None,
                   act_gates: Callable | None = None, normalize: bool = True) -> "Gate":
        r"""The gate whose output is ``irreps_out``: its scalar blocks are activated (``act_scalars``,
        default SiLU, on ``0e``; ``act_pseudo``, default tanh, on ``0o``) and each other irrep copy is
        gated by one ``0e`` gate (``act_gates``, default sigmoid). The input to feed it (e.g. the
        output irreps of the preceding linear layer or tensor product) is ``gate.irreps_in``.

        >>> gate = Gate.for_irreps("16x0e + 8x1o + 4x2e")
        >>> gate.irreps_in
        28x0e+8x1o+4x2e
        """
        irreps_out = _irreps(irreps_out, "Gate.for_irreps")
        act_scalars = act_scalars or nn.functional.silu
        act_pseudo = act_pseudo or torch.tanh
        act_gates = act_gates or torch.sigmoid
        scalars = Irreps([(m, ir) for m, ir in irreps_out if ir.l == 0])
        gated = Irreps([(m, ir) for m, ir in irreps_out if ir.l > 0])
        if Irreps(list(scalars) + list(gated)) != irreps_out:
            raise ValueError(f"Gate.for_irreps: put the scalars of {irreps_out} first (e.g. irreps.sort().irreps)")
        acts = [act_scalars if ir.p == 1 else act_pseudo for _, ir in scalars]
        gates = Irreps(f"{gated.num_irreps}x0e") if gated.num_irreps else Irreps("")
        return cls(scalars, acts, gates, [act_gates] * len(gates), gated, normalize)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.irreps_in.dim:
            raise ValueError(f"Gate: input last dimension {x.shape[-1]} != irreps_in.dim={self.irreps_in.dim} "
                             f"({self.irreps_in})")
        if self.input_index is not None:  # sorted layout -> [scalars, gates, gated]
            x = x.index_select(-1, self.input_index)
        ns, ng = self._ns, self._ng
        s = self.act_scalars(x[..., :ns])
        if not ng:
            return s
        g = self.act_gates(x[..., ns:ns + ng])
        v = x[..., ns + ng:] * _per_component(g, self.gate_index, self._gated_blocks)
        return torch.cat([s, v], -1)

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}"


class NormActivation(nn.Module):
    r"""Norm nonlinearity (e3nn's ``NormActivation``): each irrep copy is rescaled by a function of its
    norm,

    .. math::

        v \mapsto \frac{\sigma(\lVert v\rVert + b)}{\lVert v\rVert}\, v \quad (\texttt{normalize=True}),
        \qquad v \mapsto \sigma(\lVert v\rVert + b)\, v \quad (\texttt{normalize=False}),

    with :math:`\lVert v\rVert = (\sum_m v_m^2)^{1/2}` over the :math:`2l+1` components and :math:`b` a
    learnable bias per irrep copy (``bias=True``; zero-initialised). The norm is invariant, so the map
    is equivariant for every :math:`l` and parity (scalars included: :math:`\lVert s\rVert = |s|`).

    Parameters
    ----------
    irreps_in : Irreps or str
    scalar_nonlinearity : callable
        :math:`\sigma` (not rescaled).
    normalize : bool
        Divide by the norm (default True): the output keeps the input's direction and has norm
        :math:`\sigma(\lVert v\rVert + b)`.
    epsilon : float or None
        With ``normalize``, norms below ``epsilon`` (default 1e-8, as e3nn) are raised to ``epsilon``
        (squared norms clamped at :math:`\epsilon^2`): no division by zero, finite gradients at
        :math:`v = 0`. Not used (and refused) without ``normalize``.
    bias : bool
        Learnable bias :math:`b` (default False).

    Shapes: ``(..., irreps_in.dim)`` → ``(..., irreps_in.dim)`` (``irreps_out = irreps_in``).

    Examples
    --------
    >>> import torch
    >>> act = NormActivation("4x0e + 2x1o + 1x2e", torch.sigmoid)
    >>> act(torch.randn(3, act.irreps_in.dim)).shape
    torch.Size([3, 15])
    """

    def __init__(self, irreps_in, scalar_nonlinearity: Callable, normalize: bool = True,
                 epsilon: float | None = None, bias: bool = False) -> None:
        super().__init__()
        self.irreps_in = self.irreps_out = _irreps(irreps_in, "NormActivation")
        if not callable(scalar_nonlinearity):
            raise ValueError(f"NormActivation: scalar_nonlinearity must be callable, got {scalar_nonlinearity!r}")
        if epsilon is None and normalize:
            epsilon = 1e-8  # e3nn's default: no division by zero
        elif epsilon is not None and not normalize:
            raise ValueError("NormActivation: epsilon is for normalize=True (the norm divides); got normalize=False")
        if epsilon is not None and not epsilon > 0:
            raise ValueError(f"NormActivation: epsilon must be positive, got {epsilon!r}")
        self.scalar_nonlinearity = scalar_nonlinearity
        self.normalize, self.epsilon = bool(normalize), epsilon
        self.biases = nn.Parameter(torch.zeros(self.irreps_in.num_irreps)) if bias else None
        self.squared_norm = Norm(self.irreps_in, squared=True)
        self.register_buffer("index", _component_index(self.irreps_in), persistent=False)
        self._blocks = _blocks(self.irreps_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.irreps_in.dim:
            raise ValueError(f"NormActivation: input last dimension {x.shape[-1]} != irreps_in.dim={self.irreps_in.dim}")
        sq = self.squared_norm(x)
        if self.epsilon is not None:
            sq = sq.clamp(min=self.epsilon**2)
        norms = sq.sqrt()
        arg = norms + self.biases.to(x.dtype) if self.biases is not None else norms
        scale = self.scalar_nonlinearity(arg)
        if self.normalize:
            scale = scale / norms
        return x * _per_component(scale, self.index, self._blocks)

    def extra_repr(self) -> str:
        name = getattr(self.scalar_nonlinearity, "__name__", type(self.scalar_nonlinearity).__name__)
        return (f"{self.irreps_in}, {name}, normalize={self.normalize}, epsilon={self.epsilon}, "
                f"bias={self.biases is not None}")


class Norm(nn.Module):
    r"""The norm of every irrep copy (e3nn's ``o3.Norm``): ``(..., irreps_in.dim)`` →
    ``(..., irreps_in.num_irreps)``, :math:`\lVert v\rVert = (\sum_m v_m^2)^{1/2}` (``squared``: without
    the root), invariant under O(3) (``irreps_out`` is ``num_irreps x 0e``).

    >>> import torch
    >>> Norm("2x1o")(torch.tensor([[3.0, 4.0, 0.0, 0.0, 0.0, 2.0]]))
    tensor([[5., 2.]])
    """

    def __init__(self, irreps_in, squared: bool = False) -> None:
        super().__init__()
        self.irreps_in = _irreps(irreps_in, "Norm")
        self.irreps_out = Irreps(f"{self.irreps_in.num_irreps}x0e")
        self.squared = bool(squared)
        self.register_buffer("index", _component_index(self.irreps_in), persistent=False)
        self._blocks = _blocks(self.irreps_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.irreps_in.dim:
            raise ValueError(f"Norm: input last dimension {x.shape[-1]} != irreps_in.dim={self.irreps_in.dim}")
        sq = _sum_components(x * x, self.index, self._blocks)
        return sq if self.squared else sq.sqrt()

    def extra_repr(self) -> str:
        return f"{self.irreps_in}, squared={self.squared}"
