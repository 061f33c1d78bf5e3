"""Wigner D: agreement with e3nn, group law, generators, high l."""

import pytest
import torch

from equiv.so3 import (
    Irrep,
    angles_to_matrix,
    random_rotation,
    so3_generators,
    wigner_D,
    wigner_D_from_matrix,
)

o3 = pytest.importorskip("e3nn.o3")


def test_matches_e3nn(dtype):
    abc = o3.rand_angles(40, dtype=torch.float64)
    # float32: angles are rounded to ~2.4e-7 (at 2 pi) and dD/dangle ~ l, hence ~1e-6 * l
    tol = 2e-6 if dtype == torch.float32 else 1e-13
    for l in range(12):  # e3nn's wigner_D stops at l = 11
        ours = wigner_D(l, *(t.to(dtype) for t in abc))
        assert ours.dtype == dtype
        assert (ours.double() - o3.wigner_D(l, *abc)).abs().max() < tol * max(l, 1), l
    R = angles_to_matrix(*abc)
    for l in [0, 1, 4, 11]:
        assert (wigner_D_from_matrix(l, R.to(dtype)).double() - o3.Irrep(l, 1).D_from_matrix(R)).abs().max() < 10 * tol


def test_l1_is_the_rotation_matrix():
    R = random_rotation(10, dtype=torch.float64)
    assert (wigner_D_from_matrix(1, R) - R).abs().max() < 1e-14
    G = torch.from_numpy(so3_generators(1))
    e = torch.eye(3, dtype=torch.float64)
    for a in range(3):  # G_a x = e_a x x
        assert torch.allclose(G[a], torch.linalg.cross(e[a].expand(3, 3), e, dim=-1).T)


@pytest.mark.parametrize("l", [2, 15, 40])
def test_group_law_and_orthogonality_high_l(l):
    R1, R2 = random_rotation(8, dtype=torch.float64), random_rotation(8, dtype=torch.float64)
    D1, D2, D12 = (wigner_D_from_matrix(l, R) for R in (R1, R2, R1 @ R2))
    eye = torch.eye(2 * l + 1, dtype=torch.float64)
    assert (D1 @ D2 - D12).abs().max() < 1e-12
    assert (D1 @ D1.transpose(-1, -2) - eye).abs().max() < 1e-12
    assert (wigner_D_from_matrix(l, R1.transpose(-1, -2)) - D1.transpose(-1, -2)).abs().max() < 1e-12
    assert (wigner_D_from_matrix(l, torch.eye(3, dtype=torch.float64)) - eye).abs().max() < 1e-13


def test_batch_shapes_and_errors():
    a = torch.rand(4, 5, dtype=torch.float64)
    assert wigner_D(3, a, a, a).shape == (4, 5, 7, 7)
    assert wigner_D(2, a, 0.3, a[:1]).shape == (4, 5, 5, 5)
    with pytest.raises(ValueError, match="det"):
        wigner_D_from_matrix(2, -torch.eye(3))
    with pytest.raises(ValueError, match="l must be"):
        wigner_D(-1, a, a, a)
    # O(3): improper elements through Irrep.D_from_matrix
    R = random_rotation(3, dtype=torch.float64)
    assert torch.allclose(Irrep(2, -1).D_from_matrix(-R), -wigner_D_from_matrix(2, R))


def test_torch_compile_fullgraph():
    """SH, D and CG trace into one graph (construction-time constants are evaluated eagerly)."""
    from equiv.so3 import Irreps, clebsch_gordan, spherical_harmonics

    irreps = Irreps("2x0e + 1o + 2e")

    def fn(x, R):
        y = (spherical_harmonics([1, 2], x)[:, None, :] @ irreps[1:].D_from_matrix(R).transpose(-1, -2))[:, 0]
        z = torch.einsum("ijk,ni,nj->nk", clebsch_gordan(1, 2, 3, dtype=x.dtype), y[:, :3], y[:, 3:])
        # the e3nn >= 0.5 sign convention (a flipped triple) is a constant too
        return z, torch.einsum("ijk,ni,nj->nk", clebsch_gordan(1, 2, 2, dtype=x.dtype, convention="e3nn-0.5"),
                               y[:, :3], y.roll(1, 0)[:, 3:])  # two different points: 1 x 2 -> 2 is non-zero

    compiled = torch.compile(fn, fullgraph=True, backend="eager")
    x, R = torch.randn(7, 3, dtype=torch.float64), random_rotation(7, dtype=torch.float64)
    (a, b), (ra, rb) = compiled(x, R), fn(x, R)
    assert (a - ra).abs().max() < 1e-14 and (b - rb).abs().max() < 1e-14
    assert rb.abs().max() > 1e-3  # not an identically zero coupling
