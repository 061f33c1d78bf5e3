"""equiv.symmetry: equivariance errors and assertions, orbit evaluation, soft-equivariance regularisers."""

# --- equivariance checks (owner: so3 engineer) ---
from ._equivariance import EquivarianceReport, assert_equivariant, default_tolerance, equivariance_error  # noqa: E402,F401
