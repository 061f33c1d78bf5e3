"""Representations: matrices, Lie-algebra generators, parsing."""

import pytest
import torch

from equiv.groups import O2, O3, SO3, IrrepRep, Rep, Scaling, TensorRep

REPS = [
    Rep.scalar(),
    Rep.vector(),
    Rep.vector(pseudo=True),
    Rep.tensor(2),
    Rep.tensor(3),
    Rep("1x0o + 2x1o + 1x1e + 1x2e + 1x3o"),
    3 * Rep.scalar() + 2 * Rep.vector() + Rep.tensor(2),
]


@pytest.mark.parametrize("rep", REPS, ids=str)
def test_rep_is_homomorphism(rep):
    g = O3().sample(2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    D = rep.matrix(g)
    assert D.shape == (2, rep.dim, rep.dim)
    assert torch.allclose(rep.matrix(g[0] @ g[1]), D[0] @ D[1], atol=1e-12)
    assert torch.allclose(rep.matrix(torch.eye(3, dtype=torch.float64)), torch.eye(rep.dim, dtype=torch.float64))


@pytest.mark.parametrize("rep", REPS, ids=str)
def test_lie_generators_exponentiate_to_matrix(rep):
    """exp(t d rho(A)) == rho(exp(t A)) for every so(3) generator."""
    for A in SO3().lie_generators():
        L = rep.lie(A)
        for t in (0.4, 2.1):
            lhs = torch.linalg.matrix_exp(t * L)
            rhs = rep.matrix(torch.linalg.matrix_exp(t * A))
            assert torch.allclose(lhs, rhs, atol=1e-10)


def test_tensor_rep_is_conjugation(dtype):
    Q = O3().sample(1, dtype=dtype)[0]
    M = torch.randn(3, 3, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(Rep.tensor(2).matrix(Q) @ M.reshape(9), (Q @ M @ Q.T).reshape(9), atol=tol)
    v = torch.randn(3, dtype=dtype)
    pv = Rep.vector(pseudo=True).matrix(Q) @ v
    assert torch.allclose(pv, torch.linalg.det(Q) * (Q @ v), atol=tol)


def test_scaling_rep():
    S = Scaling()
    g = S.element(torch.tensor(1.5, dtype=torch.float64))
    assert torch.allclose(Rep.tensor(2).matrix(g), 1.5**2 * torch.eye(9, dtype=torch.float64))
    assert torch.allclose(Rep.tensor(3).lie(S.lie_generators()[0]), 3 * torch.eye(27, dtype=torch.float64))
    with pytest.raises(ValueError, match="not orthogonal"):
        Rep("1x1o").matrix(g)


def test_rep_generators_shapes_and_values():
    D, L = O2("z").rep_generators(Rep.vector())
    assert torch.allclose(D[0], torch.diag(torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)))
    assert torch.allclose(L[0], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 0]], dtype=torch.float64))
    D, L = O3().rep_generators("1x1e")  # pseudo-vector: inversion acts trivially
    assert torch.allclose(D[0], torch.eye(3, dtype=torch.float64))


def test_rep_algebra_and_errors():
    r = 2 * Rep.vector() + Rep.vector()
    assert r.blocks == ((3, TensorRep(1)),)
    assert str(Rep("2x0e+1x1o")) == "2x0e+1x1o"
    assert (Rep.scalar() + Rep.tensor(2)).num_gates == 1
    assert Rep("1x0o").num_gates == 1 and Rep("3x0e").num_gates == 0
    assert [s.stop - s.start for s in Rep("2x0e + 1x1o").slices()] == [2, 3]
    assert 2 * (Rep.scalar() + Rep.vector()) == Rep.scalar() + Rep.vector() + Rep.scalar() + Rep.vector()
    assert hash(Rep("1x1o")) == hash(Rep([(1, IrrepRep(1, -1))]))
    with pytest.raises(ValueError, match="spec='1x1q'"):
        Rep("1x1q")
    with pytest.raises(TypeError, match="spec=3.5"):
        Rep(3.5)
    with pytest.raises(ValueError, match="rank=-1"):
        TensorRep(-1)
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 3, 3\)"):
        Rep.vector().matrix(torch.eye(2))


def test_generic_lie_by_matrix_logarithm_matches_closed_forms():
    """A block that defines only `matrix` gets d rho(A) from the matrix logarithm (the base class's
    fallback); on the built-in blocks it reproduces their closed forms."""
    from equiv.groups._reps import _Base

    gens = SO3().lie_generators()
    for block in (TensorRep(1), TensorRep(2), TensorRep(3, pseudo=True), IrrepRep(2, 1), IrrepRep(3, -1)):
        for A in gens:
            assert torch.allclose(_Base.lie(block, A), block.lie(A), atol=1e-9), (block, A)
    rep = sum([Rep.vector(), Rep.tensor(2), Rep.scalar()])  # sum() starts from 0: __radd__
    assert rep == Rep.vector() + Rep.tensor(2) + Rep.scalar()
    assert len(rep) == 3 and [m for m, _ in rep] == [1, 1, 1] and [b.dim for _, b in rep] == [3, 9, 1]
