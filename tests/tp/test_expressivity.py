"""expressivity: CG reaches every equivariant bilinear map, Gaunt only the even paths."""

import pytest
import torch

from equiv.tp import (
    ChannelwiseTensorProduct,
    FullyConnectedTensorProduct,
    GauntTensorProduct,
    TensorProduct,
    bilinear_hom_dimension,
    expressivity,
)


def _so3(L):
    return "+".join(f"1x{l}e" for l in range(L + 1))


def _sh(L):
    return "+".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1))


@pytest.mark.parametrize("L,cg,gaunt", [(1, 5, 4), (2, 15, 11)])
def test_cg_vs_gaunt(L, cg, gaunt):
    assert bilinear_hom_dimension(_so3(L), _so3(L), _so3(L), group="SO(3)") == cg
    assert expressivity(FullyConnectedTensorProduct(_so3(L), _so3(L), _so3(L))) == cg
    assert expressivity(GauntTensorProduct(_sh(L), _sh(L), _sh(L), method="grid")) == gaunt
    assert expressivity(GauntTensorProduct(_sh(L), _sh(L), _sh(L), method="fourier")) == gaunt
    # with O(3) parities the CG product has only the even paths as well
    assert expressivity(FullyConnectedTensorProduct(_sh(L), _sh(L), _sh(L))) == gaunt
    assert bilinear_hom_dimension(_sh(L), _sh(L), _sh(L)) == gaunt


def test_restricted_products():
    one_path = TensorProduct("1x1o", "1x1o", "1x0e + 1x2e", [(0, 0, 1, "uvw", True)])
    assert expressivity(one_path) == 1
    # channelwise with channel mixing before and after reaches all 2x2 maps of 2x0e x 0e -> 2x0e
    assert expressivity(ChannelwiseTensorProduct("2x0e", "0e", "2x0e")) == 4
    assert bilinear_hom_dimension("2x0e", "0e", "2x0e") == 4


def test_errors():
    with pytest.raises(ValueError, match="shared_weights=True"):
        expressivity(ChannelwiseTensorProduct("2x0e", "0e", "2x0e", shared_weights=False))
    with pytest.raises(TypeError, match="tensor product module"):
        expressivity(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="group"):
        bilinear_hom_dimension("0e", "0e", "0e", group="E(3)")
