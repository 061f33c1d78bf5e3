r"""Building blocks of PONITA: convolutions on position–orientation space :math:`\mathbb R^3\times S^2`.

Bekkers, Vadgama, Hesselink, van der Linden and Romero, *Fast, Expressive SE(n) Equivariant Networks
through Weight-Sharing in Position-Orientation Space*, ICLR 2024 (arXiv:2310.02970).

Features live on pairs :math:`(x_i, o)` of a particle position and an orientation :math:`o` from a
grid on the sphere. A kernel between :math:`(x_j, o)` and :math:`(x_i, o')` may depend only on
invariants of the pair; PONITA uses the *separable* form — a spatial kernel for the same orientation,
then a kernel on the sphere (fibre) — with the bijective invariants (Eq. 7 of the paper)

.. math::

    a^{(1)}_{ij,o} = \langle x_j - x_i, o\rangle,\qquad
    a^{(2)}_{ij,o} = \lVert (x_j - x_i) - a^{(1)}_{ij,o}\,o\rVert,\qquad
    a^{(3)}_{oo'} = \langle o, o'\rangle .

All three are invariant under any :math:`g \in E(3)` acting on positions *and* orientations.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["ConvNeXtBlock", "PolynomialFeatures", "SeparableFiberBundleConv", "repulsion_grid"]


def repulsion_grid(
    n: int, *, steps: int = 500, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> torch.Tensor:
    r"""``n`` near-uniform points on the unit sphere by electrostatic repulsion (Thomson problem).

    Starts from the Fibonacci lattice and takes ``steps`` projected gradient steps on the Coulomb
    energy :math:`E = \sum_{i<j} \lVert p_i - p_j\rVert^{-1}`; each step moves the points along the
    tangential force by at most a fraction of the typical spacing :math:`\sqrt{4\pi/n}`, decaying
    geometrically from 0.1 to 0.001. Deterministic. Reaches the known minimal energies (12 points:
    49.1653, the icosahedron; 20: 150.8816; 32: 412.2613).

    Parameters
    ----------
    n : int
        Number of points (>= 1).
    steps : int
        Gradient steps (default 500).

    Returns
    -------
    torch.Tensor
        ``(n, 3)`` unit vectors.

    Examples
    --------
    >>> g = repulsion_grid(12, dtype=torch.float64)
    >>> g.shape, bool(torch.allclose(g.norm(dim=1), torch.ones(12, dtype=torch.float64)))
    (torch.Size([12, 3]), True)
    >>> d = torch.cdist(g, g) + 3 * torch.eye(12, dtype=torch.float64)
    >>> round(float(d.min(1).values.mean()), 3)   # the icosahedron: edge 1.051
    1.051
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    k = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * k / n
    phi = math.pi * (1 + 5**0.5) * k
    r = (1 - z**2).clamp_min(0).sqrt()
    p = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)
    if n > 1:
        spacing = (4 * math.pi / n) ** 0.5
        eye = torch.eye(n, dtype=p.dtype)
        for t in range(steps):
            lr = 0.1 * 0.01 ** (t / max(steps - 1, 1))
            diff = p[:, None] - p[None]
            dist = diff.norm(dim=-1) + eye
            force = (diff / dist[..., None] ** 3).sum(1)  # -grad E
            force = force - (force * p).sum(-1, keepdim=True) * p  # tangential part
            p = p + lr * spacing * force / force.norm(dim=-1).max().clamp_min(1e-300)
            p = p / p.norm(dim=-1, keepdim=True)
    return p.to(dtype=dtype or torch.get_default_dtype(), device=device)


class PolynomialFeatures(nn.Module):
    r"""All monomials of degree 1 to ``degree`` of the last axis (with repetition, as in PONITA).

    For :math:`a \in \mathbb R^d`: :math:`[a,\ a\otimes a,\ \dots,\ a^{\otimes\,\mathrm{degree}}]`
    flattened, i.e. :math:`d + d^2 + \dots + d^{\,\mathrm{degree}}` features.

    Shapes:
        - input ``(..., d)``; output ``(..., d + d**2 + ... + d**degree)``

    >>> PolynomialFeatures(3)(torch.ones(4, 2)).shape
    torch.Size([4, 14])
    """

    def __init__(self, degree: int) -> None:
        super().__init__()
        if isinstance(degree, bool) or not isinstance(degree, int) or degree < 1:
            raise ValueError(f"degree must be a positive integer, got {degree!r}")
        self.degree = degree

    @staticmethod
    def num_features(dim: int, degree: int) -> int:
        return sum(dim**k for k in range(1, degree + 1))

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        terms = [a]
        for _ in range(1, self.degree):
            terms.append((terms[-1][..., :, None] * a[..., None, :]).flatten(-2))
        return torch.cat(terms, -1)

    def extra_repr(self) -> str:
        return f"degree={self.degree}"


class SeparableFiberBundleConv(nn.Module):
    r"""Depth-wise separable convolution on :math:`\mathbb R^3 \times S^2` (dense, fully connected).

    .. math::

        f'_{i,o,c} = \sum_{j} k^{\text{spatial}}_{c}(a^{(1)}_{ij,o}, a^{(2)}_{ij,o})\, f_{j,o,c},\qquad
        f''_{i,o',c} = \frac{1}{|O|}\sum_{o} k^{\text{fibre}}_{c}(\langle o, o'\rangle)\, f'_{i,o,c} + b_c

    The kernels are linear maps of shared basis functions (:math:`k = W\,\varphi(a)`). On the first
    forward pass in training mode the two kernel weights are rescaled once so that the standard
    deviation of the features is preserved (PONITA's data-dependent initialisation); the flag is a
    buffer, so loaded models are not recalibrated.

    Parameters
    ----------
    channels : int
        Feature channels (each convolved separately).
    basis_dim : int
        Width of the basis functions :math:`\varphi`.

    Shapes:
        - f: ``(B, N, O, C)``; spatial basis ``(B, N, N, O, basis_dim)`` indexed (target i, source j);
          fibre basis ``(B or 1, O, O, basis_dim)``
        - output ``(B, N, O, C)``

    Examples
    --------
    Bases from the invariants :math:`a^{(1)}, a^{(2)}, a^{(3)}` of the module docstring:

    >>> def bases(x, o):
    ...     rel = x[:, None, :, :] - x[:, :, None, :]  # [b, i, j] = x_j - x_i
    ...     a1 = rel @ o.T  # (B, N, N, O)
    ...     a2 = (rel[..., None, :] - a1[..., None] * o).norm(dim=-1)
    ...     a3 = (o @ o.T)[None]  # (1, O, O)
    ...     return PolynomialFeatures(2)(torch.stack([a1, a2], -1)), PolynomialFeatures(6)(a3[..., None])
    >>> _ = torch.manual_seed(0)
    >>> x, o = torch.randn(2, 5, 3, dtype=torch.float64), repulsion_grid(6, dtype=torch.float64)
    >>> f = torch.randn(2, 5, 6, 4, dtype=torch.float64)
    >>> conv = SeparableFiberBundleConv(channels=4, basis_dim=6).double()
    >>> y = conv(f, *bases(x, o))  # the first training-mode call also calibrates the kernels
    >>> y.shape, bool(conv.calibrated)
    (torch.Size([2, 5, 6, 4]), True)

    Rotating positions and orientations together leaves the output unchanged:

    >>> from equiv.so3 import random_rotation
    >>> R = random_rotation(1, dtype=torch.float64)[0]
    >>> torch.allclose(conv(f, *bases(x @ R.T, o @ R.T)), y)
    True
    """

    def __init__(self, channels: int, basis_dim: int, bias: bool = True) -> None:
        super().__init__()
        self.channels, self.basis_dim = channels, basis_dim
        self.kernel_spatial = nn.Linear(basis_dim, channels, bias=False)
        self.kernel_fiber = nn.Linear(basis_dim, channels, bias=False)
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        self.register_buffer("calibrated", torch.tensor(False))
        # Python mirror of the buffer: once calibrated, training steps read no tensor value (under
        # torch.compile, reading the buffer was a graph break in every block of every step)
        self._calibration_done = False

    def reset_parameters(self) -> None:
        self.kernel_spatial.reset_parameters()
        self.kernel_fiber.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        self.calibrated.fill_(False)
        self._calibration_done = False

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._calibration_done = bool(self.calibrated)

    def forward(self, f: torch.Tensor, spatial_basis: torch.Tensor, fiber_basis: torch.Tensor) -> torch.Tensor:
        k1 = self.kernel_spatial(spatial_basis)  # (B, N, N, O, C)
        f1 = torch.einsum("bjoc,bijoc->bioc", f, k1)
        k2 = self.kernel_fiber(fiber_basis)  # (B, O, P, C)
        f2 = torch.einsum("bioc,bopc->bipc", f1, k2.expand(f.shape[0], *k2.shape[1:])) / k2.shape[-3]
        if self.training and not self._calibration_done:
            self._calibration_done = bool(self.calibrated)
        if self.training and not self._calibration_done and f1.numel() > 1 and f2.numel() > 1:  # an empty batch has no statistics
            with torch.no_grad():
                s0, s1, s2 = f.std(), f1.std(), f2.std()
                if s1 > 0 and s2 > 0:
                    self.kernel_spatial.weight.mul_(s0 / s1)
                    self.kernel_fiber.weight.mul_(s1 / s2)
                self.calibrated.fill_(True)
            self._calibration_done = True
            return self.forward(f, spatial_basis, fiber_basis)
        return f2 if self.bias is None else f2 + self.bias

    def extra_repr(self) -> str:
        return f"channels={self.channels}, basis_dim={self.basis_dim}"


class ConvNeXtBlock(nn.Module):
    r"""ConvNeXt block (Liu et al. 2022) around a :class:`SeparableFiberBundleConv`:

    .. math::

        f \leftarrow f + \gamma \odot W_2\,\mathrm{GELU}\bigl(W_1\,\mathrm{LayerNorm}(\mathrm{conv}(f))\bigr)

    with widening factor ``widening`` (:math:`W_1: C \to \text{widening}\cdot C`) and optional layer
    scale :math:`\gamma` (``layer_scale=None`` disables it).

    Shapes:
        - as :class:`SeparableFiberBundleConv`.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> block = ConvNeXtBlock(channels=4, basis_dim=6, layer_scale=1e-6)
    >>> f = torch.randn(2, 5, 6, 4)  # (B, N, O, C)
    >>> spatial, fiber = torch.randn(2, 5, 5, 6, 6), torch.randn(1, 6, 6, 6)
    >>> out = block(f, spatial, fiber)
    >>> out.shape
    torch.Size([2, 5, 6, 4])
    >>> torch.allclose(out, f, atol=1e-4)  # a tiny layer scale starts the block near the identity
    True
    """

    def __init__(self, channels: int, basis_dim: int, widening: int = 4, layer_scale: float | None = None) -> None:
        super().__init__()
        self.conv = SeparableFiberBundleConv(channels, basis_dim)
        self.norm = nn.LayerNorm(channels)
        self.linear_1 = nn.Linear(channels, widening * channels)
        self.linear_2 = nn.Linear(widening * channels, channels)
        self.act = nn.GELU()
        self.layer_scale = nn.Parameter(torch.full((channels,), float(layer_scale))) if layer_scale else None

    def reset_parameters(self) -> None:
        self.conv.reset_parameters()
        self.norm.reset_parameters()
        self.linear_1.reset_parameters()
        self.linear_2.reset_parameters()

    def forward(self, f: torch.Tensor, spatial_basis: torch.Tensor, fiber_basis: torch.Tensor) -> torch.Tensor:
        y = self.linear_2(self.act(self.linear_1(self.norm(self.conv(f, spatial_basis, fiber_basis)))))
        if self.layer_scale is not None:
            y = self.layer_scale * y
        return f + y
