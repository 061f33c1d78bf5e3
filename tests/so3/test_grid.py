"""sphere_grid: structure and exactness for the stated band limit (and not beyond)."""

import math

import pytest
import torch

from equiv.so3 import angles_to_xyz, sphere_grid, spherical_harmonics


@pytest.mark.parametrize("degree", [0, 1, 5, 12, 31])
def test_exact_for_band_limit(degree):
    grid = sphere_grid(degree, dtype=torch.float64)
    n_beta, n_alpha = grid.shape
    assert n_beta == (degree + 2) // 2 and n_alpha == degree + 1
    assert grid.points.shape == (n_beta * n_alpha, 3) and grid.weights.shape == (n_beta * n_alpha,)
    assert abs(grid.weights.sum().item() - 4 * math.pi) < 1e-13
    assert (grid.points.norm(dim=-1) - 1).abs().max() < 1e-15
    assert torch.allclose(grid.points.view(n_beta, n_alpha, 3), angles_to_xyz(grid.alphas[None, :], grid.betas[:, None]), atol=1e-15)
    assert torch.allclose(grid.cos_beta, grid.betas.cos(), atol=1e-15)
    # every Y^l_m with l <= degree integrates exactly: sqrt(4 pi) delta_{l0}
    Y = spherical_harmonics(list(range(degree + 1)), grid.points)
    integral = grid.integrate(Y)
    expected = torch.zeros_like(integral)
    expected[0] = math.sqrt(4 * math.pi)
    assert (integral - expected).abs().max() < 1e-13


def test_not_exact_beyond_band_limit():
    """The grid is not over-claimed: degree+1 (odd degree) or degree+2 harmonics are not integrated to 0."""
    for degree in [4, 7]:
        grid = sphere_grid(degree, dtype=torch.float64)
        Y = spherical_harmonics(list(range(degree + 3)), grid.points)
        assert grid.integrate(Y)[(degree + 1) ** 2 :].abs().max() > 1e-3


def test_dtype_and_errors(dtype):
    grid = sphere_grid(6, dtype=dtype)
    assert grid.points.dtype == dtype and grid.weights.dtype == dtype
    with pytest.raises(ValueError, match="degree"):
        sphere_grid(-1)
