"""ToS2Grid / FromS2Grid: e3nn 0.4.4's outputs for every normalisation and resolution rule, exact
round trips, exact quadrature, equivariance (rotating coefficients = rotating the function), errors."""

import math

import pytest
import torch
from e3nn import o3 as e3o3

from equiv.so3 import FromS2Grid, Irreps, ToS2Grid, random_rotation, s2_grid, spherical_harmonics
from equiv.so3._s2grid import _beta_weights

CASES = [(2, None), (3, (8, 9)), (4, (12, 11)), (5, (14, 20)), (None, (10, 11)), (6, 16), (8, (18, 17))]
TOL = {torch.float32: 2e-5, torch.float64: 1e-12}
E3NN_WEIGHTS_TOL = 2e-5


def _resolution(m):
    return m.lmax, m.res_beta, m.res_alpha


@pytest.mark.filterwarnings("ignore:torch.meshgrid")  # e3nn's grid property
@pytest.mark.parametrize("lmax, res", CASES)
@pytest.mark.parametrize("normalization", ["component", "norm", "integral"])
def test_matches_e3nn(lmax, res, normalization, dtype):
    ours, ref = ToS2Grid(lmax, res, normalization, dtype=dtype), e3o3.ToS2Grid(lmax, res, normalization, dtype=dtype)
    assert _resolution(ours) == (ref.lmax, ref.res_beta, ref.res_alpha)
    x = torch.randn(3, 2, (ours.lmax + 1) ** 2, dtype=dtype)
    f = ours(x)
    assert f.shape == (3, 2, ours.res_beta, ours.res_alpha)
    scale = f.abs().max()
    assert (f - ref(x)).abs().max() / scale < TOL[dtype]
    assert torch.allclose(ours.grid, ref.grid, atol=TOL[dtype])

    back, ref_back = FromS2Grid(res if res is not None else None, lmax, normalization, dtype=dtype), \
        e3o3.FromS2Grid(res, lmax, normalization, dtype=dtype)
    g = torch.randn(4, back.res_beta, back.res_alpha, dtype=dtype)
    y, y_ref = back(g), ref_back(g)
    # e3nn computes its quadrature weights in float32 whatever the dtype (same weights to 3e-7 relative;
    # its own round trip is off by up to 1e-6 in float64, ours by 1e-15: test_round_trip_is_exact)
    assert (y - y_ref).abs().max() / y_ref.abs().max() < E3NN_WEIGHTS_TOL


@pytest.mark.parametrize("lmax, res", CASES)
def test_round_trip_is_exact(lmax, res):
    to, fro = ToS2Grid(lmax, res, dtype=torch.float64), FromS2Grid(res, lmax, dtype=torch.float64)
    x = torch.randn(5, (to.lmax + 1) ** 2, dtype=torch.float64)
    assert (fro(to(x)) - x).abs().max() < 1e-12


def test_lmax_in_and_per_degree_normalization():
    """lmax_in sets the L of FromS2Grid's factors (a signal made at a higher degree); per-degree c_l
    are the same in both directions, so they stay inverse."""
    g = torch.randn(2, 12, 13, dtype=torch.float64)
    ours = FromS2Grid((12, 13), 3, lmax_in=5, dtype=torch.float64)(g)
    ref = e3o3.FromS2Grid((12, 13), 3, lmax_in=5, dtype=torch.float64)(g)
    assert (ours - ref).abs().max() / ref.abs().max() < E3NN_WEIGHTS_TOL
    assert (ours - FromS2Grid((12, 13), 3, dtype=torch.float64)(g) * math.sqrt(6 / 4)).abs().max() < 1e-12
    c = torch.tensor([1.0, 0.5, 2.0, 3.0], dtype=torch.float64)
    to, fro = ToS2Grid(3, (8, 9), c, dtype=torch.float64), FromS2Grid((8, 9), 3, c, dtype=torch.float64)
    x = torch.randn(3, 16, dtype=torch.float64)
    assert (fro(to(x)) - x).abs().max() < 1e-12
    plain = ToS2Grid(3, (8, 9), "integral", dtype=torch.float64)
    assert (to(x) - plain(x * c.repeat_interleave(torch.tensor([1, 3, 5, 7])))).abs().max() < 1e-12


def test_values_are_the_harmonics_and_quadrature_is_exact():
    to = ToS2Grid(4, (10, 11), "integral", dtype=torch.float64)
    x = torch.randn(25, dtype=torch.float64)
    direct = spherical_harmonics(list(range(5)), to.grid, normalization="integral") @ x
    assert (to(x) - direct).abs().max() < 1e-12
    # the beta weights integrate P_k(cos beta) exactly for k < res_beta, and sum to 2
    for n in (2, 6, 10, 40):
        w = torch.as_tensor(_beta_weights(n))
        betas, _ = s2_grid(n, 1, dtype=torch.float64)
        assert abs(float(w.sum()) - 2.0) < 1e-13
        t = betas.cos()
        for k in range(1, n):
            pk = torch.special.legendre_polynomial_p(t, k)
            assert abs(float((w * pk).sum())) < 1e-12


def test_equivariance():
    """Rotating the coefficients by D(R) rotates the function: f'(r) = f(R^T r) on the grid."""
    lmax = 5
    irreps = Irreps("+".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(lmax + 1)))
    to = ToS2Grid(lmax, (12, 13), "integral", dtype=torch.float64)
    x = torch.randn((lmax + 1) ** 2, dtype=torch.float64)
    R = random_rotation(1, dtype=torch.float64)[0]
    rotated = to(irreps.D_from_matrix(R) @ x)
    expected = spherical_harmonics(list(range(lmax + 1)), to.grid @ R, normalization="integral") @ x
    assert (rotated - expected).abs().max() < 1e-12
    # the band-limited rotated signal comes back exactly
    assert (FromS2Grid((12, 13), lmax, "integral", dtype=torch.float64)(rotated) - irreps.D_from_matrix(R) @ x).abs().max() < 1e-12


def test_constant_and_gradients():
    to = ToS2Grid(3, (8, 9), "integral", dtype=torch.float64)
    x = torch.zeros(16, dtype=torch.float64)
    x[0] = 1.0
    assert torch.allclose(to(x), torch.full((8, 9), 1 / math.sqrt(4 * math.pi), dtype=torch.float64))
    x = torch.randn(2, 16, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(to, (x,))
    g = torch.randn(2, 8, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(FromS2Grid((8, 9), 3, dtype=torch.float64), (g,))


def test_errors():
    with pytest.raises(ValueError, match="even"):
        ToS2Grid(2, (7, 7))
    with pytest.raises(ValueError, match="res_beta >= 8"):
        ToS2Grid(3, (6, 9))
    with pytest.raises(ValueError, match="give lmax or res"):
        FromS2Grid()
    with pytest.raises(ValueError, match="normalization"):
        ToS2Grid(2, normalization="unit")
    with pytest.raises(ValueError, match="3 values"):
        ToS2Grid(2, normalization=torch.ones(4))
    with pytest.raises(ValueError, match=r"\(\.\.\., 9\) coefficients"):
        ToS2Grid(2)(torch.randn(3, 16))
    with pytest.raises(ValueError, match="grid values"):
        FromS2Grid((6, 5), 2)(torch.randn(3, 5, 6))


def test_harmonics_separate_in_the_grid_angles():
    """Y_lm(beta, alpha) = P_lm(beta) A_m(alpha) at arbitrary angles, every l <= 12 (the factorisation the
    grid transforms and the grid Gaunt product rely on)."""
    from equiv.so3 import angles_to_xyz
    from equiv.so3._s2grid import azimuthal_factors, polar_factors

    L = 12
    gen = torch.Generator().manual_seed(0)
    betas, alphas = torch.rand(7, generator=gen, dtype=torch.float64) * math.pi, torch.rand(9, generator=gen, dtype=torch.float64) * 2 * math.pi
    P, A = torch.as_tensor(polar_factors(L, betas.numpy())), torch.as_tensor(azimuthal_factors(L, alphas.numpy()))
    b, a = torch.meshgrid(betas, alphas, indexing="ij")
    Y = spherical_harmonics(list(range(L + 1)), angles_to_xyz(a, b), normalization="integral")  # (7, 9, R)
    for l in range(L + 1):
        for m in range(-l, l + 1):
            sep = P[l, m + L][:, None] * A[m + L][None, :]
            assert (sep - Y[..., l * l + l + m]).abs().max() < 1e-12, (l, m)
