"""equiv.nn Activation, Gate, NormActivation, BatchNorm, Dropout: same outputs, gradients and running
statistics as e3nn 0.4.4's layers; equivariance (rotations and parity); parity rules; errors."""

import pytest
import torch
from torch.nn.functional import silu

from equiv.nn import Activation, BatchNorm, Dropout, Gate, Norm, NormActivation, moment_scale
from equiv.so3 import Irreps
from equiv.symmetry import assert_equivariant

e3nn_nn = pytest.importorskip("e3nn.nn")
normalize2mom = pytest.importorskip("e3nn.math").normalize2mom


def _e3nn_scaled(fn):
    """``fn`` times e3nn's own (Monte-Carlo) normalisation constant, for comparisons with
    ``normalize=False`` (ours is exact quadrature; the two constants differ by ~1e-3)."""
    c = normalize2mom(fn).cst

    def scaled(x):
        return fn(x) * c

    return scaled


def _close(a, b, dtype, scale=1.0):
    tol = 1e-10 if dtype == torch.float64 else 2e-5
    return (a - b).abs().max().item() <= tol * max(1.0, scale)


# ----------------------------------------------------------------------------------------- Activation
@pytest.mark.parametrize("irreps,acts,expected", [
    ("4x0e + 2x0o + 3x1o", [silu, torch.tanh, None], "4x0e + 2x0o + 3x1o"),
    ("3x0o + 2x0e", [torch.abs, torch.sigmoid], "3x0e + 2x0e"),
    ("2x0o", [torch.cos], "2x0e"),
])
def test_activation_matches_e3nn(irreps, acts, expected, dtype):
    ours = Activation(irreps, [_e3nn_scaled(a) if a is not None else None for a in acts], normalize=False)
    ref = e3nn_nn.Activation(irreps, acts)
    assert ours.irreps_out == Irreps(expected) == ref.irreps_out
    x = torch.randn(7, ours.irreps_in.dim, dtype=dtype)
    assert _close(ours(x), ref(x), dtype)


def test_activation_normalisation_is_exact():
    act = Activation("1000x0e", [silu])
    x = torch.randn(1000, 1000, dtype=torch.float64)
    assert abs(act(x).pow(2).mean().item() - 1.0) < 0.01  # unit second moment on N(0, 1) inputs
    assert torch.allclose(act(x), silu(x) * moment_scale(silu))
    assert torch.equal(Activation("3x0e", [silu], normalize=False)(x[:, :3]), silu(x[:, :3]))


def test_activation_equivariant(dtype):
    act = Activation("4x0e + 2x0o + 3x0o + 2x1o", [silu, torch.tanh, torch.abs, None])
    x = act.irreps_in.randn(6, -1, dtype=dtype)
    assert_equivariant(act, [x], [act.irreps_in], [act.irreps_out], translations=False)


def test_activation_errors():
    with pytest.raises(ValueError, match="scalars only"):
        Activation("2x1o", [silu])
    with pytest.raises(ValueError, match="neither even nor odd"):
        Activation("2x0o", [silu])
    with pytest.raises(ValueError, match="2 activations for 1 blocks"):
        Activation("2x0e", [silu, silu])
    with pytest.raises(ValueError, match="irreps_in.dim=2"):
        Activation("2x0e", [silu])(torch.randn(3, 4))


# ----------------------------------------------------------------------------------------------- Gate
@pytest.mark.parametrize("scalars,act_s,gates,act_g,gated", [
    ("8x0e", [silu], "4x0e + 2x0o", [torch.sigmoid, torch.tanh], "4x1o + 2x2e"),
    ("3x0e + 2x0o", [silu, torch.tanh], "3x0o", [torch.tanh], "1x1o + 2x1e"),   # odd gates flip parity
    ("2x0e", [torch.tanh], "2x0o", [torch.abs], "2x2e"),                       # even act of 0o: 0e gate
    ("5x0e", [silu], "", [], ""),                                              # scalars only
])
def test_gate_matches_e3nn(scalars, act_s, gates, act_g, gated, dtype):
    ours = Gate(scalars, [_e3nn_scaled(a) for a in act_s], gates, [_e3nn_scaled(a) for a in act_g], gated,
                normalize=False)
    ref = e3nn_nn.Gate(scalars, act_s, gates, act_g, gated)
    assert ours.irreps_in == ref.irreps_in and ours.irreps_out == ref.irreps_out.simplify()
    x = torch.randn(9, ours.irreps_in.dim, dtype=dtype, requires_grad=True)
    a, b = ours(x), ref(x)
    assert _close(a, b, dtype)
    g = torch.randn_like(a)
    (ga,), (gb,) = torch.autograd.grad(a, x, g), torch.autograd.grad(b, x, g)
    assert _close(ga, gb, dtype)


def test_gate_per_block_activations():
    gate = Gate("2x0e + 3x0e", [silu, torch.tanh], "1x0e + 1x0e", [torch.sigmoid, torch.tanh], "2x1o", normalize=False)
    assert gate.irreps_in == Irreps("7x0e + 2x1o") and gate.irreps_out == Irreps("5x0e + 2x1o")
    x = gate.irreps_in.randn(3, -1, dtype=torch.float64)
    y = gate(x)
    assert torch.equal(y[:, :2], silu(x[:, :2])) and torch.equal(y[:, 2:5], torch.tanh(x[:, 2:5]))
    assert torch.equal(y[:, 5:8], x[:, 7:10] * torch.sigmoid(x[:, 5:6]))
    assert torch.equal(y[:, 8:11], x[:, 10:13] * torch.tanh(x[:, 6:7]))


def test_gate_equivariant(dtype):
    gate = Gate("3x0e + 2x0o", [silu, torch.tanh], "2x0e + 3x0o", [torch.sigmoid, torch.tanh], "2x1o + 1x2e + 2x3o")
    assert gate.irreps_in == Irreps("2x0o + 3x0o + 3x0e + 2x0e + 2x1o + 1x2e + 2x3o").simplify()  # sorted
    assert gate.irreps_out == Irreps("3x0e + 2x0o + 2x1o + 1x2o + 2x3e")  # gates 3-5 are odd (tanh of 0o)
    x = gate.irreps_in.randn(5, -1, dtype=dtype)
    assert_equivariant(gate, [x], [gate.irreps_in], [gate.irreps_out], translations=False)


def test_gate_for_irreps():
    gate = Gate.for_irreps("16x0e + 2x0o + 8x1o + 4x2e")
    assert gate.irreps_in == Irreps("2x0o + 28x0e + 8x1o + 4x2e")  # sorted: pseudo-scalars first
    assert gate.irreps_out == Irreps("16x0e + 2x0o + 8x1o + 4x2e")
    x = gate.irreps_in.randn(4, -1, dtype=torch.float64)
    y = gate(x)
    c_silu, c_sig = moment_scale(silu), moment_scale(torch.sigmoid)
    assert torch.allclose(y[:, :16], silu(x[:, 2:18]) * c_silu)
    assert torch.allclose(y[:, 16:18], torch.tanh(x[:, :2]) * moment_scale(torch.tanh))
    vec = x[:, 30:54].view(4, 8, 3) * (torch.sigmoid(x[:, 18:26]) * c_sig)[..., None]
    assert torch.allclose(y[:, 18:42], vec.flatten(1))
    assert_equivariant(gate, [x], [gate.irreps_in], [gate.irreps_out], translations=False)
    with pytest.raises(ValueError, match="scalars of"):
        Gate.for_irreps("8x1o + 4x0e")


def test_gate_errors():
    with pytest.raises(ValueError, match="one gate per gated irrep copy"):
        Gate("2x0e", silu, "3x0e", torch.sigmoid, "2x1o")
    with pytest.raises(ValueError, match="irreps_gates must be scalars"):
        Gate("2x0e", silu, "2x1o", torch.sigmoid, "2x1o")
    with pytest.raises(ValueError, match="neither even nor odd"):
        Gate("2x0e", silu, "2x0o", torch.sigmoid, "2x1o")
    with pytest.raises(ValueError, match="irreps_in.dim=10"):
        Gate("2x0e", silu, "2x0e", torch.sigmoid, "2x1o")(torch.randn(3, 9))


# ------------------------------------------------------------------------------------- NormActivation
@pytest.mark.parametrize("kw", [{}, {"epsilon": 0.3}, {"bias": True}, {"bias": True, "epsilon": 1e-3}])
def test_norm_activation_matches_e3nn(kw, dtype):
    irreps = Irreps("3x0e + 2x0o + 4x1o + 2x2e + 1x3o")
    ours = NormActivation(irreps, torch.sigmoid, **kw).to(dtype)
    ref = e3nn_nn.NormActivation(pytest.importorskip("e3nn.o3").Irreps(str(irreps)), torch.sigmoid, **kw).to(dtype)
    if kw.get("bias"):
        with torch.no_grad():
            ref.biases.normal_()
            ours.biases.copy_(ref.biases)
    x = torch.randn(6, ours.irreps_in.dim, dtype=dtype, requires_grad=True)
    with torch.no_grad():
        x[0, 5:8] = 0.01  # a vector below epsilon = 0.3 or 1e-3 (clamped) and above the default 1e-8
        x[1, 8:11] = 0.0  # a zero vector: clamped norm in every case
    a, b = ours(x), ref(x)
    assert _close(a, b, dtype)
    g = torch.randn_like(a)
    (ga,), (gb,) = torch.autograd.grad(a, x, g), torch.autograd.grad(b, x, g)
    assert _close(ga, gb, dtype, ga.abs().max().item())


def test_norm_activation_without_normalize(dtype):
    act = NormActivation("2x0e + 3x1o + 1x2e", torch.tanh, normalize=False, bias=True).to(dtype)
    with torch.no_grad():
        act.biases.normal_()
    x = act.irreps_in.randn(4, -1, dtype=dtype)
    vec = x[:, 2:11].view(4, 3, 3)
    expected = vec * torch.tanh(vec.norm(dim=-1) + act.biases[2:5])[..., None]
    assert _close(act(x)[:, 2:11], expected.flatten(1), dtype)
    assert _close(act(x)[:, :2], x[:, :2] * torch.tanh(x[:, :2].abs() + act.biases[:2]), dtype)
    with pytest.raises(ValueError, match="epsilon is for normalize=True"):
        NormActivation("1x1o", silu, normalize=False, epsilon=1e-3)


def test_norm_activation_equivariant_and_zero(dtype):
    act = NormActivation("2x0e + 2x0o + 3x1o + 1x2e + 1x3o", silu, bias=True, epsilon=1e-6).to(dtype)
    with torch.no_grad():
        act.biases.normal_()
    x = act.irreps_in.randn(5, -1, dtype=dtype)
    assert_equivariant(act, [x], [act.irreps_in], [act.irreps_out], translations=False)
    z = torch.zeros(2, act.irreps_in.dim, dtype=dtype, requires_grad=True)
    out = act(z)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(z.grad).all()
    with pytest.raises(ValueError, match="epsilon must be positive"):
        NormActivation("1x1o", silu, epsilon=0.0)


# ------------------------------------------------------------------------------------------ BatchNorm
@pytest.mark.parametrize("kw", [
    {},
    {"normalization": "norm"},
    {"reduce": "max"},
    {"affine": False},
    {"instance": True},
    {"instance": True, "reduce": "max", "normalization": "norm"},
    {"momentum": 0.5, "eps": 1e-3},
])
def test_batchnorm_matches_e3nn(kw, dtype):
    irreps = "3x0e + 2x0o + 4x1o + 2x2e + 1x0e"
    ours = BatchNorm(irreps, **kw).to(dtype)
    ref = e3nn_nn.BatchNorm(irreps, **kw).to(dtype)
    if ours.affine:
        with torch.no_grad():
            ref.weight.uniform_(0.5, 1.5)
            ref.bias.normal_()
            ours.weight.copy_(ref.weight)
            ours.bias.copy_(ref.bias)
    for step in range(3):  # training steps: outputs, gradients and running statistics
        x = (torch.randn(8, 5, ours.irreps.dim, dtype=dtype) * 2 + 0.7).requires_grad_()
        a, b = ours(x), ref(x)
        assert a.shape == x.shape and _close(a, b, dtype)
        g = torch.randn_like(a)
        params_a = [x] + ([ours.weight, ours.bias] if ours.affine else [])
        params_b = [x] + ([ref.weight, ref.bias] if ref.affine else [])
        for ga, gb in zip(torch.autograd.grad(a, params_a, g), torch.autograd.grad(b, params_b, g)):
            assert _close(ga, gb, dtype, gb.abs().max().item())
        if not ours.instance:
            assert _close(ours.running_mean, ref.running_mean, dtype)
            assert _close(ours.running_var, ref.running_var, dtype)
    ours.eval(), ref.eval()
    x = torch.randn(4, ours.irreps.dim, dtype=dtype)
    assert _close(ours(x), ref(x), dtype)


def test_batchnorm_statistics():
    bn = BatchNorm("4x0e + 3x1o", affine=False, eps=0.0)
    x = torch.randn(500, 13, dtype=torch.float64) * 3 + 1
    y = bn.double()(x)
    assert y[:, :4].mean(0).abs().max() < 1e-12  # scalars centred
    assert (y[:, :4].pow(2).mean(0) - 1).abs().max() < 1e-12  # unit second moment
    vec = y[:, 4:].view(500, 3, 3)
    assert (vec.pow(2).mean((0, 2)) - 1).abs().max() < 1e-12  # component normalisation
    assert (vec.mean(0) - x[:, 4:].view(500, 3, 3).mean(0) / x[:, 4:].view(500, 3, 3).pow(2).mean((0, 2))[:, None].sqrt()).abs().max() < 1e-12  # vectors not centred
    assert torch.allclose(bn.running_mean, 0.1 * x[:, :4].mean(0))


def test_batchnorm_equivariant(dtype):
    for kw in ({}, {"instance": True}, {"reduce": "max"}):
        bn = BatchNorm("3x0e + 2x0o + 2x1o + 1x2e", **kw).to(dtype)
        x = bn.irreps.randn(6, -1, dtype=dtype)
        assert_equivariant(bn, [x], [bn.irreps], [bn.irreps], translations=False)
    bn.eval()
    assert_equivariant(bn, [x], [bn.irreps], [bn.irreps], translations=False)


def test_batchnorm_errors():
    with pytest.raises(ValueError, match="reduce must be"):
        BatchNorm("2x0e", reduce="sum")
    with pytest.raises(ValueError, match="normalization must be"):
        BatchNorm("2x0e", normalization="integral")
    with pytest.raises(ValueError, match="irreps.dim=5"):
        BatchNorm("2x0e + 1x1o")(torch.randn(4, 4))
    with pytest.raises(ValueError, match=r"\(batch, ..., 2\)"):
        BatchNorm("2x0e")(torch.randn(2))


# -------------------------------------------------------------------------------------------- Dropout
def test_dropout_drops_whole_copies_and_is_unbiased():
    drop = Dropout("200x0e + 300x1o + 100x2e", p=0.3)
    x = torch.ones(50, drop.irreps.dim, dtype=torch.float64)
    y = drop(x)
    vec = y[:, 200:1100].view(50, 300, 3)
    assert torch.equal(vec.amin(-1), vec.amax(-1))  # the three components of a vector together
    assert set(y.unique().tolist()) == {0.0, 1 / 0.7}
    assert abs((y == 0).double().mean().item() - 0.3) < 0.02  # vectors drop as often as scalars (by count)
    assert abs(y.mean().item() - 1.0) < 0.03
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout("2x1o", p=1.0)(torch.ones(3, 6)), torch.zeros(3, 6))
    with pytest.raises(ValueError, match="p must be in"):
        Dropout("1x0e", p=1.5)


def test_dropout_equivariant(dtype):
    drop = Dropout("3x0e + 2x1o + 2x2e + 1x1e", p=0.5)

    def fixed_mask(x):  # the same draw for the input and its rotated copy
        torch.manual_seed(7)
        return drop(x)

    x = drop.irreps.randn(6, -1, dtype=dtype)
    assert_equivariant(fixed_mask, [x], [drop.irreps], [drop.irreps], translations=False)


@pytest.mark.slow
def test_layers_compile_without_graph_breaks():
    """Gate, BatchNorm (training: running statistics updated in the graph), Dropout, NormActivation
    (with Norm), LayerNorm and S2Activation under torch.compile(fullgraph=True) give the eager outputs."""
    from equiv.nn import LayerNorm, Linear, S2Activation

    hidden = Irreps("16x0e + 8x1o + 4x2e")
    gate = Gate.for_irreps(hidden)
    block = torch.nn.Sequential(Linear("8x0e + 4x1o", gate.irreps_in), gate, BatchNorm(hidden),
                                Dropout(hidden, 0.1), NormActivation(hidden, torch.sigmoid), LayerNorm(hidden),
                                Linear(hidden, "0e + 1o + 2e"), S2Activation("0e + 1o + 2e", silu))
    x = Irreps("8x0e + 4x1o").randn(32, -1)
    compiled = torch.compile(block, fullgraph=True)
    import torch._inductor.config as inductor_config

    torch.manual_seed(3)
    with inductor_config.patch(fallback_random=True):  # the compiled dropout draws eager's random numbers
        a = compiled(x)
    stats = block[2].running_var.clone()
    block[2].running_var.fill_(1.0), block[2].running_mean.zero_()
    torch.manual_seed(3)
    b = block(x)
    assert (a - b).abs().max() < 1e-5 and torch.allclose(block[2].running_var, stats)


# ------------------------------------------------------------------------------------------ LayerNorm
def test_layernorm_is_torch_layernorm_on_scalars(dtype):
    from equiv.nn import LayerNorm

    ours = LayerNorm("16x0e").to(dtype)
    ref = torch.nn.LayerNorm(16).to(dtype)
    with torch.no_grad():
        ref.weight.uniform_(0.5, 1.5), ref.bias.normal_()
        ours.weight.copy_(ref.weight), ours.bias.copy_(ref.bias)
    x = torch.randn(4, 3, 16, dtype=dtype) * 2 + 0.5
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert (ours(x) - ref(x)).abs().max() < tol


def test_layernorm_statistics_and_equivariance(dtype):
    from equiv.nn import LayerNorm

    irreps = Irreps("6x0e + 3x0o + 4x1o + 2x2e")
    ln = LayerNorm(irreps, eps=0.0, affine=False).to(dtype)
    x = irreps.randn(5, -1, dtype=dtype) * 3
    y = ln(x)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    assert y[:, :6].mean(-1).abs().max() < tol  # 0e centred per sample
    for (mul, ir), sl in zip(irreps, irreps.slices()):  # each block: unit mean square per component
        assert (y[:, sl].pow(2).mean(-1) - 1).abs().max() < tol
    assert (y[:, 6:9].mean(-1) - x[:, 6:9].mean(-1) / x[:, 6:9].pow(2).mean(-1).sqrt()).abs().max() < tol  # 0o not centred
    ln = LayerNorm(irreps, normalization="norm").to(dtype)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5), ln.bias.normal_()
    assert_equivariant(ln, [x], [irreps], [irreps], translations=False)
    with pytest.raises(ValueError, match="normalization must be"):
        LayerNorm("1x0e", normalization="batch")
    with pytest.raises(ValueError, match="irreps.dim=5"):
        LayerNorm("2x0e + 1x1o")(torch.randn(2, 4))


@pytest.mark.parametrize("squared", [False, True])
def test_norm_matches_e3nn(squared, dtype):
    from equiv.nn import Norm

    o3 = pytest.importorskip("e3nn.o3")
    irreps = "3x0e + 2x0o + 4x1o + 2x2e + 1x3o"
    ours = Norm(irreps, squared=squared)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        ref = o3.Norm(irreps, squared=squared)
    finally:
        torch.set_default_dtype(old)
    x = torch.randn(6, ours.irreps_in.dim, dtype=dtype)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert ours.irreps_out == Irreps(str(ref.irreps_out)) and (ours(x) - ref(x)).abs().max() < tol
    assert_equivariant(ours, [x], [ours.irreps_in], [ours.irreps_out], translations=False)


def test_compiled_forms_of_the_per_irrep_maps_equal_the_eager_ones(monkeypatch):
    """Under torch.compile, Gate, Norm, NormActivation and Dropout expand / sum per irrep copy by
    broadcasting block by block instead of index_select / index_add (Inductor miscompiled the latter in
    SEGNN's backward). Both forms give the same values and gradients."""
    irreps = Irreps("3x0e + 2x1o + 1x1e + 2x2e + 4x0o + 1x3o")
    gate = Gate("3x0e + 4x0o", [silu, torch.tanh], "6x0e", torch.sigmoid, "2x1o + 1x1e + 2x2e + 1x3o").double()
    norm, normact = Norm(irreps).double(), NormActivation(irreps, torch.sigmoid).double()
    drop = Dropout(irreps, 0.5)
    x_gate = gate.irreps_in.randn(5, -1, dtype=torch.float64, requires_grad=True)
    x = irreps.randn(5, -1, dtype=torch.float64, requires_grad=True)

    def run(compiling):
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: compiling)
        torch.manual_seed(0)
        outs = [gate(x_gate), norm(x), normact(x), drop.train()(x)]
        grads = torch.autograd.grad(sum((o * torch.linspace(-1, 1, o.shape[-1], dtype=o.dtype)).sum() for o in outs),
                                    (x_gate, x))
        return outs + list(grads)

    eager, compiled = run(False), run(True)
    for a, b in zip(eager, compiled):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    # empty irreps: both forms give empty outputs
    empty = torch.zeros(3, 0, dtype=torch.float64)
    for compiling in (False, True):
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda c=compiling: c)
        assert Norm("").double()(empty).shape == (3, 0) and NormActivation("", torch.sigmoid).double()(empty).shape == (3, 0)
