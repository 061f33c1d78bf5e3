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
    g_cpu = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model_gpu = model.to(CUDA)
    out_gpu = model_gpu(x.to(CUDA), v.to(CUDA), q.to(CUDA))
    out_gpu.square().sum().backward()
    _close(out_gpu, out_cpu)
    for g, p in zip(g_cpu, model_gpu.parameters()):
        if g is None:  # a parameter the output does not depend on (e.g. the last layer's coordinate MLP)
            assert p.grad is None
        else:
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


def test_channelwise_tp_and_fused_message_passing_on_gpu_match_cpu():
    from equiv.tp import ChannelwiseTensorProduct, message_passing

    torch.manual_seed(0)
    tp = ChannelwiseTensorProduct("8x0e + 8x1o + 8x2e", "0e + 1o + 2e", shared_weights=False,
                                  internal_weights=False).double()
    n, e = 50, 400
    h = torch.randn(n, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
    a = torch.randn(e, tp.irreps_in2.dim, dtype=torch.float64)
    w = torch.randn(e, tp.weight_numel, dtype=torch.float64, requires_grad=True)
    edge_index = torch.randint(0, n, (2, e))
    ref = message_passing(tp, h, a, w, edge_index, n)
    gh_ref, gw_ref = torch.autograd.grad(ref.square().sum(), (h, w))
    hc, wc = h.detach().to(CUDA).requires_grad_(), w.detach().to(CUDA).requires_grad_()
    out = message_passing(tp.to(CUDA), hc, a.to(CUDA), wc, edge_index.to(CUDA), n)
    gh, gw = torch.autograd.grad(out.square().sum(), (hc, wc))
    _close(out, ref)
    _close(gh, gh_ref, 1e-9)
    _close(gw, gw_ref, 1e-9)
    # the unfused product agrees too
    _close(tp.to(CUDA)(hc[edge_index[0].to(CUDA)], a.to(CUDA), wc), tp.cpu()(h[edge_index[0]], a, w))


def test_tensor_product_compiles_fullgraph_on_gpu():
    from equiv.tp import FullyConnectedTensorProduct

    torch.manual_seed(0)
    tp = FullyConnectedTensorProduct("8x0e + 8x1o", "0e + 1o + 2e", "8x0e + 8x1o + 4x2e").to(CUDA)
    x = torch.randn(256, tp.irreps_in1.dim, device=CUDA)
    y = torch.randn(256, tp.irreps_in2.dim, device=CUDA)
    compiled = torch.compile(tp, fullgraph=True)
    _close(compiled(x, y), tp(x, y), 1e-5)


def test_gaunt_tp_on_gpu_matches_cpu():
    from equiv.tp import GauntTensorProduct

    torch.manual_seed(0)
    for method in ("grid", "fourier", "matrix"):
        tp = GauntTensorProduct("4x0e + 4x1o + 4x2e", "0e + 1o + 2e", "4x0e + 4x1o + 4x2e", method=method).double()
        x = torch.randn(32, tp.irreps_in1.dim, dtype=torch.float64)
        y = torch.randn(32, tp.irreps_in2.dim, dtype=torch.float64)
        _close(tp.to(CUDA)(x.to(CUDA), y.to(CUDA)), tp.cpu()(x, y))


@pytest.mark.parametrize("shared", [True, False])
def test_edge_frame_product_on_gpu_matches_cpu(shared):
    from equiv.tp import ChannelwiseTensorProduct, EdgeFrameTensorProduct

    torch.manual_seed(0)
    tp = ChannelwiseTensorProduct("8x0e + 8x1o + 8x2e + 8x3o", "0e + 1o + 2e + 3o", "8x0e + 8x1o + 8x2e + 8x3o",
                                  shared_weights=shared).double()
    fast = EdgeFrameTensorProduct(tp, method="frame")
    x, r = torch.randn(300, tp.irreps_in1.dim, dtype=torch.float64), torch.randn(300, 3, dtype=torch.float64)
    w = None if shared else torch.randn(300, tp.weight_numel, dtype=torch.float64)
    r.requires_grad_(True)
    out = fast(x, r, w)
    (g,) = torch.autograd.grad(out.square().sum(), r)
    fast_gpu = fast.to(CUDA)
    r_gpu = r.detach().to(CUDA).requires_grad_(True)
    out_gpu = fast_gpu(x.to(CUDA), r_gpu, None if w is None else w.to(CUDA))
    (g_gpu,) = torch.autograd.grad(out_gpu.square().sum(), r_gpu)
    _close(out_gpu, out)
    _close(g_gpu, g)


def test_sphere_and_so3_signals_on_gpu_match_cpu():
    """ToS2Grid / FromS2Grid, SphericalTensor (peaks), SO3Grid through SO3Activation, rotation
    parametrizations: CUDA agrees with the CPU."""
    from equiv.nn import SO3Activation
    from equiv.so3 import FromS2Grid, SphericalTensor, ToS2Grid, matrix_to_quaternion, rand_matrix

    x = torch.randn(7, 36, dtype=torch.float64)
    to, back = ToS2Grid(5, (14, 15), dtype=torch.float64), FromS2Grid((14, 15), 5, dtype=torch.float64)
    to_g, back_g = ToS2Grid(5, (14, 15), dtype=torch.float64, device=CUDA), FromS2Grid((14, 15), 5, dtype=torch.float64, device=CUDA)
    _close(to_g(x.to(CUDA)), to(x))
    _close(back_g(to_g(x.to(CUDA))), back(to(x)))
    s = SphericalTensor(4, 1, -1)
    peaks = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0]], dtype=torch.float64)
    _close(s.with_peaks_at(peaks.to(CUDA)), s.with_peaks_at(peaks), tol=1e-8)
    p_gpu, _ = s.find_peaks(s.with_peaks_at(peaks.to(CUDA)), res=40)
    p_cpu, _ = s.find_peaks(s.with_peaks_at(peaks), res=40)
    assert p_gpu.shape == p_cpu.shape
    act = SO3Activation(1, 2, torch.tanh, 4)
    f = torch.randn(5, act.irreps_in.dim, dtype=torch.float64)
    _close(act(f.to(CUDA)), act(f))
    R = rand_matrix(10, dtype=torch.float64)
    _close(matrix_to_quaternion(R.to(CUDA)).abs(), matrix_to_quaternion(R).abs())
