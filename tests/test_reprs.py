"""Every module prints what it is: its irreps (in -> out) and the options that change its output."""
import pytest
import torch

from equiv import nn, so3, tp
from equiv.models import MACE, ToyPotential

IR = "4x0e + 4x1o"
CASES = [
    (lambda: nn.BatchNorm(IR), "BatchNorm(4x0e+4x1o, eps=1e-05, momentum=0.1, affine=True, reduce='mean', "
                               "instance=False, normalization='component')"),
    (lambda: nn.Dropout(IR, 0.1), "Dropout(4x0e+4x1o, p=0.1)"),
    (lambda: nn.Extract(IR, ["4x0e"], [(0,)]), "Extract(4x0e+4x1o -> 4x0e)"),
    (lambda: nn.Gate("4x0e", [torch.relu], "2x0e", [torch.sigmoid], "2x1o"), "  6x0e+2x1o -> 4x0e+2x1o"),
    (lambda: nn.Activation("2x0e", [torch.tanh]), "Activation(2x0e -> 2x0e, acts=[tanh], normalize=True)"),
    (lambda: nn.LayerNorm(IR), "LayerNorm(4x0e+4x1o, eps=1e-05, affine=True, normalization='component')"),
    (lambda: nn.FullyConnectedNet([3, 8, 2], torch.nn.functional.silu), "  (layer0): _Layer(3 -> 8, act=silu*1.6765)"),
    (lambda: nn.BesselBasis(5.0, 8), "BesselBasis(cutoff=5.0, num_basis=8, trainable=False)"),
    (lambda: nn.PolynomialCutoff(5.0), "PolynomialCutoff(cutoff=5.0, p=5)"),
    (lambda: nn.S2Activation("0e+1o+2e", torch.tanh, resolution=10),
     "S2Activation(1x0e+1x1o+1x2e -> 1x0e+1x1o+1x2e, act=tanh, resolution=10 (66 points), "
     "normalization='component', separable=False)"),
    (lambda: nn.SO3Activation(1, 1, torch.tanh, 6), "  (grid_in): SO3Grid(lmax=1, res=24x12x24)"),
    (lambda: nn.SymmetricContraction(IR, "4x0e", correlation=2, num_species=2),
     "  4x0e+4x1o -> 4x0e, correlation=2, num_species=2, parametrization='paths', weights={'0e': [1, 2]}"),
    (lambda: so3.ToS2Grid(3, (8, 9)), "ToS2Grid(lmax=3, res=8x9 (beta x alpha))"),
    (lambda: so3.FromS2Grid((8, 9), 3), "FromS2Grid(lmax=3, res=8x9 (beta x alpha))"),
    (lambda: so3.SO3Grid(2, 6), "SO3Grid(lmax=2, res=24x12x24)"),
    (lambda: so3.SphericalHarmonics("0e+1o", True), "SphericalHarmonics(1x0e+1x1o, normalize=True, normalization='integral')"),
    (lambda: so3.ReducedTensorProducts("ij=ji", i="1o"), "ReducedTensorProducts('ij=ji', i=1x1o, j=1x1o -> 1x0e+1x2e)"),
    (lambda: tp.EdgeFrameTensorProduct(tp.ChannelwiseTensorProduct(IR, "0e+1o")),
     "EdgeFrameTensorProduct(4x0e+4x1o x Y(1x0e+1x1o) -> 4x0e+4x0e+4x1o+4x1o+4x1e+4x2e, 6 paths, 11 frame coefficients)"),
    (lambda: ToyPotential(species=[1, 6], cutoff=3.0, atomic_energies=[0.0, 0.0], channels=4),
     "  species=[1, 6], cutoff=3.0, channels=4, num_basis=8"),
    (lambda: MACE(species=[1, 6], cutoff=3.0, atomic_energies=[0.0, 0.0], hidden_irreps="4x0e+4x1o", max_ell=1,
                  correlation=2, radial_mlp=[8], readout_hidden=4),
     "  species=[1, 6], cutoff=3.0, hidden_irreps=4x0e+4x1o, max_ell=1, correlation=2, num_interactions=2, tp='cg'"),
]


@pytest.mark.parametrize("make, line", CASES, ids=[line.strip()[:40] for _, line in CASES])
def test_repr_names_irreps_and_options(make, line):
    assert line in repr(make()).splitlines()
