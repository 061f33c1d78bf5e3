"""SO3Grid and SO3Activation: e3nn 0.4.4's grids and outputs (e3nn's float32 quadrature weights and
Monte-Carlo activation constant accounted for), exact round trips, equivariance (exact for a
polynomial activation on a fine enough grid), errors."""

import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3 as e3nn_o3
from e3nn.math import normalize2mom

from equiv.nn import SO3Activation
from equiv.so3 import SO3Grid, flat_wigner, so3_irreps
from equiv.symmetry import assert_equivariant

F64 = torch.float64


@pytest.mark.parametrize("lmax, resolution, aspect", [(0, 2, 2), (2, 4, 2), (3, 5, 1.5), (4, 6, 2)])
def test_grid_matches_e3nn(lmax, resolution, aspect):
    torch.set_default_dtype(F64)
    try:
        ref = e3nn_o3.SO3Grid(lmax, resolution, aspect_ratio=aspect)
    finally:
        torch.set_default_dtype(torch.float32)
    ours = SO3Grid(lmax, resolution, aspect_ratio=aspect, dtype=F64)
    assert (ours.res_alpha, ours.res_beta, ours.res_gamma) == (ref.res_alpha, ref.res_beta, ref.res_gamma)
    assert (ours.D - ref.D).abs().max() < 1e-12
    x = ours.irreps.randn(3, -1, dtype=F64)
    f = ours.to_grid(x)
    assert (f - ref.to_grid(x)).abs().max() < 1e-12
    # e3nn's beta weights are computed in float32: same weights to ~3e-7 relative
    assert ((ours.from_grid(f) - ref.from_grid(f)).abs().max() / x.abs().max()) < 2e-6
    assert (ours.from_grid(f) - x).abs().max() < 1e-12  # exact round trip
    assert torch.equal(flat_wigner(1, ours.alpha, ours.beta[0], ours.gamma), flat_wigner(1, ours.alpha, ours.beta[0], ours.gamma))


def test_activation_matches_e3nn():
    torch.manual_seed(0)
    ref = e3nn_nn.SO3Activation(2, 3, torch.tanh, 6)
    c = normalize2mom(torch.tanh).cst  # e3nn's Monte-Carlo constant
    ours = SO3Activation(2, 3, lambda v: c * torch.tanh(v), 6, normalize=False)
    x = torch.randn(5, ours.irreps_in.dim)
    assert ours.irreps_in.dim == 35 and ours.irreps_out.dim == 84
    assert (ours(x) - ref(x)).abs().max() < 1e-4 * ref(x).abs().max()
    # with normalize=True the exact constant differs from e3nn's estimate by ~1e-3 (relative)
    scaled = SO3Activation(2, 3, torch.tanh, 6)(x)
    rel = (scaled - ref(x)).abs().max() / ref(x).abs().max()
    assert rel < 5e-3


def test_equivariance_exact_for_a_polynomial():
    """sigma(t) = t^2 of an l <= 1 signal has degree 2; projected on l <= 2 the integrands have degree
    2 + 2 = 4, integrated exactly once res_beta > 4 and res_alpha > 4 (resolution 4: 8 x 16)."""
    act = SO3Activation(1, 2, lambda v: v**2, 4, normalize=False).double()
    x = act.irreps_in.randn(6, -1, dtype=F64)
    report = assert_equivariant(act, [x], irreps_in=[act.irreps_in], irreps_out=[act.irreps_out], group="SO(3)",
                                translations=False)
    assert report.max_error < 1e-12


def test_errors():
    with pytest.raises(ValueError, match="normalization"):
        SO3Grid(2, 4, normalization="norm")
    with pytest.raises(ValueError, match="lmax"):
        SO3Grid(-1, 4)
    with pytest.raises(ValueError, match="resolution"):
        SO3Grid(2, 0)
    grid = SO3Grid(1, 3)
    with pytest.raises(ValueError, match=r"\(\.\.\., 10\) coefficients"):
        grid.to_grid(torch.randn(2, 9))
    with pytest.raises(ValueError, match="values"):
        grid.from_grid(torch.randn(2, 6, 6, 6))
    assert str(so3_irreps(1, -1)) == "1x0o+3x1o"
