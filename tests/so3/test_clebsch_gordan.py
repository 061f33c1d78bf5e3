"""Clebsch-Gordan coefficients: e3nn's wigner_3j (same signs) to 1e-12, invariance at high l."""

import itertools

import pytest
import torch

from equiv.so3 import clebsch_gordan, random_rotation, wigner_D_from_matrix

o3 = pytest.importorskip("e3nn.o3")


def _triples(lmax):
    for l1, l2 in itertools.product(range(lmax + 1), repeat=2):
        for l3 in range(abs(l1 - l2), min(l1 + l2, lmax) + 1):
            yield l1, l2, l3


def test_equals_e3nn_wigner_3j_every_triple_to_l11():
    """Every ordered triple with l_i <= 11 (e3nn's whole table, incl. all permutations)."""
    worst = 0.0
    for l1, l2, l3 in _triples(11):
        ours = clebsch_gordan(l1, l2, l3, dtype=torch.float64)
        ref = o3.wigner_3j(l1, l2, l3, dtype=torch.float64)
        worst = max(worst, (ours - ref).abs().max().item())
    assert worst < 1e-12


def test_dtype_device_and_cache_safety(dtype):
    C = clebsch_gordan(2, 3, 4, dtype=dtype)
    assert C.dtype == dtype and C.shape == (5, 7, 9)
    C.zero_()  # a caller modifying its copy does not corrupt the cache
    assert clebsch_gordan(2, 3, 4, dtype=dtype).abs().max() > 0.1


@pytest.mark.parametrize("ls", [(5, 17, 20), (20, 20, 40), (13, 30, 25), (1, 24, 24)])
def test_invariant_and_normalised_at_high_l(ls):
    C = clebsch_gordan(*ls, dtype=torch.float64)
    R = random_rotation(3, dtype=torch.float64)
    D1, D2, D3 = (wigner_D_from_matrix(l, R) for l in ls)
    rotated = torch.einsum("ijk,zia,zjb,zkc->zabc", C, D1, D2, D3)
    assert (rotated - C).abs().max() < 1e-12
    assert abs(C.pow(2).sum().item() - 1) < 1e-13


def test_completeness():
    r"""sum_{l3, c} (2 l3 + 1) C_{abc} C_{a'b'c} = delta_aa' delta_bb' (the l3 block-diagonalise l1 x l2)."""
    l1, l2 = 6, 9
    P = sum(
        (2 * l3 + 1) * torch.einsum("abc,dec->abde", clebsch_gordan(l1, l2, l3, dtype=torch.float64), clebsch_gordan(l1, l2, l3, dtype=torch.float64))
        for l3 in range(abs(l1 - l2), l1 + l2 + 1)
    )
    eye = torch.eye((2 * l1 + 1) * (2 * l2 + 1), dtype=torch.float64)
    assert (P.reshape(eye.shape) - eye).abs().max() < 1e-13


def test_triangle_rule_and_types():
    with pytest.raises(ValueError, match="triangle"):
        clebsch_gordan(1, 1, 3)
    with pytest.raises(ValueError, match="l2 must be"):
        clebsch_gordan(1, -1, 1)
