"""Translations, Euclidean motions E(3) and uniform scalings.

Translations and E(3) are written as homogeneous ``4 x 4`` matrices
:math:`\\begin{pmatrix} L & t \\\\ 0 & 1 \\end{pmatrix}` acting as :math:`x \\mapsto L x + t` on points
(vectors and features see only :math:`L`). Scalings are :math:`s I_3` with :math:`s > 0`; a rank-``k``
Cartesian tensor scales by :math:`s^k`, so the Lie generator is :math:`I_3`.
"""

from __future__ import annotations

import math

import torch

from ._base import Group, OrbitGrid
from ._rotations import O3, _check_num, _is_orthogonal

__all__ = ["Translations", "E3", "Scaling"]


def _homogeneous(L: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    n = t.shape[0]
    g = torch.zeros(n, 4, 4, dtype=t.dtype, device=t.device)
    g[:, :3, :3] = L
    g[:, :3, 3] = t
    g[:, 3, 3] = 1.0
    return g


class Translations(Group):
    """Translations along some of the coordinate axes (default all three), as ``4 x 4`` matrices.

    Parameters
    ----------
    axes : str
        the translated axes, e.g. ``"xyz"`` (default) or ``"xy"`` (the image plane).
    scale : float
        standard deviation of :meth:`sample` (Gaussian), and the half-width of :meth:`orbit`'s grid.

    >>> import torch
    >>> T = Translations("xy", scale=2.0)
    >>> T.act(T.element(torch.tensor([1.0, 2.0, 0.0])), torch.zeros(3), "cartesian_points")
    tensor([1., 2., 0.])
    """

    d = 4
    homogeneous = True

    def __init__(self, axes: str = "xyz", scale: float = 1.0):
        if not isinstance(axes, str) or not axes or any(a not in "xyz" for a in axes) or len(set(axes)) != len(axes):
            raise ValueError(f"axes={axes!r}: expected a non-empty string of distinct letters from 'xyz'")
        if not scale > 0:
            raise ValueError(f"scale={scale!r}: expected a positive number")
        self.axes = axes
        self.index = ["xyz".index(a) for a in axes]
        self.scale = float(scale)
        self.name = f"T({axes})"

    def element(self, t: torch.Tensor) -> torch.Tensor:
        """Translations by ``t`` ``(..., 3)`` -> ``(..., 4, 4)``."""
        t = torch.as_tensor(t)
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
        flat = t.reshape(-1, 3)
        eye = torch.eye(3, dtype=t.dtype, device=t.device).expand(flat.shape[0], 3, 3)
        return _homogeneous(eye, flat).reshape(*t.shape[:-1], 4, 4)

    def sample(self, n=1, *, generator=None, dtype=None, device=None):
        dtype = dtype or torch.get_default_dtype()
        t = torch.zeros(n, 3, dtype=dtype, device=device)
        t[:, self.index] = self.scale * torch.randn(n, len(self.index), generator=generator, dtype=dtype, device=device)
        return self.element(t)

    def inverse(self, g):
        out = g.clone()
        out[..., :3, 3] = -g[..., :3, 3]
        return out

    def contains(self, g, atol=1e-6):
        diff = g - torch.eye(4, dtype=g.dtype, device=g.device)
        diff[..., self.index, 3] = 0.0  # allowed translations; anything else must be the identity
        return diff.abs().amax(dim=(-1, -2)) <= atol

    def lie_generators(self, dtype=torch.float64, device=None):
        gens = torch.zeros(len(self.index), 4, 4, dtype=dtype, device=device)
        for k, i in enumerate(self.index):
            gens[k, i, 3] = 1.0
        return gens

    def orbit(self, num_points: int = 121, *, extent: float | None = None, dtype=None, **kwargs) -> OrbitGrid:
        """A regular grid over ``[-extent, extent]`` (default ``scale``) along each translated axis.

        One axis gives a line of ``num_points``; two a square ``n x n`` with ``n**2 ~ num_points``
        (layout ``"plane"``); three a cube ``n x n x n``.
        """
        _check_num(num_points, 1)
        if kwargs:
            raise TypeError(f"{self.name}.orbit: unexpected keyword arguments {sorted(kwargs)}")
        extent = self.scale if extent is None else float(extent)
        k = len(self.index)
        n = max(1, int(round(num_points ** (1.0 / k))))
        dtype = dtype or torch.get_default_dtype()
        ticks = torch.linspace(-extent, extent, n, dtype=dtype) if n > 1 else torch.zeros(1, dtype=dtype)
        mesh = torch.meshgrid(*([ticks] * k), indexing="ij")
        t = torch.zeros(n**k, 3, dtype=dtype)
        coords = {}
        for a, i, m in zip(self.axes, self.index, mesh):
            t[:, i] = m.reshape(-1)
            coords[a] = m.reshape(-1)
        layout = {1: "line", 2: "plane", 3: "cube"}[k]
        w = torch.full((n**k,), 1.0 / n**k, dtype=dtype)
        return OrbitGrid(self.element(t), coords, (n,) * k, layout, w)


class E3(Group):
    """Euclidean group E(3): rotations, reflections and translations, as ``4 x 4`` matrices.

    :meth:`sample` draws a Haar element of O(3) and a Gaussian translation of standard deviation
    ``scale``. The finite generator is the inversion; the Lie algebra is
    :math:`\\mathfrak{so}(3) \\oplus \\mathbb{R}^3`.

    Examples
    --------
    >>> G = E3()
    >>> g = G.element(-torch.eye(3)[None], torch.tensor([[1.0, 0.0, 0.0]]))  # x -> -x + (1, 0, 0)
    >>> g.shape
    torch.Size([1, 4, 4])
    >>> x = torch.tensor([1.0, 2.0, 3.0])
    >>> G.act(g[0], x, "cartesian_points"), G.act(g[0], x, "cartesian_vectors")  # vectors ignore t
    (tensor([ 0., -2., -3.]), tensor([-1., -2., -3.]))
    >>> h = G.sample(3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> torch.allclose(G.compose(h, G.inverse(h)), G.identity(3, dtype=torch.float64))
    True
    """

    d = 4
    homogeneous = True
    name = "E(3)"

    def __init__(self, scale: float = 1.0):
        if not scale > 0:
            raise ValueError(f"scale={scale!r}: expected a positive number")
        self.scale = float(scale)
        self._o3 = O3()

    def element(self, L: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The motion :math:`x \\mapsto L x + t` for ``L (n, 3, 3)`` and ``t (n, 3)``."""
        return _homogeneous(L, t)

    def sample(self, n=1, *, generator=None, dtype=None, device=None):
        L = self._o3.sample(n, generator=generator, dtype=dtype, device=device)
        t = self.scale * torch.randn(n, 3, generator=generator, dtype=L.dtype, device=L.device)
        return _homogeneous(L, t)

    def inverse(self, g):
        L = g[..., :3, :3].transpose(-1, -2)
        t = -(L @ g[..., :3, 3:])[..., 0]
        return _homogeneous(L.reshape(-1, 3, 3), t.reshape(-1, 3)).reshape(g.shape)

    def contains(self, g, atol=1e-6):
        bottom = g[..., 3, :] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=g.dtype, device=g.device)
        return _is_orthogonal(g[..., :3, :3], atol) & (bottom.abs().amax(-1) <= atol)

    def discrete_generators(self, dtype=torch.float64, device=None):
        g = -torch.eye(4, dtype=dtype, device=device)
        g[3, 3] = 1.0
        return g[None]

    def lie_generators(self, dtype=torch.float64, device=None):
        gens = torch.zeros(6, 4, 4, dtype=dtype, device=device)
        gens[:3, :3, :3] = self._o3.lie_generators(dtype, device)
        for i in range(3):
            gens[3 + i, i, 3] = 1.0
        return gens

    def orbit(self, num_points: int = 128, **kwargs) -> OrbitGrid:
        """The O(3) grid at zero translation (use :class:`Translations` for translation grids)."""
        grid = self._o3.orbit(num_points, **kwargs)
        t = torch.zeros(len(grid), 3, dtype=grid.elements.dtype)
        return OrbitGrid(_homogeneous(grid.elements, t), grid.coords, grid.shape, grid.layout, grid.weights, grid.meta)


class Scaling(Group):
    """Uniform scalings :math:`x \\mapsto s x`, :math:`s > 0`, as ``s I_3``.

    Parameters
    ----------
    scale : float
        :meth:`sample` draws :math:`\\log s \\sim N(0, \\text{scale}^2)`; :meth:`orbit` spans
        :math:`s \\in [e^{-\\text{scale}}, e^{\\text{scale}}]` log-uniformly.

    >>> import torch
    >>> S = Scaling()
    >>> S.act(S.element(torch.tensor(2.0)), torch.ones(3), "cartesian_vectors")
    tensor([2., 2., 2.])
    """

    name = "Scaling"

    def __init__(self, scale: float = math.log(2.0)):
        if not scale > 0:
            raise ValueError(f"scale={scale!r}: expected a positive number")
        self.scale = float(scale)

    def element(self, s: torch.Tensor) -> torch.Tensor:
        s = torch.as_tensor(s)
        if not s.is_floating_point():
            s = s.to(torch.get_default_dtype())
        if (s <= 0).any():
            raise ValueError("Scaling.element: scale factors must be positive")
        return s[..., None, None] * torch.eye(3, dtype=s.dtype, device=s.device)

    def factor(self, g: torch.Tensor) -> torch.Tensor:
        """The scale factor ``s`` of each element."""
        return g[..., 0, 0]

    def sample(self, n=1, *, generator=None, dtype=None, device=None):
        dtype = dtype or torch.get_default_dtype()
        return self.element(torch.exp(self.scale * torch.randn(n, generator=generator, dtype=dtype, device=device)))

    def inverse(self, g):
        return self.element(1.0 / self.factor(g))

    def contains(self, g, atol=1e-6):
        s = g[..., 0, 0]
        eye = torch.eye(3, dtype=g.dtype, device=g.device)
        return ((g - s[..., None, None] * eye).abs().amax(dim=(-1, -2)) <= atol) & (s > 0)

    def lie_generators(self, dtype=torch.float64, device=None):
        return torch.eye(3, dtype=dtype, device=device)[None]

    def orbit(self, num_points: int = 33, *, dtype=None, **kwargs) -> OrbitGrid:
        """``num_points`` log-uniform scale factors in :math:`[e^{-scale}, e^{scale}]` (1 in the middle for odd n)."""
        _check_num(num_points, 1)
        if kwargs:
            raise TypeError(f"Scaling.orbit: unexpected keyword arguments {sorted(kwargs)}")
        dtype = dtype or torch.get_default_dtype()
        logs = torch.linspace(-self.scale, self.scale, num_points, dtype=dtype) if num_points > 1 else torch.zeros(1, dtype=dtype)
        s = torch.exp(logs)
        w = torch.full((num_points,), 1.0 / num_points, dtype=dtype)
        return OrbitGrid(self.element(s), {"scale": s, "log_scale": logs}, (num_points,), "line", w)
