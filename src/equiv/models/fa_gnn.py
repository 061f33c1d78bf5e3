r"""Frame-averaged graph neural network (FA-GNN) for the N-body task.

Puny, Atzmon, Ben-Hamu, Misra, Grover, Smith and Lipman, *Frame Averaging for Invariant and
Equivariant Network Design*, ICLR 2022 (arXiv:2110.03336), Section 5.3 ("n-body").

A plain (non-equivariant) message-passing network runs on the coordinates expressed in each of the
PCA frames of :class:`equiv.nn.FrameAveraging`; averaging the frame-wise outputs mapped back makes the
model exactly E(3)-equivariant.
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.nn.frame_averaging import FrameAveraging, from_frames, pca_frames, to_frames

from ._nbody_common import check_nbody_inputs, off_diagonal_mask

__all__ = ["FrameAveragedGNN", "GNNLayer", "PlainGNN"]


class GNNLayer(nn.Module):
    r"""A plain message-passing layer on a dense, fully connected graph (the GCL of Gilmer et al. 2017
    as used by the EGNN and FA papers' GNN baseline).

    .. math::

        m_{ij} = \phi_e(h_i, h_j, a_{ij}),\qquad h_i \leftarrow h_i + \phi_h\Bigl(h_i, \sum_{j\neq i} m_{ij}\Bigr)

    with two-layer MLPs :math:`\phi_e` (Linear–act–Linear–act) and :math:`\phi_h` (Linear–act–Linear).
    Not equivariant by itself: :math:`h` may hold coordinates.

    Parameters
    ----------
    hidden : int
        Width of :math:`h` and :math:`m`.
    edge_dim : int
        Width of the edge attributes :math:`a_{ij}`.
    activation : type of nn.Module
        Default :class:`torch.nn.SiLU`.

    Shapes:
        - h: ``(B, N, hidden)``; a: ``(B, N, N, edge_dim)``; mask: ``(N, N, 1)``
        - output: ``(B, N, hidden)``

    Examples
    --------
    >>> layer = GNNLayer(hidden=8, edge_dim=2).double()
    >>> N = 5
    >>> h = torch.randn(3, N, 8, dtype=torch.float64)
    >>> a = torch.randn(3, N, N, 2, dtype=torch.float64)
    >>> mask = (1 - torch.eye(N, dtype=torch.float64))[:, :, None]  # no self-messages
    >>> out = layer(h, a, mask)
    >>> out.shape
    torch.Size([3, 5, 8])

    Relabelling the nodes permutes the output in the same way:

    >>> p = torch.randperm(N)
    >>> bool(torch.allclose(layer(h[:, p], a[:, p][:, :, p], mask), out[:, p]))
    True
    """

    def __init__(self, hidden: int, edge_dim: int, activation: type[nn.Module] = nn.SiLU) -> None:
        super().__init__()
        self.hidden, self.edge_dim = hidden, edge_dim
        self.edge_mlp = nn.Sequential(nn.Linear(2 * hidden + edge_dim, hidden), activation(),
                                      nn.Linear(hidden, hidden), activation())
        self.node_mlp = nn.Sequential(nn.Linear(2 * hidden, hidden), activation(), nn.Linear(hidden, hidden))

    def reset_parameters(self) -> None:
        """PyTorch's default Linear initialisation."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, h: torch.Tensor, a: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        H = self.hidden
        lin = self.edge_mlp[0]
        W = lin.weight
        pre = (h @ W[:, :H].T)[:, :, None] + (h @ W[:, H:2 * H].T)[:, None, :] + a @ W[:, 2 * H:].T + lin.bias
        m = self.edge_mlp[1:](pre) * mask
        return h + self.node_mlp(torch.cat([h, m.sum(2)], -1))

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, edge_dim={self.edge_dim}"


def _edge_attributes(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``(B, N, N, 2)``: charge products and squared distances (both invariant)."""
    diff = x[:, :, None] - x[:, None, :]
    return torch.cat([q[:, :, None] * q[:, None, :], (diff * diff).sum(-1, keepdim=True)], -1)


class PlainGNN(nn.Module):
    r"""A non-equivariant GNN on raw coordinates: :math:`h_i^0 = W[x_i, v_i] + b`, ``num_layers``
    :class:`GNNLayer`, and a decoder :math:`\hat x_i = \mathrm{MLP}(h_i)`.

    The backbone of :class:`FrameAveragedGNN` (``layerwise=False``); used alone it is not equivariant.

    Shapes:
        - positions, velocities: ``(B, N, 3)``; charges ``(B, N, 1)``
        - output: ``(B, N, 3)``

    Examples
    --------
    >>> from equiv.so3 import random_rotation
    >>> _ = torch.manual_seed(0)
    >>> model = PlainGNN(hidden=8, num_layers=2).double()
    >>> x, v = torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64)
    >>> q = torch.ones(2, 5, 1, dtype=torch.float64)
    >>> out = model(x, v, q)
    >>> out.shape
    torch.Size([2, 5, 3])

    Unlike :class:`FrameAveragedGNN`, it does not follow a rotation of its inputs:

    >>> R = random_rotation(1, dtype=torch.float64)[0]
    >>> bool(torch.allclose(model(x @ R.T, v @ R.T, q), out @ R.T))
    False
    """

    def __init__(self, hidden: int = 60, num_layers: int = 4, activation: type[nn.Module] = nn.SiLU) -> None:
        super().__init__()
        self.hidden, self.num_layers = hidden, num_layers
        self.embedding = nn.Linear(6, hidden)
        self.layers = nn.ModuleList(GNNLayer(hidden, 2, activation) for _ in range(num_layers))
        self.decoder = nn.Sequential(nn.Linear(hidden, hidden), activation(), nn.Linear(hidden, 3))

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        x, v, q, unbatched = check_nbody_inputs(positions, velocities, charges, "PlainGNN")
        mask = off_diagonal_mask(x.shape[1], dtype=x.dtype, device=x.device)
        a = _edge_attributes(x, q)
        h = self.embedding(torch.cat([x, v], -1))
        for layer in self.layers:
            h = layer(h, a, mask)
        out = self.decoder(h)
        return out[0] if unbatched else out

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, num_layers={self.num_layers}"


class FrameAveragedGNN(nn.Module):
    r"""FA-GNN: a plain GNN made E(3)-equivariant by frame averaging (Puny et al., ICLR 2022).

    With PCA frames :math:`\mathcal F(X) = \{(R_f, t)\}` of the positions (8 for O(3), 4 for SO(3);
    :func:`equiv.nn.frame_averaging.pca_frames`):

    - ``layerwise=False``: :math:`\hat X = \frac1{|\mathcal F|}\sum_f R_f\,\mathrm{GNN}(R_f^\top(X-t),
      R_f^\top V, q) + t` — :class:`equiv.nn.FrameAveraging` around :class:`PlainGNN`.
    - ``layerwise=True`` (the paper's N-body model, default): the hidden features are read as
      ``hidden / 3`` vectors per particle; after every layer but the last they are mapped back from
      the frames and averaged, :math:`H \leftarrow \frac1{|\mathcal F|}\sum_f H_f R_f^\top` (an
      equivariant latent point cloud), and a new PCA frame of that cloud (centred) is used for the next
      layer. The decoder output is averaged over the last frames and re-centred on :math:`t`.

    Edge attributes :math:`(q_iq_j, \lVert x_i-x_j\rVert^2)` are invariant. Equivariant to rotations,
    reflections (O(3) frames), translations and permutations; exactly so whenever the covariance
    spectra are non-degenerate.

    Parameters
    ----------
    hidden : int
        Hidden width (default 60, the paper's; must be divisible by 3 when ``layerwise``).
    num_layers : int
        Number of message-passing layers (default 4).
    group : {"O(3)", "SO(3)"}
        Frames: 8 (with reflections) or 4 (rotations only).
    layerwise : bool
        Latent frames after every layer (default True) or a single input frame.

    Shapes:
        - positions, velocities: ``(B, N, 3)`` or ``(N, 3)``
        - charges: ``(B, N, 1)``, ``(B, N)``, ``(N, 1)`` or ``(N,)``
        - output: predicted positions, shape of ``positions``

    Examples
    --------
    >>> model = FrameAveragedGNN(hidden=12, num_layers=2)
    >>> x, v = torch.randn(4, 5, 3), torch.randn(4, 5, 3)
    >>> model(x, v, torch.ones(4, 5, 1)).shape
    torch.Size([4, 5, 3])
    """

    def __init__(self, hidden: int = 60, num_layers: int = 4, group: str = "O(3)", layerwise: bool = True,
                 activation: type[nn.Module] = nn.SiLU) -> None:
        super().__init__()
        for name, val in (("hidden", hidden), ("num_layers", num_layers)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"FrameAveragedGNN: {name} must be a positive integer, got {val!r}")
        if layerwise and hidden % 3:
            raise ValueError(f"FrameAveragedGNN: hidden must be divisible by 3 with layerwise=True, got {hidden}")
        self.hidden, self.num_layers, self.layerwise = hidden, num_layers, bool(layerwise)
        self.fa = FrameAveraging(PlainGNN(hidden, num_layers, activation), group=group,
                                 input_types=("points", "vectors", None), output_types=("points",))
        self.group = self.fa.group

    @property
    def gnn(self) -> PlainGNN:
        """The plain GNN backbone."""
        return self.fa.module

    def reset_parameters(self) -> None:
        """Re-initialise the backbone."""
        self.gnn.reset_parameters()

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        x, v, q, unbatched = check_nbody_inputs(positions, velocities, charges, "FrameAveragedGNN")
        out = self.fa(x, v, q) if not self.layerwise else self._layerwise(x, v, q)
        return out[0] if unbatched else out

    def _layerwise(self, x, v, q):
        B, N = x.shape[:2]
        gnn = self.gnn
        R, t = pca_frames(x, self.group)  # (B, F, 3, 3), (B, 1, 3)
        F = R.shape[1]
        mask = off_diagonal_mask(N, dtype=x.dtype, device=x.device)
        a = _edge_attributes(x, q)[:, None].expand(B, F, N, N, 2).reshape(B * F, N, N, 2)
        h = torch.cat([to_frames(x, R, t), to_frames(v, R)], -1).reshape(B * F, N, 6)
        h = gnn.embedding(h)
        C = self.hidden // 3
        for k, layer in enumerate(gnn.layers):
            h = layer(h, a, mask)
            if k < len(gnn.layers) - 1:
                latent = from_frames(h.reshape(B, F, N * C, 3), R)  # (B, N*C, 3), equivariant vectors
                R, c = pca_frames(latent, self.group)
                h = to_frames(latent, R, c).reshape(B * F, N, self.hidden)
        y = gnn.decoder(h).reshape(B, F, N, 3)
        return from_frames(y, R, t)

    def extra_repr(self) -> str:
        return f"hidden={self.hidden}, num_layers={self.num_layers}, group={self.group}, layerwise={self.layerwise}"
