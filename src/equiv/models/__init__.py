"""equiv.models: reference models (one file each) and the registry of interatomic potentials."""

# --- interatomic potentials: registry and protocol (owner: potentials engineer) ---
from equiv.models._potential_registry import (
    available_potentials,
    get_potential_class,
    potential_name,
    register_potential,
)
from equiv.models._toy_potential import ToyPotential

# --- MACE, NequIP (owner: MACE engineer) ---
from equiv.models.mace import MACE
from equiv.models.nequip import NequIP

# --- N-body models (owner: N-body engineer) ---
from equiv.models.egnn import EGNN, EGNNLayer
from equiv.models.fa_gnn import FrameAveragedGNN, GNNLayer, PlainGNN
from equiv.models.linear_dynamics import NBodyLinear
from equiv.models.mlp import NBodyMLP
from equiv.models.ponita import Ponita
from equiv.models.segnn import SEGNN, SEGNNLayer, SteerableTensorProduct, weight_balanced_irreps

__all__ = [
    # interatomic potentials
    "available_potentials", "get_potential_class", "potential_name", "register_potential", "ToyPotential",
    # MACE, NequIP
    "MACE", "NequIP",
    # N-body
    "EGNN", "EGNNLayer", "FrameAveragedGNN", "GNNLayer", "PlainGNN", "NBodyLinear", "NBodyMLP", "Ponita",
    "SEGNN", "SEGNNLayer", "SteerableTensorProduct", "weight_balanced_irreps",
]

# --- image classifier for scikit-learn's 8x8 digits (owner: symmetry-diagnostics engineer) ---
from equiv.models.digits import DigitsCNN  # noqa: E402

__all__ += ["DigitsCNN"]
