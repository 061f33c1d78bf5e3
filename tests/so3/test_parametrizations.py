"""Rotation parametrizations: the same values as e3nn 0.4.4's functions of the same names (quaternions
up to sign), round trips, Haar statistics, accuracy near a half-turn, D_from_quaternion."""

import math

import pytest
import torch
from e3nn import o3 as e3

from equiv import so3

F64 = torch.float64


def _same_quaternion(a, b, tol=1e-10):
    """q and -q are the same rotation."""
    return torch.minimum((a - b).abs().amax(-1), (a + b).abs().amax(-1)).max() < tol


@pytest.fixture
def angles():
    torch.manual_seed(0)
    return e3.rand_angles(50, dtype=F64)


def test_conversions_match_e3nn(angles):
    a, b, c = angles
    assert _same_quaternion(so3.angles_to_quaternion(a, b, c), e3.angles_to_quaternion(a, b, c))
    q = e3.angles_to_quaternion(a, b, c)
    R = e3.angles_to_matrix(a, b, c)
    assert _same_quaternion(so3.matrix_to_quaternion(R), e3.matrix_to_quaternion(R))
    for ours, ref in zip(so3.quaternion_to_angles(q), e3.quaternion_to_angles(q)):
        assert (ours - ref).abs().max() < 1e-10
    axis, angle = e3.angles_to_axis_angle(a, b, c)
    for ours, ref in zip(so3.angles_to_axis_angle(a, b, c), (axis, angle)):
        assert (ours - ref).abs().max() < 1e-10
    assert (so3.axis_angle_to_matrix(axis, angle) - e3.axis_angle_to_matrix(axis, angle)).abs().max() < 1e-12
    assert _same_quaternion(so3.axis_angle_to_quaternion(axis, angle), e3.axis_angle_to_quaternion(axis, angle))
    for ours, ref in zip(so3.quaternion_to_axis_angle(q), e3.quaternion_to_axis_angle(q)):
        assert (ours - ref).abs().max() < 1e-10
    for ours, ref in zip(so3.matrix_to_axis_angle(R), e3.matrix_to_axis_angle(R)):
        assert (ours - ref).abs().max() < 1e-10
    for ours, ref in zip(so3.axis_angle_to_angles(axis, angle), e3.axis_angle_to_angles(axis, angle)):
        assert (ours - ref).abs().max() < 1e-10


def test_composition_and_inverses_match_e3nn(angles):
    a, b, c = angles
    a2, b2, c2 = e3.rand_angles(50, dtype=F64)
    for ours, ref in zip(so3.compose_angles(a, b, c, a2, b2, c2), e3.compose_angles(a, b, c, a2, b2, c2)):
        assert (ours - ref).abs().max() < 1e-10
    assert all(torch.equal(x, y) for x, y in zip(so3.inverse_angles(a, b, c), e3.inverse_angles(a, b, c)))
    q1, q2 = e3.angles_to_quaternion(a, b, c), e3.angles_to_quaternion(a2, b2, c2)
    assert (so3.compose_quaternion(q1, q2) - e3.compose_quaternion(q1, q2)).abs().max() < 1e-12
    assert (so3.inverse_quaternion(q1) - e3.inverse_quaternion(q1)).abs().max() < 1e-12
    ax1, an1 = e3.angles_to_axis_angle(a, b, c)
    ax2, an2 = e3.angles_to_axis_angle(a2, b2, c2)
    R = so3.axis_angle_to_matrix(*so3.compose_axis_angle(ax1, an1, ax2, an2))
    assert (R - e3.axis_angle_to_matrix(*e3.compose_axis_angle(ax1, an1, ax2, an2))).abs().max() < 1e-10
    for ours, ref in zip(so3.identity_angles(3, dtype=F64), e3.identity_angles(3, dtype=F64)):
        assert torch.equal(ours, ref)
    assert torch.equal(so3.identity_quaternion(3, dtype=F64), e3.identity_quaternion(3, dtype=F64))


def test_near_half_turn():
    """Axis-angle from a matrix stays accurate at angles near pi (the antisymmetric part vanishes)."""
    axis = torch.nn.functional.normalize(torch.randn(20, 3, dtype=F64), dim=-1)
    for angle in (math.pi, math.pi - 1e-9, math.pi - 1e-5):
        R = so3.axis_angle_to_matrix(axis, torch.full((20,), angle, dtype=F64))
        ax, an = so3.matrix_to_axis_angle(R)
        assert (an - angle).abs().max() < 1e-7
        assert (so3.axis_angle_to_matrix(ax, an) - R).abs().max() < 1e-12


def test_random_rotations_are_haar():
    """Haar statistics: E[R] = 0 and E[R_ij^2] = 1/3; angles have E[cos beta] = 0."""
    gen_state = torch.random.get_rng_state()
    torch.manual_seed(1)
    try:
        for R in (so3.rand_matrix(40000, dtype=F64), so3.axis_angle_to_matrix(*so3.rand_axis_angle(40000, dtype=F64)),
                  so3.angles_to_matrix(*so3.rand_angles(40000, dtype=F64))):
            assert R.mean(0).abs().max() < 0.02
            assert (R.pow(2).mean(0) - 1 / 3).abs().max() < 0.02
        assert (so3.rand_quaternion(7, 3, dtype=F64).norm(dim=-1) - 1).abs().max() < 1e-12
    finally:
        torch.random.set_rng_state(gen_state)


def test_d_from_quaternion_and_harmonics_alpha_beta(angles):
    a, b, c = angles
    q = e3.angles_to_quaternion(a, b, c)
    k = torch.randint(0, 2, (50,))
    for ir in ("0e", "1o", "2e", "3o"):
        ours, ref = so3.Irrep(ir).D_from_quaternion(q, k), e3.Irrep(ir).D_from_quaternion(q, k)
        assert (ours - ref).abs().max() < 1e-10
    irreps = "2x0e + 1o + 2e"
    assert (so3.Irreps(irreps).D_from_quaternion(q) - e3.Irreps(irreps).D_from_quaternion(q)).abs().max() < 1e-10
    for norm in ("integral", "component", "norm"):
        ours = so3.spherical_harmonics_alpha_beta([0, 1, 2, 3], a, b, normalization=norm)
        ref = e3.spherical_harmonics_alpha_beta([0, 1, 2, 3], a, b, normalization=norm)
        assert (ours - ref).abs().max() < 1e-12
    assert torch.equal(so3.wigner_3j(2, 3, 4, dtype=F64), so3.clebsch_gordan(2, 3, 4, dtype=F64))
    assert (so3.wigner_3j(2, 3, 4, dtype=F64) - e3.wigner_3j(2, 3, 4, dtype=F64)).abs().max() < 1e-12


def test_factorised_harmonics_match_e3nn():
    """spherical_harmonics_alpha, Legendre, SphericalHarmonicsAlphaBeta, spherical_harmonics_s2_grid:
    e3nn's values; S^l(alpha) P^l(beta) is the harmonic of the direction."""
    torch.manual_seed(0)
    alpha, beta = torch.rand(30, dtype=F64) * 2 * math.pi, torch.rand(30, dtype=F64) * math.pi
    for l in (0, 1, 3, 6):
        assert (so3.spherical_harmonics_alpha(l, alpha) - e3.spherical_harmonics_alpha(l, alpha)).abs().max() < 1e-12
    ls = [0, 2, 1, 5]
    ours = so3.Legendre(ls)(beta.cos(), beta.sin())
    ref = e3.Legendre(ls)(beta.cos(), beta.sin())
    assert (ours - ref).abs().max() < 1e-12
    for norm in ("integral", "component", "norm"):
        a = so3.SphericalHarmonicsAlphaBeta(ls, normalization=norm)(alpha, beta)
        assert (a - e3.SphericalHarmonicsAlphaBeta(ls, normalization=norm)(alpha, beta)).abs().max() < 1e-12
    for ours, ref in zip(so3.spherical_harmonics_s2_grid(4, 10, 9, dtype=F64), e3.spherical_harmonics_s2_grid(4, 10, 9, dtype=F64)):
        assert ours.shape == ref.shape and (ours - ref).abs().max() < 1e-12
    # the product of the factors is the harmonic (integral normalisation)
    sha, shb = so3.spherical_harmonics_alpha(3, alpha), so3.Legendre([3])(beta.cos(), beta.sin())
    direct = so3.spherical_harmonics(3, so3.angles_to_xyz(alpha, beta))
    assert (sha * shb - direct).abs().max() < 1e-12


def test_rfft_irfft_match_e3nn():
    x = torch.randn(4, 15, dtype=F64)
    for l in (0, 3, 7):
        assert (so3.rfft(x, l) - e3._s2grid.rfft(x, l)).abs().max() < 1e-12
        c = torch.randn(2, 2 * l + 1, dtype=F64)
        assert (so3.irfft(c, 15) - e3._s2grid.irfft(c, 15)).abs().max() < 1e-12
    with pytest.raises(ValueError, match="odd"):
        so3.irfft(torch.randn(3), 4)
    with pytest.raises(ValueError, match="not l = 8"):
        so3.rfft(torch.randn(15), 8)


def test_round_trips_in_both_dtypes(dtype):
    tol = {torch.float32: 1e-5, torch.float64: 1e-12}[dtype]
    R = so3.rand_matrix(64, dtype=dtype)
    assert R.dtype == dtype
    assert (so3.quaternion_to_matrix(so3.matrix_to_quaternion(R)) - R).abs().max() < tol
    assert (so3.axis_angle_to_matrix(*so3.matrix_to_axis_angle(R)) - R).abs().max() < 10 * tol
    assert (so3.angles_to_matrix(*so3.quaternion_to_angles(so3.matrix_to_quaternion(R))) - R).abs().max() < 10 * tol
    q1, q2 = so3.rand_quaternion(64, dtype=dtype), so3.rand_quaternion(64, dtype=dtype)
    lhs = so3.quaternion_to_matrix(so3.compose_quaternion(q1, q2))
    assert (lhs - so3.quaternion_to_matrix(q1) @ so3.quaternion_to_matrix(q2)).abs().max() < tol
