"""equiv.data: datasets (N-body, rMD17, extxyz), neighbour lists, graph batching.

Atomistic data (see docs/potentials.md): :class:`AtomicData` (one structure), :func:`read_rmd17` /
:func:`rmd17_splits`, :func:`read_extxyz`, isolated-atom and least-squares E0, :func:`neighbor_list`,
:func:`collate` into a :class:`Batch`, :func:`make_loader`.
"""

# --- atomistic data (owner: potentials engineer) ---
from equiv.data.atoms import AtomicData, atomic_number, chemical_symbol
from equiv.data.batching import AtomsDataset, Batch, GraphSampler, collate, make_loader
from equiv.data.extxyz import isolated_atom_energies, least_squares_e0, read_extxyz, split_isolated_atoms
from equiv.data.neighbors import edge_vectors, neighbor_list
from equiv.data.paths import data_dir
from equiv.data.rmd17 import KCAL_PER_MOL_IN_EV, RMD17_MOLECULES, read_rmd17, rmd17_splits

# --- charged N-body benchmark (owner: N-body engineer) ---
from equiv.data.nbody import NBodyDataset, NBodySplit, charged_energy, generate_charged, simulate_charged

__all__ = [
    # atomistic data
    "AtomicData", "chemical_symbol", "atomic_number", "AtomsDataset", "Batch", "GraphSampler", "collate", "make_loader",
    "isolated_atom_energies", "least_squares_e0", "read_extxyz", "split_isolated_atoms",
    "edge_vectors", "neighbor_list", "data_dir", "KCAL_PER_MOL_IN_EV", "RMD17_MOLECULES", "read_rmd17",
    "rmd17_splits",
    # N-body
    "NBodyDataset", "NBodySplit", "charged_energy", "generate_charged", "simulate_charged",
]
