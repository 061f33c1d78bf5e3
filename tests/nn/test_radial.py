"""Radial bases and cut-offs: values against the closed forms, smoothness at r_c, gradients."""

import math

import pytest
import torch

from equiv.nn.radial import BesselBasis, PolynomialCutoff, RadialEmbedding, bessel_basis, polynomial_cutoff


def test_bessel_values_match_formula(dtype):
    rc, n = 5.0, 8
    r = torch.linspace(0.1, 6.0, 37, dtype=dtype)
    got = BesselBasis(rc, n)(r)
    assert got.shape == (37, 8) and got.dtype == dtype
    want = torch.stack([math.sqrt(2 / rc) * torch.sin(k * math.pi * r / rc) / r for k in range(1, n + 1)], -1)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(bessel_basis(r, rc, n), want)


def test_bessel_is_orthonormal_on_the_ball():
    # int_0^rc b_n(r) b_m(r) r^2 dr = delta_nm (the normalisation of DimeNet eq. 7)
    rc = 4.0
    r = torch.linspace(0, rc, 20001, dtype=torch.float64)[1:]
    b = bessel_basis(r, rc, 6)
    gram = torch.einsum("rn,rm,r->nm", b, b, r**2) * (r[1] - r[0])
    torch.testing.assert_close(gram, torch.eye(6, dtype=torch.float64), atol=1e-3, rtol=0)


@pytest.mark.parametrize("p", [5, 6])
def test_polynomial_cutoff_formula_and_smoothness(p):
    rc = 3.0
    r = torch.linspace(0, 4, 41, dtype=torch.float64)
    x = r / rc
    want = 1 - (p + 1) * (p + 2) / 2 * x**p + p * (p + 2) * x ** (p + 1) - p * (p + 1) / 2 * x ** (p + 2)
    want = torch.where(x < 1, want, torch.zeros_like(want))
    torch.testing.assert_close(polynomial_cutoff(r, rc, p), want)
    torch.testing.assert_close(PolynomialCutoff(rc, p)(r), want)
    # value, first and second derivative vanish at r_c (from below)
    t = torch.tensor([rc * (1 - 1e-7)], dtype=torch.float64, requires_grad=True)
    u = polynomial_cutoff(t, rc, p)
    (d1,) = torch.autograd.grad(u.sum(), t, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), t)
    assert abs(u.item()) < 1e-12 and abs(d1.item()) < 1e-9 and abs(d2.item()) < 1e-5
    assert polynomial_cutoff(torch.tensor([0.0], dtype=torch.float64), rc, p).item() == 1.0


def test_embedding_vanishes_beyond_cutoff_and_gradcheck():
    emb = RadialEmbedding(cutoff=5.0, num_basis=8, p=5).double()
    out = emb(torch.tensor([5.0, 5.5, 9.0], dtype=torch.float64))
    assert torch.count_nonzero(out) == 0
    r = torch.tensor([0.7, 2.3, 4.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(emb, (r,))
    assert torch.autograd.gradgradcheck(emb, (r,))


def test_trainable_frequencies_get_gradients():
    b = BesselBasis(5.0, 4, trainable=True)
    b(torch.rand(10) + 0.5).sum().backward()
    assert b.frequencies.grad is not None and b.frequencies.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(cutoff=0.0), "cutoff"), (dict(cutoff=-1.0), "cutoff"), (dict(cutoff=5.0, num_basis=0), "num_basis"),
    (dict(cutoff=5.0, p=0), "p"), (dict(cutoff=float("nan")), "cutoff"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RadialEmbedding(**kwargs)
