r"""Rotation matrices, e3nn's Y-X-Y Euler angles, and Haar-random rotations.

Conventions (e3nn's): :math:`R(\alpha, \beta, \gamma) = R_y(\alpha) R_x(\beta) R_y(\gamma)`, the
:math:`y` axis is the polar axis of the spherical coordinates,
:math:`\hat r(\alpha, \beta) = (\sin\beta \sin\alpha,\ \cos\beta,\ \sin\beta \cos\alpha)
= R(\alpha, \beta, 0)\, \hat y`.
"""

from __future__ import annotations

import torch

__all__ = [
    "matrix_x",
    "matrix_y",
    "matrix_z",
    "angles_to_matrix",
    "matrix_to_angles",
    "angles_to_xyz",
    "xyz_to_angles",
    "quaternion_to_matrix",
    "random_rotation",
]


def _rot(angle: torch.Tensor, i: int, j: int) -> torch.Tensor:
    # rotation in the (i, j) plane taking e_i towards e_j
    angle = torch.as_tensor(angle)
    if not angle.is_floating_point():
        angle = angle.to(torch.get_default_dtype())
    c, s = angle.cos(), angle.sin()
    R = torch.zeros((*angle.shape, 3, 3), dtype=angle.dtype, device=angle.device)
    k = 3 - i - j
    R[..., k, k] = 1
    R[..., i, i] = c
    R[..., j, j] = c
    R[..., j, i] = s
    R[..., i, j] = -s
    return R


def matrix_x(angle: torch.Tensor) -> torch.Tensor:
    r"""Rotation by ``angle`` about the :math:`x` axis (takes :math:`y` towards :math:`z`), shape ``(..., 3, 3)``.

    >>> (matrix_x(torch.tensor(torch.pi / 2)) @ torch.tensor([0.0, 1.0, 0.0])).round()
    tensor([0., -0., 1.])
    """
    return _rot(angle, 1, 2)


def matrix_y(angle: torch.Tensor) -> torch.Tensor:
    r"""Rotation by ``angle`` about the :math:`y` axis (takes :math:`z` towards :math:`x`), shape ``(..., 3, 3)``.

    >>> matrix_y(torch.zeros(4)).shape
    torch.Size([4, 3, 3])
    """
    return _rot(angle, 2, 0)


def matrix_z(angle: torch.Tensor) -> torch.Tensor:
    r"""Rotation by ``angle`` about the :math:`z` axis (takes :math:`x` towards :math:`y`), shape ``(..., 3, 3)``.

    >>> torch.allclose(matrix_z(torch.tensor(0.3)) @ matrix_z(torch.tensor(-0.3)), torch.eye(3))
    True
    """
    return _rot(angle, 0, 1)


def angles_to_matrix(alpha, beta, gamma) -> torch.Tensor:
    r"""Rotation matrix of e3nn's Euler angles: :math:`R = R_y(\alpha) R_x(\beta) R_y(\gamma)`.

    Parameters
    ----------
    alpha, beta, gamma : torch.Tensor
        Broadcastable angles, shape ``(...)``.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 3, 3)``.

    Examples
    --------
    >>> a, b, c = torch.tensor(0.3), torch.tensor(1.2), torch.tensor(-0.7)
    >>> R = angles_to_matrix(a, b, c)
    >>> torch.allclose(torch.stack(matrix_to_angles(R)), torch.stack([a, b, c]), atol=1e-6)
    True
    """
    alpha, beta, gamma = torch.broadcast_tensors(*(torch.as_tensor(t) for t in (alpha, beta, gamma)))
    return matrix_y(alpha) @ matrix_x(beta) @ matrix_y(gamma)


def xyz_to_angles(xyz: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Spherical angles :math:`(\alpha, \beta)` of a vector, :math:`\hat r = R(\alpha, \beta, 0) \hat y`.

    :math:`\beta = \operatorname{atan2}(\sqrt{x^2+z^2}, y) \in [0, \pi]`,
    :math:`\alpha = \operatorname{atan2}(x, z)`. (Uses atan2 rather than :math:`\arccos y`, which
    loses half the digits near the poles.)

    >>> alpha, beta = xyz_to_angles(torch.tensor([0.0, 0.0, 2.0]))
    >>> float(alpha), round(float(beta), 6)
    (0.0, 1.570796)
    """
    beta = torch.atan2(torch.hypot(xyz[..., 0], xyz[..., 2]), xyz[..., 1])
    alpha = torch.atan2(xyz[..., 0], xyz[..., 2])
    return alpha, beta


def angles_to_xyz(alpha, beta) -> torch.Tensor:
    r"""The unit vector :math:`(\sin\beta\sin\alpha, \cos\beta, \sin\beta\cos\alpha)`, shape ``(..., 3)``.

    >>> angles_to_xyz(torch.tensor(1.7), torch.tensor(0.0)).abs()  # beta = 0 is the y axis
    tensor([0., 1., 0.])
    """
    alpha, beta = torch.broadcast_tensors(torch.as_tensor(alpha), torch.as_tensor(beta))
    return torch.stack([beta.sin() * alpha.sin(), beta.cos(), beta.sin() * alpha.cos()], dim=-1)


def matrix_to_angles(R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""e3nn Euler angles of proper rotations, inverse of `angles_to_matrix`.

    :math:`(\alpha, \beta)` are the spherical angles of :math:`R\hat y`; :math:`\gamma` is read
    from :math:`R(\alpha, \beta, 0)^\top R = R_y(\gamma)`. Well defined (and accurate) at the
    poles too: there :math:`\alpha` is whatever atan2 gives and :math:`\gamma` compensates.

    Parameters
    ----------
    R : torch.Tensor
        Rotation matrices (det +1), shape ``(..., 3, 3)``.

    Returns
    -------
    tuple of torch.Tensor
        ``alpha, beta, gamma``, each of shape ``(...)``.

    Examples
    --------
    >>> R = random_rotation(4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> alpha, beta, gamma = matrix_to_angles(R)
    >>> alpha.shape, bool(((0 <= beta) & (beta <= torch.pi)).all())
    (torch.Size([4]), True)
    >>> torch.allclose(angles_to_matrix(alpha, beta, gamma), R)
    True
    """
    R = torch.as_tensor(R)
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"matrix_to_angles: R must have shape (..., 3, 3), got {tuple(R.shape)}")
    alpha, beta = xyz_to_angles(R[..., :, 1])
    Rr = angles_to_matrix(alpha, beta, torch.zeros_like(alpha)).transpose(-1, -2) @ R
    gamma = torch.atan2(Rr[..., 0, 2], Rr[..., 0, 0])
    return alpha, beta, gamma


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    r"""Rotation matrix of a (not necessarily normalised) quaternion :math:`q = (w, x, y, z)`.

    :math:`R = I + 2w [v]_\times + 2 [v]_\times^2` for the unit quaternion :math:`(w, v)`.

    >>> quaternion_to_matrix(torch.tensor([2.0, 0.0, 0.0, 0.0]))
    tensor([[1., 0., 0.],
            [0., 1., 0.],
            [0., 0., 1.]])
    """
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [
            torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def random_rotation(
    n: int,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device=None,
) -> torch.Tensor:
    r"""``n`` independent Haar-distributed (uniform) rotation matrices.

    A standard normal 4-vector, normalised, is uniform on :math:`S^3`; its rotation matrix is then
    Haar distributed on :math:`SO(3)` (the double cover :math:`S^3 \to SO(3)` carries the uniform
    measure to the Haar measure; Shoemake, "Uniform random rotations", Graphics Gems III, 1992).

    Parameters
    ----------
    n : int
        Number of rotations.
    generator : torch.Generator, optional
        Random generator for reproducibility.
    dtype, device : optional
        Of the result (default dtype / CPU).

    Returns
    -------
    torch.Tensor
        Shape ``(n, 3, 3)``, :math:`R^\top R = I`, :math:`\det R = 1`.

    Examples
    --------
    >>> R = random_rotation(3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3))
    True
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"random_rotation: n must be an int >= 0, got {n!r}")
    dtype = dtype or torch.get_default_dtype()
    q = torch.randn(n, 4, generator=generator, dtype=dtype, device=device)
    return quaternion_to_matrix(q)
