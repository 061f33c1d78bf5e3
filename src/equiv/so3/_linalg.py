r"""Small linear-algebra helpers used when building equivariant bases (e3nn's ``e3nn.math`` names).

- `direct_sum`: block-diagonal :math:`A_1 \oplus A_2 \oplus \dots` (batched).
- `orthonormalize`: Gram–Schmidt on the rows of a matrix, keeping track of the combination
  :math:`y = A x` that produced each output row, dropping dependent rows.
- `complete_basis`: orthonormal rows that complete a set of orthonormal rows to a basis of
  :math:`\mathbb R^d`.

Rows come out with e3nn's conventions (entries below ``eps`` set to zero, first non-zero entry
positive), so that bases built from them agree with e3nn's.
"""

from __future__ import annotations

import torch

__all__ = ["direct_sum", "orthonormalize", "complete_basis"]


def direct_sum(*matrices: torch.Tensor) -> torch.Tensor:
    r"""Block-diagonal matrix :math:`A_1 \oplus \dots \oplus A_k` (the direct sum of representations).

    Parameters
    ----------
    *matrices : torch.Tensor
        Shapes ``(..., m_i, n_i)`` with the same leading (batch) shape.

    Returns
    -------
    torch.Tensor
        ``(..., sum m_i, sum n_i)``, zero outside the diagonal blocks.

    Examples
    --------
    >>> direct_sum(torch.ones(1, 1), 2 * torch.ones(2, 1))
    tensor([[1., 0.],
            [0., 2.],
            [0., 2.]])
    >>> from equiv.so3 import wigner_D
    >>> a = torch.tensor(0.3)
    >>> direct_sum(wigner_D(0, a, a, a), wigner_D(1, a, a, a)).shape
    torch.Size([4, 4])
    """
    if not matrices:
        raise ValueError("direct_sum: give at least one matrix")
    if any(m.dim() < 2 for m in matrices):
        raise ValueError(f"direct_sum: matrices must have shape (..., m, n), got {[tuple(m.shape) for m in matrices]}")
    batch = matrices[0].shape[:-2]
    if any(m.shape[:-2] != batch for m in matrices):
        raise ValueError(f"direct_sum: leading shapes differ: {[tuple(m.shape[:-2]) for m in matrices]}")
    rows = sum(m.shape[-2] for m in matrices)
    cols = sum(m.shape[-1] for m in matrices)
    out = matrices[0].new_zeros(batch + (rows, cols))
    i = j = 0
    for m in matrices:
        out[..., i:i + m.shape[-2], j:j + m.shape[-1]] = m
        i, j = i + m.shape[-2], j + m.shape[-1]
    return out


def _canonical(v: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the entries below ``eps`` and flip so that the first non-zero entry is positive; returns
    the vector and the sign applied."""
    v = torch.where(v.abs() < eps, torch.zeros_like(v), v)
    sign = v[v.nonzero()[0, 0]].sign()
    return v * sign, sign


def orthonormalize(original: torch.Tensor, eps: float = 1e-9) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Orthonormalise the rows :math:`x_i` of ``original`` by Gram–Schmidt, in order.

    Each row has the previous outputs projected out, :math:`x_i - \sum_{j<i} \langle x_i, y_j\rangle y_j`;
    if what is left has norm above ``2 eps`` it is normalised and becomes the next output :math:`y_k`
    (entries below ``eps`` zeroed, first non-zero entry positive), else the row is dependent and dropped.
    The coefficients are tracked: :math:`y = A x`.

    Parameters
    ----------
    original : torch.Tensor
        ``(n, d)``.
    eps : float
        Threshold for dependence and for zeroing.

    Returns
    -------
    final : torch.Tensor
        ``(k, d)`` orthonormal rows, ``k`` the rank.
    matrix : torch.Tensor
        ``(k, n)``, ``final = matrix @ original``.

    Examples
    --------
    >>> x = torch.tensor([[1.0, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 1.0, 1.0]], dtype=torch.float64)
    >>> y, A = orthonormalize(x)
    >>> y.shape, torch.allclose(y @ y.T, torch.eye(2, dtype=torch.float64)), torch.allclose(A @ x, y)
    (torch.Size([2, 3]), True, True)
    """
    if original.dim() != 2:
        raise ValueError(f"orthonormalize: original must have shape (n, d), got {tuple(original.shape)}")
    n, d = original.shape
    final, matrix = [], []
    for i in range(n):
        x = original[i]
        cx = original.new_zeros(n)
        cx[i] = 1
        for y, cy in zip(final, matrix):
            c = torch.dot(x, y)
            x, cx = x - c * y, cx - c * cy
        norm = x.norm()
        if norm > 2 * eps:
            x, cx = x / norm, cx / norm
            x, sign = _canonical(x, eps)
            cx = torch.where(cx.abs() < eps, torch.zeros_like(cx), cx) * sign
            final.append(x)
            matrix.append(cx)
    if not final:
        return original.new_zeros(0, d), original.new_zeros(0, n)
    return torch.stack(final), torch.stack(matrix)


def complete_basis(vecs: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    r"""Orthonormal rows that complete the orthonormal rows ``vecs`` to a basis of :math:`\mathbb R^d`.

    The standard basis vectors :math:`e_1, \dots, e_d` are taken in order, the span of ``vecs`` and of
    the rows found so far is projected out, and what is left (norm above ``2 eps``) is normalised
    (e3nn's conventions: entries below ``eps`` zeroed, first non-zero entry positive).

    Parameters
    ----------
    vecs : torch.Tensor
        ``(n, d)``, orthonormal rows (e.g. from `orthonormalize`).
    eps : float

    Returns
    -------
    torch.Tensor
        ``(d - n, d)`` orthonormal rows, orthogonal to ``vecs``.

    Examples
    --------
    >>> v = torch.tensor([[0.6, 0.8, 0.0]], dtype=torch.float64)
    >>> w = complete_basis(v)
    >>> w.shape, torch.allclose(torch.cat([v, w]) @ torch.cat([v, w]).T, torch.eye(3, dtype=torch.float64))
    (torch.Size([2, 3]), True)
    """
    if vecs.dim() != 2:
        raise ValueError(f"complete_basis: vecs must have shape (n, d), got {tuple(vecs.shape)}")
    d = vecs.shape[1]
    basis = [v / v.norm() for v in vecs]
    expand = []
    for x in torch.eye(d, dtype=vecs.dtype, device=vecs.device):
        for y in basis + expand:
            x = x - torch.dot(x, y) * y
        norm = x.norm()
        if norm > 2 * eps:
            expand.append(_canonical(x / norm, eps)[0])
    return torch.stack(expand) if expand else vecs.new_zeros(0, d)
