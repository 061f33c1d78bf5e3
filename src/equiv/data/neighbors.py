r"""Neighbour lists within a cut-off, for molecules and periodic cells.

An edge :math:`(i, j, \mathbf S)` is kept when

.. math::

    \lVert \mathbf r_j - \mathbf r_i + \mathbf S\,\mathbf C \rVert < r_c,
    \qquad \mathbf S \in \mathbb Z^3,

with :math:`\mathbf C` the cell (rows are lattice vectors) and :math:`\mathbf S` non-zero only along
periodic directions. The pair :math:`(i, i, \mathbf 0)` is excluded; :math:`(i, i, \mathbf S\neq 0)`
— an atom seeing its own periodic image — is kept. The list is *full* (both :math:`i\to j` and
:math:`j\to i`).

Convention (PyTorch Geometric / MACE): ``edge_index[0]`` is the *sender* :math:`i`, ``edge_index[1]``
the *receiver* :math:`j`, and the edge vector is

.. math::

    \mathbf r_{ij} = \mathbf r_{\text{receiver}} - \mathbf r_{\text{sender}} + \mathbf S\,\mathbf C .

Algorithm: positions are wrapped into the cell along periodic directions, every image within the
bounding box of the atoms (grown by :math:`r_c`) is generated, images are binned on a Cartesian grid
of spacing :math:`r_c`, and each atom is compared only with the 27 surrounding bins. All steps are
vectorised NumPy (or, with ``backend="torch"``, the same steps in torch on the positions' device);
the cost is :math:`O(N + E)` for cells larger than :math:`r_c` (plus the images a
small cell needs). The number of images along periodic direction :math:`k` is
:math:`\lceil r_c / d_k \rceil` each way, :math:`d_k = 1/\lVert \mathbf b_k \rVert` the spacing of the
lattice planes (:math:`\mathbf b_k` the dual vectors), so small and skewed cells are exact.

>>> import torch
>>> pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
>>> edge_index, unit_shifts = neighbor_list(pos, cutoff=1.5)
>>> edge_index.tolist()
[[0, 1], [1, 0]]
"""

from __future__ import annotations

import itertools

import numpy as np
import torch

__all__ = ["neighbor_list", "edge_vectors"]

_OFFSETS = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=np.int64)  # (27, 3)


def _to_numpy(x, name: str, shape_tail: tuple[int, ...]) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be array-like of numbers, got {type(x).__name__}") from exc
    if a.shape[a.ndim - len(shape_tail):] != shape_tail or a.ndim != len(shape_tail) + (1 if name == "positions" else 0):
        want = "(n_atoms, 3)" if name == "positions" else str(shape_tail)
        raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(b) for b in bad)})")
    return a


def _complete_cell(cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Replace the rows of non-periodic directions by unit vectors orthogonal to the periodic rows."""
    full = cell.copy()
    per = np.flatnonzero(pbc)
    if len(per) == 3:
        return full
    if len(per) == 0:
        return np.eye(3)
    q, _ = np.linalg.qr(np.concatenate([cell[per].T, np.eye(3)], axis=1))  # span of periodic rows first
    basis = q[:, len(per):3].T  # orthonormal complement
    for k, v in zip(np.flatnonzero(~pbc), basis):
        full[k] = v
    return full


def neighbor_list(
    positions,
    cutoff: float,
    cell=None,
    pbc=None,
    *,
    self_interaction: bool = False,
    min_distance: float | None = 0.1,
    backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Full neighbour list of the pairs closer than ``cutoff``.

    Parameters
    ----------
    positions : array-like or torch.Tensor, shape (n_atoms, 3)
        Cartesian positions in Å.
    cutoff : float
        Cut-off radius :math:`r_c > 0` in Å (strict inequality :math:`r < r_c`).
    cell : array-like, shape (3, 3), optional
        Lattice vectors as rows. Needed when any direction is periodic.
    pbc : bool or sequence of 3 bool, optional
        Periodic directions (default: none).
    self_interaction : bool
        Keep the pair :math:`(i, i, \mathbf 0)` (default ``False``).
    min_distance : float or None
        Raise ``ValueError`` if two atoms (or an atom and an image) are closer than this (default
        0.1 Å); ``None`` disables the check.
    backend : {"auto", "numpy", "torch"}
        ``"torch"`` runs the same algorithm with torch operations on the device of ``positions``
        (a GPU MD loop keeps its positions there; the result is identical, tested on CPU);
        ``"numpy"`` on the CPU; ``"auto"`` (default) picks torch for tensors on an accelerator.

    Returns
    -------
    edge_index : torch.Tensor, shape (2, n_edges), int64
        ``(sender, receiver)``, sorted by sender then receiver (on the device of ``positions`` with the
        torch backend, else on the CPU).
    unit_shifts : torch.Tensor, shape (n_edges, 3), int64
        Integer lattice shifts :math:`\mathbf S`; Cartesian shifts are ``unit_shifts @ cell``.

    Examples
    --------
    An atom in a 2 Å cubic cell with a 2.5 Å cut-off sees its own six nearest images:

    >>> ei, s = neighbor_list([[0.0, 0.0, 0.0]], 2.5, cell=2.0 * torch.eye(3), pbc=True)
    >>> ei.shape[1], sorted(map(tuple, s.tolist()))[0]
    (6, (-1, 0, 0))
    """
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not np.isfinite(cutoff) or cutoff <= 0:
        raise ValueError(f"cutoff must be a positive finite number in Å, got {cutoff!r}")
    cutoff = float(cutoff)
    pos = _to_numpy(positions, "positions", (3,))
    n = len(pos)
    if pbc is None:
        pbc = np.zeros(3, dtype=bool)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,)).copy() if np.ndim(pbc) == 0 else np.asarray(pbc, dtype=bool)
    if pbc.shape != (3,):
        raise ValueError(f"pbc must be a bool or 3 bools, got shape {pbc.shape}")
    if cell is None:
        if pbc.any():
            raise ValueError(f"cell is required when pbc={pbc.tolist()} has a periodic direction")
        cell_np = np.zeros((3, 3))
    else:
        cell_np = _to_numpy(cell, "cell", (3, 3))
    if n == 0:
        return torch.zeros(2, 0, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long)

    full = _complete_cell(cell_np, pbc)
    if pbc.any():
        vol = abs(np.linalg.det(full))
        if vol < 1e-9 * max(1.0, np.abs(full).max() ** 3):
            raise ValueError(f"cell is singular along the periodic directions pbc={pbc.tolist()}: {cell_np.tolist()}")
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    device = positions.device if isinstance(positions, torch.Tensor) else torch.device("cpu")
    if backend == "torch" or (backend == "auto" and device.type != "cpu"):
        return _neighbor_list_torch(torch.as_tensor(pos, dtype=torch.float64, device=device), cutoff, full, pbc,
                                    self_interaction, min_distance)
    inv = np.linalg.inv(full)
    # Wrap into the cell along periodic directions: wrapped = pos + wrap @ cell.
    frac = pos @ inv
    wrap = np.where(pbc, -np.floor(frac), 0.0)
    wrapped = pos + wrap @ full

    # Lattice translations that can bring an image within the cut-off.
    spacing = 1.0 / np.linalg.norm(inv, axis=0)  # distance between lattice planes, per direction
    reps = np.where(pbc, np.ceil(cutoff / spacing), 0).astype(np.int64)
    shifts = np.array(list(itertools.product(*(range(-r, r + 1) for r in reps))), dtype=np.int64)

    lo = wrapped.min(axis=0) - cutoff
    hi = wrapped.max(axis=0) + cutoff
    img = wrapped[None, :, :] + (shifts @ full)[:, None, :]  # (n_shifts, n, 3)
    inside = np.all((img >= lo) & (img <= hi), axis=-1)
    s_idx, a_idx = np.nonzero(inside)
    img_pos = img[s_idx, a_idx]

    # Bin images and atoms on a grid of spacing `cutoff`.
    nbins = np.maximum(np.floor((hi - lo) / cutoff).astype(np.int64) + 1, 1)
    if np.prod(nbins.astype(np.float64)) > 2.0**62:
        raise ValueError(f"positions span too large a box for cutoff={cutoff} (grid {nbins.tolist()})")

    def bin_of(x):
        return np.clip(np.floor((x - lo) / cutoff).astype(np.int64), 0, nbins - 1)

    def linear(b):
        return (b[..., 0] * nbins[1] + b[..., 1]) * nbins[2] + b[..., 2]

    img_lin = linear(bin_of(img_pos))
    order = np.argsort(img_lin, kind="stable")
    sorted_lin = img_lin[order]

    atom_bins = bin_of(wrapped)  # (n, 3)
    nb = atom_bins[:, None, :] + _OFFSETS[None, :, :]  # (n, 27, 3)
    ok = np.all((nb >= 0) & (nb < nbins), axis=-1)
    owner_q = np.broadcast_to(np.arange(n)[:, None], ok.shape)[ok]
    q_lin = linear(nb[ok])
    start = np.searchsorted(sorted_lin, q_lin, side="left")
    count = np.searchsorted(sorted_lin, q_lin, side="right") - start
    total = int(count.sum())
    owner = np.repeat(owner_q, count)
    within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    cand = order[np.repeat(start, count) + within]

    diff = img_pos[cand] - wrapped[owner]
    d2 = np.einsum("ij,ij->i", diff, diff)
    j = a_idx[cand]
    s = shifts[s_idx[cand]]
    keep = d2 < cutoff * cutoff
    if not self_interaction:
        keep &= ~((j == owner) & np.all(s == 0, axis=1))
    i, j, s, d2 = owner[keep], j[keep], s[keep], d2[keep]
    unit = s + (wrap[j] - wrap[i]).astype(np.int64)

    if min_distance is not None and len(d2):
        too_close = d2 < float(min_distance) ** 2
        if self_interaction:
            too_close &= ~((i == j) & np.all(unit == 0, axis=1))
        if too_close.any():
            k = int(np.flatnonzero(too_close)[0])
            raise ValueError(
                f"positions: atoms {int(i[k])} and {int(j[k])} (shift {unit[k].tolist()}) are "
                f"{np.sqrt(d2[k]):.4f} Å apart, closer than min_distance={min_distance} Å"
            )

    perm = np.lexsort((unit[:, 2], unit[:, 1], unit[:, 0], j, i))
    edge_index = torch.from_numpy(np.stack([i[perm], j[perm]]).astype(np.int64))
    return edge_index, torch.from_numpy(np.ascontiguousarray(unit[perm]).astype(np.int64))


def edge_vectors(
    positions: torch.Tensor, edge_index: torch.Tensor, shifts: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Edge vectors :math:`\mathbf r_{\text{receiver}} - \mathbf r_{\text{sender}} + \text{shift}`.

    Parameters
    ----------
    positions : torch.Tensor, shape (n_atoms, 3)
    edge_index : torch.Tensor, shape (2, n_edges)
        ``(sender, receiver)``.
    shifts : torch.Tensor, shape (n_edges, 3), optional
        Cartesian shifts ``unit_shifts @ cell`` (zeros for molecules).

    Returns
    -------
    torch.Tensor, shape (n_edges, 3)

    Examples
    --------
    >>> pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    >>> edge_vectors(pos, torch.tensor([[0, 1], [1, 0]]))
    tensor([[ 1.,  0.,  0.],
            [-1.,  0.,  0.]])
    """
    vec = positions[edge_index[1]] - positions[edge_index[0]]
    if shifts is not None:
        vec = vec + shifts
    return vec


def _neighbor_list_torch(pos: torch.Tensor, cutoff: float, full: np.ndarray, pbc: np.ndarray,
                         self_interaction: bool, min_distance) -> tuple[torch.Tensor, torch.Tensor]:
    """`neighbor_list` with torch operations on ``pos.device`` (float64): the same steps as the NumPy
    version (wrap, images within the grown bounding box, bins of size ``cutoff``, the 27 neighbouring
    bins), the same output and order."""
    dev = pos.device
    n = pos.shape[0]
    fullt = torch.as_tensor(full, dtype=torch.float64, device=dev)
    inv = torch.linalg.inv(fullt)
    pbct = torch.as_tensor(pbc, device=dev)
    frac = pos @ inv
    wrap = torch.where(pbct, -torch.floor(frac), torch.zeros_like(frac))
    wrapped = pos + wrap @ fullt

    spacing = 1.0 / np.linalg.norm(np.linalg.inv(full), axis=0)
    reps = np.where(pbc, np.ceil(cutoff / spacing), 0).astype(np.int64)
    shifts = torch.as_tensor(np.array(list(itertools.product(*(range(-r, r + 1) for r in reps))), dtype=np.int64),
                             device=dev)

    lo = wrapped.min(dim=0).values - cutoff
    hi = wrapped.max(dim=0).values + cutoff
    img = wrapped[None, :, :] + (shifts.to(torch.float64) @ fullt)[:, None, :]
    inside = ((img >= lo) & (img <= hi)).all(dim=-1)
    s_idx, a_idx = torch.nonzero(inside, as_tuple=True)
    img_pos = img[s_idx, a_idx]

    nbins = torch.clamp(torch.floor((hi - lo) / cutoff).to(torch.int64) + 1, min=1)
    if float(torch.prod(nbins.to(torch.float64))) > 2.0**62:
        raise ValueError(f"positions span too large a box for cutoff={cutoff} (grid {nbins.tolist()})")

    def bin_of(x):
        return torch.minimum(torch.clamp(torch.floor((x - lo) / cutoff).to(torch.int64), min=0), nbins - 1)

    def linear(b):
        return (b[..., 0] * nbins[1] + b[..., 1]) * nbins[2] + b[..., 2]

    img_lin = linear(bin_of(img_pos))
    sorted_lin, order = torch.sort(img_lin, stable=True)
    offsets = torch.as_tensor(_OFFSETS, device=dev)
    nb = bin_of(wrapped)[:, None, :] + offsets[None, :, :]  # (n, 27, 3)
    ok = ((nb >= 0) & (nb < nbins)).all(dim=-1)
    owner_q = torch.arange(n, device=dev)[:, None].expand(ok.shape)[ok]
    q_lin = linear(nb[ok])
    start = torch.searchsorted(sorted_lin, q_lin, right=False)
    count = torch.searchsorted(sorted_lin, q_lin, right=True) - start
    total = int(count.sum())
    owner = torch.repeat_interleave(owner_q, count)
    within = torch.arange(total, device=dev) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    cand = order[torch.repeat_interleave(start, count) + within]

    diff = img_pos[cand] - wrapped[owner]
    d2 = (diff * diff).sum(-1)
    j = a_idx[cand]
    s = shifts[s_idx[cand]]
    keep = d2 < cutoff * cutoff
    if not self_interaction:
        keep &= ~((j == owner) & (s == 0).all(dim=1))
    i, j, s, d2 = owner[keep], j[keep], s[keep], d2[keep]
    unit = s + (wrap[j] - wrap[i]).to(torch.int64)

    if min_distance is not None and d2.numel():
        too_close = d2 < float(min_distance) ** 2
        if self_interaction:
            too_close &= ~((i == j) & (unit == 0).all(dim=1))
        if bool(too_close.any()):
            k = int(torch.nonzero(too_close)[0, 0])
            raise ValueError(
                f"positions: atoms {int(i[k])} and {int(j[k])} (shift {unit[k].tolist()}) are "
                f"{float(d2[k].sqrt()):.4f} Å apart, closer than min_distance={min_distance} Å"
            )

    perm = torch.arange(i.shape[0], device=dev)  # lexicographic by (i, j, S): stable sorts, last key first
    for key in (unit[:, 2], unit[:, 1], unit[:, 0], j, i):
        perm = perm[torch.sort(key[perm], stable=True).indices]
    return torch.stack([i[perm], j[perm]]), unit[perm].contiguous()
