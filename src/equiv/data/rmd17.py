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

    Examples
    --------
    A tiny stand-in for ``rmd17_ethanol_train_01.npz`` (4 frames of a 3-atom molecule, kcal/mol units):

    >>> import os, tempfile
    >>> import numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> xyz = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    >>> np.savez(os.path.join(tmp.name, "rmd17_ethanol_train_01.npz"), nuclear_charges=np.array([8, 1, 1]),
    ...          coords=np.stack([xyz] * 4), energies=np.array([-10.0, -20.0, -30.0, -40.0]),
    ...          forces=np.ones((4, 3, 3)))
    >>> frames = read_rmd17("ethanol", root=tmp.name, indices=[0, 2])
    >>> len(frames), frames[1].n_atoms, frames[1].info["index"], frames[1].info["source"]
    (2, 3, 2, 'rmd17_ethanol_train_01.npz')
    >>> round(float(frames[0].energy), 6), round(float(frames[0].forces[0, 0]), 6)  # kcal/mol -> eV
    (-0.433641, 0.043364)
    >>> len(read_rmd17(os.path.join(tmp.name, "rmd17_ethanol_train_01.npz")))  # a path works too
    4
    >>> tmp.cleanup()
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

    Examples
    --------
    Small stand-in files with the rMD17 keys (6 training and 5 test frames):

    >>> import os, tempfile
    >>> import numpy as np
    >>> tmp = tempfile.TemporaryDirectory()
    >>> xyz = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    >>> for split, n in (("train", 6), ("test", 5)):
    ...     np.savez(os.path.join(tmp.name, f"rmd17_ethanol_{split}_01.npz"),
    ...              nuclear_charges=np.array([8, 1, 1]), coords=np.stack([xyz] * n),
    ...              energies=-np.arange(n, dtype=float), forces=np.zeros((n, 3, 3)))
    >>> train, valid, test = rmd17_splits("ethanol", n_train=4, n_valid=2, root=tmp.name)
    >>> len(train), len(valid), len(test)
    (4, 2, 5)
    >>> sorted(d.info["index"] for d in train + valid)  # disjoint subsets of the training file
    [0, 1, 2, 3, 4, 5]
    >>> again = rmd17_splits("ethanol", n_train=4, n_valid=2, root=tmp.name)[0]
    >>> [d.info["index"] for d in again] == [d.info["index"] for d in train]  # same seed, same split
    True
    >>> tmp.cleanup()
    """
    pool = read_rmd17(molecule, "train", root)
    if n_train < 1 or n_valid < 0 or n_train + n_valid > len(pool):
        raise ValueError(f"n_train + n_valid must be <= {len(pool)} with n_train >= 1, got {n_train} + {n_valid}")
    perm = np.random.default_rng(seed).permutation(len(pool))
    train = [pool[i] for i in sorted(perm[:n_train])]
    valid = [pool[i] for i in sorted(perm[n_train:n_train + n_valid])]
    return train, valid, read_rmd17(molecule, "test", root)
