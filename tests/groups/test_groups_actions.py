"""Groups as objects: elements, composition, actions on typed inputs, orbit grids."""

import math

import pytest
import torch

from equiv.groups import (
    E3,
    O2,
    O3,
    SO2,
    SO3,
    Permutations,
    Rep,
    Scaling,
    Translations,
    get_group,
    rotation_about,
)

GROUPS = [SO2("z"), SO2("x"), O2("y"), O2([1.0, 1.0, 0.0]), SO3(), O3(), E3(), Translations("xy"), Scaling(), Permutations(5)]


@pytest.mark.parametrize("G", GROUPS, ids=str)
def test_samples_are_members_and_inverses(G, dtype):
    g = G.sample(6, generator=torch.Generator().manual_seed(1), dtype=dtype)
    assert g.shape == (6, G.d, G.d) and g.dtype == dtype
    assert bool(G.contains(g, atol=1e-5).all())
    eye = torch.eye(G.d, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(G.compose(g, G.inverse(g)), eye.expand_as(g), atol=tol)
    assert bool(G.contains(G.compose(g[:3], g[3:]), atol=1e-5).all())
    assert bool(G.contains(G.identity(2, dtype=dtype)).all())


@pytest.mark.parametrize("G", GROUPS, ids=str)
def test_generators_belong_to_group(G):
    for h in G.discrete_generators():
        assert bool(G.contains(h))
    for A in G.lie_generators():
        for t in (0.3, -1.7):
            assert bool(G.contains(torch.linalg.matrix_exp(t * A), atol=1e-9))


def test_non_members_rejected():
    Rx = rotation_about(torch.tensor([1.0, 0, 0], dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64))
    assert not bool(SO2("z").contains(Rx))
    assert not bool(O2("z").contains(Rx))
    assert not bool(SO3().contains(-Rx))
    assert bool(O3().contains(-Rx))
    assert not bool(O3().contains(2 * Rx))
    assert not bool(Scaling().contains(Rx))
    assert not bool(Translations("xy").contains(Translations("xyz").element(torch.tensor([0, 0, 1.0]))))


ACT_CASES = [
    (SO3(), "cartesian_points", (4, 7, 3)),
    (O3(), "cartesian_vectors", (4, 7, 3)),
    (O3(), "2x0e + 1x1o + 1x2e + 1x1e", (4, 13)),
    (O2("z"), Rep.tensor(2) + Rep.vector(pseudo=True), (4, 12)),
    (E3(), "cartesian_points", (4, 5, 3)),
    (E3(), "cartesian_vectors", (4, 5, 3)),
    (Translations(), "cartesian_points", (4, 3)),
    (Scaling(), Rep.tensor(2), (4, 9)),
    (Permutations(5), "nodes", (5, 3)),
]


@pytest.mark.parametrize("G,kind,shape", ACT_CASES, ids=lambda v: str(v) if not isinstance(v, tuple) else "")
def test_action_is_a_homomorphism(G, kind, shape):
    """(g h) . x == g . (h . x), and the identity acts trivially: the action is a group action."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    g, h = G.sample(2, generator=gen, dtype=torch.float64)
    lhs = G.act(G.compose(g[None], h[None])[0], x, kind)
    rhs = G.act(g, G.act(h, x, kind), kind)
    assert torch.allclose(lhs, rhs, atol=1e-12)
    assert torch.allclose(G.act(G.identity(1, dtype=torch.float64)[0], x, kind), x)
    assert torch.allclose(G.act(G.inverse(g[None])[0], G.act(g, x, kind), kind), x, atol=1e-12)


def test_batched_elements_match_single(dtype):
    G = O3()
    g = G.sample(4, dtype=dtype)
    x = torch.randn(4, 6, 3, dtype=dtype)
    batched = G.act(g, x, "cartesian_points")
    single = torch.stack([G.act(g[i], x[i], "cartesian_points") for i in range(4)])
    assert torch.allclose(batched, single, atol=1e-6)
    with pytest.raises(ValueError, match="leading axis"):
        G.act(g, x[:3], "cartesian_points")


def test_points_and_vectors_under_translation():
    G = E3()
    g = G.sample(1, dtype=torch.float64)[0]
    x = torch.randn(5, 3, dtype=torch.float64)
    # displacements between points transform as vectors (translation drops out)
    d_points = G.act(g, x, "cartesian_points")[1:] - G.act(g, x, "cartesian_points")[:1]
    assert torch.allclose(d_points, G.act(g, x[1:] - x[:1], "cartesian_vectors"), atol=1e-12)
    assert torch.allclose(G.act(g, x, None), x)


def test_irreps_action_matches_vectors():
    """In e3nn's basis "1o" is a Cartesian polar vector, "1e" an axial one (flipped by improper elements)."""
    G = O3()
    g = G.sample(3, dtype=torch.float64)
    v = torch.randn(3, 3, dtype=torch.float64)
    assert torch.allclose(G.act(g, v, "1x1o"), G.act(g, v, "cartesian_vectors"), atol=1e-12)
    det = torch.linalg.det(g)[:, None]
    assert torch.allclose(G.act(g, v, "1x1e"), det * G.act(g, v, "cartesian_vectors"), atol=1e-12)


def test_image_rotation_exact_at_right_angles(dtype):
    img = torch.rand(2, 3, 8, 8, dtype=dtype)
    G = SO2("z")
    for k in range(4):
        out = G.act(G.element(torch.tensor(k * math.pi / 2, dtype=dtype)), img, "image")
        # counter-clockwise by 90 degrees k times (x right, y up) == torch.rot90 on (row, col)
        assert torch.allclose(out, torch.rot90(img, k, dims=(-2, -1)), atol=1e-5)


def test_image_translation_and_reflection():
    img = torch.rand(8, 8, dtype=torch.float64)
    T = Translations("xy")
    right = T.act(T.element(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)), img, "image")
    assert torch.allclose(right[:, 1:], img[:, :-1], atol=1e-12) and torch.all(right[:, 0] == 0)
    up = T.act(T.element(torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64)), img, "image")
    assert torch.allclose(up[:-2], img[2:], atol=1e-12)
    P = O2("z").reflection()  # y -> -y: flips rows
    assert torch.allclose(O2("z").act(P, img, "image"), torch.flip(img, dims=(0,)), atol=1e-12)
    with pytest.raises(ValueError, match="image"):
        SO3().act(SO2("x").element(torch.tensor(0.3)), img.float(), "image")


def test_permutation_relabels_edges():
    S = Permutations(4)
    g = S.sample(1, generator=torch.Generator().manual_seed(0))[0]
    x = torch.randn(4, 2)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
    xp, ep = S.act(g, x, "nodes"), S.act(g, edge_index, "node_index")
    # an edge feature (source minus target) is the same set of rows before and after relabelling
    before = sorted(map(tuple, (x[edge_index[0]] - x[edge_index[1]]).tolist()))
    after = sorted(map(tuple, (xp[ep[0]] - xp[ep[1]]).tolist()))
    assert before == after
    assert S.act(g, x, None) is x


def test_so3_grid_integrates_haar_moments():
    """Weighted grid means equal Haar averages: E[tr R] = 0, E[tr(R)^2] = 1, E[R_zz^2] = 1/3."""
    grid = SO3().orbit(200, num_angles=8, dtype=torch.float64)
    R, w = grid.elements, grid.weights
    assert R.dtype == torch.float64
    tr = R.diagonal(dim1=-2, dim2=-1).sum(-1)
    assert abs(float(w.sum()) - 1) < 1e-12
    assert abs(float((w * tr).sum())) < 1e-10
    assert abs(float((w * tr**2).sum()) - 1) < 1e-10
    assert abs(float((w * R[:, 2, 2] ** 2).sum()) - 1 / 3) < 1e-10
    axis = SO3().orbit(50, num_angles=3, parametrization="axis_angle")
    assert axis.shape == (5, 10, 3) and bool(SO3().contains(axis.elements.double(), atol=1e-6).all())


def test_orbit_grids_shapes():
    assert SO2().orbit(12).shape == (12,)
    assert O2().orbit(12).shape == (2, 12)
    assert O3().orbit(50, num_angles=2).shape == (2, 5, 10, 2)
    assert Translations("xy").orbit(25).shape == (5, 5)
    assert Translations("xyz").orbit(27).layout == "cube"
    assert Scaling().orbit(9).coords["scale"][4] == pytest.approx(1.0)
    assert len(Permutations(3).orbit(10)) == 6
    with pytest.raises(ValueError, match="num_points"):
        SO2().orbit(0)
    with pytest.raises(ValueError, match="parametrization"):
        SO3().orbit(50, parametrization="quaternion")


def test_get_group_and_errors():
    assert str(get_group("so2")) == "SO(2)_z"
    assert str(get_group("O(2)_x")) == "O(2)_x"
    assert str(get_group("so3")) == "SO(3)" and str(get_group("o3")) == "O(3)"
    assert str(get_group("translations_xy")) == "T(xy)"
    assert str(get_group("s4")) == "S(4)"
    with pytest.raises(ValueError, match="group='lorentz'"):
        get_group("lorentz")
    with pytest.raises(ValueError, match="axis='w'"):
        SO2("w")
    with pytest.raises(ValueError, match="expected last axis of size 3"):
        SO3().act(torch.eye(3), torch.zeros(4, 2), "cartesian_points")
    with pytest.raises(TypeError, match="kind=3"):
        SO3().act(torch.eye(3), torch.zeros(4, 3), 3)
    with pytest.raises(ValueError, match="Permutations"):
        SO3().act(torch.eye(3), torch.zeros(4, 3), "nodes")
