r"""`Linear`: the equivariant linear map between direct sums of irreps (e3nn's ``o3.Linear``)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from equiv import so3

__all__ = ["Linear"]


class LinearInstruction(NamedTuple):
    """``i_in -> i_out`` (``i_in = -1``: a bias), weight shape and normalisation constant."""

    i_in: int
    i_out: int
    path_shape: tuple
    path_weight: float


def _irreps(x, name):
    try:
        return so3.Irreps(x)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"Linear: {name}: {exc}") from None


def _kronecker_pays(mul_in: int, mul_out: int, d: int) -> bool:
    """Is ``x @ (W kron I_d)`` (``d`` times the multiply-adds of the per-component product, but no layout
    copies) the faster route for one path? Measured on CPU, batch 10000, one thread: 8x -> 4x (d = 5)
    0.16 against 1.56 ms; 16x -> 32x (d = 3) 0.51 against 3.09; 32x -> 32x (d = 3) 0.94 against 1.47;
    64x -> 64x (d = 3) 4.1 against 3.4 (copies win). The copies cost about 15 multiply-adds per value."""
    return (d - 1) * mul_in * mul_out <= 15 * d * (mul_in + mul_out)


class Linear(torch.nn.Module):
    r"""Equivariant linear layer: mixes channels of equal irreps, never across irrep types.

    .. math::

        y^{(k)}_{w} = \sum_{i \to k} \frac{1}{\sqrt{n_k}} \sum_{u} W^{(ik)}_{uw}\, x^{(i)}_{u}
        \; \big(+\, b^{(k)}_w \text{ for scalar outputs}\big),

    where :math:`i \to k` runs over instructions (default: every input irrep equal to the output
    irrep :math:`k`) and :math:`n_k` is the fan-in, the summed input multiplicities of the
    instructions into :math:`k` (``path_normalization="element"``) or :math:`n_k =
    \text{mul}_i \times \#\{i \to k\}` (``"path"``). By Schur's lemma this is the most general
    equivariant linear map. Weights (flat, instruction by instruction, each ``(mul_in, mul_out)``
    row-major), biases and normalisation are those of ``e3nn.o3.Linear`` 0.4.4, so the same
    weights give the same output.

    Parameters
    ----------
    irreps_in, irreps_out : Irreps or str
    internal_weights : bool, optional
        Hold weights as parameters (default True unless ``shared_weights=False``).
    shared_weights : bool, optional
        One set of weights for the batch (default True); False: ``weight`` has a batch shape.
    instructions : list of (int, int), optional
        ``(i_in, i_out)`` pairs with equal irreps (default: all of them).
    biases : bool or list of bool
        Bias on scalar (``0e``) outputs: ``True`` for all of them, or one flag per output irrep.
    path_normalization : {"element", "path"}

    Shapes
    ------
    ``(..., irreps_in.dim) -> (..., irreps_out.dim)``.

    Examples
    --------
    >>> import torch
    >>> from equiv.nn import Linear
    >>> lin = Linear("4x0e + 16x1o", "8x0e + 8x1o")
    >>> lin.weight_numel
    160
    >>> lin(torch.randn(10, 52)).shape
    torch.Size([10, 32])

    References
    ----------
    M. Geiger, T. Smidt, "e3nn: Euclidean neural networks", arXiv:2207.09453 (2022).
    """

    def __init__(
        self,
        irreps_in,
        irreps_out,
        *,
        internal_weights: bool | None = None,
        shared_weights: bool | None = None,
        instructions=None,
        biases=False,
        path_normalization: str = "element",
    ):
        super().__init__()
        if path_normalization not in ("element", "path"):
            raise ValueError(f"Linear: path_normalization must be 'element' or 'path', got {path_normalization!r}")
        self.irreps_in = irreps_in = _irreps(irreps_in, "irreps_in")
        self.irreps_out = irreps_out = _irreps(irreps_out, "irreps_out")
        if instructions is None:
            instructions = [
                (i, o) for i, (_, ir_i) in enumerate(irreps_in) for o, (_, ir_o) in enumerate(irreps_out) if ir_i == ir_o
            ]
        pairs = []
        for k, ins in enumerate(instructions):
            if not isinstance(ins, (tuple, list)) or len(ins) != 2:
                raise ValueError(f"Linear: instruction {k} = {ins!r} must be a pair (i_in, i_out)")
            i, o = ins
            if not (isinstance(i, int) and 0 <= i < len(irreps_in)):
                raise ValueError(f"Linear: instruction {k}: i_in={i!r} is not an index of irreps_in {irreps_in}")
            if not (isinstance(o, int) and 0 <= o < len(irreps_out)):
                raise ValueError(f"Linear: instruction {k}: i_out={o!r} is not an index of irreps_out {irreps_out}")
            if irreps_in[i].ir != irreps_out[o].ir:
                raise ValueError(
                    f"Linear: instruction {k} = {ins!r} connects {irreps_in[i].ir} to {irreps_out[o].ir}; irreps must be equal"
                )
            pairs.append((i, o))

        def fan_in(i, o):
            x = sum(irreps_in[a if path_normalization == "element" else i].mul for a, b in pairs if b == o)
            return 1.0 if x == 0 else x

        self.instructions = [
            LinearInstruction(i, o, (irreps_in[i].mul, irreps_out[o].mul), fan_in(i, o) ** -0.5) for i, o in pairs
        ]
        if isinstance(biases, bool):
            biases = [biases and ir.l == 0 and ir.p == 1 for _, ir in irreps_out]
        biases = list(biases)
        if len(biases) != len(irreps_out):
            raise ValueError(f"Linear: biases has {len(biases)} entries, expected {len(irreps_out)} (one per output irrep)")
        for b, (_, ir) in zip(biases, irreps_out):
            if b and not (ir.l == 0 and ir.p == 1):
                raise ValueError(f"Linear: a bias on {ir} would break equivariance; only 0e outputs can have one")
        self.instructions += [
            LinearInstruction(-1, o, (mul_ir.dim,), 1.0) for o, (b, mul_ir) in enumerate(zip(biases, irreps_out)) if b
        ]

        if shared_weights is False and internal_weights is None:
            internal_weights = False
        if shared_weights is None:
            shared_weights = True
        if internal_weights is None:
            internal_weights = True
        if internal_weights and not shared_weights:
            raise ValueError("Linear: internal_weights=True requires shared_weights=True")
        self.shared_weights, self.internal_weights = shared_weights, internal_weights

        self.weight_numel = sum(math.prod(i.path_shape) for i in self.instructions if i.i_in >= 0)
        self.bias_numel = sum(math.prod(i.path_shape) for i in self.instructions if i.i_in < 0)
        if internal_weights and self.weight_numel > 0:
            self.weight = torch.nn.Parameter(torch.randn(self.weight_numel))
        else:
            self.register_buffer("weight", torch.Tensor(), persistent=False)
        if internal_weights and self.bias_numel > 0:
            self.bias = torch.nn.Parameter(torch.zeros(self.bias_numel))
        else:
            self.register_buffer("bias", torch.Tensor(), persistent=False)
        mask = [
            torch.ones(mul_ir.dim) if any(i.i_out == o and 0 not in i.path_shape for i in self.instructions)
            else torch.zeros(mul_ir.dim)
            for o, mul_ir in enumerate(irreps_out)
        ]
        self.register_buffer("output_mask", torch.cat(mask) if mask else torch.ones(0))
        self._in_slices, self._out_slices = irreps_in.slices(), irreps_out.slices()
        self._eyes: dict = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.irreps_in} -> {self.irreps_out} | {self.weight_numel} weights)"

    def weight_views(self, weight: torch.Tensor | None = None, yield_instruction: bool = False):
        """Iterate over ``(..., mul_in, mul_out)`` views of the weights, one per (non-bias) instruction."""
        weight = self.weight if weight is None else weight
        off = 0
        for k, ins in enumerate(self.instructions):
            if ins.i_in < 0:
                continue
            size = math.prod(ins.path_shape)
            v = weight.narrow(-1, off, size).view(weight.shape[:-1] + ins.path_shape)
            off += size
            yield (k, ins, v) if yield_instruction else v

    def _eye(self, d, dtype, device):
        key = (d, dtype, device)
        if key not in self._eyes:
            self._eyes[key] = torch.eye(d, dtype=dtype, device=device)
        return self._eyes[key]

    def forward(self, features: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None):
        """Apply the layer; ``weight``/``bias`` are required when ``internal_weights=False``."""
        if not isinstance(features, torch.Tensor) or features.shape[-1:] != (self.irreps_in.dim,):
            raise ValueError(
                f"Linear: features must have last dimension irreps_in.dim={self.irreps_in.dim}, "
                f"got shape {tuple(getattr(features, 'shape', ()))}"
            )
        if not features.dtype.is_floating_point:
            raise ValueError(f"Linear: features must be floating point, got {features.dtype}")
        if weight is None:
            if self.weight_numel > 0 and not self.internal_weights:
                raise ValueError("Linear: weight is required (internal_weights=False)")
            weight = self.weight
        if bias is None:
            if self.bias_numel > 0 and not self.internal_weights:
                raise ValueError("Linear: bias is required (internal_weights=False)")
            bias = self.bias
        if self.weight_numel and weight.shape[-1] != self.weight_numel:
            raise ValueError(f"Linear: weight has shape {tuple(weight.shape)}, expected (..., {self.weight_numel})")
        if self.weight_numel and weight.dtype != features.dtype:
            raise ValueError(f"Linear: features are {features.dtype} but the weights are {weight.dtype} "
                             "(convert the module with .to(dtype))")
        batch = features.shape[:-1]
        n = math.prod(batch)
        x = features.reshape(n, features.shape[-1])  # explicit width: n may be 0
        shared = self.shared_weights
        if self.weight_numel:
            weight = weight.reshape(-1) if shared else weight.broadcast_to(batch + weight.shape[-1:]).reshape(n, weight.shape[-1])
        if self.bias_numel:
            bias = bias.reshape(1, -1) if shared else bias.broadcast_to(batch + bias.shape[-1:]).reshape(n, bias.shape[-1])
        parts: dict[int, list] = {}
        w_off = b_off = 0
        for ins in self.instructions:
            mul_out, d = self.irreps_out[ins.i_out].mul, self.irreps_out[ins.i_out].ir.dim
            if ins.i_in < 0:
                size = mul_out * d
                parts.setdefault(ins.i_out, []).append(bias[:, b_off : b_off + size].expand(n, size))
                b_off += size
                continue
            mul_in = self.irreps_in[ins.i_in].mul
            size = mul_in * mul_out
            if size == 0 or d == 0:
                continue
            if shared and (d == 1 or _kronecker_pays(mul_in, mul_out, d)):
                # one matrix product on the strided slice of x, no layout copies: for scalars W itself,
                # for small multiplicities W (x) I_d (d times the multiply-adds, cheaper than two copies)
                w = weight[w_off : w_off + size].reshape(mul_in, mul_out) * ins.path_weight
                w_off += size
                if d > 1:
                    w = torch.kron(w, self._eye(d, w.dtype, w.device))
                parts.setdefault(ins.i_out, []).append(x[:, self._in_slices[ins.i_in]] @ w)
                continue
            xi = x[:, self._in_slices[ins.i_in]].reshape(n, mul_in, d)
            if shared:
                w = weight[w_off : w_off + size].reshape(mul_in, mul_out) * ins.path_weight
                y = torch.matmul(xi.transpose(1, 2), w).transpose(1, 2)  # (n, mul_out, d)
            else:
                w = weight[:, w_off : w_off + size].reshape(n, mul_in, mul_out) * ins.path_weight
                y = torch.bmm(w.transpose(1, 2), xi)
            w_off += size
            parts.setdefault(ins.i_out, []).append(y.reshape(n, mul_out * d))
        outs = []
        for o, mul_ir in enumerate(self.irreps_out):
            if mul_ir.dim == 0:
                continue
            ts = parts.get(o)
            if not ts:
                outs.append(x.new_zeros(n, mul_ir.dim))
                continue
            acc = ts[0]
            for t in ts[1:]:
                acc = acc + t
            outs.append(acc)
        out = torch.cat(outs, 1) if len(outs) > 1 else (outs[0] if outs else x.new_zeros(n, 0))
        return out.reshape(batch + (self.irreps_out.dim,))
