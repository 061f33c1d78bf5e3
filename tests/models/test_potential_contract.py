"""Every built-in interatomic potential (small sizes) passes `equiv.train.check_potential`: O(3),
translation and permutation symmetry of energies and forces, forces = -dE/dr (finite differences),
smoothness at the cut-off, periodic stress = (1/V) dE/d(strain), save and load, unknown elements."""

import pytest
import torch

from equiv.models import MACE, NequIP
from equiv.train import check_potential

COMMON = dict(species=[1, 6, 8], cutoff=3.0, atomic_energies=[-13.6, -1029.0, -2041.0], avg_num_neighbors=4.0,
              scale=0.7, shift=0.1)
MODELS = {
    "mace-cg": lambda: MACE(**COMMON, hidden_irreps="4x0e + 4x1o", max_ell=2, radial_mlp=[8], readout_hidden=4),
    "mace-gaunt": lambda: MACE(**COMMON, hidden_irreps="4x0e + 4x1o", max_ell=2, radial_mlp=[8], readout_hidden=4,
                               tp="gaunt"),
    "nequip": lambda: NequIP(**COMMON, channels=4, lmax=2, num_layers=3, radial_mlp=[8], readout_hidden=4),
    "nequip-no-parity": lambda: NequIP(**COMMON, channels=4, lmax=2, num_layers=3, radial_mlp=[8], readout_hidden=4,
                                       parity=False),
}


@pytest.fixture(params=sorted(MODELS))
def model(request):
    torch.manual_seed(0)
    return MODELS[request.param]().double()


def test_physics_contract(model):
    report = check_potential(model)
    assert report.passed and all(c.passed is True for c in report.checks), str(report)
    assert report["energy depends on the geometry"].value > 1e-4  # the checks could fail
