r"""Graph batching: many :class:`~equiv.data.atoms.AtomicData` as one disjoint graph.

:func:`collate` concatenates atoms and edges (edge indices offset by the number of atoms before each
structure) and records which structure each atom belongs to (``batch``) and where each structure
starts (``ptr``). The result, a :class:`Batch`, is what models receive (see the model protocol in
:mod:`equiv.train.forces`).

:class:`GraphSampler` draws the batches of an epoch: a permutation that depends only on
``(seed, epoch)``, cut into global batches of ``batch_size``; under ``torchrun`` each process takes a
strided share of every global batch, so ``N`` processes see exactly the structures one process
would. :func:`make_loader` wraps both in a :class:`torch.utils.data.DataLoader`.

>>> from equiv.data.atoms import AtomicData
>>> a = AtomicData(positions=[[0, 0, 0], [0, 0, 1.0]], atomic_numbers=[1, 1]).with_graph(2.0)
>>> b = collate([a, a])
>>> b.num_graphs, b.edge_index.tolist()
(2, [[0, 1, 2, 3], [1, 0, 3, 2]])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from equiv.data.atoms import AtomicData

__all__ = ["Batch", "collate", "GraphSampler", "make_loader", "AtomsDataset"]


@dataclass(eq=False)
class Batch:
    r"""A batch of structures as one disjoint graph.

    Attributes (``N`` atoms, ``E`` edges, ``G`` structures)
    -------------------------------------------------------
    positions : (N, 3) float — Å
    atomic_numbers : (N,) int64
    batch : (N,) int64 — structure of each atom
    ptr : (G + 1,) int64 — atoms of structure ``g`` are ``ptr[g]:ptr[g+1]``
    edge_index : (2, E) int64 — ``(sender, receiver)``
    unit_shifts : (E, 3) int64 — integer lattice shifts
    shifts : (E, 3) float — Cartesian shifts ``unit_shifts @ cell[g]``; edge vectors are
        ``positions[edge_index[1]] - positions[edge_index[0]] + shifts``
    cell : (G, 3, 3) float, pbc : (G, 3) bool
    energy : (G,) float or None — eV; forces : (N, 3) or None — eV/Å; stress : (G, 3, 3) or None — eV/Å³

    Examples
    --------
    >>> from equiv.data.atoms import AtomicData
    >>> h2 = AtomicData(positions=[[0, 0, 0], [0, 0, 0.74]], atomic_numbers=[1, 1]).with_graph(2.0)
    >>> h = AtomicData(positions=[[0, 0, 0.0]], atomic_numbers=[1]).with_graph(2.0)
    >>> b = collate([h2, h])
    >>> b.num_graphs, b.n_atoms.tolist(), b.ptr.tolist(), b.batch.tolist()
    (2, [2, 1], [0, 2, 3], [0, 0, 1])
    >>> tuple(b.positions.shape), tuple(b.cell.shape), b.energy is None
    ((3, 3), (2, 3, 3), True)
    """

    positions: torch.Tensor
    atomic_numbers: torch.Tensor
    batch: torch.Tensor
    ptr: torch.Tensor
    edge_index: torch.Tensor
    unit_shifts: torch.Tensor
    shifts: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None

    @property
    def num_graphs(self) -> int:
        """Number of structures ``G``."""
        return int(self.ptr.shape[0] - 1)

    @property
    def n_atoms(self) -> torch.Tensor:
        """Atoms per structure, shape (G,)."""
        return self.ptr[1:] - self.ptr[:-1]

    def to(self, device=None, dtype: torch.dtype | None = None) -> Batch:
        """Move tensors to ``device`` and cast floating-point tensors to ``dtype``.

        >>> from equiv.data.atoms import AtomicData
        >>> d = AtomicData(positions=[[0, 0, 0.0]], atomic_numbers=[1]).with_graph(1.0)
        >>> collate([d]).to(dtype=torch.float32).positions.dtype
        torch.float32
        """
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, torch.Tensor):
                v = v.to(device=device, dtype=dtype if (dtype is not None and v.is_floating_point()) else None)
            out[f.name] = v
        return Batch(**out)

    def replace(self, **changes) -> Batch:
        """Shallow copy with some fields replaced (used to insert strained positions)."""
        return dataclasses.replace(self, **changes)


def _stack_optional(items, name):
    present = [x is not None for x in items]
    if not any(present):
        return None
    if not all(present):
        missing = present.index(False)
        raise ValueError(f"{name} is given for some structures but missing for structure {missing} of the batch")
    return items


def collate(data: Sequence[AtomicData]) -> Batch:
    """Join structures with graphs into one :class:`Batch`.

    Parameters
    ----------
    data : sequence of AtomicData
        Each must have a graph (:meth:`AtomicData.with_graph`). A label (energy, forces, stress) must
        be present for all structures or for none.

    Returns
    -------
    Batch

    Examples
    --------
    >>> from equiv.data.atoms import AtomicData
    >>> a = AtomicData(positions=[[0, 0, 0], [0, 0, 0.96]], atomic_numbers=[8, 1], energy=-1.0)
    >>> b = AtomicData(positions=[[0, 0, 0], [0, 0, 0.74]], atomic_numbers=[1, 1], energy=-2.0)
    >>> batch = collate([a.with_graph(2.0), b.with_graph(2.0)])
    >>> batch.atomic_numbers.tolist(), batch.energy.tolist()
    ([8, 1, 1, 1], [-1.0, -2.0])
    >>> batch.edge_index.tolist()  # edges of the second structure are offset by its first atom, 2
    [[0, 1, 2, 3], [1, 0, 3, 2]]
    """
    if len(data) == 0:
        raise ValueError("data: cannot collate an empty list of structures")
    for k, d in enumerate(data):
        if not isinstance(d, AtomicData):
            raise TypeError(f"data[{k}] must be AtomicData, got {type(d).__name__}")
        if d.edge_index is None:
            raise ValueError(f"data[{k}] has no neighbour graph; call .with_graph(cutoff) first")
    n = torch.tensor([d.n_atoms for d in data], dtype=torch.long)
    ptr = torch.zeros(len(data) + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(n, 0)
    n_edges = torch.tensor([d.n_edges for d in data], dtype=torch.long)
    cell = torch.stack([d.cell for d in data])
    unit_shifts = torch.cat([d.unit_shifts for d in data])
    edge_graph = torch.repeat_interleave(torch.arange(len(data)), n_edges)
    shifts = torch.einsum("ek,ekc->ec", unit_shifts.to(cell.dtype), cell[edge_graph])
    edge_index = torch.cat([d.edge_index + ptr[k] for k, d in enumerate(data)], dim=1)
    energies = _stack_optional([d.energy for d in data], "energy")
    forces = _stack_optional([d.forces for d in data], "forces")
    stress = _stack_optional([d.stress for d in data], "stress")
    return Batch(
        positions=torch.cat([d.positions for d in data]),
        atomic_numbers=torch.cat([d.atomic_numbers for d in data]),
        batch=torch.repeat_interleave(torch.arange(len(data)), n),
        ptr=ptr,
        edge_index=edge_index,
        unit_shifts=unit_shifts,
        shifts=shifts,
        cell=cell,
        pbc=torch.stack([d.pbc for d in data]),
        energy=None if energies is None else torch.stack(energies),
        forces=None if forces is None else torch.cat(forces),
        stress=None if stress is None else torch.stack(stress),
    )


class AtomsDataset(torch.utils.data.Dataset):
    """A list of structures with their neighbour graphs built once, at ``cutoff``.

    Parameters
    ----------
    data : sequence of AtomicData
    cutoff : float
        Cut-off radius in Å.
    min_distance : float or None
        Atoms closer than this raise ``ValueError`` (default 0.1 Å).

    >>> from equiv.data.atoms import AtomicData
    >>> ds = AtomsDataset([AtomicData(positions=[[0, 0, 0], [1.0, 0, 0]], atomic_numbers=[1, 1])], 2.0)
    >>> len(ds), ds[0].n_edges
    (1, 2)
    """

    def __init__(self, data: Sequence[AtomicData], cutoff: float, min_distance: float | None = 0.1):
        self.cutoff = float(cutoff)
        self.data = [d if d.cutoff == self.cutoff else d.with_graph(self.cutoff, min_distance) for d in data]

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> AtomicData:
        return self.data[i]


class GraphSampler(torch.utils.data.Sampler):
    """Batches of indices for one epoch, reproducible from ``(seed, epoch)`` and shardable by rank.

    Parameters
    ----------
    n : int
        Dataset size.
    batch_size : int
        *Global* batch size (summed over processes).
    shuffle : bool
        Permute each epoch with ``numpy.random.default_rng([seed, epoch])``.
    seed : int
    rank, world_size : int
        This process takes items ``rank::world_size`` of every global batch.
    drop_last : bool
        Drop the final incomplete global batch.
    even_shards : bool
        Training (default ``True``): every process must take part in each step, so a final global
        batch with fewer than ``world_size`` items is dropped. Evaluation (``False``): nothing is
        dropped; a process whose share of a batch is empty skips it.

    >>> s = GraphSampler(5, 2, shuffle=False)
    >>> list(s)
    [[0, 1], [2, 3], [4]]
    >>> list(GraphSampler(5, 2, shuffle=False, rank=1, world_size=2))
    [[1], [3]]
    """

    def __init__(self, n: int, batch_size: int, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False, even_shards: bool = True):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..world_size-1, got rank={rank}, world_size={world_size}")
        self.n, self.batch_size, self.shuffle, self.seed = int(n), int(batch_size), bool(shuffle), int(seed)
        self.rank, self.world_size, self.drop_last = int(rank), int(world_size), bool(drop_last)
        self.even_shards = bool(even_shards)
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Select the epoch (and skip its first ``skip_batches`` batches, for resuming mid-epoch)."""
        self.epoch, self.skip = int(epoch), int(skip_batches)

    def global_batches(self) -> list[np.ndarray]:
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle
                 else np.arange(self.n))
        out = [order[k:k + self.batch_size] for k in range(0, self.n, self.batch_size)]
        if out and (self.drop_last and len(out[-1]) < self.batch_size
                    or self.even_shards and len(out[-1]) < self.world_size):
            out = out[:-1]
        return out

    def _shards(self) -> list[list[int]]:
        shards = [b[self.rank::self.world_size].tolist() for b in self.global_batches()[self.skip:]]
        return shards if self.even_shards else [s for s in shards if s]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._shards()

    def __len__(self) -> int:
        return len(self._shards())


def make_loader(dataset, batch_size: int, shuffle: bool = False, seed: int = 0, rank: int = 0,
                world_size: int = 1, drop_last: bool = False, num_workers: int = 0, even_shards: bool = True):
    """A :class:`torch.utils.data.DataLoader` yielding :class:`Batch` objects via :class:`GraphSampler`.

    >>> from equiv.data.atoms import AtomicData
    >>> ds = AtomsDataset([AtomicData(positions=[[0, 0, 0], [1.0, 0, 0]], atomic_numbers=[1, 1])] * 3, 2.0)
    >>> [b.num_graphs for b in make_loader(ds, batch_size=2)]
    [2, 1]
    """
    sampler = GraphSampler(len(dataset), batch_size, shuffle, seed, rank, world_size, drop_last, even_shards)
    return torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)
