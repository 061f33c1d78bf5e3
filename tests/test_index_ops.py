"""equiv._index_ops: row gathers and scatter-sums as opaque operators under torch.compile."""

import pytest
import torch

from equiv._index_ops import _gather_op, _scatter_op, gather_rows, scatter_rows


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([4, 0, 0, 2, 4, 4, 1])
    return x, index


def test_values_match_the_aten_ops_in_both_paths():
    x, index = _data()
    torch.testing.assert_close(gather_rows(x, index), x[index])
    torch.testing.assert_close(_gather_op(x, index), x[index])
    m = x[index]
    ref = torch.zeros(6, 3, 2, dtype=torch.float64).index_add(0, index, m)
    torch.testing.assert_close(scatter_rows(m, index, 6), ref)
    torch.testing.assert_close(_scatter_op(m, index, 6), ref)


def test_operators_pass_opcheck_and_gradchecks_of_two_orders():
    x, index = _data()
    m = torch.randn(7, 3, 2, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(_gather_op, (x, index))
    torch.library.opcheck(_scatter_op, (m, index, 6))
    assert torch.autograd.gradcheck(lambda a: _gather_op(a, index), (x,))
    assert torch.autograd.gradgradcheck(lambda a: _gather_op(a, index) ** 2, (x,))
    assert torch.autograd.gradcheck(lambda a: _scatter_op(a, index, 6), (m,))
    assert torch.autograd.gradgradcheck(lambda a: _scatter_op(a, index, 6) ** 2, (m,))


@pytest.mark.slow
def test_compiled_mace_forces_match_eager_with_two_threads():
    """Compiled with two threads, MACE's message passing and symmetric contraction used to abort with
    heap corruption (Inductor's parallel index_add kernels); through the opaque operators they match
    eager."""
    from ase.build import molecule

    from equiv.data import AtomicData, collate
    from equiv.models import MACE

    torch.manual_seed(0)
    model = MACE(species=[1, 6, 8], cutoff=3.0, atomic_energies=[-13.6, -1029.0, -2041.0], avg_num_neighbors=4.0,
                 hidden_irreps="4x0e + 4x1o", max_ell=2, radial_mlp=[8], readout_hidden=4).double().eval()

    def energy_forces(fn):
        batch = collate([AtomicData.from_ase(molecule(n)).with_graph(3.0) for n in ("CH3CH2OH", "H2O", "CH4")])
        batch.positions.requires_grad_(True)
        e = fn(batch)["energy"]
        return e, torch.autograd.grad(e.sum(), batch.positions)[0]

    e0, f0 = energy_forces(model)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        e1, f1 = energy_forces(torch.compile(model))
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(e1, e0, rtol=0, atol=1e-10)
    torch.testing.assert_close(f1, f0, rtol=0, atol=1e-10)
