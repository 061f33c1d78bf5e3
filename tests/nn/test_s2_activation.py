"""equiv.nn.S2Activation: exact for polynomial activations (against a fine grid and the Gaunt product),
measured equivariance error falling with resolution, round trip, parities, errors."""

import pytest
import torch
from torch.nn.functional import silu

from equiv.nn import S2Activation, s2_irreps
from equiv.so3 import Irreps, random_rotation
from equiv.symmetry import assert_equivariant
from equiv.tp import GauntTensorProduct


def _relative_equivariance_error(act, n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, act.irreps_in.dim, generator=g, dtype=torch.float64)
    R = random_rotation(n, generator=g, dtype=torch.float64)
    R[n // 2:] = -R[n // 2:]
    d_in = act.irreps_in.D_from_matrix(R)
    d_out = act.irreps_out.D_from_matrix(R)
    a = act(torch.einsum("bij,bj->bi", d_in, x))
    b = torch.einsum("bij,bj->bi", d_out, act(x))
    return ((a - b).abs().max() / b.abs().max()).item()


def test_square_is_exact_and_is_the_gaunt_square(dtype):
    irreps = s2_irreps(3)
    sq = S2Activation(irreps, torch.square, resolution=2 * 3 + 3).to(dtype)  # exact from 2L + L_out
    fine = S2Activation(irreps, torch.square, resolution=40).to(dtype)
    x = irreps.randn(20, -1, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    assert (sq(x) - fine(x)).abs().max() < tol * fine(x).abs().max()
    assert_equivariant(sq, [x], [irreps], [sq.irreps_out], translations=False)
    # sigma(f) = f^2: the Gaunt product of the signal with itself (integral normalisation: f = sum x Y)
    sq_int = S2Activation(irreps, torch.square, normalization="integral").to(dtype)
    gaunt = GauntTensorProduct(irreps, irreps, irreps, method="grid").to(dtype)
    with torch.no_grad():
        gaunt.weight.fill_(1.0)
    assert (sq_int(x) - gaunt(x, x)).abs().max() < tol * gaunt(x, x).abs().max()


def test_error_falls_with_resolution():
    errors = [_relative_equivariance_error(S2Activation(s2_irreps(3), silu, resolution=r).double())
              for r in (9, 27, 60)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[1] < 1e-2 and errors[2] < 3e-4  # measured 4e-3 and 6e-5
    default = S2Activation(s2_irreps(2), silu)
    assert default.resolution == 20 and _relative_equivariance_error(default.double()) < 5e-3  # measured 2e-3


def test_identity_round_trip_and_truncation(dtype):
    irreps = s2_irreps(4, p_val=-1)
    x = irreps.randn(6, -1, dtype=dtype)
    ident = S2Activation(irreps, lambda t: t).to(dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (ident(x) - x).abs().max() < tol
    low = S2Activation(irreps, lambda t: t, lmax_out=2).to(dtype)
    assert low.irreps_out == Irreps("0o + 1e + 2o") and (low(x) - x[:, :9]).abs().max() < tol
    f = ident.to_grid(x)
    assert f.shape == (6, ident.grid_points) and (ident.from_grid(f) - x).abs().max() < tol


@pytest.mark.parametrize("normalization", ["component", "integral", "norm"])
def test_normalisations_round_trip(normalization):
    irreps = s2_irreps(3)
    act = S2Activation(irreps, lambda t: t, normalization=normalization).double()
    x = irreps.randn(4, -1, dtype=torch.float64)
    assert (act(x) - x).abs().max() < 1e-12
    # unit-variance coefficients: f has variance sum_l sum_m Y_lm^2 = (L+1)^2 ("component"),
    # L+1 ("norm"), (L+1)^2 / 4 pi ("integral")
    expected = {"component": 16.0, "norm": 4.0, "integral": 16.0 / (4 * torch.pi)}[normalization]
    v = act.to_grid(irreps.randn(20000, -1, dtype=torch.float64)).pow(2).mean().item()
    assert abs(v / expected - 1) < 0.05


def test_parities():
    assert S2Activation("0e + 1o + 2e", silu).irreps_out == Irreps("0e + 1o + 2e")
    assert S2Activation("0e + 1e + 2e", silu).irreps_out == Irreps("0e + 1e + 2e")
    assert S2Activation("0o + 1e + 2o", torch.tanh).irreps_out == Irreps("0o + 1e + 2o")
    assert S2Activation("0o + 1e + 2o", torch.abs).irreps_out == Irreps("0e + 1o + 2e")
    assert S2Activation("0o + 1o", torch.abs, lmax_out=2).irreps_out == Irreps("0e + 1e + 2e")
    for irreps, act in (("0o + 1e + 2o", torch.tanh), ("0o + 1e + 2o", torch.abs), ("0e + 1e + 2e", silu)):
        # parity right: the error is the quadrature's, falling with resolution (measured at 60:
        # tanh 1.8e-4, abs 6.6e-4 (a kink), silu 6e-7)
        coarse = _relative_equivariance_error(S2Activation(irreps, act, resolution=20).double())
        fine = _relative_equivariance_error(S2Activation(irreps, act, resolution=60).double())
        assert fine < 1e-3 and fine < coarse / 10


def test_errors():
    with pytest.raises(ValueError, match="one copy of each degree"):
        S2Activation("2x0e + 1x1o", silu)
    with pytest.raises(ValueError, match="one copy of each degree"):
        S2Activation("0e + 2e", silu)
    with pytest.raises(ValueError, match="not p_val"):
        S2Activation("0e + 1o + 2o", silu)
    with pytest.raises(ValueError, match="neither"):
        S2Activation("0o + 1e", silu)
    with pytest.raises(ValueError, match="resolution must be"):
        S2Activation("0e + 1o", silu, resolution=1)
    with pytest.raises(ValueError, match="irreps_in.dim=4"):
        S2Activation("0e + 1o", silu)(torch.randn(2, 5))


def test_separable(dtype):
    irreps = s2_irreps(3)
    full = S2Activation(irreps, silu, resolution=60).to(dtype)
    sep = S2Activation(irreps, silu, resolution=60, separable=True).to(dtype)
    x = irreps.randn(6, -1, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (sep(x)[:, 0] - silu(x[:, 0])).abs().max() < tol  # the scalar: act of the scalar
    assert (sep(x)[:, 1:] - full(x)[:, 1:]).abs().max() < tol  # the rest: from the grid
    assert _relative_equivariance_error(sep.double()) < 1e-3
