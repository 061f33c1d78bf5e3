"""Gaunt coefficients against quadrature on an exact grid; exact zeros; relation to CG."""

import math

import pytest
import torch

from equiv.so3 import clebsch_gordan, gaunt, sphere_grid, spherical_harmonics


def _quadrature_all(L, grid):
    """q[l1][l2] = int Y^l1_a Y^l2_b Y^l3_c for all l3 <= 2L at once, shape (a, b, sum_l3 (2l3+1))."""
    Y = spherical_harmonics(list(range(2 * L + 1)), grid.points)
    blocks = {}
    for l1 in range(L + 1):
        for l2 in range(L + 1):
            Y1, Y2 = Y[:, l1 * l1 : (l1 + 1) ** 2], Y[:, l2 * l2 : (l2 + 1) ** 2]
            prod = (grid.weights[:, None, None] * Y1[:, :, None] * Y2[:, None, :]).reshape(len(grid.weights), -1)
            blocks[l1, l2] = (prod.T @ Y).reshape(2 * l1 + 1, 2 * l2 + 1, -1)
    return blocks


def test_matches_quadrature_all_triples_to_l8():
    """Every (l1, l2, l3) with l1, l2 <= 8 and l3 <= 16, to 1e-12 (zeros included)."""
    L = 8
    grid = sphere_grid(4 * L, dtype=torch.float64)
    worst = 0.0
    for (l1, l2), q in _quadrature_all(L, grid).items():
        for l3 in range(2 * L + 1):
            G = gaunt(l1, l2, l3, dtype=torch.float64)
            worst = max(worst, (q[:, :, l3 * l3 : (l3 + 1) ** 2] - G).abs().max().item())
    assert worst < 1e-12


@pytest.mark.parametrize("ls", [(10, 15, 21), (20, 20, 2), (17, 9, 12)])
def test_matches_quadrature_high_l(ls):
    l1, l2, l3 = ls
    grid = sphere_grid(l1 + l2 + l3, dtype=torch.float64)
    Y1, Y2, Y3 = (spherical_harmonics(l, grid.points) for l in ls)
    q = torch.einsum("n,na,nb,nc->abc", grid.weights, Y1, Y2, Y3)
    assert (q - gaunt(*ls, dtype=torch.float64)).abs().max() < 1e-12


def test_exact_zeros_and_cg_relation(dtype):
    assert gaunt(2, 3, 4, dtype=dtype).count_nonzero() == 0  # odd sum
    assert gaunt(1, 1, 4, dtype=dtype).count_nonzero() == 0  # triangle
    assert gaunt(1, 1, 4).shape == (3, 3, 9)
    # G = +- sqrt((2l1+1)(2l2+1)(2l3+1)/4pi) (l1 l2 l3; 0 0 0) C: proportional to CG with that norm
    for ls in [(2, 3, 3), (4, 4, 6), (5, 7, 4)]:
        G, C = gaunt(*ls, dtype=torch.float64), clebsch_gordan(*ls, dtype=torch.float64)
        ratio = (G * C).sum()
        assert (G - ratio * C).abs().max() < 1e-14
        assert abs(abs(ratio.item()) - G.norm().item()) < 1e-14
    # Y^0 is constant 1/sqrt(4 pi): int Y^0 Y^l_a Y^l_b = delta_ab / sqrt(4 pi)
    eye = torch.eye(7, dtype=torch.float64) / math.sqrt(4 * math.pi)
    assert (gaunt(0, 3, 3, dtype=torch.float64)[0] - eye).abs().max() < 1e-15
    with pytest.raises(ValueError, match="l3 must be"):
        gaunt(1, 1, -2)
