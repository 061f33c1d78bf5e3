"""equiv.symmetry: equivariance errors and assertions, orbit evaluation, soft-equivariance regularisers."""

# --- equivariance checks (owner: so3 engineer) ---
from ._equivariance import EquivarianceReport, assert_equivariant, default_tolerance, equivariance_error  # noqa: E402,F401

# --- soft equivariance (owner: symmetry-diagnostics engineer) ---
from ._projector import EquivariantProjector, equivariant_basis  # noqa: E402,F401
from ._rep_mlp import GatedMLP, GatedNonlinearity, GatedProducts, make_equivariant_  # noqa: E402,F401
from ._soft import SoftEquivariance  # noqa: E402,F401
from ._orbit import METRICS, OrbitResult, orbit_evaluation  # noqa: E402,F401
