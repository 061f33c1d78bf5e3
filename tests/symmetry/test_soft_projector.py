"""Projectors onto equivariant weights: orthogonal projectors whose image is exactly equivariant."""

import pytest
import torch

from equiv.groups import O2, O3, SO2, SO3, Permutations, Rep, Scaling, TensorRep, get_group
from equiv.symmetry import EquivariantProjector, equivariant_basis

VEC, T2 = Rep.vector(), Rep.tensor(2)
CASES = [
    (5 * Rep.scalar() + 5 * VEC, T2, "o3"),
    (5 * Rep.scalar() + 5 * VEC, T2, "o2_z"),
    (2 * Rep.scalar() + VEC + T2, VEC + Rep.vector(pseudo=True) + T2, "o2_x"),
    (VEC + T2, T2 + 2 * VEC, "so2_y"),
    ("2x0e + 1x1o + 1x2e", "1x0e + 2x1o + 1x1e + 1x2e", "o3"),
    ("2x0e + 1x1o + 1x2e", "1x0o + 1x1o + 1x2e", "so3"),
    (Rep.scalar() + VEC + T2, Rep.scalar() + T2, "scaling"),
    (Rep([(2, TensorRep(1, d=4))]), Rep([(1, TensorRep(1, d=4)), (1, TensorRep(0, d=4))]), Permutations(4)),
]
IDS = [f"{g}:{i}" for i, (_, _, g) in enumerate(CASES)]


@pytest.mark.parametrize("rin,rout,group", CASES, ids=IDS)
def test_projector_is_orthogonal_projector(rin, rout, group):
    P = EquivariantProjector(rin, rout, group)
    M = P.matrix()
    n = P.rep_in.dim * P.rep_out.dim
    assert M.shape == (n, n)
    assert torch.allclose(M @ M, M, atol=1e-12), "not idempotent"
    assert torch.allclose(M, M.T, atol=1e-12), "not symmetric"
    assert round(float(torch.trace(M))) == P.num_parameters
    W = torch.randn(P.rep_out.dim, P.rep_in.dim, dtype=torch.float64)
    assert torch.allclose(P.weight(W).reshape(-1), M @ W.reshape(-1), atol=1e-12)
    assert torch.allclose(P.weight(P.weight(W)), P.weight(W), atol=1e-12)


@pytest.mark.parametrize("rin,rout,group", CASES, ids=IDS)
def test_projected_weights_are_exactly_equivariant(rin, rout, group):
    P = EquivariantProjector(rin, rout, group)
    G = P.group
    gen = torch.Generator().manual_seed(0)
    W = P.weight(torch.randn(P.rep_out.dim, P.rep_in.dim, generator=gen, dtype=torch.float64))
    b = P.bias(torch.randn(P.rep_out.dim, generator=gen, dtype=torch.float64))
    g = G._linear_part(G.sample(5, generator=gen, dtype=torch.float64))
    Din, Dout = P.rep_in.matrix(g), P.rep_out.matrix(g)
    assert (Dout @ W - W @ Din).abs().max() < 1e-12
    assert (Dout @ b - b).abs().max() < 1e-12
    # and the residual W - PW is orthogonal to every equivariant weight
    R = torch.randn_like(W)
    assert abs(float(((R - P.weight(R)) * W).sum())) < 1e-10


def test_projector_batched_and_dtypes(dtype):
    P = EquivariantProjector("3x0e + 2x1o", "2x1o + 1x0e", "o3")
    W = torch.randn(4, 7, 9, dtype=dtype)
    out = P.weight(W)
    assert out.dtype == dtype and out.shape == W.shape
    single = torch.stack([P.weight(w) for w in W])
    assert torch.allclose(out, single, atol=1e-6)


@pytest.mark.parametrize(
    "rin,rout,group,expected",
    [
        (VEC, VEC, "o3", 1),  # multiples of the identity
        (VEC, VEC, "so2_z", 3),  # identity on xy, rotation by 90 degrees in xy, projection on z
        (VEC, VEC, "o2_z", 2),  # the 90-degree rotation is not reflection-equivariant
        (T2, T2, "o3", 3),  # identity, transpose, trace (isotropic 4-tensors)
        (VEC, T2, "so3", 1),  # Levi-Civita
        (VEC, T2, "o3", 0),  # ... which is odd under inversion
        ("1x1o", "1x1e", "so3", 1),
        ("1x1o", "1x1e", "o3", 0),
        ("2x1o + 1x2e", "3x1o + 2x2e", "o3", 2 * 3 + 2),  # Schur's lemma: mul_in * mul_out per irrep
        (T2, T2, "scaling", 81),  # same degree: everything commutes with s^2
        (VEC, T2, "scaling", 0),  # s v -> s^2 T: no non-zero map
    ],
)
def test_dimension_of_equivariant_space(rin, rout, group, expected):
    assert equivariant_basis(rin, rout, group).shape[1] == expected


def test_o3_equivariant_is_equivariant_for_every_subgroup():
    """O(3)-projected weights are already O(2)-equivariant about any axis: P_sub P_O3 = P_O3."""
    rin, rout = 2 * Rep.scalar() + 3 * VEC, T2 + VEC
    W = torch.randn(rout.dim, rin.dim, dtype=torch.float64)
    W3 = EquivariantProjector(rin, rout, "o3").weight(W)
    for sub in ["o2_x", "o2_y", "o2_z", "so3", O2([1.0, 2.0, 3.0])]:
        assert torch.allclose(EquivariantProjector(rin, rout, sub).weight(W3), W3, atol=1e-12)


def test_projector_errors():
    with pytest.raises(ValueError, match=r"W has shape \(3, 3\)"):
        EquivariantProjector("1x1o", "2x1o", "o3").weight(torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"b has shape"):
        EquivariantProjector("1x1o", "2x1o", "o3").bias(torch.zeros(3))
    with pytest.raises(ValueError, match="bias=False"):
        EquivariantProjector("1x1o", "2x1o", "o3", bias=False).bias(torch.zeros(6))
    with pytest.raises(ValueError, match="group='u1'"):
        EquivariantProjector("1x1o", "1x1o", "u1")
    assert "equivariant weights" in repr(EquivariantProjector(VEC, VEC, SO2("z")))
    # groups and names are interchangeable
    assert EquivariantProjector(VEC, T2, O3()).num_parameters == EquivariantProjector(VEC, T2, "o3").num_parameters
    assert get_group(SO3()) is not None and Scaling() is not None
