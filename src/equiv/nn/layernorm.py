r"""Equivariant layer normalisation of irreps features: per-sample statistics over the channels."""

from __future__ import annotations

import torch
from torch import nn

from .activation import _irreps

__all__ = ["LayerNorm"]


class LayerNorm(nn.Module):
    r"""Layer normalisation that commutes with O(3): each block ``mul x ir`` of a sample is normalised
    by statistics over its own channels.

    For a block with copies :math:`v_1, \dots, v_m` (dimension :math:`d = 2l+1`):

    * scalars (``0e``) are centred, :math:`v_u \leftarrow v_u - \frac1m \sum_w v_w` (a mean of vectors
      or of pseudo-scalars is not invariant, so other blocks are not);
    * every block is divided by its RMS size,
      :math:`v_u \leftarrow w_u\, v_u / \sqrt{\frac1m \sum_w \lVert v_w\rVert^2 / d + \epsilon}`
      (``normalization="component"``; ``"norm"`` drops the :math:`1/d`);
    * with ``affine``, a learnable scale :math:`w_u` per copy and a bias on ``0e`` copies.

    The statistics are invariant, so the map is equivariant, and each sample is normalised on its own
    (no batch statistics, no running averages: the usual choice for graphs of varying size, as the
    per-degree layer norm of Equiformer, Liao & Smidt, ICLR 2023, arXiv:2206.11990). For ``Cx0e``
    features it is ``torch.nn.LayerNorm(C)``.

    Parameters
    ----------
    irreps : Irreps or str
    eps : float
        Added to the mean square (default 1e-5).
    affine : bool
        Learnable ``weight`` (``irreps.num_irreps``, ones) and ``bias`` (number of ``0e`` copies, zeros).
    normalization : {"component", "norm"}

    Shapes: ``(..., irreps.dim)`` → same.

    Examples
    --------
    >>> import torch
    >>> ln = LayerNorm("8x0e + 4x1o")
    >>> y = ln(torch.randn(5, 20) * 3 + 1).detach()
    >>> bool(y[:, :8].mean(-1).abs().max() < 1e-6), round(float(y[:, 8:].pow(2).mean()), 3)
    (True, 1.0)
    """

    def __init__(self, irreps, eps: float = 1e-5, affine: bool = True, normalization: str = "component") -> None:
        super().__init__()
        self.irreps = _irreps(irreps, "LayerNorm")
        if normalization not in ("component", "norm"):
            raise ValueError(f"LayerNorm: normalization must be 'component' or 'norm', got {normalization!r}")
        if not eps >= 0:
            raise ValueError(f"LayerNorm: eps must be >= 0, got {eps!r}")
        self.eps, self.affine, self.normalization = float(eps), bool(affine), normalization
        if self.affine:
            self.weight = nn.Parameter(torch.ones(self.irreps.num_irreps))
            self.bias = nn.Parameter(torch.zeros(sum(mul for mul, ir in self.irreps if ir.is_scalar())))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.irreps.dim:
            raise ValueError(f"LayerNorm: input last dimension {x.shape[-1]} != irreps.dim={self.irreps.dim} ({self.irreps})")
        lead = x.shape[:-1]
        out, iw, ib = [], 0, 0
        for (mul, ir), sl in zip(self.irreps, self.irreps.slices()):
            if mul == 0:
                continue
            v = x[..., sl].reshape(lead + (mul, ir.dim))
            if ir.is_scalar():
                v = v - v.mean(-2, keepdim=True)
            sq = v.pow(2).sum(-1) if self.normalization == "norm" else v.pow(2).mean(-1)  # (..., mul)
            scale = (sq.mean(-1, keepdim=True) + self.eps).rsqrt()  # (..., 1)
            if self.affine:
                scale = scale * self.weight[iw:iw + mul].to(x.dtype)
            v = v * scale[..., None]
            if self.affine and ir.is_scalar():
                v = v + self.bias[ib:ib + mul].to(x.dtype)[:, None]
                ib += mul
            iw += mul
            out.append(v.reshape(lead + (mul * ir.dim,)))
        return torch.cat(out, -1) if out else x

    def extra_repr(self) -> str:
        return f"{self.irreps}, eps={self.eps}, affine={self.affine}, normalization={self.normalization!r}"
