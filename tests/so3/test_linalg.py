"""direct_sum, orthonormalize, complete_basis: the same results as e3nn.math (0.4.4)."""
import pytest
import torch

from equiv.so3 import complete_basis, direct_sum, orthonormalize, wigner_D

e3nn_math = pytest.importorskip("e3nn.math")


def _low_rank(n, d, rank, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("n, d, rank", [(5, 4, 4), (6, 5, 3), (3, 7, 3), (4, 4, 1)])
def test_orthonormalize_matches_e3nn(n, d, rank):
    x = _low_rank(n, d, rank, seed=n + d)
    y, A = orthonormalize(x)
    y_ref, A_ref = e3nn_math.orthonormalize(x)
    assert y.shape == (rank, d) and A.shape == (rank, n)
    torch.testing.assert_close(y, y_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(A, A_ref, atol=1e-12, rtol=1e-12)  # coefficients can be large (near-dependent rows)
    torch.testing.assert_close(y @ y.T, torch.eye(rank, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(A @ x, y, atol=1e-10, rtol=0)


def test_orthonormalize_integer_like_rows_get_e3nn_signs_and_zeros():
    x = torch.tensor([[0.0, -2.0, 0.0], [1.0, 1.0, 0.0], [3.0, 0.0, 0.0]], dtype=torch.float64)
    y, A = orthonormalize(x)
    assert torch.equal(y, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64))
    assert torch.equal(y, e3nn_math.orthonormalize(x)[0])
    assert orthonormalize(torch.zeros(2, 3, dtype=torch.float64))[0].shape == (0, 3)


@pytest.mark.parametrize("n, d", [(1, 3), (2, 5), (4, 4), (0, 3)])
def test_complete_basis_matches_e3nn(n, d):
    v = orthonormalize(torch.randn(n, d, dtype=torch.float64))[0] if n else torch.zeros(0, d, dtype=torch.float64)
    w = complete_basis(v)
    torch.testing.assert_close(w, e3nn_math.complete_basis(v), atol=1e-12, rtol=0)
    full = torch.cat([v, w])
    assert full.shape == (d, d)
    torch.testing.assert_close(full @ full.T, torch.eye(d, dtype=torch.float64), atol=1e-12, rtol=0)


def test_direct_sum_batched_matches_e3nn_and_errors():
    a, b, c = (torch.randn(2, 3, 3), torch.randn(2, 1, 2), torch.randn(2, 5, 5))
    torch.testing.assert_close(direct_sum(a, b, c), e3nn_math.direct_sum(a, b, c), atol=0, rtol=0)
    angles = torch.randn(3, 4)
    D = direct_sum(*(wigner_D(l, *angles[:3]) for l in range(3)))  # a representation of SO(3): D(g)^T D(g) = 1
    torch.testing.assert_close(D @ D.transpose(-1, -2), torch.eye(9).expand(4, 9, 9), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="leading shapes differ"):
        direct_sum(torch.ones(2, 1, 1), torch.ones(3, 1, 1))
    with pytest.raises(ValueError, match="at least one"):
        direct_sum()
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        orthonormalize(torch.ones(3))


def test_float32():
    x = torch.randn(5, 4)
    y, A = orthonormalize(x, eps=1e-6)
    assert y.dtype == torch.float32 and y.shape == (4, 4)
    torch.testing.assert_close(y @ y.T, torch.eye(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(A @ x, y, atol=1e-4, rtol=0)
    w = complete_basis(y[:2], eps=1e-6)
    torch.testing.assert_close(torch.cat([y[:2], w]) @ torch.cat([y[:2], w]).T, torch.eye(4), atol=1e-5, rtol=0)
