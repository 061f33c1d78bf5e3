"""TensorProduct: agreement with e3nn 0.4.4 in every mode, gradients, equivariance, errors, compile."""

import contextlib
import math

import pytest
import torch

from equiv import so3
from equiv.symmetry import assert_equivariant
from equiv.tp import (
    ChannelwiseTensorProduct,
    ElementwiseTensorProduct,
    FullTensorProduct,
    FullyConnectedTensorProduct,
    TensorProduct,
)

o3 = pytest.importorskip("e3nn.o3")


@contextlib.contextmanager
def default_dtype(dtype):
    """e3nn computes its Clebsch-Gordan buffers in the default dtype: build float64 references in float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)

MODES = ["uvw", "uvu", "uvv", "uuw", "uuu", "uvuv", "uvu<v", "u<vw"]


def _irreps_for(mode, has_weight):
    if mode == "uvu<v":
        return "3x0e + 3x1o", "3x0e + 3x1o", "3x0e + 3x1o + 3x1e"
    if mode == "uvuv":
        return "2x0e + 3x1o", "2x0e + 2x1o", "4x0e + 6x1o + 6x1e + 4x1o"
    if mode == "uuw" and not has_weight:
        return "3x0e + 3x1o", "3x0e + 3x1o", "1x0e + 1x1o + 1x1e"
    if mode in ("uuu", "uuw", "u<vw"):
        return "3x0e + 3x1o + 3x2e", "3x0e + 3x1o + 3x2e", "3x0e + 3x1o + 3x1e + 2x2e"
    return "3x0e + 3x1o + 2x2e", "2x0e + 2x1o + 1x2e", "3x0e + 2x1o + 3x1o + 2x2e + 3x2o"


def _instructions(mode, has_weight, i1, i2, io):
    ok = {
        "uvw": lambda m1, m2, mo: True,
        "uvu": lambda m1, m2, mo: m1 == mo,
        "uvv": lambda m1, m2, mo: m2 == mo,
        "uuw": lambda m1, m2, mo: m1 == m2 and (has_weight or mo == 1),
        "uuu": lambda m1, m2, mo: m1 == m2 == mo,
        "uvuv": lambda m1, m2, mo: m1 * m2 == mo,
        "uvu<v": lambda m1, m2, mo: m1 == m2 and m1 * (m1 - 1) // 2 == mo,
        "u<vw": lambda m1, m2, mo: m1 == m2,
    }[mode]
    out = []
    for a, (m1, r1) in enumerate(i1):
        for b, (m2, r2) in enumerate(i2):
            for c, (mo, ro) in enumerate(io):
                if ro in r1 * r2 and ok(m1, m2, mo):
                    out.append((a, b, c, mode, has_weight, 0.5 + 0.25 * len(out)))
    return out


CASES = [(m, w, s) for m in MODES for w in (True, False) for s in (True, False)
         if not (m in ("uvw", "u<vw") and not w) and not (not w and not s)]


@pytest.mark.parametrize("mode,has_weight,shared", CASES)
def test_matches_e3nn_every_mode(mode, has_weight, shared, dtype):
    s1, s2, so = _irreps_for(mode, has_weight)
    i1, i2, io = o3.Irreps(s1), o3.Irreps(s2), o3.Irreps(so)
    ins = _instructions(mode, has_weight, i1, i2, io)
    assert ins, "test set-up produced no instruction"
    ours = TensorProduct(s1, s2, so, ins, shared_weights=shared)
    with default_dtype(dtype):
        ref = o3.TensorProduct(i1, i2, io, ins, shared_weights=shared)
    assert ours.weight_numel == ref.weight_numel
    assert [i.path_shape for i in ours.instructions] == [i.path_shape for i in ref.instructions]
    n = 5
    x = torch.randn(n, i1.dim, dtype=dtype)
    y = torch.randn(n, i2.dim, dtype=dtype)
    if ours.weight_numel:
        w = torch.randn(ours.weight_numel if shared else (n, ours.weight_numel), dtype=dtype)
        a, b = ours(x, y, w), ref(x, y, w)
    else:
        a, b = ours(x, y), ref(x, y)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert a.shape == b.shape
    assert (a - b).abs().max().item() < tol * max(1.0, b.abs().max().item())
    assert torch.equal(ours.output_mask, ref.output_mask)


@pytest.mark.parametrize("irrep_normalization", ["component", "norm", "none"])
@pytest.mark.parametrize("path_normalization", ["element", "path", "none"])
def test_normalisations_match_e3nn(irrep_normalization, path_normalization):
    i1, i2, io = "4x0e + 4x1o + 2x2e", "0e + 1o + 2e", "4x0e + 4x1o + 2x2e"
    ins = [
        (a, b, c, "uvu", True)
        for a, (m1, r1) in enumerate(o3.Irreps(i1))
        for b, (_, r2) in enumerate(o3.Irreps(i2))
        for c, (mo, ro) in enumerate(o3.Irreps(io))
        if ro in r1 * r2 and m1 == mo
    ]
    kw = dict(irrep_normalization=irrep_normalization, path_normalization=path_normalization,
              in1_var=[1.0, 2.0, 0.5], in2_var=[1.0, 3.0, 1.0], out_var=[1.0, 0.25, 2.0])
    ours = TensorProduct(i1, i2, io, ins, **kw)
    with default_dtype(torch.float64):
        ref = o3.TensorProduct(i1, i2, io, ins, **kw)
    x, y = torch.randn(4, 26, dtype=torch.float64), torch.randn(4, 9, dtype=torch.float64)
    w = torch.randn(ours.weight_numel, dtype=torch.float64)
    assert (ours(x, y, w) - ref(x, y, w)).abs().max() < 1e-10


@pytest.mark.parametrize("cls,args", [
    (FullyConnectedTensorProduct, ("2x0e + 3x1o", "0e + 1o + 1e", "3x0e + 2x1o + 1x1e")),
    (ElementwiseTensorProduct, ("2x0e + 3x1o", "3x1o + 2x1e")),
    (FullTensorProduct, ("2x0e + 1x1o", "1x1o + 1x2e")),
])
def test_convenience_classes_match_e3nn(cls, args):
    ours = cls(*args)
    with default_dtype(torch.float64):
        ref = getattr(o3, cls.__name__)(*args)
    assert ours.irreps_out == so3.Irreps(str(ref.irreps_out))
    assert ours.weight_numel == ref.weight_numel
    x = torch.randn(3, ours.irreps_in1.dim, dtype=torch.float64)
    y = torch.randn(3, ours.irreps_in2.dim, dtype=torch.float64)
    if ours.weight_numel:
        w = torch.randn(ours.weight_numel, dtype=torch.float64)
        a, b = ours(x, y, w), ref(x, y, w)
    else:
        a, b = ours(x, y), ref(x, y)
    assert (a - b).abs().max() < 1e-10


def test_channelwise_recipe_matches_mace():
    """irreps_out=None reproduces MACE's tp_out_irreps_with_instructions (uvu, sorted)."""
    mace_blocks = pytest.importorskip("mace.modules.irreps_tools")
    node, edge, target = o3.Irreps("8x0e + 8x1o"), o3.Irreps("0e + 1o + 2e + 3o"), o3.Irreps("0e + 1o + 2e + 3o")
    irreps_mid, instructions = mace_blocks.tp_out_irreps_with_instructions(node, edge, target)
    ours = ChannelwiseTensorProduct(str(node), str(edge), filter_ir_out=str(target), shared_weights=False)
    assert ours.irreps_out == so3.Irreps(str(irreps_mid))
    assert [tuple(i[:4]) for i in ours.instructions] == [tuple(i[:4]) for i in instructions]
    with default_dtype(torch.float64):
        ref = o3.TensorProduct(node, edge, irreps_mid, instructions, shared_weights=False, internal_weights=False)
    x, y = torch.randn(6, node.dim, dtype=torch.float64), torch.randn(6, edge.dim, dtype=torch.float64)
    w = torch.randn(6, ours.weight_numel, dtype=torch.float64)
    assert (ours(x, y, w) - ref(x, y, w)).abs().max() < 1e-10


def test_channelwise_gradients_match_e3nn():
    i1, i2 = "5x0e + 5x1o + 5x2e", "0e + 1o + 2e"
    ours = ChannelwiseTensorProduct(i1, i2, i1, shared_weights=False)
    with default_dtype(torch.float64):
        ref = o3.TensorProduct(i1, i2, i1, [tuple(i[:5]) for i in ours.instructions],
                               shared_weights=False, internal_weights=False)
    x = torch.randn(7, 45, dtype=torch.float64, requires_grad=True)
    y = torch.randn(7, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, ours.weight_numel, dtype=torch.float64, requires_grad=True)
    g = torch.randn(7, 45, dtype=torch.float64)
    ga = torch.autograd.grad(ours(x, y, w), (x, y, w), g)
    gb = torch.autograd.grad(ref(x, y, w), (x, y, w), g)
    for a, b in zip(ga, gb):
        assert (a - b).abs().max() < 1e-10


def test_engine_gradcheck_chunked(monkeypatch):
    """First and second derivatives of the channelwise engine (several chunks, shared and per-sample weights)."""
    import equiv.tp._channelwise as cw

    monkeypatch.setattr(cw, "_CHUNK_BYTES", 1)  # one sample per chunk
    for shared in (False, True):
        tp = TensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o + 2x1e",
                           [(0, 0, 0, "uvu", True), (0, 1, 1, "uvu", True), (1, 1, 0, "uvu", True),
                            (1, 1, 2, "uvu", True), (1, 0, 1, "uvu", False)],
                           shared_weights=shared, internal_weights=False)
        x = torch.randn(3, 8, dtype=torch.float64, requires_grad=True)
        y = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        w = torch.randn(tp.weight_numel if shared else (3, tp.weight_numel), dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(tp, (x, y, w), fast_mode=True)
        assert torch.autograd.gradgradcheck(tp, (x, y, w), fast_mode=True)


def test_engine_direct_weights_gradcheck(monkeypatch):
    """The engine indexing the caller's weights directly (``direct_w``), with the grouped VJP (L = 3):
    first and second derivatives, several chunks, shared and per-sample weights, and the same
    values as the gathered-weights route."""
    import equiv.tp._channelwise as cw

    monkeypatch.setattr(cw, "_CHUNK_BYTES", 1)  # one sample per chunk
    irreps, sh = "2x0e + 2x1o + 2x2e + 2x3o", "0e + 1o + 2e + 3o"
    for shared in (False, True):
        tp = ChannelwiseTensorProduct(irreps, sh, irreps, shared_weights=shared, internal_weights=False)
        plan = tp._groups[0].plan
        assert plan.direct_w and any(cw._grouped(g) for g in plan.groups)
        x = torch.randn(3, tp.irreps_in1.dim, dtype=torch.float64, requires_grad=True)
        y = torch.randn(3, tp.irreps_in2.dim, dtype=torch.float64, requires_grad=True)
        w = torch.randn(tp.weight_numel if shared else (3, tp.weight_numel), dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(tp, (x, y, w), fast_mode=True)
        assert torch.autograd.gradgradcheck(tp, (x, y, w), fast_mode=True)
        g = torch.randn(3, tp.irreps_out.dim, dtype=torch.float64)
        direct = [tp(x, y, w)] + list(torch.autograd.grad(tp(x, y, w), (x, y, w), g))
        gathered = cw.ChannelwisePlan(plan.paths, plan.dim_x, plan.dim_y, plan.dim_g, plan.num_weights,
                                      allow_direct_w=False)
        assert not gathered.direct_w
        monkeypatch.setattr(tp._groups[0], "plan", gathered)
        ref = [tp(x, y, w)] + list(torch.autograd.grad(tp(x, y, w), (x, y, w), g))
        monkeypatch.setattr(tp._groups[0], "plan", plan)
        for a, b in zip(direct, ref):
            assert (a - b).abs().max() < 1e-12


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("used", [(True, False, False), (False, True, False), (False, False, True), (True, True, False)])
def test_engine_double_backward_with_unused_first_gradients(used, dtype):
    """A force-like step that uses only some of the first-order gradients (the others come back to the
    VJP as None and their terms are skipped): second derivatives equal those of the plain formula."""
    import equiv.tp._channelwise as cw

    tp = ChannelwiseTensorProduct("3x0e + 3x1o + 3x2e", "0e + 1o + 2e", "3x0e + 3x1o + 3x2e",
                                  shared_weights=False, internal_weights=False)
    plan = tp._groups[0].plan
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 9, 3, generator=gen, dtype=dtype), torch.randn(5, 9, generator=gen, dtype=dtype)
    w = torch.randn(5, plan.num_weights, 3, generator=gen, dtype=dtype)
    g = torch.randn(5, plan.dim_g, 3, generator=gen, dtype=dtype)
    probes = [torch.randn_like(t, dtype=dtype) for t in (x, y, w)]

    def second(fn):
        leaves = [t.clone().requires_grad_(True) for t in (x, y, w)]
        firsts = torch.autograd.grad(fn(*leaves), leaves, g, create_graph=True)
        loss = sum((f * p).sum() for f, p, u in zip(firsts, probes, used) if u)
        return torch.autograd.grad(loss, leaves, allow_unused=True)

    ours = second(lambda *a: cw.channelwise_product(plan, *a))
    ref = second(lambda *a: cw._reference(plan, *a))
    for a, b in zip(ours, ref):
        if b is None:
            assert a is None or a.abs().max() == 0
        else:
            tol = 1e-12 if dtype == torch.float64 else 1e-5
            assert a is not None and (a - b).abs().max() <= tol * (1 + b.abs().max())


def test_uvv_gradcheck():
    tp = TensorProduct("2x0e + 1x1o", "3x1o", "3x1o + 3x1e", [(0, 0, 0, "uvv", True), (1, 0, 1, "uvv", True)],
                       shared_weights=False)
    x = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randn(2, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, tp.weight_numel, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tp, (x, y, w), fast_mode=True)


@pytest.mark.parametrize("make", [
    lambda: ChannelwiseTensorProduct("3x0e + 3x1o + 3x2e", "0e + 1o + 2e", "3x0e + 3x1o + 3x2e + 3x1e + 3x2o"),
    lambda: FullyConnectedTensorProduct("2x0e + 2x1o + 1x2e", "0e + 1o + 1e", "2x0e + 2x0o + 2x1o + 2x1e + 1x2e"),
    lambda: ElementwiseTensorProduct("2x0e + 2x1o + 2x2e", "2x1o + 2x1e + 2x2o"),
    lambda: FullTensorProduct("1x1o + 1x2e", "1x1o + 1x2o"),
    lambda: TensorProduct("3x1o + 3x2e", "3x1o + 3x2e", "3x1e + 3x2e", [(0, 0, 0, "uvu<v", True), (1, 1, 1, "uvu<v", True)]),
    lambda: TensorProduct("3x1o", "3x1o", "2x1e", [(0, 0, 0, "u<vw", True)]),
    lambda: TensorProduct("3x1o", "2x2e", "2x2o + 2x1o", [(0, 0, 0, "uvv", True), (0, 0, 1, "uvv", True)]),
    lambda: TensorProduct("3x1o", "3x2e", "2x2o", [(0, 0, 0, "uuw", True)]),
])
def test_equivariant(make, dtype):
    tp = make().to(dtype)
    x = tp.irreps_in1.randn(6, -1, dtype=dtype)
    y = tp.irreps_in2.randn(6, -1, dtype=dtype)
    assert_equivariant(tp, [x, y], [tp.irreps_in1, tp.irreps_in2], [tp.irreps_out], translations=False)


def test_construction_is_cheap_and_repr():
    tp = ChannelwiseTensorProduct("16x0e + 16x1o + 16x2e + 16x3o", "0e + 1o + 2e + 3o", shared_weights=False)
    assert repr(tp).startswith("ChannelwiseTensorProduct(16x0e+16x1o+16x2e+16x3o x 1x0e+1x1o+1x2e+1x3o ->")
    assert f"| {tp.weight_numel} weights)" in repr(tp)


def test_weight_views_and_list_weights():
    tp = FullyConnectedTensorProduct("2x0e + 1x1o", "1x0e + 1x1o", "2x0e + 1x1o", internal_weights=False)
    w = torch.randn(tp.weight_numel)
    views = list(tp.weight_views(w))
    assert [tuple(v.shape) for v in views] == [tuple(i.path_shape) for i in tp.instructions]
    x, y = torch.randn(3, 5), torch.randn(3, 4)
    assert torch.allclose(tp(x, y, views), tp(x, y, w))
    assert torch.equal(tp.weight_view_for_instruction(1, w), views[1])


def test_right_operator():
    tp = FullyConnectedTensorProduct("2x0e + 1x1o", "1x0e + 1x1o", "2x0e + 1x1o").double()
    x, y = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 4, dtype=torch.float64)
    op = tp.right(y)
    assert op.shape == (4, 5, 5)
    assert (torch.einsum("zi,zik->zk", x, op) - tp(x, y)).abs().max() < 1e-12


def test_broadcasting_batch_shapes():
    tp = ChannelwiseTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o", shared_weights=False)
    x, y = torch.randn(3, 1, 8), torch.randn(1, 4, 4)
    w = torch.randn(3, 4, tp.weight_numel)
    out = tp(x, y, w)
    assert out.shape == (3, 4, 8)
    assert torch.allclose(out[2, 1], tp(x[2], y[0, 1:2], w[2, 1:2])[0], atol=1e-6)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="mode 'uvx'"):
        TensorProduct("1x0e", "1x0e", "1x0e", [(0, 0, 0, "uvx", True)])
    with pytest.raises(ValueError, match="cannot produce"):
        TensorProduct("1x1o", "1x1o", "1x1o", [(0, 0, 0, "uvw", True)])
    with pytest.raises(ValueError, match="i_out=3"):
        TensorProduct("1x0e", "1x0e", "1x0e", [(0, 0, 3, "uvw", True)])
    with pytest.raises(ValueError, match="mul_in1"):
        TensorProduct("2x0e", "1x0e", "3x0e", [(0, 0, 0, "uvu", True)])
    with pytest.raises(ValueError, match="irrep_normalization"):
        TensorProduct("1x0e", "1x0e", "1x0e", [(0, 0, 0, "uvw", True)], irrep_normalization="bad")
    with pytest.raises(ValueError, match="irreps_in1"):
        TensorProduct("1x0q", "1x0e", "1x0e", [])
    tp = TensorProduct("1x0e", "1x0e", "1x0e", [(0, 0, 0, "uvw", True)], shared_weights=False)
    with pytest.raises(ValueError, match="weight is required"):
        tp(torch.randn(2, 1), torch.randn(2, 1))
    with pytest.raises(ValueError, match="weight has shape"):
        tp(torch.randn(2, 1), torch.randn(2, 1), torch.randn(3))
    with pytest.raises(ValueError, match="irreps_in1.dim=1"):
        tp(torch.randn(2, 2), torch.randn(2, 1), torch.randn(2, 1))
    with pytest.raises(ValueError, match="internal_weights=True requires shared_weights=True"):
        TensorProduct("1x0e", "1x0e", "1x0e", [(0, 0, 0, "uvw", True)], shared_weights=False, internal_weights=True)


def test_torch_compile_fullgraph_no_graph_break():
    """fullgraph=True fails on any graph break; aot_eager also traces the backward."""
    tp = ChannelwiseTensorProduct("3x0e + 3x1o", "0e + 1o", "3x0e + 3x1o", shared_weights=False)
    fc = FullyConnectedTensorProduct("2x0e + 2x1o", "0e + 1o", "2x0e + 2x1o")
    x, y = torch.randn(5, 12, requires_grad=True), torch.randn(5, 4)
    w = torch.randn(5, tp.weight_numel)
    for mod, args in ((tp, (x, y, w)), (fc, (x[:, :8], y))):
        eager = mod(*args)
        compiled = torch.compile(mod, fullgraph=True, backend="aot_eager")(*args)
        assert (compiled - eager).abs().max() < 1e-5
        g1 = torch.autograd.grad(eager.square().sum(), x)[0]
        g2 = torch.autograd.grad(compiled.square().sum(), x)[0]
        assert (g1 - g2).abs().max() < 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cg_convention_e3nn_05_flips_the_weights_of_flipped_paths(dtype):
    """A product in e3nn >= 0.5's convention equals the default one with the weights of the paths
    whose Clebsch-Gordan sign differs negated (here 1o x 2e -> 2e and 2e x 1o -> 2e flip, 1o x 1o -> 1e
    and 2e x 2e -> 2e do not)."""
    from equiv.so3 import convention_sign

    torch.manual_seed(0)
    i1 = i2 = "3x1o + 3x2e"
    tp4 = ChannelwiseTensorProduct(i1, i2, shared_weights=False, internal_weights=False).to(dtype)
    tp5 = ChannelwiseTensorProduct(i1, i2, shared_weights=False, internal_weights=False,
                                   cg_convention="e3nn-0.5").to(dtype)
    x, y = torch.randn(4, tp4.irreps_in1.dim, dtype=dtype), torch.randn(4, tp4.irreps_in2.dim, dtype=dtype)
    w = torch.randn(4, tp4.weight_numel, dtype=dtype)
    flip = torch.ones(tp4.weight_numel, dtype=dtype)
    off, n_flipped = 0, 0
    for ins in tp4.instructions:
        n = math.prod(ins.path_shape)
        ls = (tp4.irreps_in1[ins.i_in1].ir.l, tp4.irreps_in2[ins.i_in2].ir.l, tp4.irreps_out[ins.i_out].ir.l)
        s = convention_sign(*ls, "e3nn-0.5")
        flip[off : off + n] = s
        n_flipped += s < 0
        off += n
    assert n_flipped >= 2
    out5 = tp5(x, y, w)
    assert (out5 - tp4(x, y, w * flip)).abs().max() < (1e-12 if dtype == torch.float64 else 1e-5)
    assert (out5 - tp4(x, y, w)).abs().max() > 0.1
    with pytest.raises(ValueError, match="cg_convention"):
        ChannelwiseTensorProduct(i1, i2, cg_convention="e3nn-0.6")


def test_chunk_budgets_are_per_device_type():
    """CPU chunks stay cache-sized; on an accelerator the batch goes as one chunk (measured on an
    H100: CPU-sized chunks made the L = 3 product 150x slower there, see equiv/tp/_budget.py)."""
    from equiv.tp import _budget

    tp = ChannelwiseTensorProduct("64x0e + 64x1o + 64x2e + 64x3o", "0e + 1o + 2e + 3o",
                                  shared_weights=False, internal_weights=False)
    plan = tp._groups[0].plan
    cpu = plan.chunk_size(64, 4, 10000, torch.device("cpu"))
    gpu = plan.chunk_size(64, 4, 10000, torch.device("meta"))
    assert cpu < 1000 and gpu == 10000
    assert cpu == plan.chunk_size(64, 4, 10000)
    assert _budget.keep_bytes(7, torch.device("cpu")) == 7
    assert _budget.keep_bytes(7, torch.device("meta")) == _budget.ACCEL_KEEP_BYTES


def test_engine_rows_no_path_reads_get_zero_gradient():
    """A plan whose paths skip some input rows: the VJP writes each read block's first contribution
    without a zero fill, so the unread rows must be zeroed explicitly (the buffer starts uninitialised)."""
    import numpy as np

    import equiv.tp._channelwise as cw

    eye = np.eye(3)
    paths = [cw.ChannelwisePath(0, 1, 0, 1, 0, 1, 0, np.ones((1, 1, 1))),
             cw.ChannelwisePath(1, 3, 1, 3, 0, 1, 1, eye.reshape(3, 3, 1) / np.sqrt(3)),
             cw.ChannelwisePath(0, 1, 1, 3, 1, 3, 2, eye.reshape(1, 3, 3)),
             cw.ChannelwisePath(5, 1, 0, 1, 4, 1, 3, np.full((1, 1, 1), 0.5))]
    plan = cw.ChannelwisePlan(paths, 6, 4, 5, 4)
    assert plan.unread_x_blocks == [(4, 5)] and not any(cw._grouped(g) for g in plan.groups)
    x = torch.randn(4, 6, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 4, 3, dtype=torch.float64, requires_grad=True)
    g = torch.randn(4, 5, 3, dtype=torch.float64)
    for _ in range(3):  # fresh buffers each time, possibly holding earlier values
        ours = torch.autograd.grad(cw.channelwise_product(plan, x, y, w), (x, y, w), g)
        ref = torch.autograd.grad(cw._reference(plan, x, y, w), (x, y, w), g)
        assert torch.equal(ours[0][:, 4], torch.zeros(4, 3, dtype=torch.float64))
        for a, b in zip(ours, ref):
            assert (a - b).abs().max() < 1e-12
    assert torch.autograd.gradcheck(lambda *a: cw.channelwise_product(plan, *a), (x, y, w), fast_mode=True)
    assert torch.autograd.gradgradcheck(lambda *a: cw.channelwise_product(plan, *a), (x, y, w), fast_mode=True)
