"""Every built-in interatomic potential (small sizes) against the physics the workflow relies on:
O(3), translation and permutation symmetry of energies and forces, forces = -dE/dr (finite
differences), smoothness at the cut-off, periodic stress = (1/V) dE/d(strain)."""

import pytest
import torch

from equiv.models import MACE, NequIP
from potential_case import (check_forces_match_finite_differences, check_periodic_stress, check_smooth_at_cutoff,
                            check_symmetries)

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


def test_energy_invariant_forces_equivariant(model):
    check_symmetries(model)


def test_forces_are_minus_gradient_finite_differences(model):
    check_forces_match_finite_differences(model)


def test_energy_is_smooth_at_the_cutoff(model):
    check_smooth_at_cutoff(model)


def test_periodic_stress_matches_finite_strain(model):
    check_periodic_stress(model)
