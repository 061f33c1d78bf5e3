"""EdgeFrameTensorProduct: the SO(2) route equals the direct product with edge harmonics."""

import pytest
import torch

from equiv.so3 import random_rotation, spherical_harmonics
from equiv.symmetry import assert_equivariant
from equiv.tp import (
    ChannelwiseTensorProduct,
    EdgeFrameTensorProduct,
    FullyConnectedTensorProduct,
    GauntTensorProduct,
    TensorProduct,
    edge_frames,
    edge_rotation,
)
from equiv.so3 import wigner_D_from_matrix, wigner_D_upto

F64 = torch.float64


def _vectors(n, gen):
    r = torch.randn(n, 3, dtype=F64, generator=gen)
    # poles, the chart boundary (r_y = 0) and axis directions, where angle-based frames break
    special = torch.tensor([[0, 1, 0], [0, -2, 0], [1, 0, 0], [0, 0, -1], [1e-9, 1, 0], [0.3, 0.0, -0.4]], dtype=F64)
    return torch.cat([special, r])


def test_edge_rotation_is_a_rotation_taking_y_to_r():
    gen = torch.Generator().manual_seed(0)
    r = _vectors(200, gen)
    R = edge_rotation(r)
    eye = torch.eye(3, dtype=F64)
    assert (R @ R.transpose(-1, -2) - eye).abs().max() < 1e-14
    assert (torch.linalg.det(R) - 1).abs().max() < 1e-14
    assert (R[..., :, 1] - torch.nn.functional.normalize(r, dim=-1)).abs().max() < 1e-15


@pytest.mark.parametrize("lmax", [0, 1, 3, 8])
def test_edge_frames_are_wigner_matrices(lmax):
    gen = torch.Generator().manual_seed(1)
    r = _vectors(50, gen)
    D = edge_frames(r, lmax)
    R = edge_rotation(r)
    pts = torch.randn(7, 3, dtype=F64, generator=gen)
    for l in range(lmax + 1):
        assert D[l].shape == (len(r), 2 * l + 1, 2 * l + 1)
        lhs = spherical_harmonics(l, torch.einsum("eij,kj->eki", R, pts))  # Y(R p)
        rhs = spherical_harmonics(l, pts) @ D[l].transpose(-1, -2)  # D Y(p)
        assert (lhs - rhs).abs().max() < 1e-12
        assert (D[l] @ D[l].transpose(-1, -2) - torch.eye(2 * l + 1, dtype=F64)).abs().max() < 1e-12


def test_wigner_D_upto_matches_euler_angle_wigner_d():
    gen = torch.Generator().manual_seed(7)
    R = random_rotation(20, dtype=F64, generator=gen)
    D = wigner_D_upto(12, R)
    for l in range(13):
        assert (D[l] - wigner_D_from_matrix(l, R)).abs().max() < 1e-12
    D32 = wigner_D_upto(12, R.float())
    assert max((a.double() - b).abs().max().item() for a, b in zip(D32, D)) < 1e-5


def test_fully_connected_uvw_equals_the_direct_product():
    """The SO(2) route with channel mixing (eSCN's SO(2) linear layer), shared weights."""
    gen = torch.Generator().manual_seed(8)
    tp = FullyConnectedTensorProduct("3x0e + 3x1o + 3x2e + 3x3o", "0e + 1o + 2e", "5x0e + 5x1o + 5x1e + 5x2e + 5x3o").to(F64)
    with torch.no_grad():
        tp.weight.normal_(generator=gen)
    fast = EdgeFrameTensorProduct(tp, method="frame")
    assert fast.mode == "uvw"
    r = _vectors(30, gen).requires_grad_()
    x = torch.randn(len(r), tp.irreps_in1.dim, dtype=F64, generator=gen, requires_grad=True)
    ref = tp(x, spherical_harmonics(tp.irreps_in2, r, normalization="component"))
    out = fast(x, r)
    assert (out - ref).abs().max() < 1e-12 * ref.abs().max()
    probe = torch.randn_like(ref)
    g_ref = torch.autograd.grad((ref * probe).sum(), (x, r, tp.weight))
    g_out = torch.autograd.grad((out * probe).sum(), (x, r, tp.weight))
    for a, b in zip(g_ref, g_out):
        assert (a - b).abs().max() < 1e-10 * a.abs().max()


CASES = [
    # MACE-like interaction: all reachable paths, odd ones included (1o x 1o -> 1e, 0o outputs)
    ("cg", "4x0e + 4x1o + 4x2e + 4x1e + 4x3o", "0e + 1o + 2e + 3o", "4x0e + 4x1o + 4x2e + 4x1e + 4x0o + 4x3o"),
    ("cg", "3x0e + 3x1o + 3x2e + 3x3o + 3x4e", "0e + 1o + 2e + 3o + 4e", "3x0e + 3x1o + 3x2e + 3x3o + 3x4e"),
    ("gaunt", "4x0e + 4x1o + 4x2e + 4x3o", "0e + 1o + 2e + 3o", "4x0e + 4x1o + 4x2e + 4x3o"),
]


def _make(kind, i1, i2, io, shared):
    if kind == "cg":
        tp = ChannelwiseTensorProduct(i1, i2, io, shared_weights=shared)
    else:
        tp = GauntTensorProduct(i1, i2, io, method="grid", shared_weights=shared,
                                internal_weights=shared)
    tp = tp.to(F64)
    if shared:
        with torch.no_grad():
            tp.weight.normal_()
    return tp


@pytest.mark.parametrize("kind,i1,i2,io", CASES)
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("norm", ["component", "integral"])
def test_equals_the_direct_product(kind, i1, i2, io, shared, norm):
    gen = torch.Generator().manual_seed(2)
    tp = _make(kind, i1, i2, io, shared)
    fast = EdgeFrameTensorProduct(tp, sh_normalization=norm, method="frame")
    r = _vectors(40, gen)
    x = torch.randn(len(r), tp.irreps_in1.dim, dtype=F64, generator=gen)
    w = None if shared else torch.randn(len(r), tp.weight_numel, dtype=F64, generator=gen)
    ref = tp(x, spherical_harmonics(tp.irreps_in2, r, normalization=norm), w)
    out = fast(x, r, w)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() < 1e-12 * max(ref.abs().max().item(), 1.0)
    # precomputed frames give the same, and float32 agrees to float32 precision
    assert torch.equal(fast(x, weight=w, frames=edge_frames(r, fast.lmax)), out)
    fast32 = EdgeFrameTensorProduct(tp.float(), sh_normalization=norm, method="frame")
    out32 = fast32(x.float(), r.float(), None if w is None else w.float())
    assert (out32.double() - ref).abs().max() < 2e-5 * max(ref.abs().max().item(), 1.0)


@pytest.mark.parametrize("kind,i1,i2,io", CASES[:1] + CASES[2:])
def test_gradients_match_the_direct_product(kind, i1, i2, io):
    """First and second derivatives w.r.t. features, edge vectors and weights (forces need both),
    also at the poles and on the chart boundary."""
    gen = torch.Generator().manual_seed(3)
    tp = _make(kind, i1, i2, io, shared=False)
    fast = EdgeFrameTensorProduct(tp, method="frame")
    r = _vectors(12, gen).requires_grad_()
    x = torch.randn(len(r), tp.irreps_in1.dim, dtype=F64, generator=gen, requires_grad=True)
    w = torch.randn(len(r), tp.weight_numel, dtype=F64, generator=gen, requires_grad=True)
    probe = torch.randn(len(r), tp.irreps_out.dim, dtype=F64, generator=gen)

    def energy(f):
        return (f() * probe).sum()

    def grads(f):
        g = torch.autograd.grad(energy(f), (x, r, w), create_graph=True)
        # a second derivative: of the squared "force" on the edge vectors
        gg = torch.autograd.grad((g[1] ** 2).sum(), (x, r, w))
        return [t.detach() for t in g], gg

    ref = grads(lambda: tp(x, spherical_harmonics(tp.irreps_in2, r, normalization="component"), w))
    got = grads(lambda: fast(x, r, w))
    for a, b in zip(list(ref[0]) + list(ref[1]), list(got[0]) + list(got[1])):
        assert torch.isfinite(b).all()
        assert (a - b).abs().max() < 1e-10 * max(a.abs().max().item(), 1.0)


def test_gradcheck_small():
    gen = torch.Generator().manual_seed(4)
    tp = _make("cg", "2x0e + 2x1o + 2x2e", "0e + 1o + 2e", "2x0e + 2x1o + 2x1e + 2x2e", shared=False)
    fast = EdgeFrameTensorProduct(tp, method="frame")
    r = torch.randn(4, 3, dtype=F64, generator=gen, requires_grad=True)
    x = torch.randn(4, tp.irreps_in1.dim, dtype=F64, generator=gen, requires_grad=True)
    w = torch.randn(4, tp.weight_numel, dtype=F64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(fast, (x, r, w))
    assert torch.autograd.gradgradcheck(fast, (x, r, w), fast_mode=True)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equivariant(dtype):
    gen = torch.Generator().manual_seed(5)
    tp = _make("cg", *CASES[0][1:], shared=True).to(dtype)
    fast = EdgeFrameTensorProduct(tp, method="frame")
    x = tp.irreps_in1.randn(6, -1, dtype=dtype, generator=gen)
    r = torch.randn(6, 3, dtype=dtype, generator=gen)
    assert_equivariant(fast, [x, r], [tp.irreps_in1, "cartesian_vectors"], [tp.irreps_out], translations=False)
    # and the frame itself is not what matters: a rotated input gives the rotated output
    R = random_rotation(1, dtype=dtype, generator=gen)[0]
    D = tp.irreps_out.D_from_matrix(R)
    Din = tp.irreps_in1.D_from_matrix(R)
    tol = 1e-11 if dtype == torch.float64 else 2e-4
    assert (fast(x @ Din.T, r @ R.T) - fast(x, r) @ D.T).abs().max() < tol * fast(x, r).abs().max()


def test_auto_method_and_direct_route():
    def make(i1, i2, shared=True, fc=False):
        cls = FullyConnectedTensorProduct if fc else ChannelwiseTensorProduct
        return cls(i1, i2, i1) if fc else cls(i1, i2, i1, shared_weights=shared)

    # the cases measured in benchmarks/results/edge_frame.md (C = 16): shared weights direct at L = 2,
    # frame from L = 3; per-edge weights direct to L = 4 (force step), frame from L = 5
    irreps = {L: " + ".join(f"16x{l}{'eo'[l % 2]}" for l in range(L + 1)) for L in (2, 3, 4, 5)}
    sh = {L: " + ".join(f"{l}{'eo'[l % 2]}" for l in range(L + 1)) for L in (2, 3, 4, 5)}
    for L, shared, expected in [(2, True, "direct"), (3, True, "frame"), (4, False, "direct"), (5, False, "frame")]:
        assert EdgeFrameTensorProduct(make(irreps[L], sh[L], shared=shared)).method == expected
    # MACE's interaction: two input degrees, every reachable output: the frame would rotate 14 output
    # blocks (measured 3x slower)
    mace = ChannelwiseTensorProduct("64x0e + 64x1o", "0e + 1o + 2e + 3o", shared_weights=False)
    assert EdgeFrameTensorProduct(mace).method == "direct"
    assert EdgeFrameTensorProduct(make("4x0e + 4x1o + 4x2e", "0e + 1o + 2e", fc=True)).method == "frame"
    g = GauntTensorProduct("4x0e + 4x1o + 4x2e + 4x3o", "0e + 1o + 2e + 3o", "4x0e + 4x1o + 4x2e + 4x3o")
    assert EdgeFrameTensorProduct(g).method == "direct"
    gen = torch.Generator().manual_seed(9)
    tp = make("3x0e + 3x1o + 3x2e", "0e + 1o + 2e", shared=False).to(F64)
    r = _vectors(10, gen)
    x = torch.randn(len(r), tp.irreps_in1.dim, dtype=F64, generator=gen)
    w = torch.randn(len(r), tp.weight_numel, dtype=F64, generator=gen)
    direct = EdgeFrameTensorProduct(tp, method="direct")(x, r, w)
    frame = EdgeFrameTensorProduct(tp, method="frame")(x, r, w)
    assert torch.equal(direct, tp(x, spherical_harmonics(tp.irreps_in2, r, normalization="component"), w))
    assert (direct - frame).abs().max() < 1e-12 * direct.abs().max()
    with pytest.raises(ValueError, match="method"):
        EdgeFrameTensorProduct(tp, method="fast")


def test_clear_errors():
    with pytest.raises(ValueError, match="per-edge 'uvw'"):
        EdgeFrameTensorProduct(FullyConnectedTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o", shared_weights=False))
    with pytest.raises(ValueError, match="all 'uvu' or all 'uvw'"):
        EdgeFrameTensorProduct(TensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o",
                                             [(0, 0, 0, "uvu", True), (1, 1, 0, "uvw", True)]))
    with pytest.raises(ValueError, match="spherical harmonics"):
        EdgeFrameTensorProduct(ChannelwiseTensorProduct("2x0e + 2x1o", "2x0e", "2x0e"))
    with pytest.raises(ValueError, match="one multiplicity"):
        EdgeFrameTensorProduct(ChannelwiseTensorProduct("2x0e + 3x1o", "0e + 1o", "2x0e + 3x1o"))
    with pytest.raises(TypeError):
        EdgeFrameTensorProduct(torch.nn.Linear(2, 2))
    fast = EdgeFrameTensorProduct(ChannelwiseTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o"), method="frame")
    x = torch.randn(3, 8)
    with pytest.raises(ValueError, match="zero-length"):
        fast(x, torch.tensor([[1.0, 0, 0], [0, 0, 0], [0, 1.0, 0]]))
    with pytest.raises(ValueError, match="vec"):
        fast(x)
    r = torch.randn(3, 3)
    with pytest.raises(ValueError, match=r"x must have shape \(E, 8\)"):
        fast(torch.randn(3, 7), r)
    with pytest.raises(ValueError, match="one vector per row"):
        fast(x, torch.randn(4, 3))
    with pytest.raises(TypeError, match="floating point"):
        fast(x, torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        fast(x, torch.tensor([[1.0, 0, 0], [float("nan"), 0, 0], [0, 1.0, 0]]))
    with pytest.raises(ValueError, match="frames are for 5 edges"):
        fast(x, frames=edge_frames(torch.randn(5, 3), 1))
    with pytest.raises(ValueError, match="R must be"):
        wigner_D_upto(2, torch.randn(4, 3))


def test_empty_graph_and_batched_rotations():
    """No edges gives an empty output (and gradients); wigner_D_upto takes any batch shape."""
    tp = ChannelwiseTensorProduct("2x0e + 2x1o + 2x2e + 2x3o", "0e + 1o + 2e + 3o", "2x0e + 2x1o + 2x2e + 2x3o")
    fast = EdgeFrameTensorProduct(tp, method="frame")
    x = torch.zeros(0, tp.irreps_in1.dim, requires_grad=True)
    out = fast(x, torch.zeros(0, 3))
    assert out.shape == (0, tp.irreps_out.dim)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert g.shape == x.shape
    gen = torch.Generator().manual_seed(11)
    R = random_rotation(6, dtype=F64, generator=gen).view(2, 3, 3, 3)
    D = wigner_D_upto(3, R)
    assert D[3].shape == (2, 3, 7, 7)
    assert (D[3] - wigner_D_from_matrix(3, R)).abs().max() < 1e-12
    assert wigner_D_upto(2, torch.eye(3, dtype=F64))[2].shape == (5, 5)


def test_torch_compile_fullgraph_no_graph_break():
    tp = ChannelwiseTensorProduct("4x0e + 4x1o + 4x2e", "0e + 1o + 2e", "4x0e + 4x1o + 4x2e", shared_weights=False)
    fc = FullyConnectedTensorProduct("4x0e + 4x1o", "0e + 1o + 2e", "3x0e + 3x1o")
    gen = torch.Generator().manual_seed(10)
    x, r = torch.randn(20, tp.irreps_in1.dim, generator=gen), torch.randn(20, 3, generator=gen)
    w = torch.randn(20, tp.weight_numel, generator=gen)
    for mod, args in ((EdgeFrameTensorProduct(tp, method="frame"), (x, r, w)),
                      (EdgeFrameTensorProduct(fc, method="frame"), (x[:, :16], r))):
        eager = mod(*args)
        compiled = torch.compile(mod, fullgraph=True, backend="aot_eager")(*args)
        assert (compiled - eager).abs().max() < 1e-5 * eager.abs().max()
