"""equiv.nn — layers: Linear over irreps, activations and gates, batch norm, dropout, block extraction,
radial bases, frame averaging, PONITA blocks, symmetric contraction (see DESIGN.md)."""

# --- equivariant linear layer (owner: tensor-product engineer) ---
from equiv.nn._linear import Linear

# --- nonlinearities, normalisation, dropout (e3nn's semantics) ---
from equiv.nn.activation import Activation, moment_scale
from equiv.nn.batchnorm import BatchNorm
from equiv.nn.layernorm import LayerNorm
from equiv.nn.dropout import Dropout
from equiv.nn.extract import Extract, ExtractIr, Identity
from equiv.nn.gate import Gate, Norm, NormActivation
from equiv.nn.mlp import FullyConnectedNet
from equiv.nn.s2_activation import S2Activation, s2_irreps
from equiv.nn.so3_activation import SO3Activation

# --- frame averaging (owner: N-body engineer) ---
from equiv.nn.frame_averaging import FrameAveraging, from_frames, pca_frames, to_frames

# --- position-orientation (PONITA) blocks (owner: N-body engineer) ---
from equiv.nn._ponita import ConvNeXtBlock, PolynomialFeatures, SeparableFiberBundleConv, repulsion_grid

# --- radial bases and symmetric contraction (owner: MACE engineer) ---
from equiv.nn.radial import BesselBasis, PolynomialCutoff, RadialEmbedding, bessel_basis, polynomial_cutoff
from equiv.nn.soft_basis import soft_one_hot_linspace, soft_unit_step
from equiv.nn.symmetric_contraction import SymmetricContraction, symmetric_coupling_basis

__all__ = [
    # linear
    "Linear", "moment_scale",
    # nonlinearities, normalisation, dropout
    "Activation", "Gate", "Norm", "NormActivation", "BatchNorm", "LayerNorm", "Dropout", "FullyConnectedNet",
    "Extract", "ExtractIr", "Identity",
    "S2Activation", "s2_irreps", "SO3Activation",
    # frame averaging
    "FrameAveraging", "from_frames", "pca_frames", "to_frames",
    # PONITA blocks
    "ConvNeXtBlock", "PolynomialFeatures", "SeparableFiberBundleConv", "repulsion_grid",
    # radial bases, symmetric contraction
    "BesselBasis", "PolynomialCutoff", "RadialEmbedding", "bessel_basis", "polynomial_cutoff",
    "soft_one_hot_linspace", "soft_unit_step",
    "SymmetricContraction", "symmetric_coupling_basis",
]
