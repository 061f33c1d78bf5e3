"""Empty batches and bad inputs across the public modules.

An empty batch (no structures, no edges, a filtered-out chunk) must give an empty output of the right
shape with a working backward, and leave any running statistics untouched; inputs of the wrong dtype or
with batch dimensions that do not broadcast must fail with an error that names the module and the cause.
"""
import pytest
import torch

from equiv import models, nn, so3, tp

IRREPS = so3.Irreps("4x0e + 4x1o + 2x2e")

# (name, module factory, input factory for a batch of n) -> module(*inputs(n)) is one tensor
CASES = {
    "Linear": (lambda: nn.Linear(IRREPS, "3x0e + 2x1o"), lambda n: (torch.randn(n, IRREPS.dim),)),
    "Linear/per-sample weights": (
        lambda: nn.Linear(IRREPS, "3x0e", shared_weights=False, internal_weights=False),
        lambda n: (torch.randn(n, IRREPS.dim), torch.randn(n, 12)),
    ),
    "BatchNorm/train": (lambda: nn.BatchNorm(IRREPS).train(), lambda n: (torch.randn(n, IRREPS.dim),)),
    "BatchNorm/eval": (lambda: nn.BatchNorm(IRREPS).eval(), lambda n: (torch.randn(n, IRREPS.dim),)),
    "BatchNorm/instance": (lambda: nn.BatchNorm(IRREPS, instance=True), lambda n: (torch.randn(n, 3, IRREPS.dim),)),
    "LayerNorm": (lambda: nn.LayerNorm(IRREPS), lambda n: (torch.randn(n, IRREPS.dim),)),
    "NormActivation": (lambda: nn.NormActivation(IRREPS, torch.sigmoid), lambda n: (torch.randn(n, IRREPS.dim),)),
    "Gate": (lambda: nn.Gate("4x0e", [torch.relu], "2x0e", [torch.sigmoid], "2x1o"), lambda n: (torch.randn(n, 12),)),
    "FullyConnectedNet": (lambda: nn.FullyConnectedNet([3, 8, 2], torch.nn.functional.silu), lambda n: (torch.randn(n, 3),)),
    "SO3Activation": (lambda: nn.SO3Activation(1, 1, torch.tanh, 6), lambda n: (torch.randn(n, 10),)),
    "SymmetricContraction": (
        lambda: nn.SymmetricContraction("4x0e + 4x1o", "4x0e + 4x1o", correlation=2, num_species=3),
        lambda n: (torch.randn(n, 16), torch.arange(n) % 3),
    ),
    "FromS2Grid": (lambda: so3.FromS2Grid((8, 9), 3), lambda n: (torch.randn(n, 8, 9),)),
    "ToS2Grid": (lambda: so3.ToS2Grid(3, (8, 9)), lambda n: (torch.randn(n, 16),)),
    "FullyConnectedTensorProduct": (
        lambda: tp.FullyConnectedTensorProduct(IRREPS, "0e + 1o", IRREPS),
        lambda n: (torch.randn(n, IRREPS.dim), torch.randn(n, 4)),
    ),
    "ChannelwiseTensorProduct": (
        lambda: tp.ChannelwiseTensorProduct(IRREPS, "0e + 1o + 2e"),
        lambda n: (torch.randn(n, IRREPS.dim), torch.randn(n, 9)),
    ),
    "GauntTensorProduct": (
        lambda: tp.GauntTensorProduct("4x0e + 4x1o + 4x2e", "0e + 1o + 2e", "4x0e + 4x1o + 4x2e"),
        lambda n: (torch.randn(n, 36), torch.randn(n, 9)),
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_empty_batch_forward_and_backward(name):
    make, inputs = CASES[name]
    torch.manual_seed(0)
    module = make()
    full = module(*inputs(5))
    state = {k: v.clone() for k, v in module.state_dict().items()}
    empty_inputs = [t.requires_grad_() if t.is_floating_point() else t for t in inputs(0)]
    out = module(*empty_inputs)
    assert out.shape == (0,) + full.shape[1:]
    out.sum().backward()  # a backward through an empty batch works and gives empty gradients
    for t in empty_inputs:
        assert not t.is_floating_point() or (t.grad is not None and t.grad.shape == t.shape)
    for k, v in module.state_dict().items():  # running statistics are not moved by an empty batch
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("model", [models.EGNN, models.SEGNN, models.Ponita, models.FrameAveragedGNN])
def test_nbody_models_take_an_empty_batch(model):
    torch.manual_seed(0)
    m = model()
    x = torch.randn(0, 5, 3)
    out = m(x, torch.randn(0, 5, 3), torch.randn(0, 5))
    assert out.shape == (0, 5, 3)


def test_ponita_calibration_waits_for_a_non_empty_batch():
    """The first training batch calibrates the kernels' scale; an empty one has no statistics."""
    torch.manual_seed(0)
    m = models.Ponita().train()
    m(torch.randn(0, 5, 3), torch.randn(0, 5, 3), torch.randn(0, 5))
    flags = [b for n, b in m.named_buffers() if n.endswith("calibrated")]
    assert flags and not any(bool(f) for f in flags)
    m(torch.randn(2, 5, 3), torch.randn(2, 5, 3), torch.randn(2, 5))
    assert all(bool(f) for f in flags)


@pytest.mark.parametrize("make", [
    lambda: tp.FullyConnectedTensorProduct(IRREPS, "0e + 1o", IRREPS),
    lambda: tp.ChannelwiseTensorProduct(IRREPS, "0e + 1o"),
])
def test_tensor_product_errors_name_the_cause(make):
    t = make()
    x, y = torch.randn(3, IRREPS.dim), torch.randn(3, 4)
    with pytest.raises(ValueError, match=r"TensorProduct: x, y and the weights must share one floating-point dtype.*float64"):
        t(x.double(), y)
    with pytest.raises(ValueError, match="floating-point dtype.*int64"):
        t(x.long(), y.long())
    with pytest.raises(ValueError, match=r"TensorProduct: the batch \(leading\) dimensions do not broadcast: x \(3,\), y \(2,\)"):
        t(x, y[:2])
    assert t(x[:, None], y[None]).shape == (3, 3, t.irreps_out.dim)  # broadcasting itself still works


def test_gaunt_and_linear_errors_name_the_cause():
    g = tp.GauntTensorProduct("4x0e + 4x1o", "0e + 1o", "4x0e + 4x1o")
    with pytest.raises(ValueError, match=r"GauntTensorProduct: the batch \(leading\) dimensions do not broadcast"):
        g(torch.randn(3, 16), torch.randn(2, 4))
    lin = nn.Linear("4x0e", "4x0e")
    with pytest.raises(ValueError, match="Linear: features are torch.float64 but the weights are torch.float32"):
        lin(torch.randn(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="Linear: features must be floating point"):
        lin(torch.ones(3, 4, dtype=torch.long))


def test_layer_errors_name_the_cause():
    with pytest.raises(ValueError, match=r"FullyConnectedNet: input last dimension must be 3, got shape \(2, 4\)"):
        nn.FullyConnectedNet([3, 8, 2], torch.nn.functional.silu)(torch.randn(2, 4))
    sc = nn.SymmetricContraction("4x0e + 4x1o", "4x0e", correlation=2, num_species=2)
    with pytest.raises(ValueError, match=r"species must be indices in \[0, 2\) \(num_species=2\), got 2"):
        sc(torch.randn(3, 16), torch.tensor([0, 1, 2]))
