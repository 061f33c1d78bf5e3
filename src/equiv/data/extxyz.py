r"""Extended-XYZ datasets (acac, 3BPA, anything ``ase.io.read`` understands) and isolated-atom energies.

Labels are looked up by key in ``atoms.info`` (energy), ``atoms.arrays`` (forces) and, failing that,
in the results of the calculator ASE attaches when the file says ``energy=`` / ``forces`` (ASE >= 3.23
moves those there). With ``energy_key=None`` (default) the first key present among
:data:`ENERGY_KEYS` is used, so MACE-style ``REF_energy`` / ``REF_forces`` / ``REF_stress`` files and
plain ``energy`` / ``forces`` files both work.

Isolated-atom energies :math:`E_0(Z)` shift the energy a model has to learn,
:math:`E = \sum_i E_0(Z_i) + E_\text{model}`. :func:`isolated_atom_energies` reads them from
one-atom frames (or frames with ``config_type=isolated_atom``); without them,
:func:`least_squares_e0` fits

.. math::

    E_0 = \arg\min_{e} \sum_s \Bigl(E_s - \sum_Z n_{sZ}\, e_Z\Bigr)^2

over the training set (the minimum-norm solution when compositions do not determine :math:`e`, as in
single-molecule data such as rMD17).

>>> frames = read_extxyz("acac/train_300K.xyz")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from equiv.data.atoms import AtomicData, chemical_symbol
from equiv.data.paths import data_dir

__all__ = ["ENERGY_KEYS", "FORCES_KEYS", "STRESS_KEYS", "read_extxyz", "isolated_atom_energies",
           "split_isolated_atoms", "least_squares_e0"]

ENERGY_KEYS = ("REF_energy", "energy", "Energy", "dft_energy")
FORCES_KEYS = ("REF_forces", "forces", "force", "dft_forces")
STRESS_KEYS = ("REF_stress", "stress", "dft_stress")


def _resolve_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path).expanduser()
    if not p.is_file() and not p.is_absolute():
        try:
            alt = data_dir() / p
        except FileNotFoundError:
            alt = None
        if alt is not None and alt.is_file():
            return alt
    if not p.is_file():
        raise FileNotFoundError(f"path: no file at {str(path)!r} (relative paths are also tried under the data folder)")
    return p


def _lookup(atoms, key: str, kind: str):
    if kind == "energy" and key in atoms.info:
        return atoms.info[key]
    if kind == "forces" and key in atoms.arrays:
        return atoms.arrays[key]
    if kind == "stress" and key in atoms.info:
        return atoms.info[key]
    calc = atoms.calc
    if calc is not None and key == kind and kind in getattr(calc, "results", {}):
        return calc.results[kind]
    return None


def _available(atoms) -> list[str]:
    keys = list(atoms.info) + [k for k in atoms.arrays if k not in ("numbers", "positions")]
    if atoms.calc is not None:
        keys += [f"{k} (calculator)" for k in getattr(atoms.calc, "results", {})]
    return keys


def _choose(frames, key, candidates, kind):
    """The given key, else the first candidate present on the first frame that has one (isolated-atom
    frames at the top of a training file often carry an energy but no forces)."""
    if key is not None:
        return key
    for atoms in frames:
        for k in candidates:
            if _lookup(atoms, k, kind) is not None:
                return k
    return None


def _stress_3x3(s) -> np.ndarray:
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    if s.size == 9:
        return s.reshape(3, 3)
    if s.size == 6:  # Voigt xx yy zz yz xz xy
        xx, yy, zz, yz, xz, xy = s
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise ValueError(f"stress must have 6 (Voigt) or 9 components, got {s.size}")


def read_extxyz(path, index: str | int | slice = ":", energy_key: str | None = None,
                forces_key: str | None = None, stress_key: str | None = None,
                require: Sequence[str] = ("energy", "forces")) -> list[AtomicData]:
    """Read structures and labels from an extended-XYZ file with ``ase.io.read(path, index=":")``.

    Parameters
    ----------
    path : str or os.PathLike
        The file; a relative path not found from the current directory is tried under the data folder
        (``"acac/train_300K.xyz"`` works from anywhere).
    index : str, int or slice
        Frames to read, ASE syntax (default all).
    energy_key, forces_key, stress_key : str, optional
        Label keys; ``None`` picks the first present among :data:`ENERGY_KEYS`, :data:`FORCES_KEYS`,
        :data:`STRESS_KEYS` (decided on the first frame that has one of them).
    require : sequence of {"energy", "forces", "stress"}
        Labels every frame must have; a frame without one raises ``KeyError`` naming the frame and the
        keys it does have.

    Returns
    -------
    list of AtomicData
        ``info`` keeps the frame's ``atoms.info`` plus ``index`` and ``source``.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from ase.build import molecule
    >>> from ase.io import write
    >>> frames = []
    >>> for k in range(2):
    ...     atoms = molecule("H2O")
    ...     atoms.info["REF_energy"] = -14.0 - k
    ...     atoms.new_array("REF_forces", np.full((3, 3), 0.1 * k))
    ...     frames.append(atoms)
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "water.xyz")
    >>> write(path, frames, format="extxyz")
    >>> data = read_extxyz(path)
    >>> len(data), data[0].n_atoms, [float(d.energy) for d in data]
    (2, 3, [-14.0, -15.0])
    >>> tuple(data[1].forces.shape), data[1].info["index"], data[1].info["source"]
    ((3, 3), 1, 'water.xyz')
    >>> len(read_extxyz(path, index="-1"))
    1
    >>> tmp.cleanup()
    """
    from ase.io import read

    p = _resolve_path(path)
    frames = read(str(p), index=index)
    if not isinstance(frames, list):
        frames = [frames]
    if not frames:
        raise ValueError(f"path: {str(p)!r} holds no structures")
    first = frames[0]
    keys = {
        "energy": _choose(frames, energy_key, ENERGY_KEYS, "energy"),
        "forces": _choose(frames, forces_key, FORCES_KEYS, "forces"),
        "stress": _choose(frames, stress_key, STRESS_KEYS, "stress"),
    }
    for kind in require:
        if kind not in keys:
            raise ValueError(f"require: unknown label {kind!r}; expected 'energy', 'forces' or 'stress'")
        if keys[kind] is None:
            raise KeyError(
                f"{str(p)!r}: no frame has {kind} labels (looked for {dict(energy=ENERGY_KEYS, forces=FORCES_KEYS, stress=STRESS_KEYS)[kind]}); "
                f"available keys: {_available(first)}. Pass {kind}_key=..."
            )
    out = []
    for i, atoms in enumerate(frames):
        labels = {}
        for kind, key in keys.items():
            v = None if key is None else _lookup(atoms, key, kind)
            if v is None and kind in require:
                raise KeyError(f"{str(p)!r}: frame {i} has no {kind} key {key!r}; available keys: {_available(atoms)}")
            labels[kind] = v
        info = {k: v for k, v in atoms.info.items() if k not in (keys["energy"], keys["stress"])}
        info.update(index=i, source=p.name)
        if labels["stress"] is not None:
            labels["stress"] = _stress_3x3(labels["stress"])
        try:
            out.append(AtomicData.from_ase(atoms, energy=labels["energy"], forces=labels["forces"],
                                           stress=labels["stress"], info=info))
        except ValueError as exc:
            raise ValueError(f"{str(p)!r}, frame {i}: {exc}") from None
    return out


def _is_isolated(d: AtomicData) -> bool:
    return d.n_atoms == 1 or str(d.info.get("config_type", "")).lower() in ("isolated_atom", "isolatedatom", "iso_atom")


def split_isolated_atoms(data: Sequence[AtomicData]) -> tuple[dict[int, float], list[AtomicData]]:
    """Separate one-atom frames (or ``config_type=isolated_atom``) from the rest.

    Returns
    -------
    (e0, rest) : dict mapping atomic number to energy (eV), and the other frames.

    Examples
    --------
    >>> h = AtomicData(positions=[[0, 0, 0.0]], atomic_numbers=[1], energy=-13.6)
    >>> o = AtomicData(positions=[[0, 0, 0.0]], atomic_numbers=[8], energy=-2041.0)
    >>> oh = AtomicData(positions=[[0, 0, 0], [0, 0, 0.97]], atomic_numbers=[8, 1], energy=-2060.0)
    >>> e0, rest = split_isolated_atoms([h, oh, o])
    >>> e0
    {1: -13.6, 8: -2041.0}
    >>> len(rest), rest[0].n_atoms
    (1, 2)
    """
    e0, rest = {}, []
    for d in data:
        if _is_isolated(d):
            if d.n_atoms != 1 or d.energy is None:
                raise ValueError(f"isolated-atom frame {d.info.get('index')} must have one atom and an energy")
            e0[int(d.atomic_numbers[0])] = float(d.energy)
        else:
            rest.append(d)
    return e0, rest


def isolated_atom_energies(path, energy_key: str | None = None) -> dict[int, float]:
    """Isolated-atom energies :math:`E_0(Z)` in eV from an extxyz file of one-atom frames.

    >>> e0 = isolated_atom_energies("acac/isolated_atoms.xyz")  # doctest: +SKIP
    >>> sorted(e0)  # doctest: +SKIP
    [1, 6, 8]
    """
    frames = read_extxyz(path, energy_key=energy_key, require=("energy",))
    e0, rest = split_isolated_atoms(frames)
    if rest:
        raise ValueError(f"path: {str(path)!r} has {len(rest)} frames with more than one atom; expected isolated atoms")
    return e0


def _counts(data: Sequence[AtomicData], species: Sequence[int]) -> np.ndarray:
    col = {z: k for k, z in enumerate(species)}
    a = np.zeros((len(data), len(species)))
    for s, d in enumerate(data):
        for z in d.atomic_numbers.tolist():
            if z not in col:
                raise ValueError(f"unknown element {chemical_symbol(z)} (Z={z}) in structure {s}; species are {list(species)}")
            a[s, col[z]] += 1
    return a


def least_squares_e0(data: Sequence[AtomicData], species: Sequence[int] | None = None) -> dict[int, float]:
    r"""Per-element energies from a least-squares fit of total energies to compositions.

    Parameters
    ----------
    data : sequence of AtomicData with energies
    species : sequence of int, optional
        Elements to fit (default: those present).

    Returns
    -------
    dict
        Atomic number -> :math:`E_0` in eV (``numpy.linalg.lstsq``; minimum norm if rank-deficient).

    >>> d = [AtomicData(positions=[[0, 0, 0], [0, 0, 1.0]], atomic_numbers=[1, 1], energy=-2.0)]
    >>> least_squares_e0(d)
    {1: -1.0}
    """
    if not data:
        raise ValueError("data: need at least one structure with an energy")
    if any(d.energy is None for d in data):
        raise ValueError("data: every structure needs an energy for a least-squares E0")
    species = sorted({z for d in data for z in d.atomic_numbers.tolist()}) if species is None else list(species)
    a = _counts(data, species)
    e = np.array([float(d.energy) for d in data])
    sol, _, rank, _ = np.linalg.lstsq(a, e, rcond=None)
    if rank < len(species):
        import warnings

        warnings.warn(
            f"least-squares E0: the compositions determine {rank} combination(s) of the {len(species)} elements' "
            "energies, not each one (e.g. every structure has the same composition); the minimum-norm split is "
            "used, which is fine on these compositions but arbitrary on others. Give isolated-atom energies "
            "(option e0s) for a model meant to transfer to other compositions.", stacklevel=2)
    return {int(z): float(v) for z, v in zip(species, sol)}
