"""equiv.nn — layers: Linear over irreps, Gate, norms, radial bases, frame averaging, ... (see DESIGN.md)."""

# --- equivariant linear layer (owner: tensor-product engineer) ---
from equiv.nn._linear import Linear

# --- activation scales (e3nn's normalize2mom) ---
from equiv.nn.activation import moment_scale

# --- frame averaging (owner: N-body engineer) ---
from equiv.nn.frame_averaging import FrameAveraging, from_frames, pca_frames, to_frames

# --- position-orientation (PONITA) blocks (owner: N-body engineer) ---
from equiv.nn._ponita import ConvNeXtBlock, PolynomialFeatures, SeparableFiberBundleConv, repulsion_grid

# --- radial bases and symmetric contraction (owner: MACE engineer) ---
from equiv.nn.radial import BesselBasis, PolynomialCutoff, RadialEmbedding, bessel_basis, polynomial_cutoff
from equiv.nn.symmetric_contraction import SymmetricContraction, symmetric_coupling_basis

__all__ = [
    # linear
    "Linear", "moment_scale",
    # frame averaging
    "FrameAveraging", "from_frames", "pca_frames", "to_frames",
    # PONITA blocks
    "ConvNeXtBlock", "PolynomialFeatures", "SeparableFiberBundleConv", "repulsion_grid",
    # radial bases, symmetric contraction
    "BesselBasis", "PolynomialCutoff", "RadialEmbedding", "bessel_basis", "polynomial_cutoff",
    "SymmetricContraction", "symmetric_coupling_basis",
]
