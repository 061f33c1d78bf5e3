"""Rotations: e3nn Euler angles, Haar measure."""

import math

import pytest
import torch

from equiv.so3 import Irrep, angles_to_matrix, matrix_to_angles, random_rotation, wigner_D_from_matrix

o3 = pytest.importorskip("e3nn.o3")


def test_angles_match_e3nn(dtype):
    a, b, c = o3.rand_angles(100, dtype=dtype)
    R = angles_to_matrix(a, b, c)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    assert (R - o3.angles_to_matrix(a, b, c)).abs().max() < tol
    a2, b2, c2 = matrix_to_angles(R)
    assert (angles_to_matrix(a2, b2, c2) - R).abs().max() < 10 * tol


def test_matrix_to_angles_near_poles():
    # beta ~ 0 and ~ pi: alpha and gamma are degenerate but the matrix is recovered exactly
    beta = torch.tensor([0.0, 1e-9, math.pi - 1e-9, math.pi], dtype=torch.float64)
    alpha = torch.tensor([0.3, -1.0, 2.0, 0.5], dtype=torch.float64)
    gamma = torch.tensor([1.1, 0.2, -0.4, 0.9], dtype=torch.float64)
    R = angles_to_matrix(alpha, beta, gamma)
    assert (angles_to_matrix(*matrix_to_angles(R)) - R).abs().max() < 1e-14


def test_random_rotation_is_orthogonal_and_reproducible(dtype):
    g = torch.Generator().manual_seed(3)
    R = random_rotation(50, generator=g, dtype=dtype)
    eye = torch.eye(3, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-13
    assert R.shape == (50, 3, 3) and R.dtype == dtype
    assert (R @ R.transpose(-1, -2) - eye).abs().max() < tol
    assert (torch.det(R) - 1).abs().max() < tol
    assert torch.equal(R, random_rotation(50, generator=torch.Generator().manual_seed(3), dtype=dtype))
    with pytest.raises(ValueError, match="n must be"):
        random_rotation(-1)


@pytest.mark.parametrize("l", [1, 2, 3, 6])
def test_haar_mean_of_D_vanishes(l):
    r"""For Haar rotations E[D^l(R)] = 0 (l >= 1; Schur orthogonality) and
    E[D^l_{ij} D^l_{ij}] = 1/(2l+1). The sample mean of N draws has standard deviation
    1/sqrt(N (2l+1)) per entry; we require every entry within 5 standard deviations
    (a biased sampler, e.g. uniform Euler angles, fails this by far: see below)."""
    n = 20000
    g = torch.Generator().manual_seed(l)
    D = wigner_D_from_matrix(l, random_rotation(n, generator=g, dtype=torch.float64))
    sigma = 1 / math.sqrt(n * (2 * l + 1))
    assert D.mean(0).abs().max() < 5 * sigma
    # the second moment matches Haar: E[D_ij^2] = 1/(2l+1)
    assert (D.pow(2).mean(0) - 1 / (2 * l + 1)).abs().max() < 0.05
    # the test can fail: a non-Haar sampler (Euler angles uniform in [0, pi)^3) is detected
    abc = math.pi * torch.rand(3, n, generator=g, dtype=torch.float64)
    Dbad = Irrep(l, 1).D_from_angles(*abc)
    assert Dbad.mean(0).abs().max() > 5 * sigma
