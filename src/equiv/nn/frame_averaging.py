r"""Frame averaging: make any network exactly E(3)- or SE(3)-equivariant by averaging over PCA frames.

Puny, Atzmon, Ben-Hamu, Misra, Grover, Smith and Lipman, *Frame Averaging for Invariant and
Equivariant Network Design*, ICLR 2022 (arXiv:2110.03336).

A *frame* :math:`\mathcal F(X)` of a point cloud :math:`X = (x_1, \dots, x_N)` is a small set of group
elements that transforms with the input, :math:`\mathcal F(gX) = g\,\mathcal F(X)`. Averaging any
function :math:`\phi` over it,

.. math::

    \langle\phi\rangle_{\mathcal F}(X) = \frac{1}{|\mathcal F(X)|}\sum_{g \in \mathcal F(X)}
    g \cdot \phi\bigl(g^{-1} \cdot X\bigr),

gives an exactly equivariant function (Puny et al., Theorem 1). For E(3) the frame is built from
the centroid :math:`t = \frac1N\sum_i x_i` and the eigenvectors :math:`u_1, u_2, u_3` of the
covariance :math:`C = \sum_i (x_i - t)(x_i - t)^\top` (ascending eigenvalues):

.. math::

    \mathcal F(X) = \{(R, t) : R = [\pm u_1, \pm u_2, \pm u_3]\},

all 8 sign choices for O(3) (rotations and reflections), or the 4 with :math:`\det R = +1` for
SO(3). Then :math:`g^{-1} \cdot x = R^\top (x - t)` for points, :math:`R^\top v` for vectors, and
invariant inputs are left alone.

The frame is well defined only when the three covariance eigenvalues are distinct; for (nearly)
degenerate spectra, equivariance holds only up to the conditioning of the eigenvectors. Frames are
computed without gradient by default (``detach_frames=True``), as in the reference implementation.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["FrameAveraging", "from_frames", "pca_frames", "to_frames"]

_SIGNS_O3 = torch.tensor(list(itertools.product([1.0, -1.0], repeat=3)))  # (8, 3)
_SIGNS_SO3 = _SIGNS_O3[_SIGNS_O3.prod(-1) > 0]  # (4, 3): even number of flips
_GROUPS = {"o(3)": "O(3)", "o3": "O(3)", "e(3)": "O(3)", "so(3)": "SO(3)", "so3": "SO(3)", "se(3)": "SO(3)"}
_TYPES = ("points", "vectors", None)


def _group(group: str) -> str:
    name = _GROUPS.get(str(group).lower().replace(" ", ""))
    if name is None:
        raise ValueError(f"group must be 'O(3)' or 'SO(3)' (or 'E(3)' / 'SE(3)'), got {group!r}")
    return name


def pca_frames(
    points: torch.Tensor, group: str = "O(3)", *, center: bool = True, detach: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""PCA frames of point clouds.

    Parameters
    ----------
    points : torch.Tensor
        ``(..., N, 3)``.
    group : {"O(3)", "SO(3)"}
        8 frames (all sign choices) or the 4 proper ones.
    center : bool
        Subtract the centroid (default). With ``False`` the covariance is :math:`\sum_i x_i x_i^\top`
        and the returned centre is zero (for inputs that are already translation invariant).
    detach : bool
        Compute the frames (the eigenvectors) without gradient (default). The centre is a mean of
        the points and keeps its gradient either way, as in the reference implementation of Puny
        et al., whose latent frames are built from features that depend on the weights.

    Returns
    -------
    frames : torch.Tensor
        ``(..., F, 3, 3)`` with ``F = 8`` or ``4``; the columns of ``frames[..., f, :, :]`` are the
        signed eigenvectors.
    centre : torch.Tensor
        ``(..., 1, 3)``.

    Examples
    --------
    >>> x = torch.randn(10, 3, dtype=torch.float64)
    >>> R, t = pca_frames(x, "SO(3)")
    >>> R.shape, t.shape, bool(torch.allclose(torch.linalg.det(R), torch.ones(4, dtype=x.dtype)))
    (torch.Size([4, 3, 3]), torch.Size([1, 3]), True)
    """
    if not isinstance(points, torch.Tensor) or points.dim() < 2 or points.shape[-1] != 3:
        shape = tuple(points.shape) if isinstance(points, torch.Tensor) else type(points).__name__
        raise ValueError(f"points must be a tensor of shape (..., N, 3), got {shape}")
    group = _group(group)
    with torch.set_grad_enabled(torch.is_grad_enabled() and not detach):
        p = points.detach() if detach else points
        c = p.mean(-2, keepdim=True) if center else torch.zeros_like(p[..., :1, :])
        d = p - c
        cov = d.transpose(-1, -2) @ d
        _, U = torch.linalg.eigh(cov)  # (..., 3, 3), columns = eigenvectors, ascending eigenvalues
        if group == "SO(3)":
            # make U proper by flipping its last column where det U = -1; then even sign flips keep it proper
            det = torch.linalg.det(U)
            U = torch.cat([U[..., :2], U[..., 2:] * torch.sign(det)[..., None, None]], -1)
            signs = _SIGNS_SO3
        else:
            signs = _SIGNS_O3
        signs = signs.to(dtype=U.dtype, device=U.device)
        frames = U[..., None, :, :] * signs[:, None, :]  # scale columns: (..., F, 3, 3)
    if center and detach:  # the same centre, differentiable
        c = points.mean(-2, keepdim=True)
    return frames, c


def to_frames(x: torch.Tensor, frames: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
    r"""Express ``x`` in every frame: :math:`R_f^\top (x - t)` for each frame :math:`R_f`.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., N, 3)`` points (with ``centre``) or vectors (``centre=None``).
    frames : torch.Tensor
        ``(..., F, 3, 3)`` from :func:`pca_frames`.
    centre : torch.Tensor, optional
        ``(..., 1, 3)``.

    Returns
    -------
    torch.Tensor
        ``(..., F, N, 3)``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(10, 3, dtype=torch.float64)
    >>> frames, t = pca_frames(x)
    >>> xf = to_frames(x, frames, t)  # centred, in each of the 8 PCA frames
    >>> xf.shape
    torch.Size([8, 10, 3])
    >>> C = xf.transpose(-1, -2) @ xf  # the covariance is diagonal in every frame
    >>> torch.allclose(C, torch.diag_embed(torch.diagonal(C, dim1=-2, dim2=-1)))
    True
    """
    if centre is not None:
        x = x - centre
    return x[..., None, :, :] @ frames  # row vector times R == (R^T x)^T


def from_frames(y: torch.Tensor, frames: torch.Tensor, centre: torch.Tensor | None = None) -> torch.Tensor:
    r"""Map per-frame outputs back and average: :math:`\frac1F\sum_f (R_f y_f + t)`.

    Parameters
    ----------
    y : torch.Tensor
        ``(..., F, N, 3)``.
    frames : torch.Tensor
        ``(..., F, 3, 3)``.
    centre : torch.Tensor, optional
        ``(..., 1, 3)``, added for points.

    Returns
    -------
    torch.Tensor
        ``(..., N, 3)``.

    Examples
    --------
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(10, 3, dtype=torch.float64)
    >>> frames, t = pca_frames(x)
    >>> torch.allclose(from_frames(to_frames(x, frames, t), frames, t), x)  # round trip
    True

    Averaging a map that is not equivariant over the frames makes it E(3)-equivariant:

    >>> phi = lambda y: y * torch.tensor([1.0, 2.0, 3.0], dtype=y.dtype)
    >>> def averaged(x):
    ...     frames, t = pca_frames(x)
    ...     return from_frames(phi(to_frames(x, frames, t)), frames, t)
    >>> Q = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64)).Q  # orthogonal
    >>> torch.allclose(averaged(x @ Q.T + 1.0), averaged(x) @ Q.T + 1.0)
    True
    """
    out = (y @ frames.transpose(-1, -2)).mean(-3)
    return out if centre is None else out + centre


class FrameAveraging(nn.Module):
    r"""Wrap a network so that it becomes exactly O(3)/SO(3)-, translation- (and, if the backbone is,
    permutation-) equivariant by averaging over PCA frames (Puny et al., ICLR 2022).

    .. math::

        \langle\phi\rangle(X, \dots) = \frac{1}{|\mathcal F|}\sum_{(R, t)\in\mathcal F(X)}
        \rho_\text{out}(R, t)\,\phi\bigl(R^\top(X - t), \dots\bigr)

    All :math:`|\mathcal F|` frames are evaluated in one call of the backbone, stacked into its batch
    axis.

    Parameters
    ----------
    module : nn.Module
        The backbone :math:`\phi`. It is called with the inputs in frame coordinates, each of shape
        ``(M, N, d)`` where ``M`` = batch size × number of frames, and must return a tensor (or a tuple)
        of shape ``(M, N, d_out)``.
    group : {"O(3)", "SO(3)"}
        8 frames (rotations and reflections) or 4 proper ones (rotations only).
    input_types : sequence of {"points", "vectors", None}
        One per positional input: points are centred and rotated into the frame, vectors rotated,
        ``None`` inputs (charges, masks, invariant features) repeated unchanged.
    output_types : sequence of {"points", "vectors", None}
        One per output of the backbone: points are rotated back and re-centred, vectors rotated back,
        ``None`` (invariant) outputs only averaged.
    frame_input : int
        Index of the ``"points"`` input that defines the frame (default: the first points input).
    detach_frames : bool
        Compute frames without gradient (default True).

    Shapes:
        - points/vectors inputs: ``(*batch, N, 3)``; other inputs ``(*batch, N, d)``
        - outputs: ``(*batch, N, d_out)``

    Examples
    --------
    >>> backbone = nn.Sequential(nn.Flatten(-2), nn.Linear(15, 15), nn.Unflatten(-1, (5, 3)))
    >>> fa = FrameAveraging(backbone, group="O(3)", input_types=["points"], output_types=["points"])
    >>> fa(torch.randn(2, 5, 3)).shape
    torch.Size([2, 5, 3])
    """

    def __init__(
        self,
        module: nn.Module,
        group: str = "O(3)",
        input_types: Sequence[str | None] = ("points",),
        output_types: Sequence[str | None] = ("points",),
        frame_input: int | None = None,
        detach_frames: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self.group = _group(group)
        for name, types in (("input_types", input_types), ("output_types", output_types)):
            bad = [t for t in types if t not in _TYPES]
            if bad or not len(types):
                raise ValueError(f"{name} must be a non-empty sequence of 'points', 'vectors' or None, got {types!r}")
        self.input_types, self.output_types = tuple(input_types), tuple(output_types)
        if frame_input is None:
            if "points" not in self.input_types:
                raise ValueError("input_types has no 'points' entry to build the frame from; pass frame_input")
            frame_input = self.input_types.index("points")
        if not (0 <= frame_input < len(self.input_types)) or self.input_types[frame_input] != "points":
            raise ValueError(f"frame_input must index a 'points' input, got {frame_input!r} for {self.input_types}")
        self.frame_input = frame_input
        self.detach_frames = detach_frames

    @property
    def num_frames(self) -> int:
        """8 for O(3), 4 for SO(3)."""
        return 8 if self.group == "O(3)" else 4

    def forward(self, *inputs: torch.Tensor):
        if len(inputs) != len(self.input_types):
            raise ValueError(f"FrameAveraging: expected {len(self.input_types)} inputs ({self.input_types}), "
                             f"got {len(inputs)}")
        points = inputs[self.frame_input]
        if not isinstance(points, torch.Tensor) or points.dim() < 2 or points.shape[-1] != 3:
            raise ValueError(f"FrameAveraging: input {self.frame_input} (points) must have shape (..., N, 3)")
        batch, n = points.shape[:-2], points.shape[-2]
        R, t = pca_frames(points, self.group, detach=self.detach_frames)
        F = R.shape[-3]
        framed = []
        for i, (x, kind) in enumerate(zip(inputs, self.input_types)):
            if not isinstance(x, torch.Tensor) or x.shape[:-1] != batch + (n,):
                raise ValueError(f"FrameAveraging: input {i} must have shape {tuple(batch) + (n,)} + (d,), got "
                                 f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
            if kind == "points":
                y = to_frames(x, R, t)
            elif kind == "vectors":
                y = to_frames(x, R)
            else:
                y = x[..., None, :, :].expand(*batch, F, n, x.shape[-1])
            framed.append(y.reshape(-1, n, y.shape[-1]))
        out = self.module(*framed)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if len(outs) != len(self.output_types):
            raise ValueError(f"FrameAveraging: the module returned {len(outs)} outputs, output_types has "
                             f"{len(self.output_types)}")
        results = []
        for j, (y, kind) in enumerate(zip(outs, self.output_types)):
            y = y.reshape(*batch, F, *y.shape[1:])
            if kind is None:
                results.append(y.mean(len(batch)))
                continue
            if y.shape[-1] != 3:
                raise ValueError(f"FrameAveraging: output {j} is declared {kind!r} but its last axis has size "
                                 f"{y.shape[-1]}, not 3")
            graph_level = y.dim() == len(batch) + 2  # (*batch, F, 3): one vector per system
            if graph_level:
                y = y[..., None, :]
            z = from_frames(y, R, t if kind == "points" else None)
            results.append(z[..., 0, :] if graph_level else z)
        return results[0] if len(results) == 1 else tuple(results)

    def extra_repr(self) -> str:
        return (f"group={self.group}, frames={self.num_frames}, input_types={self.input_types}, "
                f"output_types={self.output_types}")
