"""Spherical harmonics: agreement with e3nn, orthonormality at high l, gradients, equivariance."""

import math

import pytest
import torch

from equiv.so3 import Irreps, random_rotation, sphere_grid, spherical_harmonics, wigner_D_from_matrix

o3 = pytest.importorskip("e3nn.o3")

E3NN_LMAX = 11  # e3nn 0.4.4 raises NotImplementedError above l = 11


@pytest.mark.parametrize("normalization", ["integral", "component", "norm"])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_e3nn_every_l(dtype, normalization, normalize):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 3, dtype=dtype, generator=g) * (1 if normalize else 0.7)
    ls = list(range(E3NN_LMAX + 1))
    ours = spherical_harmonics(ls, x, normalize, normalization)
    ref = o3.spherical_harmonics(ls, x.double(), normalize, normalization)  # reference in float64
    assert ours.dtype == dtype and ours.shape == ref.shape
    for l in ls:
        a, b = ours[:, l * l : (l + 1) ** 2].double(), ref[:, l * l : (l + 1) ** 2]
        if dtype == torch.float32:
            # absolute, relative to the size of Y^l (component normalisation: |Y^l_m| ~ 1)
            assert (a - b).abs().max() <= 1e-5 * b.abs().max().clamp(min=1), l
        else:
            assert (a - b).abs().max() <= 1e-12 * b.abs().max(), l


@pytest.mark.parametrize("normalization", ["integral", "component", "norm"])
def test_low_degree_fast_path_matches_e3nn(dtype, normalization):
    """l <= 4 goes through the monomial expansion (one GEMM): same numbers as e3nn and the recursion."""
    import equiv.so3._spherical_harmonics as impl

    x = torch.randn(300, 3, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-13
    for lmax in range(impl._POLY_LMAX + 1):
        for normalize in (True, False):
            ls = list(range(lmax + 1))
            ours = spherical_harmonics(ls, x, normalize, normalization).double()
            ref = o3.spherical_harmonics(ls, x.double(), normalize, normalization)
            assert (ours - ref).abs().max() <= tol * ref.abs().max(), (lmax, normalize)
    # and the recursion used above l = 4 agrees with the expansion on the same degrees
    xn = torch.nn.functional.normalize(x.double(), dim=-1)
    rows = impl._sh_rows(4, [4, 2], {4: 1.0, 2: 1.0}, xn).T
    poly = impl._sh_poly([4, 2], [1.0, 1.0], xn)
    assert (rows - poly).abs().max() < 1e-14


def test_argument_forms_match_e3nn():
    x = torch.randn(20, 3, dtype=torch.float64)
    for ls in [3, [2, 0, 2], "0e + 1o + 2e", Irreps("2x1o + 3o"), "1e + 2e + 3e"]:
        ref_ls = o3.Irreps(str(ls)) if isinstance(ls, (str, Irreps)) else ls
        assert torch.allclose(spherical_harmonics(ls, x), o3.spherical_harmonics(ref_ls, x, True), atol=1e-13, rtol=0)
    zero = torch.zeros(2, 3, dtype=torch.float64)
    assert torch.equal(spherical_harmonics([0, 1, 2, 3], zero), o3.spherical_harmonics([0, 1, 2, 3], zero, True))


def test_bad_arguments():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="normalization"):
        spherical_harmonics(2, x, normalization="unit")
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        spherical_harmonics(2, torch.randn(4, 2))
    with pytest.raises(ValueError, match="parity"):
        spherical_harmonics("1o + 2o", x)
    with pytest.raises(ValueError, match="l >= 0"):
        spherical_harmonics([-1], x)
    with pytest.raises(TypeError, match="floating"):
        spherical_harmonics(1, torch.ones(2, 3, dtype=torch.long))


def test_orthonormal_at_l40():
    """<Y^l_m, Y^l'_m'> = delta on an exact quadrature grid (band limit 80), all l <= 40, float64."""
    grid = sphere_grid(80, dtype=torch.float64)
    Y = spherical_harmonics(list(range(41)), grid.points)
    gram = (Y * grid.weights[:, None]).T @ Y
    assert (gram - torch.eye(gram.shape[0], dtype=torch.float64)).abs().max() < 1e-10


def test_high_degree_float32_and_float64_agree():
    x = torch.randn(64, 3, dtype=torch.float64)
    y64 = spherical_harmonics(60, x)
    y32 = spherical_harmonics(60, x.float())
    # component-normalised values are O(1); float32 keeps ~1e-5 absolute accuracy at l = 60
    assert (y32.double() - y64).abs().max() * math.sqrt(4 * math.pi) < 1e-4
    # l = 150 (computed internally in float64 for float32 input): still finite and normalised
    y = spherical_harmonics(150, x.float(), normalization="norm")
    assert torch.isfinite(y).all() and (y.norm(dim=-1) - 1).abs().max() < 1e-5


def test_gradcheck():
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: spherical_harmonics([0, 1, 4, 7], v), (x,))  # recursion
    assert torch.autograd.gradcheck(lambda v: spherical_harmonics([0, 3, 1, 4], v), (x,))  # expansion
    assert torch.autograd.gradcheck(lambda v: spherical_harmonics(5, v, normalize=False, normalization="component"), (x,))
    # smooth at the poles (the polar axis is y): no angles, no division; second derivatives too
    pole = torch.tensor([[0.0, 1.0, 0.0], [0.0, -2.0, 0.0]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda v: spherical_harmonics(3, v), (pole,))
    assert torch.autograd.gradgradcheck(lambda v: spherical_harmonics(6, v), (pole,), fast_mode=True)


def test_gradient_matches_e3nn():
    x = torch.randn(10, 3, dtype=torch.float64, requires_grad=True)
    w = torch.randn(10, (E3NN_LMAX + 1) ** 2, dtype=torch.float64)
    (g1,) = torch.autograd.grad((spherical_harmonics(list(range(12)), x) * w).sum(), x)
    (g2,) = torch.autograd.grad((o3.spherical_harmonics(list(range(12)), x, True) * w).sum(), x)
    assert (g1 - g2).abs().max() < 1e-11 * g2.abs().max()


def test_equivariance_to_l20():
    """Y(x R^T) = Y(x) D(R)^T (points as rows) to 1e-12 for every l <= 20, float64."""
    n = 32
    R = random_rotation(n, dtype=torch.float64)
    x = torch.randn(n, 5, 3, dtype=torch.float64)
    for l in range(21):
        D = wigner_D_from_matrix(l, R)  # (n, 2l+1, 2l+1)
        lhs = spherical_harmonics(l, x @ R.transpose(-1, -2))
        rhs = spherical_harmonics(l, x) @ D.transpose(-1, -2)
        assert (lhs - rhs).abs().max() < 1e-12, l
    # and the improper part: Y^l(-x) = (-1)^l Y^l(x)
    assert torch.allclose(spherical_harmonics(7, -x), -spherical_harmonics(7, x), atol=1e-14, rtol=0)
