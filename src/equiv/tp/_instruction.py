r"""Instructions of a tensor product and their normalisation (e3nn 0.4.4 semantics).

An instruction ``(i_in1, i_in2, i_out, mode, has_weight[, path_weight])`` sends
``irreps_in1[i_in1]`` :math:`\otimes` ``irreps_in2[i_in2]`` into ``irreps_out[i_out]``; ``mode`` says
how the multiplicities :math:`u` (input 1), :math:`v` (input 2) and :math:`w` (output) are
connected (see `TensorProduct`). Each instruction gets a normalisation constant

.. math::

    \alpha = \sqrt{\frac{a_{\text{irrep}}\; \sigma^2_{\text{out}}\; \text{path\_weight}}{x}},
    \qquad a_{\text{irrep}} = \begin{cases} 2l_{\text{out}}+1 & \text{"component"} \\
    (2l_1+1)(2l_2+1) & \text{"norm"} \\ 1 & \text{"none"} \end{cases}

with :math:`x = \sum_{\text{instructions } j \to \text{same output}} \sigma^2_{1,j}\sigma^2_{2,j}\, n_j`
("element", :math:`n_j` the number of input pairs summed into one output element),
:math:`x = \sigma^2_1 \sigma^2_2\, n \cdot (\text{number of paths into the output})` ("path"), or
:math:`x = 1` ("none") — exactly the rules of ``e3nn.o3.TensorProduct`` (Geiger & Smidt, "e3nn:
Euclidean neural networks", arXiv:2207.09453), so that with the same weights the outputs agree.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from equiv import so3

__all__ = ["Instruction", "MODES", "build_instructions"]

MODES = ("uvw", "uvu", "uvv", "uuw", "uuu", "uvuv", "uvu<v", "u<vw")


class Instruction(NamedTuple):
    """A normalised instruction (same fields as ``e3nn.o3.TensorProduct.instructions``).

    Examples
    --------
    >>> from equiv.tp import FullyConnectedTensorProduct
    >>> tp = FullyConnectedTensorProduct("2x0e + 1x1o", "1x0e + 1x1o", "3x0e + 2x1o")
    >>> ins = tp.instructions[0]  # 2x0e (x) 1x0e -> 3x0e
    >>> ins.i_in1, ins.i_in2, ins.i_out, ins.connection_mode, ins.has_weight, ins.path_shape
    (0, 0, 0, 'uvw', True, (2, 1, 3))
    >>> round(ins.path_weight**2, 6)  # "element": 1 / (2*1 + 1*1) input pairs into 0e
    0.333333
    """

    i_in1: int
    i_in2: int
    i_out: int
    connection_mode: str
    has_weight: bool
    path_weight: float  # the normalisation constant alpha (includes the user's path weight)
    path_shape: tuple


def _path_shape(mode: str, m1: int, m2: int, mo: int) -> tuple:
    return {
        "uvw": (m1, m2, mo),
        "uvu": (m1, m2),
        "uvv": (m1, m2),
        "uuw": (m1, mo),
        "uuu": (m1,),
        "uvuv": (m1, m2),
        "uvu<v": (m1 * (m2 - 1) // 2,),
        "u<vw": (m1 * (m2 - 1) // 2, mo),
    }[mode]


def _num_elements(mode: str, m1: int, m2: int) -> int:
    return {
        "uvw": m1 * m2,
        "uvu": m2,
        "uvv": m1,
        "uuw": m1,
        "uuu": 1,
        "uvuv": 1,
        "uvu<v": 1,
        "u<vw": m1 * (m2 - 1) // 2,
    }[mode]


def _variances(name: str, var, irreps) -> list[float]:
    if var is None:
        return [1.0] * len(irreps)
    var = [float(v) for v in var]
    if len(var) != len(irreps):
        raise ValueError(f"TensorProduct: {name} has {len(var)} entries, expected one per irrep of {irreps} ({len(irreps)})")
    return var


def build_instructions(
    irreps_in1,
    irreps_in2,
    irreps_out,
    instructions,
    in1_var=None,
    in2_var=None,
    out_var=None,
    irrep_normalization: str = "component",
    path_normalization: str = "element",
) -> list[Instruction]:
    """Validate user instructions and attach e3nn's normalisation constants (see module docstring)."""
    if irrep_normalization not in ("component", "norm", "none"):
        raise ValueError(
            f"TensorProduct: irrep_normalization must be 'component', 'norm' or 'none', got {irrep_normalization!r}"
        )
    if path_normalization not in ("element", "path", "none"):
        raise ValueError(
            f"TensorProduct: path_normalization must be 'element', 'path' or 'none', got {path_normalization!r}"
        )
    if isinstance(instructions, (str, bytes)) or not hasattr(instructions, "__iter__"):
        raise TypeError(f"TensorProduct: instructions must be a list of tuples, got {instructions!r}")
    raw = []
    for k, ins in enumerate(instructions):
        if not isinstance(ins, (tuple, list)) or len(ins) not in (5, 6):
            raise ValueError(
                f"TensorProduct: instruction {k} = {ins!r} must be (i_in1, i_in2, i_out, mode, has_weight[, path_weight])"
            )
        i1, i2, io, mode, has_weight = ins[:5]
        path_weight = float(ins[5]) if len(ins) == 6 else 1.0
        if not path_weight >= 0:
            raise ValueError(f"TensorProduct: instruction {k} = {ins!r}: path_weight must be >= 0 (it enters a square root)")
        for name, i, irreps in (("i_in1", i1, irreps_in1), ("i_in2", i2, irreps_in2), ("i_out", io, irreps_out)):
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(irreps):
                raise ValueError(
                    f"TensorProduct: instruction {k} = {ins!r}: {name}={i!r} is not an index of {irreps} (0..{len(irreps) - 1})"
                )
        if mode not in MODES:
            raise ValueError(f"TensorProduct: instruction {k} = {ins!r}: mode {mode!r} is not one of {MODES}")
        (m1, ir1), (m2, ir2), (mo, iro) = irreps_in1[i1], irreps_in2[i2], irreps_out[io]
        if ir1.p * ir2.p != iro.p or not abs(ir1.l - ir2.l) <= iro.l <= ir1.l + ir2.l:
            raise ValueError(
                f"TensorProduct: instruction {k} = {ins!r}: {ir1} x {ir2} cannot produce {iro} "
                f"(needs |l1-l2| <= l_out <= l1+l2 and p1*p2 = p_out)"
            )
        required = {
            "uvu": (m1 == mo, f"mul_in1 ({m1}) == mul_out ({mo})"),
            "uvv": (m2 == mo, f"mul_in2 ({m2}) == mul_out ({mo})"),
            "uuw": (m1 == m2, f"mul_in1 ({m1}) == mul_in2 ({m2})"),
            "uuu": (m1 == m2 == mo, f"mul_in1 ({m1}) == mul_in2 ({m2}) == mul_out ({mo})"),
            "uvuv": (m1 * m2 == mo, f"mul_in1 * mul_in2 ({m1 * m2}) == mul_out ({mo})"),
            "uvu<v": (m1 == m2 and m1 * (m1 - 1) // 2 == mo, f"mul_in1 == mul_in2 and mul_out == mul_in1*(mul_in1-1)/2 (got {m1}, {m2}, {mo})"),
            "u<vw": (m1 == m2, f"mul_in1 ({m1}) == mul_in2 ({m2})"),
        }.get(mode, (True, ""))
        if not required[0]:
            raise ValueError(f"TensorProduct: instruction {k} = {ins!r}: mode {mode!r} needs {required[1]}")
        if mode in ("uvw", "u<vw") and not has_weight:
            raise ValueError(f"TensorProduct: instruction {k} = {ins!r}: mode {mode!r} needs has_weight=True")
        if mode == "uuw" and not has_weight and mo != 1:
            raise ValueError(f"TensorProduct: instruction {k} = {ins!r}: unweighted 'uuw' needs mul_out == 1, got {mo}")
        raw.append((i1, i2, io, mode, bool(has_weight), path_weight, _path_shape(mode, m1, m2, mo)))

    v1 = _variances("in1_var", in1_var, irreps_in1)
    v2 = _variances("in2_var", in2_var, irreps_in2)
    vo = _variances("out_var", out_var, irreps_out)

    def n_el(ins):
        return _num_elements(ins[3], irreps_in1[ins[0]].mul, irreps_in2[ins[1]].mul)

    out = []
    for ins in raw:
        i1, i2, io, mode, has_weight, path_weight, shape = ins
        ir1, ir2, iro = irreps_in1[i1].ir, irreps_in2[i2].ir, irreps_out[io].ir
        alpha = {"component": iro.dim, "norm": ir1.dim * ir2.dim, "none": 1}[irrep_normalization]
        if path_normalization == "element":
            x = sum(v1[j[0]] * v2[j[1]] * n_el(j) for j in raw if j[2] == io)
        elif path_normalization == "path":
            x = v1[i1] * v2[i2] * n_el(ins) * sum(1 for j in raw if j[2] == io)
        else:
            x = 1
        if x > 0:
            alpha /= x
        alpha *= vo[io] * path_weight
        out.append(Instruction(i1, i2, io, mode, has_weight, math.sqrt(alpha), shape))
    return out


def irreps(x, name: str):
    """``so3.Irreps(x)`` with an error naming the argument."""
    try:
        return so3.Irreps(x)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{name}: {exc}") from None
