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
    total = sum(torch.as_tensor(m).count_nonzero() for m in plan._build)
    assert total == plan.nnz
