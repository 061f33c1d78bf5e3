"""Atomic file writes: a reader sees the old file or the new one, never a half-written one.

Used for everything equiv writes that another process may read while it is being written or that a
crash must not truncate: checkpoints, the N-body data cache, result JSON files.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write"]


def _default_mode() -> int:
    """``0o666`` less the process's umask: the mode ``open(path, "w")`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object], *, durable: bool = False) -> Path:
    """Write a file atomically: ``write(fh)`` fills a temporary file beside ``path``, then it is renamed.

    The temporary file ``<dir>/.<name>.<random>.tmp`` is created in the target folder (missing folders
    are created), so :func:`os.replace` is an atomic rename on the same file system. If ``write``
    raises, the temporary file is removed and ``path`` is untouched. The new file gets the mode a
    plain ``open(path, "w")`` would give it. ``durable=True`` also ``fsync``-s the data and, where the
    OS allows it, the folder, so the rename survives a power cut (checkpoints).

    Parameters
    ----------
    path : str or os.PathLike
        Target file.
    write : callable
        Called once with the open binary file object.
    durable : bool
        ``fsync`` the file and its folder (default False).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import json, tempfile
    >>> p = Path(tempfile.mkdtemp()) / "sub" / "result.json"
    >>> _ = atomic_write(p, lambda fh: fh.write(json.dumps({"mse": 0.005}).encode()))
    >>> json.loads(p.read_text())
    {'mse': 0.005}
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        try:
            dir_fd = os.open(path.parent, os.O_RDONLY)
        except OSError:
            return path
        try:
            os.fsync(dir_fd)
        except OSError:
            pass
        finally:
            os.close(dir_fd)
    return path
