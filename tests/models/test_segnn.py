import pytest
import torch

from equiv.models.segnn import SEGNN, SEGNNLayer, SteerableTensorProduct, weight_balanced_irreps
from equiv.so3 import Irreps
from equiv.symmetry import assert_equivariant, equivariance_error

from nbody_case import KINDS, PERM, nbody_inputs


_inputs = nbody_inputs


def _assert_exactly_equivariant(model):
    """E(3) x S_N equivariance of a float64 SEGNN to rounding error."""
    rep = assert_equivariant(model, list(_inputs()), *KINDS, group="O(3)", **PERM,
                             generator=torch.Generator().manual_seed(0))
    assert rep.max_relative_error < 1e-12


@pytest.mark.parametrize("product", ["cg", "gaunt"])
def test_segnn_is_e3_equivariant(product):
    model = SEGNN(hidden=8, num_layers=2, product=product).double()
    rep = assert_equivariant(model, list(_inputs()), *KINDS, group="O(3)", **PERM,
                             generator=torch.Generator().manual_seed(0))
    assert rep.max_relative_error < 1e-12


def test_lmax2_is_equivariant():
    model = SEGNN(hidden=8, num_layers=1, lmax=2, lmax_attr=2).double()
    assert str(model.hidden_irreps) == "3x0e+3x1o+3x2e"  # 11 paths: 11 n^2 >= 64
    assert_equivariant(model, list(_inputs(seed=1)), *KINDS, group="O(3)", **PERM)


def test_weight_balanced_irreps_matches_segnn():
    # 64 features with lmax 1 attributes: 4 n^2 paths >= 64^2 -> n = 32 (SEGNN's N-body model)
    assert str(weight_balanced_irreps(64, "1x0e + 1x1o", 1)) == "32x0e+32x1o"
    assert str(weight_balanced_irreps(64, "1x0e", 0)) == "64x0e"


def test_gate_and_bias_are_equivariant_and_scalar_only():
    tp = SteerableTensorProduct("4x0e + 2x1o", "1x0e + 1x1o", "3x0e + 2x1o + 1x2e", gate=True).double()
    assert tp.num_bias == 3 + 3  # scalars and gates
    x = torch.randn(6, 10, dtype=torch.float64)
    a = torch.randn(6, 4, dtype=torch.float64)
    assert_equivariant(tp, [x, a], ["4x0e + 2x1o", "1x0e + 1x1o"], ["3x0e + 2x1o + 1x2e"])
    assert tp(x, a).shape == (6, 3 + 6 + 5)
    assert "4x0e+2x1o x 1x0e+1x1o -> 3x0e+2x1o+1x2e, product='cg', gate=True" in repr(tp)


def test_batched_equals_single_and_dtypes(dtype):
    model = SEGNN(hidden=8, num_layers=1).to(dtype)
    x, v, q = _inputs(batch=3, dtype=dtype)
    out = model(x, v, q)
    assert out.shape == (3, 5, 3) and out.dtype == dtype
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out[2], model(x[2], v[2], q[2]), atol=tol, rtol=tol)


def test_repr_reset_and_errors():
    model = SEGNN(hidden=8, num_layers=1)
    assert repr(model).startswith("SEGNN(\n  hidden=8 (4x0e+4x1o), num_layers=1, lmax=1, lmax_attr=1, product='cg'")
    w = model.embedding.tp.weight.clone()
    model.reset_parameters()
    assert not torch.equal(w, model.embedding.tp.weight)
    with pytest.raises(ValueError, match="product"):
        SEGNN(product="fourier")
    with pytest.raises(ValueError, match="lmax"):
        SEGNN(lmax=-1)
    with pytest.raises(ValueError, match="gate=True"):
        SteerableTensorProduct("1x0e", "1x0e", "1x1o", gate=True)


def test_gate_norm_scales_the_activations_as_e3nn_gate():
    """gate_norm: SiLU on the scalars times 1/sqrt(E[silu^2]) and the gates' sigmoid times
    1/sqrt(E[sigmoid^2]) (e3nn's Gate in the reference SEGNN); same weights otherwise."""
    from equiv.nn import moment_scale

    kw = dict(gate=True)
    torch.manual_seed(0)
    a_tp = SteerableTensorProduct("4x0e + 2x1o", "1x0e + 1x1o", "3x0e + 2x1o", gate_norm=True, **kw).double()
    b_tp = SteerableTensorProduct("4x0e + 2x1o", "1x0e + 1x1o", "3x0e + 2x1o", gate_norm=False, **kw).double()
    b_tp.load_state_dict(a_tp.state_dict())
    x, a = torch.randn(7, 10, dtype=torch.float64), torch.randn(7, 4, dtype=torch.float64)
    ya, yb = a_tp(x, a), b_tp(x, a)
    silu, sig = moment_scale(torch.nn.functional.silu), moment_scale(torch.sigmoid)
    torch.testing.assert_close(ya[:, :3], silu * yb[:, :3])
    torch.testing.assert_close(ya[:, 3:], sig * yb[:, 3:])
    assert abs(silu - 1.6765) < 1e-4 and abs(sig - 1.8462) < 1e-4
    # with nothing to gate, the reference's gate is a plain SiLU
    s_tp = SteerableTensorProduct("4x0e", "1x0e", "3x0e", gate=True, gate_norm=True).double()
    s_ref = SteerableTensorProduct("4x0e", "1x0e", "3x0e", gate=True, gate_norm=False).double()
    s_ref.load_state_dict(s_tp.state_dict())
    x, a = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 1, dtype=torch.float64)
    torch.testing.assert_close(s_tp(x, a), s_ref(x, a))


def test_moment_scale_gives_unit_second_moment():
    from equiv.nn import moment_scale

    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for f in (torch.nn.functional.silu, torch.sigmoid, torch.tanh):
        assert abs((moment_scale(f) * f(z)).pow(2).mean().item() - 1) < 3e-3
    assert moment_scale(lambda t: 2 * t) == pytest.approx(0.5, abs=1e-12)
    with pytest.raises(ValueError, match="vanishes"):
        moment_scale(torch.zeros_like)


def test_reference_centring_option():
    """``centre="coordinates"``: the reference code's position input (each particle minus the mean of
    its own coordinates). It differs from the centroid input and breaks translation equivariance."""
    torch.manual_seed(0)
    model = SEGNN(hidden=8, num_layers=1).double()
    ref = SEGNN(hidden=8, num_layers=1, centre="coordinates").double()
    ref.load_state_dict(model.state_dict())
    x, v = torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64)
    q = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0], dtype=torch.float64).expand(2, 5).unsqueeze(-1)
    shift = torch.tensor([0.3, -1.2, 0.7], dtype=torch.float64)
    # the centroid model: translation equivariant; the reference input: not
    assert (model(x + shift, v, q) - (model(x, v, q) + shift)).abs().max() < 1e-12
    assert (ref(x + shift, v, q) - (ref(x, v, q) + shift)).abs().max() > 1e-6
    # for systems whose particles all have coordinate mean equal to the centroid's, the inputs agree
    xs = x - x.mean(2, keepdim=True)
    xs = xs - xs.mean(1, keepdim=True)  # coordinate means stay 0, centroid 0
    assert (ref(xs, v, q) - model(xs, v, q)).abs().max() < 1e-12
    assert "centre='coordinates'" in repr(ref)
    # float32 runs the same input path (dtype preserved)
    out32 = SEGNN(hidden=8, num_layers=1, centre="coordinates")(x.float(), v.float(), q.float())
    assert out32.dtype == torch.float32 and torch.isfinite(out32).all()
    with pytest.raises(ValueError, match="centre"):
        SEGNN(hidden=8, centre="origin")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_node_attr_scalar_option(dtype):
    """``node_attr_scalar="harmonics"`` keeps the sum of the two ``l = 0`` harmonics (the reference's
    earlier model) instead of setting it to 1; the model stays E(3) equivariant."""
    torch.manual_seed(0)
    seen = {}
    for kind in ("one", "harmonics"):
        model = SEGNN(hidden=8, num_layers=1, node_attr_scalar=kind).to(dtype)
        model.embedding.register_forward_hook(lambda m, args, out, kind=kind: seen.__setitem__(kind, args[1]))
        x, v, q = (t.to(dtype) for t in _inputs())
        model(x, v, q)
    expected = {"one": 1.0, "harmonics": 1 / torch.pi ** 0.5}
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    for kind, a in seen.items():
        assert a.dtype == dtype
        assert (a[..., 0] - expected[kind]).abs().max() < tol
    assert torch.equal(seen["one"][..., 1:], seen["harmonics"][..., 1:])
    if dtype == torch.float64:
        _assert_exactly_equivariant(model)
    assert "node_attr_scalar='harmonics'" in repr(model)
    with pytest.raises(ValueError, match="node_attr_scalar"):
        SEGNN(hidden=8, node_attr_scalar="zero")


@pytest.mark.slow
def test_layer_compiles_with_inductor_and_matches_eager_gradients():
    """torch.compile (Inductor, CPU) of a SEGNN layer, forward and backward. With the gates expanded by
    index_select, Inductor (torch 2.13) fused the index_add of its backward into a tiled kernel whose
    atomic add used a wrong row stride: writes out of bounds, and the process aborted with heap
    corruption (with two threads; the one-thread kernel was correct). Under compile the per-irrep maps
    now broadcast block by block (equiv.nn.gate)."""
    from equiv.so3 import spherical_harmonics

    torch.manual_seed(0)
    hidden, attr = Irreps("4x0e + 4x1o"), Irreps("1x0e + 1x1o")
    layer = SEGNNLayer(hidden, attr)
    B, N = 2, 5
    I, J = map(torch.tensor, zip(*[(i, j) for i in range(N) for j in range(N) if i != j]))
    x = torch.randn(B, N, 3)
    edge_attr = spherical_harmonics([0, 1], x[:, J] - x[:, I], normalize=True, normalization="integral")
    args = [hidden.randn(B, N, -1).requires_grad_(), edge_attr, torch.randn(B, len(I), 2),
            edge_attr.reshape(B, N, N - 1, 4).mean(2), I, J]
    eager = layer(*args)
    (g_eager,) = torch.autograd.grad(eager.square().sum(), args[0])
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the miscompiled kernel was the parallel one (one thread compiles correctly)
    try:
        compiled = torch.compile(layer, fullgraph=True)(*args)
        (g_compiled,) = torch.autograd.grad(compiled.square().sum(), args[0])
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_compiled, g_eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("norm", ["element", "path"])
def test_path_normalization_matches_e3nn(norm, dtype):
    """``path_normalization`` reaches the product: the message layer's product equals e3nn's
    ``FullyConnectedTensorProduct`` with the same weights and the same ``path_normalization``
    ("path" is e3nn 0.3.x's only normalisation, which the SEGNN authors' environment pins)."""
    o3 = pytest.importorskip("e3nn.o3")
    h, a = Irreps("4x0e + 4x1o"), Irreps("1x0e + 1x1o")
    layer = SEGNNLayer(h, a, path_normalization=norm).to(dtype)
    stp = layer.message_1
    ref = o3.FullyConnectedTensorProduct(str(stp.irreps_in1), str(a), str(stp.irreps_tp_out),
                                         path_normalization=norm).to(dtype)
    with torch.no_grad():
        ref.weight.copy_(stp.tp.weight)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, stp.irreps_in1.dim, generator=g, dtype=dtype)
    y = torch.randn(7, a.dim, generator=g, dtype=dtype)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    out = stp.tp(x, y)
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref(x, y), atol=tol, rtol=tol)


def test_path_normalization_weighs_the_edge_scalars():
    """In the published model (32x0e + 32x1o, two edge scalars: fan-in 4 * 32 + 2 = 130 into each
    message block, 5 paths) "path" weighs the edge-scalar paths sqrt(130 / (5 * 2)) = 3.6 times as
    much as "element" does and the hidden ones sqrt(130 / (5 * 32)) = 0.9 times; the model stays
    E(3) equivariant; only the CG product has the option."""
    ratios = {}
    models = {n: SEGNN(path_normalization=n) for n in ("element", "path")}
    for p, e in zip(models["path"].layers[0].message_1.tp.instructions,
                    models["element"].layers[0].message_1.tp.instructions):
        ratios.setdefault(p.i_in1, set()).add(round(p.path_weight / e.path_weight, 6))
    assert ratios == {0: {round((130 / 160) ** 0.5, 6)}, 1: {round((130 / 160) ** 0.5, 6)},
                      2: {round((130 / 160) ** 0.5, 6)}, 3: {round((130 / 160) ** 0.5, 6)},
                      4: {round((130 / 10) ** 0.5, 6)}}
    model = SEGNN(hidden=8, num_layers=2, path_normalization="path").double()
    _assert_exactly_equivariant(model)
    assert "path_normalization='path'" in repr(model)
    with pytest.raises(ValueError, match="path_normalization"):
        SEGNN(hidden=8, path_normalization="component")
    with pytest.raises(ValueError, match="product='cg' only"):
        SEGNN(hidden=8, product="gaunt", path_normalization="path")
