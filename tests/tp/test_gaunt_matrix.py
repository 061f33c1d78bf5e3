"""The matrix route of the Gaunt product: its plan (parity blocks of the Gaunt tensor) and the
plain formula it falls back to for ``uuu``. Its fused kernel is tested against the plain formula in
``test_gaunt_weighted.py``, and the module against the Clebsch-Gordan product in
``test_gaunt_tensor_product.py``."""

import torch

import equiv.tp._gaunt_matrix as matrix
from equiv.tp import GauntTensorProduct


def test_uuu_uses_the_plain_formula_and_agrees_with_the_grid():
    uuu = GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o", method="matrix")
    assert uuu._layout is None
    grid = GauntTensorProduct("2x0e + 2x1o", "2x0e + 2x1o", "2x0e + 2x1o", method="grid")
    x, y = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    assert (uuu.double()(x, y) - grid.double()(x, y)).abs().max() < 1e-12


def test_plan_parity_blocks_and_sparsity():
    plan = matrix.matrix_plan(tuple(range(7)), tuple(range(7)), tuple(range(7)))
    assert plan.rows == (49, 49, 49) and plan.even == (28, 28, 28)
    dense = plan.rows[0] * plan.rows[1] * plan.rows[2]
    assert plan.build_macs * 2 <= dense + plan.rows[1] * plan.rows[0]  # the parity blocks halve the build
    # every non-zero Gaunt coefficient lies in a block of the build
    g = torch.as_tensor(plan._g)
    assert g.count_nonzero() == plan.nnz
    total = sum(torch.as_tensor(m).count_nonzero() for m in plan._block_np)
    assert total == plan.nnz
    assert [b[:2] for b in plan.blocks] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_rows_of_a_degree_are_contiguous_even_degrees_first():
    assert matrix.parity_row_order([2, 0, 1]) == [(0, 0), (2, -2), (2, -1), (2, 0), (2, 1), (2, 2), (1, -1), (1, 0), (1, 1)]


def test_plain_product_and_fused_kernel_agree_with_missing_parities():
    # x only even, y only odd: one block of M, the even output rows are unreachable (zero)
    plan = matrix.matrix_plan((0, 2), (1,), (0, 1, 2, 3))
    assert [b[:2] for b in plan.blocks] == [(0, 0), (0, 1)]
    x = torch.randn(4, 3, 6, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 1, 3, dtype=torch.float64, requires_grad=True)
    z, ref = matrix.gaunt_matrix(plan, x, y), matrix._plain(plan, x, y)
    assert (z - ref).abs().max() < 1e-12 and z[..., :6].abs().max() == 0 and z[..., 6:].abs().max() > 0.1
    g = torch.randn_like(z)
    for a, b in zip(torch.autograd.grad(z, (x, y), g), torch.autograd.grad(ref, (x, y), g)):
        assert (a - b).abs().max() < 1e-12 * b.abs().max()
