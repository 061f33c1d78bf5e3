r"""Equivariant batch and instance normalisation of irreps features (e3nn's ``BatchNorm``)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .activation import _irreps

__all__ = ["BatchNorm"]

_NORMALIZATIONS = ("component", "norm")
_REDUCES = ("mean", "max")


class BatchNorm(nn.Module):
    r"""Batch normalisation of irreps features that commutes with O(3) (e3nn's ``BatchNorm``).

    For each irrep copy :math:`v` (``mul`` copies of dimension :math:`2l+1` per block):

    * scalars (``0e``) are centred, :math:`v \leftarrow v - \mu` (batch mean in training, running mean
      in evaluation); other irreps are not (a mean of vectors is not invariant);
    * every copy is divided by the root of its mean squared size,
      :math:`v \leftarrow w\, v / \sqrt{\nu + \epsilon}`, with
      :math:`\nu = \langle \lVert v\rVert^2 \rangle` (``normalization="norm"``) or
      :math:`\langle \lVert v\rVert^2/(2l+1) \rangle` (``"component"``, default), averaged over the
      batch (``reduce="mean"``) or its maximum over the samples of each batch element (``"max"``);
    * with ``affine``, scalars get a learnable bias :math:`b` and every copy a learnable scale
      :math:`w`.

    The statistics are invariant, so the map is equivariant. ``instance=True`` computes them per
    batch element over its other axes (instance normalisation; no running statistics). In training
    the running statistics move by ``momentum``: :math:`r \leftarrow (1 - m)\, r + m\, \hat r`.

    Parameters
    ----------
    irreps : Irreps or str
    eps : float
        Added to :math:`\nu` (default 1e-5).
    momentum : float
        Of the running statistics (default 0.1).
    affine : bool
        Learnable ``weight`` (``irreps.num_irreps``) and ``bias`` (number of ``0e`` copies); default True.
    reduce : {"mean", "max"}
    instance : bool
    normalization : {"component", "norm"}

    Shapes: ``(batch, ..., irreps.dim)``; statistics over ``batch`` and the middle axes (over the
    middle axes only for ``instance``).

    Examples
    --------
    >>> import torch
    >>> bn = BatchNorm("4x0e + 2x1o")
    >>> x = torch.randn(32, 10)
    >>> y = bn(x).detach()                       # training: batch statistics, running ones updated
    >>> float(y[:, :4].mean()) < 1e-6, round(float(y[:, :4].pow(2).mean()), 3)
    (True, 1.0)
    >>> _ = bn.eval(); bn(x).shape               # evaluation: running statistics
    torch.Size([32, 10])
    """

    def __init__(self, irreps, eps: float = 1e-5, momentum: float = 0.1, affine: bool = True,
                 reduce: str = "mean", instance: bool = False, normalization: str = "component") -> None:
        super().__init__()
        self.irreps = _irreps(irreps, "BatchNorm")
        if reduce not in _REDUCES:
            raise ValueError(f"BatchNorm: reduce must be one of {_REDUCES}, got {reduce!r}")
        if normalization not in _NORMALIZATIONS:
            raise ValueError(f"BatchNorm: normalization must be one of {_NORMALIZATIONS}, got {normalization!r}")
        if not eps >= 0 or not 0 <= momentum <= 1:
            raise ValueError(f"BatchNorm: need eps >= 0 and 0 <= momentum <= 1, got eps={eps}, momentum={momentum}")
        self.eps, self.momentum, self.affine = float(eps), float(momentum), bool(affine)
        self.reduce, self.instance, self.normalization = reduce, bool(instance), normalization
        num_scalar = sum(mul for mul, ir in self.irreps if ir.is_scalar())
        num_features = self.irreps.num_irreps
        if self.instance:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
        else:
            self.register_buffer("running_mean", torch.zeros(num_scalar))
            self.register_buffer("running_var", torch.ones(num_features))
        if self.affine:
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_scalar))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def _roll(self, current: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        return (1 - self.momentum) * current + self.momentum * new.detach().to(current.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.irreps.dim:
            raise ValueError(f"BatchNorm: input last dimension {x.shape[-1]} != irreps.dim={self.irreps.dim} ({self.irreps})")
        if x.dim() < 2:
            raise ValueError(f"BatchNorm: input must be (batch, ..., {self.irreps.dim}), got shape {tuple(x.shape)}")
        shape = x.shape
        batch, samples = shape[0], math.prod(shape[1:-1])
        if batch * samples == 0:  # nothing to normalise: no statistics to take, running ones untouched
            return x.clone()
        x = x.reshape(batch, samples, self.irreps.dim)  # (batch, sample, dim)
        stats = self.training or self.instance
        update = self.training and not self.instance
        new_means, new_vars, fields = [], [], []
        im = iv = 0  # offsets in the scalar and per-copy statistics
        for (mul, ir), sl in zip(self.irreps, self.irreps.slices()):
            d = ir.dim
            field = x[:, :, sl].reshape(batch, samples, mul, d)
            if ir.is_scalar():
                if not stats:
                    mean = self.running_mean[im:im + mul].to(x.dtype)
                elif self.instance:
                    mean = field.mean(1).reshape(batch, mul)
                else:
                    mean = field.mean((0, 1)).reshape(mul)
                    new_means.append(self._roll(self.running_mean[im:im + mul], mean))
                field = field - mean.reshape(-1, 1, mul, 1)
            if stats:
                sq = field.pow(2).sum(3) if self.normalization == "norm" else field.pow(2).mean(3)  # (batch, sample, mul)
                var = sq.mean(1) if self.reduce == "mean" else sq.max(1).values  # (batch, mul)
                if not self.instance:
                    var = var.mean(0)
                    new_vars.append(self._roll(self.running_var[iv:iv + mul], var))
            else:
                var = self.running_var[iv:iv + mul].to(x.dtype)
            scale = (var + self.eps).pow(-0.5)
            if self.affine:
                scale = scale * self.weight[iv:iv + mul].to(x.dtype)
            field = field * scale.reshape(-1, 1, mul, 1)
            if self.affine and ir.is_scalar():
                field = field + self.bias[im:im + mul].to(x.dtype).reshape(mul, 1)
            if ir.is_scalar():
                im += mul
            iv += mul
            fields.append(field.reshape(batch, samples, mul * d))
        if update:
            with torch.no_grad():
                if new_means:
                    self.running_mean.copy_(torch.cat(new_means))
                if new_vars:
                    self.running_var.copy_(torch.cat(new_vars))
        out = torch.cat(fields, -1) if fields else x
        return out.reshape(shape)

    def extra_repr(self) -> str:
        return (f"{self.irreps}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"reduce={self.reduce!r}, instance={self.instance}, normalization={self.normalization!r}")
