"""Extract / ExtractIr: e3nn's outputs, gradients, equivariance, errors; SphericalHarmonics (module):
e3nn's module outputs and irreps."""

import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3

from equiv.nn import Extract, ExtractIr, Identity
from equiv.so3 import Irreps, SphericalHarmonics
from equiv.symmetry import assert_equivariant

CASES = [
    ("1e + 0e + 0e", ["0e", "0e"], [(1,), (2,)]),
    ("2x0e + 3x1o + 2e + 0o", ["2e + 2x0e", "0o", "3x1o + 3x1o"], [(2, 0), (3,), (1, 1)]),
    ("4x0e + 2x1o", ["4x0e + 2x1o"], [(0, 1)]),
]


@pytest.mark.parametrize("irreps_in, irreps_outs, instructions", CASES)
def test_extract_matches_e3nn(irreps_in, irreps_outs, instructions, dtype):
    ours, ref = Extract(irreps_in, irreps_outs, instructions), e3nn_nn.Extract(irreps_in, irreps_outs, instructions)
    x = torch.randn(5, 2, Irreps(irreps_in).dim, dtype=dtype, requires_grad=True)
    out, expected = ours(x), ref(x)
    assert len(out) == len(expected)
    for a, b in zip(out, expected):
        assert a.shape == b.shape and torch.equal(a, b)
    g = [torch.randn_like(a) for a in out]
    (ga,) = torch.autograd.grad(out, x, g)
    (gb,) = torch.autograd.grad(ref(x), x, g)
    assert torch.equal(ga, gb)


@pytest.mark.parametrize("ir", ["0e", "1o", "2e", "3o"])
def test_extract_ir_matches_e3nn(ir):
    irreps = "2x0e + 1o + 3x0e + 2x1o + 2e"
    ours, ref = ExtractIr(irreps, ir), e3nn_nn.ExtractIr(irreps, ir)
    assert str(ours.irreps_out) == str(ref.irreps_out)
    x = torch.randn(4, Irreps(irreps).dim)
    assert torch.equal(ours(x), ref(x))


def test_extract_is_equivariant():
    irreps = Irreps("2x0e + 3x1o + 2e")
    layer = Extract(irreps, ["2e + 2x0e", "3x1o"], [(2, 0), (1,)])
    x = irreps.randn(6, -1, dtype=torch.float64)
    assert_equivariant(layer, [x], irreps_in=[irreps], irreps_out=["2e + 2x0e", "3x1o"])


def test_extract_errors():
    with pytest.raises(ValueError, match="2 outputs but 1 instructions"):
        Extract("0e + 1o", ["0e", "1o"], [(0,)])
    with pytest.raises(ValueError, match="names 2"):
        Extract("0e + 1o", ["0e"], [(0, 1)])
    with pytest.raises(ValueError, match="block 0 of output 0 is 1x1o but input block 0 is 1x0e"):
        Extract("0e + 1o", ["1o"], [(0,)])
    with pytest.raises(ValueError, match="block 5 is not in"):
        Extract("0e + 1o", ["1o"], [(5,)])
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 4\)"):
        Extract("0e + 1o", ["1o"], [(1,)])(torch.randn(3, 5))


@pytest.mark.parametrize("irreps_out, kw", [
    ("0e + 1o + 2e", {}), ([0, 2, 1, 1], {}), (3, {}), ("1e + 2e + 0e", {}), ([1, 3], {"irreps_in": "1e"}),
    ("0e + 1o + 2e + 3o + 4e", {"normalization": "component"}), ([2, 4], {"normalization": "norm"}),
])
@pytest.mark.parametrize("normalize", [True, False])
def test_spherical_harmonics_module_matches_e3nn(irreps_out, kw, normalize):
    ours, ref = SphericalHarmonics(irreps_out, normalize, **kw), o3.SphericalHarmonics(irreps_out, normalize, **kw)
    assert str(ours.irreps_out) == str(ref.irreps_out) and str(ours.irreps_in) == str(ref.irreps_in)
    x = torch.randn(20, 3, dtype=torch.float64)
    assert (ours(x) - ref(x)).abs().max() < 1e-12


def test_spherical_harmonics_module_errors():
    with pytest.raises(ValueError, match="parity"):
        SphericalHarmonics("1e", True, irreps_in="1o")
    with pytest.raises(ValueError, match="vector"):
        SphericalHarmonics(2, True, irreps_in="2e")
    with pytest.raises(ValueError, match="normalization"):
        SphericalHarmonics(2, True, normalization="unit")


def test_identity_matches_e3nn():
    ours, ref = Identity("2x0e + 1o", "0e + 0e + 1o"), e3nn_nn.Identity("2x0e + 1o", "0e + 0e + 1o")
    x = torch.randn(3, 5)
    assert torch.equal(ours(x), ref(x)) and str(ours.irreps_out) == str(ref.irreps_out)
    with pytest.raises(ValueError, match="differ"):
        Identity("0e", "1o")
