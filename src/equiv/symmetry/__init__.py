"""equiv.symmetry: equivariance errors and assertions, orbit evaluation, soft-equivariance regularisers."""

from ._equivariance import EquivarianceReport, assert_equivariant, default_tolerance, equivariance_error
from ._orbit import METRICS, OrbitResult, orbit_evaluation
from ._projector import EquivariantProjector, equivariant_basis
from ._rep_mlp import GatedMLP, GatedNonlinearity, GatedProducts, make_equivariant_
from ._soft import SoftEquivariance

__all__ = [
    "EquivarianceReport", "assert_equivariant", "default_tolerance", "equivariance_error",
    "METRICS", "OrbitResult", "orbit_evaluation",
    "EquivariantProjector", "equivariant_basis",
    "GatedMLP", "GatedNonlinearity", "GatedProducts", "make_equivariant_",
    "SoftEquivariance",
]
