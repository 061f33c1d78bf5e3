"""Small synthetic data sets for the potential-workflow tests (no DFT data needed)."""

import numpy as np
from ase import Atoms
from ase.calculators.lj import LennardJones
from ase.io import write


def lj_frames(n_frames: int, seed: int = 0, n_atoms: int = 5):
    """Rattled small H/C/O clusters labelled with a smooth Lennard-Jones potential (eV, eV/Å)."""
    rng = np.random.default_rng(seed)
    frames = []
    base = np.array([[0, 0, 0], [1.4, 0, 0], [0, 1.4, 0], [0, 0, 1.4], [1.2, 1.2, 1.2], [-1.2, 0.3, 0.8]])[:n_atoms]
    for _ in range(n_frames):
        a = Atoms(numbers=rng.choice([1, 6, 8], size=n_atoms), positions=base + rng.normal(0, 0.08, base.shape))
        a.calc = LennardJones(sigma=1.2, epsilon=0.2, rc=4.0, smooth=True)
        e, f = a.get_potential_energy(), a.get_forces()
        a.calc = None
        a.info["REF_energy"] = float(e) - 1.5 * n_atoms
        a.arrays["REF_forces"] = f
        frames.append(a)
    return frames


def write_lj_dataset(path, n_frames: int, seed: int = 0):
    write(str(path), lj_frames(n_frames, seed), format="extxyz")
    return str(path)
