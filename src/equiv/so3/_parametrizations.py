r"""Rotation parametrizations and their conversions, with e3nn's names and conventions.

Four ways to write a rotation: a matrix :math:`R`; e3nn's Euler angles :math:`(\alpha, \beta, \gamma)`,
:math:`R = R_y(\alpha) R_x(\beta) R_y(\gamma)` (`angles_to_matrix`); a unit quaternion
:math:`q = (w, x, y, z) = (\cos\frac\theta2, \sin\frac\theta2\, \hat n)`; an axis and an angle
:math:`(\hat n, \theta)` (Rodrigues: :math:`R = I + \sin\theta [\hat n]_\times + (1 - \cos\theta)
[\hat n]_\times^2`). Every conversion here goes between them; random rotations are Haar-distributed
(uniform) in each parametrization. Quaternions compose by the Hamilton product, so that
``quaternion_to_matrix(compose_quaternion(q1, q2)) = quaternion_to_matrix(q1) @ quaternion_to_matrix(q2)``.

Conversions from a matrix go through its quaternion (Shepperd's method: the largest of
:math:`w, x, y, z` is taken from the trace or a diagonal entry, the others from off-diagonal sums),
which stays accurate near :math:`\theta = \pi`, where the antisymmetric part of :math:`R` vanishes.
The quaternions returned have :math:`w \ge 0` (angles in :math:`[0, \pi]`). Same values as e3nn's
functions of the same names (``tests/so3/test_parametrizations.py``), up to the sign of a quaternion.
"""

from __future__ import annotations

import math

import torch

from ._rotation import angles_to_matrix, angles_to_xyz, matrix_to_angles, quaternion_to_matrix

__all__ = [
    "identity_angles", "rand_angles", "compose_angles", "inverse_angles",
    "identity_quaternion", "rand_quaternion", "compose_quaternion", "inverse_quaternion",
    "rand_axis_angle", "compose_axis_angle", "rand_matrix",
    "angles_to_quaternion", "quaternion_to_angles", "matrix_to_quaternion",
    "axis_angle_to_quaternion", "quaternion_to_axis_angle", "axis_angle_to_matrix", "matrix_to_axis_angle",
    "axis_angle_to_angles", "angles_to_axis_angle", "spherical_harmonics_alpha_beta", "wigner_3j",
]


def _kw(dtype, device, requires_grad):
    return dict(dtype=dtype or torch.get_default_dtype(), device=device, requires_grad=requires_grad)


def identity_angles(*shape, requires_grad: bool = False, dtype=None, device=None):
    """Angles ``(alpha, beta, gamma)`` of the identity, each of shape ``shape``.

    >>> identity_angles(2)
    (tensor([0., 0.]), tensor([0., 0.]), tensor([0., 0.]))
    """
    return tuple(torch.zeros(shape, **_kw(dtype, device, requires_grad)) for _ in range(3))


def rand_angles(*shape, requires_grad: bool = False, dtype=None, device=None):
    r"""Angles of Haar-random rotations: :math:`\alpha, \gamma` uniform in :math:`[0, 2\pi)`,
    :math:`\cos\beta` uniform in :math:`[-1, 1]`.

    >>> [tuple(a.shape) for a in rand_angles(4, 2)]
    [(4, 2), (4, 2), (4, 2)]
    """
    kw = _kw(dtype, device, False)
    alpha, gamma = 2 * math.pi * torch.rand(shape, **kw), 2 * math.pi * torch.rand(shape, **kw)
    beta = torch.rand(shape, **kw).mul(2).sub(1).acos()
    return tuple(t.requires_grad_(requires_grad) for t in (alpha, beta, gamma))


def compose_angles(a1, b1, c1, a2, b2, c2):
    """Angles of ``R(a1, b1, c1) @ R(a2, b2, c2)``.

    >>> a = compose_angles(*rand_angles(3, dtype=torch.float64), *identity_angles(3, dtype=torch.float64))
    >>> tuple(a[0].shape)
    (3,)
    """
    return matrix_to_angles(angles_to_matrix(a1, b1, c1) @ angles_to_matrix(a2, b2, c2))


def inverse_angles(a, b, c):
    """Angles of the inverse rotation: ``(-c, -b, -a)``.

    >>> R = angles_to_matrix(*rand_angles(dtype=torch.float64))
    >>> a, b, c = matrix_to_angles(R)
    >>> bool(torch.allclose(angles_to_matrix(*inverse_angles(a, b, c)), R.T))
    True
    """
    return -c, -b, -a


def identity_quaternion(*shape, requires_grad: bool = False, dtype=None, device=None) -> torch.Tensor:
    """``(..., 4)`` quaternions ``(1, 0, 0, 0)``.

    >>> identity_quaternion(2)
    tensor([[1., 0., 0., 0.],
            [1., 0., 0., 0.]])
    """
    q = torch.zeros(*shape, 4, **_kw(dtype, device, False))
    q[..., 0] = 1
    return q.requires_grad_(requires_grad)


def rand_quaternion(*shape, requires_grad: bool = False, dtype=None, device=None) -> torch.Tensor:
    r"""Haar-random unit quaternions ``(..., 4)`` (normalised Gaussians), with :math:`w \ge 0`.

    >>> q = rand_quaternion(5)
    >>> bool(torch.allclose(q.norm(dim=-1), torch.ones(5))), bool((q[:, 0] >= 0).all())
    (True, True)
    """
    q = torch.randn(*shape, 4, **_kw(dtype, device, False))
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q).requires_grad_(requires_grad)


def compose_quaternion(q1: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
    r"""Hamilton product :math:`q_1 q_2` (the rotation :math:`q_2` then :math:`q_1`), broadcast.

    >>> q1, q2 = rand_quaternion(3, dtype=torch.float64), rand_quaternion(3, dtype=torch.float64)
    >>> R = quaternion_to_matrix(compose_quaternion(q1, q2))
    >>> bool(torch.allclose(R, quaternion_to_matrix(q1) @ quaternion_to_matrix(q2)))
    True
    """
    q1, q2 = torch.broadcast_tensors(q1, q2)
    w1, x1, y1, z1 = q1.unbind(-1)
    w2, x2, y2, z2 = q2.unbind(-1)
    return torch.stack([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ], dim=-1)


def inverse_quaternion(q: torch.Tensor) -> torch.Tensor:
    """The inverse of a unit quaternion (its conjugate ``(w, -x, -y, -z)``).

    >>> q = rand_quaternion(dtype=torch.float64)
    >>> bool(torch.allclose(compose_quaternion(q, inverse_quaternion(q)), identity_quaternion(dtype=torch.float64)))
    True
    """
    return q * q.new_tensor([1.0, -1.0, -1.0, -1.0])


def axis_angle_to_quaternion(xyz: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    r""":math:`(\cos\frac\theta2, \sin\frac\theta2\, \hat n)` of an axis ``(..., 3)`` (any length) and an
    angle ``(...)``.

    >>> axis_angle_to_quaternion(torch.tensor([0.0, 0.0, 2.0]), torch.tensor(torch.pi)).round(decimals=6) + 0.0
    tensor([0., 0., 0., 1.])
    """
    xyz, angle = torch.broadcast_tensors(xyz, torch.as_tensor(angle, dtype=xyz.dtype, device=xyz.device)[..., None])
    xyz = torch.nn.functional.normalize(xyz, dim=-1)
    half = angle[..., :1] / 2
    return torch.cat([half.cos(), half.sin() * xyz], dim=-1)


def quaternion_to_axis_angle(q: torch.Tensor):
    r"""Axis ``(..., 3)`` and angle ``(...)`` in :math:`[0, 2\pi]` of a unit quaternion.

    >>> axis, angle = quaternion_to_axis_angle(torch.tensor([0.0, 1.0, 0.0, 0.0]))
    >>> axis, round(float(angle), 6)
    (tensor([1., 0., 0.]), 3.141593)
    """
    angle = 2 * q[..., 0].clamp(-1, 1).acos()
    return torch.nn.functional.normalize(q[..., 1:], dim=-1), angle


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    r"""Unit quaternion (:math:`w \ge 0`) of rotation matrices ``(..., 3, 3)``, by Shepperd's method.

    >>> R = rand_matrix(6, dtype=torch.float64)
    >>> bool(torch.allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R))
    True
    """
    m = R
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # four candidate (unnormalised) quaternions, each accurate when its leading component is the largest
    cands = torch.stack([
        torch.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0],
                     m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                     m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                     1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
    ], -2)  # (..., 4, 4): candidate k has 4 q_k^2 in position k
    diag = torch.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(-1, keepdim=True)
    q = cands.gather(-2, best[..., None].expand(*best.shape[:-1], 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    r"""Rodrigues' rotation by ``angle`` about ``axis`` (any length), ``(..., 3, 3)``.

    >>> axis_angle_to_matrix(torch.tensor([0.0, 0.0, 1.0]), torch.tensor(torch.pi / 2)).round(decimals=6) + 0.0
    tensor([[ 0., -1.,  0.],
            [ 1.,  0.,  0.],
            [ 0.,  0.,  1.]])
    """
    return quaternion_to_matrix(axis_angle_to_quaternion(axis, angle))


def matrix_to_axis_angle(R: torch.Tensor):
    r"""Axis ``(..., 3)`` and angle in :math:`[0, \pi]` of rotation matrices (accurate near :math:`\pi`).

    >>> axis, angle = matrix_to_axis_angle(torch.diag(torch.tensor([-1.0, 1.0, -1.0])))
    >>> axis.abs().tolist(), round(float(angle), 6)
    ([0.0, 1.0, 0.0], 3.141593)
    """
    return quaternion_to_axis_angle(matrix_to_quaternion(R))


def angles_to_quaternion(alpha, beta, gamma) -> torch.Tensor:
    r"""Quaternion of e3nn's Euler angles, :math:`q_y(\alpha)\, q_x(\beta)\, q_y(\gamma)`.

    >>> a = rand_angles(4, dtype=torch.float64)
    >>> bool(torch.allclose(quaternion_to_matrix(angles_to_quaternion(*a)), angles_to_matrix(*a)))
    True
    """
    alpha, beta, gamma = torch.broadcast_tensors(*(torch.as_tensor(t) for t in (alpha, beta, gamma)))
    ey = alpha.new_tensor([0.0, 1.0, 0.0])
    ex = alpha.new_tensor([1.0, 0.0, 0.0])
    qa, qb, qc = (axis_angle_to_quaternion(e, t) for e, t in ((ey, alpha), (ex, beta), (ey, gamma)))
    return compose_quaternion(qa, compose_quaternion(qb, qc))


def quaternion_to_angles(q: torch.Tensor):
    """e3nn Euler angles of quaternions.

    >>> q = rand_quaternion(3, dtype=torch.float64)
    >>> bool(torch.allclose(angles_to_matrix(*quaternion_to_angles(q)), quaternion_to_matrix(q)))
    True
    """
    return matrix_to_angles(quaternion_to_matrix(q))


def axis_angle_to_angles(axis: torch.Tensor, angle: torch.Tensor):
    """e3nn Euler angles of an axis-angle rotation.

    >>> axis, angle = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64), torch.tensor(0.5, dtype=torch.float64)
    >>> bool(torch.allclose(angles_to_matrix(*axis_angle_to_angles(axis, angle)), axis_angle_to_matrix(axis, angle)))
    True
    """
    return matrix_to_angles(axis_angle_to_matrix(axis, angle))


def angles_to_axis_angle(alpha, beta, gamma):
    """Axis and angle of e3nn's Euler angles.

    >>> axis, angle = angles_to_axis_angle(torch.tensor(0.0), torch.tensor(0.3), torch.tensor(0.0))
    >>> axis.tolist(), round(float(angle), 6)
    ([1.0, 0.0, 0.0], 0.3)
    """
    return matrix_to_axis_angle(angles_to_matrix(alpha, beta, gamma))


def rand_axis_angle(*shape, requires_grad: bool = False, dtype=None, device=None):
    """Axis ``(*shape, 3)`` and angle ``shape`` of Haar-random rotations.

    >>> axis, angle = rand_axis_angle(3)
    >>> tuple(axis.shape), tuple(angle.shape)
    ((3, 3), (3,))
    """
    axis, angle = quaternion_to_axis_angle(rand_quaternion(*shape, dtype=dtype, device=device))
    return axis.requires_grad_(requires_grad), angle.requires_grad_(requires_grad)


def compose_axis_angle(axis1, angle1, axis2, angle2):
    """Axis and angle of ``R1 @ R2`` (the rotation ``(axis2, angle2)``, then ``(axis1, angle1)``).

    >>> axis, angle = compose_axis_angle(torch.tensor([0.0, 0.0, 1.0]), torch.tensor(0.2),
    ...                                  torch.tensor([0.0, 0.0, 1.0]), torch.tensor(0.3))
    >>> axis.tolist(), round(float(angle), 6)
    ([0.0, 0.0, 1.0], 0.5)
    """
    return quaternion_to_axis_angle(compose_quaternion(axis_angle_to_quaternion(axis1, angle1),
                                                       axis_angle_to_quaternion(axis2, angle2)))


def rand_matrix(*shape, requires_grad: bool = False, dtype=None, device=None) -> torch.Tensor:
    """Haar-random rotation matrices ``(*shape, 3, 3)`` (e3nn's ``rand_matrix``; see also `random_rotation`).

    >>> R = rand_matrix(2, 5, dtype=torch.float64)
    >>> tuple(R.shape), bool(torch.allclose(R @ R.transpose(-1, -2), torch.eye(3, dtype=torch.float64)))
    ((2, 5, 3, 3), True)
    """
    R = quaternion_to_matrix(rand_quaternion(*shape, dtype=dtype, device=device))
    return R.requires_grad_(requires_grad)


def spherical_harmonics_alpha_beta(l, alpha, beta, *, normalize: bool = True, normalization: str = "integral"):
    r"""Spherical harmonics of the direction with spherical angles :math:`(\alpha, \beta)`
    (`angles_to_xyz`), ``(..., sum(2l+1))``.

    >>> spherical_harmonics_alpha_beta([0, 1], torch.tensor(0.0), torch.tensor(0.0), normalization="component")
    tensor([1.0000, 0.0000, 1.7321, 0.0000])
    """
    from ._spherical_harmonics import spherical_harmonics

    return spherical_harmonics(l, angles_to_xyz(alpha, beta), normalize=normalize, normalization=normalization)


def wigner_3j(l1: int, l2: int, l3: int, dtype=None, device=None) -> torch.Tensor:
    """e3nn's name for the real Clebsch–Gordan tensor `equiv.so3.clebsch_gordan` (e3nn 0.4.4's signs).

    >>> tuple(wigner_3j(1, 2, 3).shape)
    (3, 5, 7)
    """
    from ._clebsch_gordan import clebsch_gordan

    return clebsch_gordan(l1, l2, l3, dtype=dtype, device=device)
