"""equiv.tp: tensor products behind one interface.

- `TensorProduct`: e3nn's instruction-based product (all modes, same weights and normalisation),
  with `FullyConnectedTensorProduct`, `ChannelwiseTensorProduct`, `ElementwiseTensorProduct`,
  `FullTensorProduct`. Channelwise paths run on a block-sparse, chunked engine.
- `message_passing` / `MessagePassingTensorProduct`: fused gather -> channelwise product -> scatter-sum with
  recomputing backward (double backward supported), for NequIP/MACE-style convolutions.
- `GauntTensorProduct`: products of spherical functions (Gaunt coefficients) by sphere grid or 2D
  Fourier transforms.
- `EdgeFrameTensorProduct`: a channelwise product with edge harmonics ``tp(x, Y(r))`` computed in
  each edge's frame (the SO(2) route of eSCN), exact, :math:`O(L^3)` instead of :math:`O(L^6)`.
- `expressivity`: dimension of the reachable space of equivariant bilinear maps.

See docs/tp.md for the algorithms and measured speed against e3nn.

>>> import torch
>>> from equiv.tp import FullyConnectedTensorProduct
>>> tp = FullyConnectedTensorProduct("4x0e + 4x1o", "0e + 1o", "4x0e + 4x1o")
>>> tp(torch.randn(3, 16), torch.randn(3, 4)).shape
torch.Size([3, 16])
"""

from ._edge_frame import EdgeFrameTensorProduct, edge_frames, edge_rotation
from ._expressivity import bilinear_hom_dimension, expressivity
from ._gaunt import GauntTensorProduct, gaunt_path_coefficient
from ._instruction import Instruction
from ._message_passing import MessagePassingTensorProduct, message_passing
from ._sub import (
    ChannelwiseTensorProduct,
    ElementwiseTensorProduct,
    FullTensorProduct,
    FullyConnectedTensorProduct,
    TensorSquare,
    channelwise_irreps_out,
)
from ._tensor_product import TensorProduct

__all__ = [
    "Instruction",
    "TensorProduct",
    "FullyConnectedTensorProduct",
    "ChannelwiseTensorProduct",
    "ElementwiseTensorProduct",
    "FullTensorProduct",
    "TensorSquare",
    "channelwise_irreps_out",
    "message_passing",
    "MessagePassingTensorProduct",
    "GauntTensorProduct",
    "EdgeFrameTensorProduct",
    "edge_frames",
    "edge_rotation",
    "gaunt_path_coefficient",
    "expressivity",
    "bilinear_hom_dimension",
]
