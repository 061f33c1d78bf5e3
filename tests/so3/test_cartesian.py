"""equiv.so3.CartesianTensor: irreps and subspaces as e3nn's CartesianTensor, equivariance under O(3),
orthonormal change of basis, round trips, physics checks, errors."""

import pickle

import pytest
import torch

from equiv.so3 import CartesianTensor, Irreps, random_rotation
from equiv.symmetry import assert_equivariant

FORMULAS = ["ij", "ij=ji", "ij=-ji", "ijk", "ijk=jik", "ijk=-jik=-ikj", "ijkl", "ijkl=jikl=klij",
            "ijkl=jikl=ijlk=klij", "ijklm=jiklm"]


def _act(R, T, n):
    """:math:`R^{\\otimes n} T` for ``T (batch, 3, ..., 3)`` and ``R (batch, 3, 3)``."""
    for axis in range(n):
        T = torch.movedim(torch.einsum("bij,b...j->b...i", R, torch.movedim(T, 1 + axis, -1)), -1, 1 + axis)
    return T


@pytest.mark.parametrize("formula", FORMULAS)
def test_same_irreps_and_subspaces_as_e3nn(formula):
    ECT = pytest.importorskip("e3nn.io").CartesianTensor
    ours, ref = CartesianTensor(formula), ECT(formula)
    assert ours == Irreps(str(ref))
    qa = ours.change_of_basis().reshape(ours.dim, -1)
    qb = ref.reduced_tensor_products().change_of_basis.to(torch.float64).reshape(ref.dim, -1)
    start = 0
    for (mul, ir), sl in zip(ours, ours.slices()):
        a, b = qa[sl], qb[sl]
        assert torch.allclose(a.T @ a, b.T @ b, atol=1e-6), (formula, ir)  # the same space of tensors
        if mul == 1:  # unique up to sign
            sign = torch.sign((a * b).sum())
            assert torch.allclose(a, sign * b, atol=1e-6), (formula, ir)
        start += mul * ir.dim


@pytest.mark.parametrize("formula", FORMULAS)
def test_equivariant_orthonormal_round_trip(formula, dtype):
    ct = CartesianTensor(formula)
    n = len(ct.indices)
    Q = ct.change_of_basis(dtype).reshape(ct.dim, -1)
    eye = torch.eye(ct.dim, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (Q @ Q.T - eye).abs().max() < tol
    x = ct.randn(6, -1, dtype=dtype)
    T = ct.to_cartesian(x)
    assert T.shape == (6,) + (3,) * n
    assert (ct.from_cartesian(T) - x).abs().max() < 10 * tol
    R = random_rotation(6, dtype=dtype)
    R[3:] = -R[3:]  # reflections too
    lhs = ct.from_cartesian(_act(R, T, n))
    rhs = torch.einsum("bij,bj->bi", ct.D_from_matrix(R), x)
    assert (lhs - rhs).abs().max() < 100 * tol * max(1.0, rhs.abs().max().item())


def test_symmetric_tensors_and_physics():
    sym = CartesianTensor("ij=ji")
    assert sym == Irreps("0e + 2e")
    A = torch.randn(5, 3, 3, dtype=torch.float64)
    S = (A + A.transpose(1, 2)) / 2
    assert torch.allclose(sym.from_cartesian(A), sym.from_cartesian(S))  # projected onto symmetric part
    assert torch.allclose(sym.to_cartesian(sym.from_cartesian(S)), S)
    x = sym.from_cartesian(S)
    trace = S.diagonal(dim1=1, dim2=2).sum(-1)
    assert torch.allclose(x[:, 0], trace / 3**0.5)  # 0e: the trace (pressure of a stress tensor)
    assert torch.allclose(x[:, 1:].norm(dim=-1), (S - trace[:, None, None] / 3 * torch.eye(3)).flatten(1).norm(dim=-1))
    iso = sym.from_cartesian(2.5 * torch.eye(3, dtype=torch.float64))
    assert iso[1:].abs().max() < 1e-14  # an isotropic tensor has no 2e part
    anti = CartesianTensor("ij=-ji")
    assert anti == Irreps("1e")  # an antisymmetric matrix is an axial vector
    v = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    W = torch.tensor([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    assert torch.allclose(anti.from_cartesian(W).abs().sort().values, (v.abs() * 2**0.5).sort().values)
    assert CartesianTensor("ijk=-jik=-ikj") == Irreps("0o")  # the Levi-Civita tensor: a pseudo-scalar
    assert CartesianTensor("ijkl=jikl=ijlk=klij").dim == 21  # elasticity


def test_pickle_and_irreps_api():
    ct = CartesianTensor("ijk=jik")
    back = pickle.loads(pickle.dumps(ct))
    assert back == ct and back.formula == "ijk=jik" and torch.equal(back.change_of_basis(), ct.change_of_basis())
    assert ct.dim == 18 and ct.lmax == 3 and isinstance(ct, Irreps)


@pytest.mark.parametrize("formula,match", [
    ("ii", "repeated index"), ("ij=jk", "not a permutation"), ("ij=-ij", "forces the tensor to zero"),
    ("ijk=jik=-jik", "forces the tensor to zero"), ("i j = 2", "formula must look like"),
    ("ijklmnp", "at most 6 indices"),
])
def test_formula_errors(formula, match):
    with pytest.raises(ValueError, match=match):
        CartesianTensor(formula)


def test_errors():
    ct = CartesianTensor("ij")
    with pytest.raises(ValueError, match=r"expected shape \(..., 3, 3\)"):
        ct.from_cartesian(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"expected shape \(..., 9\)"):
        ct.to_cartesian(torch.randn(4, 8))
    with pytest.raises(ValueError, match="floating-point"):
        ct.from_cartesian(torch.ones(3, 3, dtype=torch.long))


def test_assert_equivariant_with_cartesian_outputs():
    """equiv.symmetry checks tensor-valued functions described by a CartesianTensor."""
    from equiv.symmetry import equivariance_error

    x = torch.randn(6, 3, dtype=torch.float64)
    second_moment = lambda v: torch.einsum("ni,nj->ij", v, v)  # noqa: E731
    assert_equivariant(second_moment, [x], ["cartesian_vectors"], [CartesianTensor("ij=ji")], translations=False)
    third = lambda v: torch.einsum("ni,nj,nk->ijk", v, v, v)  # noqa: E731 - odd rank: flips under inversion
    assert_equivariant(third, [x], ["cartesian_vectors"], [CartesianTensor("ijk=jik=ikj")], translations=False)
    broken = lambda v: second_moment(v) + torch.diag(v[0])  # noqa: E731
    report = equivariance_error(broken, [x], ["cartesian_vectors"], [CartesianTensor("ij=ji")], translations=False)
    assert report.max_error > 1e-2
    with pytest.raises(ValueError, match=r"expected shape \(..., 3, 3\)"):
        equivariance_error(lambda v: v, [x[0]], ["cartesian_vectors"], [CartesianTensor("ij")], translations=False)


def test_group_act_on_cartesian_tensors():
    """equiv.groups acts on CartesianTensor inputs index by index (one element or one per sample)."""
    from equiv.groups import O3, Scaling

    v = torch.randn(4, 3, dtype=torch.float64)
    T = torch.einsum("bi,bj->bij", v, v)
    ct = CartesianTensor("ij=ji")
    for G in (O3(), Scaling()):
        g = G.sample(4).to(torch.float64)
        gv = G.act(g, v, "cartesian_vectors")
        assert torch.allclose(G.act(g, T, ct), torch.einsum("bi,bj->bij", gv, gv))
        gv0 = G.act(g[0], v, "cartesian_vectors")
        assert torch.allclose(G.act(g[0], T, ct), torch.einsum("bi,bj->bij", gv0, gv0))
    with pytest.raises(ValueError, match="needs x of shape"):
        O3().act(O3().sample(1)[0], v, ct)


RTP_CASES = [("ij=ji", dict(i="1o")), ("ijk=jik", dict(i="0e + 1o", k="1e")), ("ij", dict(i="1o", j="2e")),
             ("ij=-ji", dict(i="2x1o")), ("ijk=jki", dict(i="1e")), ("ijkl=jikl=klij", dict(i="1o"))]


@pytest.mark.parametrize("formula,kw", RTP_CASES)
def test_reduced_tensor_products_as_e3nn(formula, kw):
    from equiv.so3 import ReducedTensorProducts

    RE = pytest.importorskip("e3nn.o3").ReducedTensorProducts
    ours, ref = ReducedTensorProducts(formula, **kw).double(), RE(formula, **kw)
    assert ours.irreps_out == Irreps(str(ref.irreps_out)).simplify()
    qa = ours.change_of_basis.flatten(1)
    qb = ref.change_of_basis.flatten(1).to(torch.float64)
    assert torch.allclose(qa @ qa.T, torch.eye(qa.shape[0], dtype=torch.float64), atol=1e-12)
    for (mul, ir), sl in zip(ours.irreps_out, ours.irreps_out.slices()):
        rows = [k for (_, ir2), sl2 in zip(ref.irreps_out, ref.irreps_out.slices()) if ir2 == ir
                for k in range(sl2.start, sl2.stop)]
        assert torch.allclose(qa[sl].T @ qa[sl], qb[rows].T @ qb[rows], atol=1e-6), ir  # the same spaces


def test_reduced_tensor_products_forward_and_symmetry(dtype):
    from equiv.so3 import ReducedTensorProducts

    sym = ReducedTensorProducts("ij=ji", i="1o + 2e").to(dtype)
    a, b = sym.irreps_in[0].randn(4, -1, dtype=dtype), sym.irreps_in[0].randn(4, -1, dtype=dtype)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert (sym(a, b) - sym(b, a)).abs().max() < tol  # symmetric in its two inputs
    expected = torch.einsum("zij,bi,bj->bz", sym.change_of_basis, a, b)
    assert (sym(a, b) - expected).abs().max() < tol
    anti = ReducedTensorProducts("ij=-ji", i="1o").to(dtype)
    assert (anti(a[:, :3], b[:, :3]) + anti(b[:, :3], a[:, :3])).abs().max() < tol
    assert anti.irreps_out == Irreps("1e")  # the cross product
    mixed = ReducedTensorProducts("ijk=jik", i="0e + 1o", k="1e").to(dtype)
    xs = [irr.randn(3, -1, dtype=dtype) for irr in mixed.irreps_in]
    assert_equivariant(mixed, xs, mixed.irreps_in, [mixed.irreps_out], translations=False)
    only = ReducedTensorProducts("ijk=jik", filter_ir_out=["1e"], i="0e + 1o", k="1e")
    assert only.irreps_out == Irreps("3x1e") and only.change_of_basis.shape[0] == 9


def test_reduced_tensor_products_errors():
    from equiv.so3 import ReducedTensorProducts

    with pytest.raises(ValueError, match="no irreps for index 'j'"):
        ReducedTensorProducts("ij", i="1o")
    with pytest.raises(ValueError, match="exchanged by the formula"):
        ReducedTensorProducts("ij=ji", i="1o", j="1e")
    with pytest.raises(ValueError, match="not in the formula"):
        ReducedTensorProducts("ij=ji", i="1o", k="1o")
    rtp = ReducedTensorProducts("ij=ji", i="1o")
    with pytest.raises(ValueError, match="expected 2 inputs"):
        rtp(torch.randn(3))
    with pytest.raises(ValueError, match="last dimension 3"):
        rtp(torch.randn(4), torch.randn(3))
    with pytest.raises(ValueError, match="floating-point inputs of one dtype"):
        rtp(torch.randn(3), torch.randn(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="floating-point inputs of one dtype"):
        rtp(torch.ones(3, dtype=torch.long), torch.ones(3, dtype=torch.long))
