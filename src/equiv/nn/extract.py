r"""Pick blocks of irreps features: `Extract` and `ExtractIr` (e3nn's ``e3nn.nn.Extract`` / ``ExtractIr``).

A feature with irreps :math:`\bigoplus_i m_i \rho_i` is a concatenation of blocks; `Extract` builds
new features from chosen blocks (in any order, repeats allowed), each output a copy of the selected
input columns. Selecting whole blocks of an equivariant feature keeps it equivariant, so these are
layers like any other (used to split scalars from gated irreps, or one degree from a model's output).
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.so3 import Irrep, Irreps

__all__ = ["Extract", "ExtractIr", "Identity"]


class Extract(nn.Module):
    r"""Outputs made of blocks of the input: output ``k`` has irreps ``irreps_outs[k]`` and its ``j``-th
    block is input block ``instructions[k][j]``.

    Parameters
    ----------
    irreps_in : str or Irreps
    irreps_outs : list of str or Irreps
        One per output; block ``j`` of output ``k`` must equal ``irreps_in[instructions[k][j]]``.
    instructions : list of tuple of int
        Input block indices, one tuple per output.
    squeeze_out : bool
        With a single output, return the tensor itself instead of a one-element tuple.

    Returns (forward): a tuple of tensors ``(..., irreps_outs[k].dim)`` (or one tensor, see
    ``squeeze_out``), the same as e3nn's ``Extract``.

    Examples
    --------
    >>> c = Extract("1e + 0e + 0e", ["0e", "0e"], [(1,), (2,)])
    >>> c(torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0]))
    (tensor([1.]), tensor([2.]))
    >>> Extract("2x0e + 1o", ["1o + 2x0e"], [(1, 0)], squeeze_out=True)(torch.arange(5.0))
    tensor([2., 3., 4., 0., 1.])
    """

    def __init__(self, irreps_in, irreps_outs, instructions, squeeze_out: bool = False):
        super().__init__()
        self.irreps_in = Irreps(irreps_in)
        self.irreps_outs = tuple(Irreps(irreps) for irreps in irreps_outs)
        self.instructions = [tuple(int(i) for i in ins) for ins in instructions]
        self.squeeze_out = bool(squeeze_out)
        if len(self.irreps_outs) != len(self.instructions):
            raise ValueError(f"Extract: {len(self.irreps_outs)} outputs but {len(self.instructions)} instructions")
        slices = self.irreps_in.slices()
        for k, (irreps, ins) in enumerate(zip(self.irreps_outs, self.instructions)):
            if len(irreps) != len(ins):
                raise ValueError(f"Extract: output {k} has {len(irreps)} blocks ({irreps}) but its instruction {ins} "
                                 f"names {len(ins)}")
            for j, (block, i) in enumerate(zip(irreps, ins)):
                if not 0 <= i < len(self.irreps_in):
                    raise ValueError(f"Extract: instruction {ins} of output {k}: block {i} is not in {self.irreps_in}")
                if (block.mul, block.ir) != (self.irreps_in[i].mul, self.irreps_in[i].ir):
                    raise ValueError(f"Extract: block {j} of output {k} is {block.mul}x{block.ir} but input block {i} is "
                                     f"{self.irreps_in[i].mul}x{self.irreps_in[i].ir}")
        # each output as column ranges of the input, adjacent blocks merged (copied by slicing: faster
        # than a gather of columns for the few ranges a layer has)
        self._ranges = []
        for ins in self.instructions:
            ranges = []
            for i in ins:
                if ranges and ranges[-1][1] == slices[i].start:
                    ranges[-1] = (ranges[-1][0], slices[i].stop)
                else:
                    ranges.append((slices[i].start, slices[i].stop))
            self._ranges.append(ranges)

    def forward(self, x: torch.Tensor):
        if x.shape[-1] != self.irreps_in.dim:
            raise ValueError(f"Extract: expected (..., {self.irreps_in.dim}) features of {self.irreps_in}, got {tuple(x.shape)}")
        out = []
        for ranges in self._ranges:
            if not ranges:
                out.append(x.new_zeros(*x.shape[:-1], 0))
            elif len(ranges) == 1:
                out.append(x[..., ranges[0][0] : ranges[0][1]].clone())
            else:
                out.append(torch.cat([x[..., a:b] for a, b in ranges], dim=-1))
        return out[0] if self.squeeze_out and len(out) == 1 else tuple(out)

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {', '.join(str(i) for i in self.irreps_outs)}"


class ExtractIr(Extract):
    r"""The blocks of one irrep ``ir`` of the input, as one tensor ``(..., irreps_out.dim)`` (e3nn's
    ``ExtractIr``); ``irreps_out`` lists them in input order.

    Examples
    --------
    >>> e = ExtractIr("2x0e + 1o + 3x0e", "0e")
    >>> e.irreps_out, e(torch.arange(8.0))
    (2x0e+3x0e, tensor([0., 1., 5., 6., 7.]))
    """

    def __init__(self, irreps_in, ir):
        ir = Irrep(ir)
        irreps_in = Irreps(irreps_in)
        self.irreps_out = Irreps([(mul, r) for mul, r in irreps_in if r == ir])
        instructions = [tuple(i for i, (_, r) in enumerate(irreps_in) if r == ir)]
        super().__init__(irreps_in, [self.irreps_out], instructions, squeeze_out=True)


class Identity(nn.Module):
    r"""The identity on features of ``irreps_in`` (e3nn's ``nn.Identity``; ``irreps_out`` must equal it
    after `~equiv.so3.Irreps.simplify`): a placeholder where a model takes a layer.

    Examples
    --------
    >>> layer = Identity("2x0e + 1o", "0e + 0e + 1o")
    >>> x = torch.randn(4, 5)
    >>> layer.irreps_out, bool(torch.equal(layer(x), x))
    (2x0e+1x1o, True)
    """

    def __init__(self, irreps_in, irreps_out):
        super().__init__()
        self.irreps_in, self.irreps_out = Irreps(irreps_in).simplify(), Irreps(irreps_out).simplify()
        if self.irreps_in != self.irreps_out:
            raise ValueError(f"Identity: irreps_in {self.irreps_in} and irreps_out {self.irreps_out} differ")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x
