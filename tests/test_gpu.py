"""GPU path: the same computations on CUDA agree with the CPU (float64), and compiled code runs.

Skipped where no CUDA device is present (CI has none); run on a GPU machine with
``pytest tests/test_gpu.py``. Every check compares numbers, so each can fail.
"""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CUDA = torch.device("cuda")


def _close(a, b, tol=1e-10):
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    err = (a - b).abs().max().item() / max(b.abs().max().item(), 1e-30)
    assert err < tol, f"relative error {err:.2e} >= {tol:.0e}"


def test_so3_on_gpu_matches_cpu():
    from equiv.so3 import Irreps, clebsch_gordan, random_rotation, spherical_harmonics

    x = torch.randn(1000, 3, dtype=torch.float64)
    ls = list(range(9))
    _close(spherical_harmonics(ls, x.to(CUDA)), spherical_harmonics(ls, x))
    R = random_rotation(64, dtype=torch.float64)
    irreps = Irreps("4x0e + 3x1o + 2x2e + 3o + 6e")
    _close(irreps.D_from_matrix(R.to(CUDA)), irreps.D_from_matrix(R))
    assert clebsch_gordan(2, 3, 4, device=CUDA).device.type == "cuda"


def test_egnn_forward_backward_on_gpu_matches_cpu():
    from equiv.models import EGNN

    torch.manual_seed(0)
    model = EGNN().double()
    x, v, q = torch.randn(8, 5, 3).double(), torch.randn(8, 5, 3).double(), torch.randn(8, 5, 1).sign().double()
    out_cpu = model(x, v, q)
    out_cpu.square().sum().backward()
    g_cpu = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model_gpu = model.to(CUDA)
    out_gpu = model_gpu(x.to(CUDA), v.to(CUDA), q.to(CUDA))
    out_gpu.square().sum().backward()
    _close(out_gpu, out_cpu)
    for g, p in zip(g_cpu, model_gpu.parameters()):
        _close(p.grad, g, 1e-9)


def test_mace_energy_forces_on_gpu_match_cpu():
    from equiv.data import Batch
    from equiv.models.mace import MACE
    from equiv.train.forces import predict_properties

    torch.manual_seed(0)
    model = MACE(species=[1, 6, 8], cutoff=3.0, atomic_energies=[-13.6, -1029.0, -2041.0],
                 avg_num_neighbors=4.0, scale=0.7, shift=0.1, hidden_irreps="8x0e + 8x1o",
                 max_ell=2, correlation=3).double()
    n = 9
    pos = torch.randn(n, 3, dtype=torch.float64)
    z = torch.tensor([6, 8, 1, 1, 6, 1, 8, 1, 6])
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    edge_index = torch.stack([i[i != j], j[i != j]])
    e = edge_index.shape[1]
    batch = Batch(positions=pos, atomic_numbers=z, batch=torch.zeros(n, dtype=torch.long),
                  ptr=torch.tensor([0, n]), edge_index=edge_index,
                  unit_shifts=torch.zeros(e, 3, dtype=torch.long), shifts=torch.zeros(e, 3, dtype=pos.dtype),
                  cell=torch.zeros(1, 3, 3, dtype=pos.dtype), pbc=torch.zeros(1, 3, dtype=torch.bool))
    ref = predict_properties(model, batch)
    out = predict_properties(model.to(CUDA), batch.to(CUDA))
    _close(out["energy"], ref["energy"])
    _close(out["forces"], ref["forces"], 1e-9)
