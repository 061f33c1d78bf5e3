"""Checkpoints that survive interruption.

A checkpoint is a ``dict`` written with :func:`torch.save`. :func:`save_checkpoint` writes it to a
temporary file in the same directory, flushes and ``fsync``-s it, then renames it over the target with
:func:`os.replace` (atomic on POSIX and Windows). A run killed at any moment therefore leaves either
the previous complete checkpoint or the new complete one, never a truncated file.

:func:`rng_state` / :func:`set_rng_state` capture and restore the Python, NumPy and torch (CPU and
CUDA) random generators as plain tensors and lists, so a resumed run draws the same numbers as an
uninterrupted one, and the checkpoint loads with ``torch.load(weights_only=True)``.

>>> import tempfile, os, torch
>>> d = tempfile.mkdtemp()
>>> save_checkpoint(os.path.join(d, "ckpt.pt"), {"epoch": 3, "w": torch.ones(2)})
>>> load_checkpoint(os.path.join(d, "ckpt.pt"))["epoch"]
3
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from equiv._atomic import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state"]


def _as_path(path: Any, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__} ({path!r})")
    return Path(path)


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically.

    Parameters
    ----------
    path : str or os.PathLike
        Target file. Missing parent directories are created.
    state : Mapping[str, Any]
        Anything :func:`torch.save` can write (tensors, state dicts, numbers, strings, lists, dicts).

    Notes
    -----
    The data go to ``<dir>/.<name>.<random>.tmp`` first, are flushed and ``fsync``-ed, and the file is
    renamed over ``path`` with :func:`os.replace`; the directory is ``fsync``-ed too where the OS
    allows it. If writing fails the temporary file is removed and ``path`` is untouched.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "sub", "last.pt")
    >>> save_checkpoint(p, {"step": 1})
    >>> os.path.exists(p)
    True
    """
    path = _as_path(path)
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping (dict), got {type(state).__name__}")
    atomic_write(path, lambda fh: torch.save(dict(state), fh), durable=True)


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device | None = "cpu", weights_only: bool = True
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or os.PathLike
        Checkpoint file.
    map_location : str or torch.device, optional
        Where tensors are loaded (default ``"cpu"``).
    weights_only : bool
        Passed to :func:`torch.load`; ``True`` (default) refuses arbitrary pickled objects.

    Returns
    -------
    dict
        The saved state.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "c.pt")
    >>> save_checkpoint(p, {"best": 0.5})
    >>> load_checkpoint(p)
    {'best': 0.5}
    """
    path = _as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint file at {str(path)!r}")
    state = torch.load(path, map_location=map_location, weights_only=weights_only)
    if not isinstance(state, dict):
        raise ValueError(f"path: {str(path)!r} does not hold a checkpoint dict (got {type(state).__name__})")
    return state


def rng_state() -> dict[str, Any]:
    """Capture the Python, NumPy and torch random generator states as tensors and lists.

    Returns
    -------
    dict
        Keys ``"python"``, ``"numpy"``, ``"torch"`` and, when CUDA is initialised, ``"cuda"``.

    Examples
    --------
    >>> s = rng_state(); a = torch.rand(1); set_rng_state(s); bool(torch.rand(1) == a)
    True
    """
    version, keys, internal_gauss = random.getstate()[0], random.getstate()[1], random.getstate()[2]
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    out: dict[str, Any] = {
        "python": [version, list(keys), internal_gauss],
        "numpy": [np_name, torch.from_numpy(np.asarray(np_keys, dtype=np.int64)), int(np_pos),
                  int(np_has_gauss), float(np_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore generator states captured by :func:`rng_state`.

    Parameters
    ----------
    state : Mapping
        As returned by :func:`rng_state` (possibly after a checkpoint round trip).

    Examples
    --------
    >>> import os, random, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "ckpt.pt")
    >>> save_checkpoint(path, {"rng": rng_state()})
    >>> first = (random.random(), float(np.random.rand()), torch.rand(2))
    >>> set_rng_state(load_checkpoint(path)["rng"])  # resume: the same numbers are drawn again
    >>> again = (random.random(), float(np.random.rand()), torch.rand(2))
    >>> first[:2] == again[:2], bool(torch.equal(first[2], again[2]))
    (True, True)
    >>> tmp.cleanup()
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping from rng_state(), got {type(state).__name__}")
    for key in ("python", "numpy", "torch"):
        if key not in state:
            raise ValueError(f"state: missing key {key!r}; expected the output of rng_state()")
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(int(k) for k in keys), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    # a checkpoint loaded with map_location="cuda" holds these on the GPU: generator states live on the CPU
    keys = keys.cpu() if torch.is_tensor(keys) else keys
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
