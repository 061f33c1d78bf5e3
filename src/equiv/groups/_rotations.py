"""Rotation and reflection groups of 3-space: SO(2) and O(2) about an axis, SO(3), O(3).

Elements are orthogonal ``3 x 3`` matrices. Rotations about a unit axis :math:`n` by an angle
:math:`\\theta` follow Rodrigues' formula

.. math:: R(n, \\theta) = I + \\sin\\theta\\,[n]_\\times + (1 - \\cos\\theta)\\,[n]_\\times^2 ,

with :math:`[n]_\\times v = n \\times v`; the Lie algebra :math:`\\mathfrak{so}(3)` is spanned by
:math:`L_x, L_y, L_z` with :math:`(L_i)_{jk} = -\\epsilon_{ijk}`, so :math:`R(n, \\theta) = \\exp(\\theta\\, n\\cdot L)`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ._base import Group, OrbitGrid, _uniform_angles

__all__ = ["SO2", "O2", "SO3", "O3", "rotation_about", "cross_matrix", "axis_vector"]

_AXES = {"x": 0, "y": 1, "z": 2}


def axis_vector(axis, dtype=None, device=None) -> torch.Tensor:
    """A unit 3-vector from ``"x"``, ``"y"``, ``"z"`` or any non-zero 3-vector.

    Examples
    --------
    >>> axis_vector("y")
    tensor([0., 1., 0.])
    >>> axis_vector([3.0, 0.0, 4.0])  # normalised
    tensor([0.6000, 0.0000, 0.8000])
    """
    dtype = dtype or torch.get_default_dtype()
    if isinstance(axis, str):
        if axis.lower() not in _AXES:
            raise ValueError(f"axis={axis!r}: expected 'x', 'y', 'z' or a 3-vector")
        v = torch.zeros(3, dtype=dtype, device=device)
        v[_AXES[axis.lower()]] = 1.0
        return v
    v = torch.as_tensor(axis, dtype=dtype, device=device)
    if v.shape != (3,) or float(v.norm()) == 0.0:
        raise ValueError(f"axis={axis!r}: expected 'x', 'y', 'z' or a non-zero 3-vector")
    return v / v.norm()


def cross_matrix(v: torch.Tensor) -> torch.Tensor:
    """:math:`[v]_\\times`, shape ``(..., 3, 3)``, with :math:`[v]_\\times w = v \\times w`.

    Examples
    --------
    >>> v, w = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.5, -1.0, 2.0])
    >>> cross_matrix(v)
    tensor([[ 0., -3.,  2.],
            [ 3.,  0., -1.],
            [-2.,  1.,  0.]])
    >>> torch.allclose(cross_matrix(v) @ w, torch.linalg.cross(v, w))
    True
    """
    z = torch.zeros_like(v[..., 0])
    x, y, w = v[..., 0], v[..., 1], v[..., 2]
    return torch.stack(
        [torch.stack([z, -w, y], -1), torch.stack([w, z, -x], -1), torch.stack([-y, x, z], -1)], -2
    )


def rotation_about(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices by ``angle`` (right-handed) about unit ``axis``: Rodrigues' formula.

    Parameters
    ----------
    axis : Tensor ``(..., 3)`` (unit vectors)
    angle : Tensor ``(...)``

    Returns
    -------
    Tensor ``(..., 3, 3)``

    >>> import torch
    >>> rotation_about(torch.tensor([0., 0., 1.]), torch.tensor(math.pi / 2)).round(decimals=6)
    tensor([[ 0., -1.,  0.],
            [ 1.,  0.,  0.],
            [ 0.,  0.,  1.]])
    """
    angle = torch.as_tensor(angle, dtype=axis.dtype, device=axis.device)
    axis, angle = torch.broadcast_tensors(axis, angle.unsqueeze(-1))
    angle = angle[..., 0]
    K = cross_matrix(axis)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    s, c = torch.sin(angle)[..., None, None], torch.cos(angle)[..., None, None]
    return eye + s * K + (1 - c) * (K @ K)


def _lie_so3(dtype, device) -> torch.Tensor:
    return cross_matrix(torch.eye(3, dtype=dtype, device=device))  # L_x, L_y, L_z


def _haar(n, generator, dtype, device) -> torch.Tensor:
    from equiv.so3 import random_rotation

    return random_rotation(n, generator=generator, dtype=dtype or torch.get_default_dtype(), device=device)


def _is_orthogonal(g: torch.Tensor, atol: float) -> torch.Tensor:
    eye = torch.eye(3, dtype=g.dtype, device=g.device)
    return ((g @ g.transpose(-1, -2) - eye).abs().amax(dim=(-1, -2)) <= atol)


class SO2(Group):
    """Rotations about one axis (default ``z``): :math:`\\{R(n, \\theta)\\}`, a circle.

    Parameters
    ----------
    axis : ``"x"``, ``"y"``, ``"z"`` or a 3-vector

    >>> import torch
    >>> G = SO2("z")
    >>> bool(G.contains(G.sample(4)).all())
    True
    >>> G.orbit(8).coords["angle"].shape
    torch.Size([8])
    """

    def __init__(self, axis="z"):
        self.axis = axis_vector(axis, dtype=torch.float64)
        label = axis if isinstance(axis, str) else "(" + ",".join(f"{v:.3g}" for v in self.axis.tolist()) + ")"
        self.name = f"SO(2)_{label}"

    def element(self, angle: torch.Tensor) -> torch.Tensor:
        """Rotation matrices for the given angles ``(...)`` -> ``(..., 3, 3)``."""
        angle = torch.as_tensor(angle)
        if not angle.is_floating_point():
            angle = angle.to(torch.get_default_dtype())
        return rotation_about(self.axis.to(angle.dtype).to(angle.device), angle)

    def angle(self, g: torch.Tensor) -> torch.Tensor:
        """The rotation angle in ``[0, 2 pi)`` of each element about the axis."""
        n = self.axis.to(g.dtype).to(g.device)
        u = _perpendicular(n)
        w = torch.cross(n, u, dim=-1)
        gu = g @ u
        return torch.remainder(torch.atan2(gu @ w, gu @ u), 2 * math.pi)

    def sample(self, n=1, *, generator=None, dtype=None, device=None):
        dtype = dtype or torch.get_default_dtype()
        theta = torch.rand(n, generator=generator, dtype=dtype, device=device) * (2 * math.pi)
        return self.element(theta)

    def contains(self, g, atol=1e-6):
        n = self.axis.to(g.dtype).to(g.device)
        fixes = ((g @ n) - n).abs().amax(-1) <= atol
        return _is_orthogonal(g, atol) & fixes & (torch.linalg.det(g) > 0)

    def lie_generators(self, dtype=torch.float64, device=None):
        return cross_matrix(self.axis.to(dtype).to(device))[None]

    def orbit(self, num_points: int = 36, *, dtype=None, **kwargs) -> OrbitGrid:
        """``num_points`` equally spaced rotations, angles :math:`2\\pi k / n`."""
        _check_num(num_points, 1)
        _no_kwargs(self, kwargs)
        dtype = dtype or torch.get_default_dtype()
        theta = _uniform_angles(num_points, dtype, None)
        w = torch.full((num_points,), 1.0 / num_points, dtype=dtype)
        return OrbitGrid(self.element(theta), {"angle": theta}, (num_points,), "circle", w)


class O2(SO2):
    """Rotations about an axis and reflections in the planes containing it (the stabiliser of the axis).

    The finite generator is the reflection :math:`I - 2 u u^\\top` through the plane spanned by the
    axis and one perpendicular direction; with the rotations it generates the group.

    Examples
    --------
    >>> G = O2("z")
    >>> P = G.reflection()  # fixes the axis, det -1
    >>> P
    tensor([[ 1.,  0.,  0.],
            [ 0., -1.,  0.],
            [ 0.,  0.,  1.]], dtype=torch.float64)
    >>> bool(G.contains(P)), bool(SO2("z").contains(P))
    (True, False)
    >>> bool(G.contains(G.sample(4, generator=torch.Generator().manual_seed(0))).all())
    True
    >>> G.orbit(4).shape  # 4 rotations, then the same after the reflection
    (2, 4)
    """

    def __init__(self, axis="z"):
        super().__init__(axis)
        self.name = self.name.replace("SO(2)", "O(2)")

    def reflection(self, dtype=torch.float64, device=None) -> torch.Tensor:
        n = self.axis.to(dtype).to(device)
        u = torch.cross(n, _perpendicular(n), dim=-1)  # perpendicular to n: the reflected direction
        return torch.eye(3, dtype=dtype, device=device) - 2 * torch.outer(u, u)

    def sample(self, n=1, *, generator=None, dtype=None, device=None):
        dtype = dtype or torch.get_default_dtype()
        R = super().sample(n, generator=generator, dtype=dtype, device=device)
        flip = torch.rand(n, generator=generator, dtype=dtype, device=device) < 0.5
        Rf = R @ self.reflection(dtype, device)
        return torch.where(flip[:, None, None], Rf, R)

    def contains(self, g, atol=1e-6):
        n = self.axis.to(g.dtype).to(g.device)
        return _is_orthogonal(g, atol) & (((g @ n) - n).abs().amax(-1) <= atol)

    def discrete_generators(self, dtype=torch.float64, device=None):
        return self.reflection(dtype, device)[None]

    def orbit(self, num_points: int = 36, *, dtype=None, **kwargs) -> OrbitGrid:
        """``num_points`` rotations, then the same rotations after the reflection: shape ``(2, n)``."""
        grid = super().orbit(num_points, dtype=dtype, **kwargs)
        P = self.reflection(grid.elements.dtype)
        elements = torch.cat([grid.elements, grid.elements @ P])
        coords = {
            "angle": grid.coords["angle"].repeat(2),
            "reflected": torch.arange(2).repeat_interleave(num_points).to(grid.elements.dtype),
        }
        return OrbitGrid(elements, coords, (2, num_points), "circle", grid.weights.repeat(2) / 2)


def _perpendicular(n: torch.Tensor) -> torch.Tensor:
    """A unit vector perpendicular to unit ``n`` (deterministic)."""
    e = torch.zeros_like(n)
    e[int(torch.argmin(n.abs()))] = 1.0
    u = e - (e @ n) * n
    return u / u.norm()


def _euler_zyz(alpha, beta, gamma):
    ez = torch.tensor([0.0, 0.0, 1.0], dtype=alpha.dtype)
    ey = torch.tensor([0.0, 1.0, 0.0], dtype=alpha.dtype)
    return rotation_about(ez, alpha) @ rotation_about(ey, beta) @ rotation_about(ez, gamma)


def sphere_product_grid(num_points: int, dtype=None):
    """Gauss--Legendre in :math:`\\cos\\beta` x uniform in :math:`\\alpha`, about ``num_points`` points.

    Returns ``(beta (nb,), alpha (na,), weight (nb,))`` with ``na = 2 nb`` and weights summing to 1
    over the ``nb * na`` points after dividing by ``na``.
    """
    dtype = dtype or torch.get_default_dtype()
    nb = max(2, int(round(math.sqrt(num_points / 2))))
    x, w = np.polynomial.legendre.leggauss(nb)
    beta = torch.as_tensor(np.arccos(x[::-1].copy()), dtype=dtype)  # north (beta=0) to south
    wb = torch.as_tensor(w[::-1].copy() / 2.0, dtype=dtype)
    alpha = _uniform_angles(2 * nb, dtype, None)
    return beta, alpha, wb


class SO3(Group):
    """All rotations of 3-space.

    :meth:`orbit` covers the group with a product grid in ZYZ Euler angles
    :math:`R = R_z(\\alpha) R_y(\\beta) R_z(\\gamma)`: :math:`(\\alpha, \\beta)` is where the rotation
    sends the north pole :math:`e_z` (a point on the sphere, Gauss--Legendre in
    :math:`\\cos\\beta`), :math:`\\gamma` the roll about it; the weights integrate exactly against the
    Haar measure for band-limited functions. ``parametrization="axis_angle"`` instead uses rotation
    axes on the sphere and angles in :math:`(0, \\pi]`.

    >>> G = SO3()
    >>> grid = G.orbit(50, num_angles=4)
    >>> grid.shape, grid.layout
    ((5, 10, 4), 'sphere')
    """

    name = "SO(3)"

    def sample(self, n=1, *, generator=None, dtype=None, device=None):
        return _haar(n, generator, dtype, device)

    def contains(self, g, atol=1e-6):
        return _is_orthogonal(g, atol) & (torch.linalg.det(g) > 0)

    def lie_generators(self, dtype=torch.float64, device=None):
        return _lie_so3(dtype, device)

    def orbit(self, num_points: int = 128, *, num_angles: int = 6, parametrization: str = "pole", dtype=None) -> OrbitGrid:
        """Grid of about ``num_points`` sphere points x ``num_angles`` angles, shape ``(nb, na, num_angles)``."""
        _check_num(num_points, 8)
        _check_num(num_angles, 1, "num_angles")
        beta, alpha, wb = sphere_product_grid(num_points, dtype)
        nb, na = len(beta), len(alpha)
        B, A = torch.meshgrid(beta, alpha, indexing="ij")
        wgrid = (wb[:, None] / na).expand(nb, na)
        if parametrization == "pole":
            gamma = _uniform_angles(num_angles, beta.dtype, None)
            Bb, Aa, Gg = (t.reshape(-1) for t in torch.meshgrid(beta, alpha, gamma, indexing="ij"))
            R = _euler_zyz(Aa, Bb, Gg)
            coords = {"alpha": Aa, "beta": Bb, "gamma": Gg}
        elif parametrization == "axis_angle":
            theta = torch.arange(1, num_angles + 1, dtype=beta.dtype) * (math.pi / num_angles)
            Bb, Aa, Tt = (t.reshape(-1) for t in torch.meshgrid(beta, alpha, theta, indexing="ij"))
            axis = torch.stack([torch.sin(Bb) * torch.cos(Aa), torch.sin(Bb) * torch.sin(Aa), torch.cos(Bb)], -1)
            R = rotation_about(axis, Tt)
            coords = {"alpha": Aa, "beta": Bb, "angle": Tt}
        else:
            raise ValueError(f"parametrization={parametrization!r}: expected 'pole' or 'axis_angle'")
        w = (wgrid[..., None] / num_angles).expand(nb, na, num_angles).reshape(-1)
        return OrbitGrid(R, coords, (nb, na, num_angles), "sphere", w, {"parametrization": parametrization})


class O3(SO3):
    """Rotations and improper rotations (det = -1). The finite generator is the inversion :math:`-I`.

    :meth:`orbit` returns the SO(3) grid and the same grid composed with the inversion, shape
    ``(2, nb, na, num_angles)``.

    Examples
    --------
    >>> G, inversion = O3(), -torch.eye(3)
    >>> bool(G.contains(inversion)), bool(SO3().contains(inversion))
    (True, False)
    >>> x = torch.tensor([1.0, 2.0, 3.0])
    >>> G.act(inversion, x, "1o"), G.act(inversion, x, "1e")  # odd and even parity
    (tensor([-1., -2., -3.]), tensor([1., 2., 3.]))
    >>> G.orbit(16, num_angles=2).shape
    (2, 3, 6, 2)
    """

    name = "O(3)"

    def sample(self, n=1, *, generator=None, dtype=None, device=None):
        R = _haar(n, generator, dtype, device)
        flip = torch.rand(n, generator=generator, dtype=R.dtype, device=R.device) < 0.5
        return torch.where(flip[:, None, None], -R, R)

    def contains(self, g, atol=1e-6):
        return _is_orthogonal(g, atol)

    def discrete_generators(self, dtype=torch.float64, device=None):
        return -torch.eye(3, dtype=dtype, device=device)[None]

    def orbit(self, num_points: int = 128, *, num_angles: int = 6, parametrization: str = "pole", dtype=None) -> OrbitGrid:
        grid = super().orbit(num_points, num_angles=num_angles, parametrization=parametrization, dtype=dtype)
        n = len(grid)
        coords = {k: v.repeat(2) for k, v in grid.coords.items()}
        coords["inverted"] = torch.arange(2).repeat_interleave(n).to(grid.elements.dtype)
        return OrbitGrid(
            torch.cat([grid.elements, -grid.elements]), coords, (2, *grid.shape), "sphere", grid.weights.repeat(2) / 2, grid.meta
        )


def _check_num(n, minimum, name="num_points"):
    if not isinstance(n, int) or isinstance(n, bool) or n < minimum:
        raise ValueError(f"{name}={n!r}: expected an integer >= {minimum}")


def _no_kwargs(group, kwargs):
    if kwargs:
        raise TypeError(f"{group.name}.orbit: unexpected keyword arguments {sorted(kwargs)}")
