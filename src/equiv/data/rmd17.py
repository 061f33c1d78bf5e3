r"""The revised MD17 dataset (Christensen & von Lilienfeld 2020, arXiv:2007.09593).

Each molecule has ``rmd17_<molecule>_train_01.npz`` and ``rmd17_<molecule>_test_01.npz`` (1000 frames
each, split 01) with keys ``nuclear_charges``, ``coords`` (Å), ``energies`` (kcal/mol) and ``forces``
(kcal/mol/Å). They are converted on load to eV and eV/Å with

.. math::

    1\ \text{kcal/mol} = \frac{4184\ \text{J/mol}}{N_A\, e} = 0.0433641\ \text{eV}

(CODATA 2018 :math:`N_A` and :math:`e`). The 1000 training frames are split reproducibly into 950
training and 50 validation frames (:func:`rmd17_splits`); the 1000 test frames stay the test set.

>>> train, valid, test = rmd17_splits("ethanol")  # doctest: +SKIP
>>> len(train), len(valid), len(test)  # doctest: +SKIP
(950, 50, 1000)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from equiv.data.atoms import AtomicData
from equiv.data.paths import data_dir

__all__ = ["RMD17_MOLECULES", "KCAL_PER_MOL_IN_EV", "read_rmd17", "rmd17_splits"]

#: Avogadro constant (1/mol) and elementary charge (C), exact in the 2019 SI.
_NA, _E = 6.02214076e23, 1.602176634e-19
#: 1 kcal/mol in eV.
KCAL_PER_MOL_IN_EV = 4184.0 / (_NA * _E)

RMD17_MOLECULES = ("aspirin", "azobenzene", "benzene", "ethanol", "malonaldehyde", "naphthalene",
                   "paracetamol", "salicylic", "toluene", "uracil")
_REQUIRED = ("nuclear_charges", "coords", "energies", "forces")


def _resolve(molecule: str, split: str, root) -> Path:
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(molecule, (str,)) and (molecule.endswith(".npz") or "/" in molecule):
        return Path(molecule)
    if molecule not in RMD17_MOLECULES:
        raise ValueError(f"molecule must be one of {', '.join(RMD17_MOLECULES)} (or a .npz path), got {molecule!r}")
    folder = Path(root) if root is not None else data_dir("rmd17")
    return folder / f"rmd17_{molecule}_{split}_01.npz"


def read_rmd17(molecule: str, split: str = "train", root=None, indices=None) -> list[AtomicData]:
    """Read one rMD17 file as a list of structures in eV and eV/Å.

    Parameters
    ----------
    molecule : str
        One of :data:`RMD17_MOLECULES`, or a path to an ``.npz`` file with the rMD17 keys.
    split : {"train", "test"}
        Which file of split 01.
    root : path, optional
        Folder of the ``.npz`` files (default: ``data_dir("rmd17")``).
    indices : sequence of int, optional
        Read only these frames.

    Returns
    -------
    list of AtomicData
        Energies in eV, forces in eV/Å; ``info`` holds ``index`` (frame) and ``source``.
    """
    path = _resolve(molecule, split, root)
    if not path.is_file():
        raise FileNotFoundError(f"molecule: no rMD17 file at {str(path)!r}")
    with np.load(path) as f:
        missing = [k for k in _REQUIRED if k not in f.files]
        if missing:
            raise KeyError(f"{str(path)!r} lacks key(s) {missing}; rMD17 files have {list(_REQUIRED)} (found {f.files})")
        z = np.asarray(f["nuclear_charges"], dtype=np.int64)
        coords = np.asarray(f["coords"], dtype=np.float64)
        energies = np.asarray(f["energies"], dtype=np.float64) * KCAL_PER_MOL_IN_EV
        forces = np.asarray(f["forces"], dtype=np.float64) * KCAL_PER_MOL_IN_EV
    n = len(coords)
    if coords.shape != (n, len(z), 3) or forces.shape != coords.shape or energies.shape != (n,):
        raise ValueError(
            f"{str(path)!r}: inconsistent shapes coords {coords.shape}, forces {forces.shape}, "
            f"energies {energies.shape}, nuclear_charges {z.shape}"
        )
    idx = range(n) if indices is None else [int(i) for i in indices]
    out = []
    for i in idx:
        if not 0 <= i < n:
            raise ValueError(f"indices: frame {i} out of range 0..{n - 1}")
        out.append(AtomicData(positions=coords[i], atomic_numbers=z, energy=energies[i], forces=forces[i],
                              info={"index": i, "source": path.name}))
    return out


def rmd17_splits(molecule: str, n_train: int = 950, n_valid: int = 50, seed: int = 0, root=None):
    """The standard rMD17 protocol: 950 training + 50 validation frames from the training file, and
    the 1000 frames of the test file.

    The split is a permutation of the 1000 training frames drawn by ``numpy.random.default_rng(seed)``:
    the same ``seed`` gives the same split on every machine.

    Parameters
    ----------
    molecule : str
    n_train, n_valid : int
        Sizes (``n_train + n_valid <= 1000``); smaller sizes give learning-curve subsets.
    seed : int
    root : path, optional

    Returns
    -------
    (train, valid, test) : three lists of AtomicData
    """
    pool = read_rmd17(molecule, "train", root)
    if n_train < 1 or n_valid < 0 or n_train + n_valid > len(pool):
        raise ValueError(f"n_train + n_valid must be <= {len(pool)} with n_train >= 1, got {n_train} + {n_valid}")
    perm = np.random.default_rng(seed).permutation(len(pool))
    train = [pool[i] for i in sorted(perm[:n_train])]
    valid = [pool[i] for i in sorted(perm[n_train:n_train + n_valid])]
    return train, valid, read_rmd17(molecule, "test", root)
