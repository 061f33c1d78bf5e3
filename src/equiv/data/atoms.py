r"""One atomic structure as tensors: :class:`AtomicData`.

An :class:`AtomicData` holds the positions (Å), atomic numbers, cell and periodicity of one structure,
its reference labels when known (energy in eV, forces in eV/Å, stress in eV/Å³ with ASE's sign
convention :math:`\sigma = \frac{1}{V}\,\partial E/\partial \varepsilon`), and, once
:meth:`AtomicData.with_graph` has been called, its neighbour graph (``edge_index``, ``unit_shifts``;
see :mod:`equiv.data.neighbors` for the conventions). Structures are checked on construction: NaN or
infinite coordinates, unknown elements and malformed shapes raise ``ValueError``.

Many structures are joined into one :class:`~equiv.data.batching.Batch` by
:func:`~equiv.data.batching.collate`.

>>> import torch
>>> d = AtomicData(positions=[[0.0, 0.0, 0.0], [0.0, 0.0, 0.96]], atomic_numbers=[8, 1], energy=-1.0)
>>> d.n_atoms, d.with_graph(cutoff=2.0).n_edges
(2, 2)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from equiv.data.neighbors import neighbor_list

__all__ = ["AtomicData", "MAX_ATOMIC_NUMBER", "chemical_symbol", "atomic_number"]

MAX_ATOMIC_NUMBER = 118

# fmt: off
_SYMBOLS = (
    "X H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf "
    "Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og"
).split()
# fmt: on


def chemical_symbol(z: int) -> str:
    """Chemical symbol of atomic number ``z`` (``chemical_symbol(8) == 'O'``).

    Examples
    --------
    >>> chemical_symbol(8), chemical_symbol(1), chemical_symbol(118)
    ('O', 'H', 'Og')
    >>> [chemical_symbol(z) for z in (6, 7, 26)]
    ['C', 'N', 'Fe']
    """
    if not 1 <= int(z) <= MAX_ATOMIC_NUMBER:
        raise ValueError(f"atomic number must be in 1..{MAX_ATOMIC_NUMBER}, got {z}")
    return _SYMBOLS[int(z)]


def atomic_number(symbol: str) -> int:
    """Atomic number of a chemical symbol (``atomic_number("O") == 8``); digits are read as a number.

    Examples
    --------
    >>> atomic_number("H"), atomic_number("Fe"), atomic_number("8")
    (1, 26, 8)
    """
    text = str(symbol).strip()
    if text.isdigit() and 1 <= int(text) <= MAX_ATOMIC_NUMBER:
        return int(text)
    if text in _SYMBOLS[1:]:
        return _SYMBOLS.index(text)
    raise ValueError(f"unknown element {symbol!r} (expected a symbol such as 'H' or 'Fe', or 1..{MAX_ATOMIC_NUMBER})")


def _float_tensor(x, name: str, shape: tuple, allow_none: bool = True) -> torch.Tensor | None:
    if x is None:
        if allow_none:
            return None
        raise ValueError(f"{name} is required")
    t = torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64))
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return t


@dataclass(frozen=True, eq=False)
class AtomicData:
    """One structure: positions, elements, cell, labels and (optionally) its neighbour graph.

    Parameters
    ----------
    positions : array-like, shape (n_atoms, 3)
        Cartesian coordinates in Å. Stored as float64.
    atomic_numbers : array-like of int, shape (n_atoms,)
        Elements, 1..118.
    cell : array-like, shape (3, 3), optional
        Lattice vectors as rows (zeros for a molecule).
    pbc : bool or 3 bools, optional
        Periodic directions (default none).
    energy : float, optional
        Reference total energy in eV.
    forces : array-like, shape (n_atoms, 3), optional
        Reference forces in eV/Å.
    stress : array-like, shape (3, 3), optional
        Reference stress in eV/Å³ (ASE sign convention).
    edge_index, unit_shifts : torch.Tensor, optional
        Neighbour graph, usually set by :meth:`with_graph`.
    cutoff : float, optional
        The cut-off the graph was built with.
    info : dict
        Free-form metadata (e.g. ``config_type``); not used by models.

    Examples
    --------
    >>> d = AtomicData(positions=[[0.0, 0.0, 0.0]], atomic_numbers=[6])
    >>> d.energy is None
    True
    """

    positions: torch.Tensor
    atomic_numbers: torch.Tensor
    cell: torch.Tensor | None = None
    pbc: torch.Tensor | None = None
    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None
    edge_index: torch.Tensor | None = None
    unit_shifts: torch.Tensor | None = None
    cutoff: float | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        z = self.atomic_numbers
        z = torch.as_tensor(np.asarray(z.cpu() if isinstance(z, torch.Tensor) else z))
        if z.ndim != 1:
            raise ValueError(f"atomic_numbers must be 1-D (n_atoms,), got shape {tuple(z.shape)}")
        if z.is_floating_point():
            if not torch.equal(z, z.round()):
                raise ValueError(f"atomic_numbers must be integers, got {z.tolist()}")
        z = z.long()
        n = len(z)
        bad = (z < 1) | (z > MAX_ATOMIC_NUMBER)
        if bad.any():
            raise ValueError(
                f"atomic_numbers: unknown element {int(z[bad][0])} at atom {int(torch.nonzero(bad)[0, 0])}; "
                f"expected 1..{MAX_ATOMIC_NUMBER}"
            )
        set_ = object.__setattr__
        set_(self, "atomic_numbers", z)
        set_(self, "positions", _float_tensor(self.positions, "positions", (n, 3), allow_none=False))
        cell = torch.zeros(3, 3, dtype=torch.float64) if self.cell is None else _float_tensor(self.cell, "cell", (3, 3))
        set_(self, "cell", cell)
        pbc = torch.zeros(3, dtype=torch.bool) if self.pbc is None else torch.as_tensor(np.asarray(self.pbc, dtype=bool))
        if pbc.ndim == 0:
            pbc = pbc.expand(3).clone()
        if tuple(pbc.shape) != (3,):
            raise ValueError(f"pbc must be a bool or 3 bools, got shape {tuple(pbc.shape)}")
        set_(self, "pbc", pbc)
        if self.energy is not None:
            e = _float_tensor(np.asarray(self.energy, dtype=np.float64).reshape(()), "energy", ())
            set_(self, "energy", e)
        set_(self, "forces", _float_tensor(self.forces, "forces", (n, 3)))
        set_(self, "stress", _float_tensor(self.stress, "stress", (3, 3)))
        if (self.edge_index is None) != (self.unit_shifts is None):
            raise ValueError("edge_index and unit_shifts must be given together")
        if self.edge_index is not None:
            ei = torch.as_tensor(self.edge_index).long()
            us = torch.as_tensor(self.unit_shifts).long()
            if ei.ndim != 2 or ei.shape[0] != 2 or tuple(us.shape) != (ei.shape[1], 3):
                raise ValueError(
                    f"edge_index must be (2, n_edges) and unit_shifts (n_edges, 3); got {tuple(ei.shape)}, {tuple(us.shape)}"
                )
            if ei.numel() and (ei.min() < 0 or ei.max() >= n):
                raise ValueError(f"edge_index refers to atoms outside 0..{n - 1}")
            set_(self, "edge_index", ei)
            set_(self, "unit_shifts", us)

    @property
    def n_atoms(self) -> int:
        """Number of atoms."""
        return int(self.atomic_numbers.shape[0])

    @property
    def n_edges(self) -> int:
        """Number of directed edges (0 before :meth:`with_graph`)."""
        return 0 if self.edge_index is None else int(self.edge_index.shape[1])

    def with_graph(self, cutoff: float, min_distance: float | None = 0.1) -> AtomicData:
        """Return a copy with the neighbour graph within ``cutoff`` (Å).

        Raises ``ValueError`` when two atoms are closer than ``min_distance`` (default 0.1 Å).

        >>> AtomicData(positions=[[0, 0, 0], [0, 0, 1.0]], atomic_numbers=[1, 1]).with_graph(0.5).n_edges
        0
        """
        cell = self.cell if bool(self.pbc.any()) else None
        try:
            edge_index, unit_shifts = neighbor_list(self.positions, cutoff, cell, self.pbc, min_distance=min_distance)
        except ValueError as exc:
            where = f" (structure {self.info['index']})" if "index" in self.info else ""
            raise ValueError(f"{exc}{where}") from None
        return dataclasses.replace(self, edge_index=edge_index, unit_shifts=unit_shifts, cutoff=float(cutoff))

    @classmethod
    def from_ase(cls, atoms, energy=None, forces=None, stress=None, info: dict | None = None) -> AtomicData:
        """Build from an :class:`ase.Atoms` (labels passed explicitly; see :mod:`equiv.data.extxyz`).

        >>> from ase import Atoms
        >>> AtomicData.from_ase(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])).atomic_numbers.tolist()
        [1, 1]
        """
        return cls(
            positions=np.asarray(atoms.get_positions()),
            atomic_numbers=np.asarray(atoms.get_atomic_numbers()),
            cell=np.asarray(atoms.get_cell().array),
            pbc=np.asarray(atoms.get_pbc()),
            energy=energy,
            forces=forces,
            stress=stress,
            info=dict(info or {}),
        )

    def to_ase(self):
        """Convert to :class:`ase.Atoms` (labels are not attached)."""
        from ase import Atoms

        return Atoms(
            numbers=self.atomic_numbers.numpy(),
            positions=self.positions.numpy(),
            cell=self.cell.numpy(),
            pbc=self.pbc.numpy(),
        )
