"""equiv.train: training loops, metrics, checkpoints, distributed support."""

# --- generic helpers and interatomic potentials (owner: potentials engineer) ---
from equiv.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from equiv.train.contract import PotentialCheck, PotentialReport, check_potential
from equiv.train.ema import ExponentialMovingAverage
from equiv.train.forces import compute_forces_and_stress, predict_properties
from equiv.train.metrics import ErrorAccumulator
from equiv.train.saved_model import load_potential, save_potential

__all__ = [
    "load_checkpoint", "rng_state", "save_checkpoint", "set_rng_state", "ExponentialMovingAverage",
    "compute_forces_and_stress", "predict_properties", "ErrorAccumulator", "load_potential", "save_potential",
    "check_potential", "PotentialReport", "PotentialCheck",
]
