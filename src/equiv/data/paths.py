"""Where the shared reference data live.

The datasets (rMD17, acac, 3BPA) are read in place and never copied into the repository. The folder
is, in order of preference:

1. the environment variable ``EQUIV_DATA``;
2. ``<repository root>/../shared/data``, the repository root found from this file's location
   (``src/equiv/data/paths.py`` → three levels up);
3. ``<d>/../shared/data`` or ``<d>/shared/data`` for the current directory ``d`` and each parent.

>>> import os
>>> p = data_dir()  # doctest: +SKIP
>>> os.path.isdir(p / "rmd17")  # doctest: +SKIP
True
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_dir"]


def _candidates() -> list[Path]:
    here = Path(__file__).resolve()
    out = [here.parents[3].parent / "shared" / "data"]  # <repo>/../shared/data
    cwd = Path.cwd().resolve()
    for d in (cwd, *cwd.parents):
        out += [d.parent / "shared" / "data", d / "shared" / "data"]
    seen, unique = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    return unique


def data_dir(subdir: str | None = None) -> Path:
    """Return the shared data folder (or one of its sub-folders).

    Parameters
    ----------
    subdir : str, optional
        A sub-folder such as ``"rmd17"``; it must exist.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    FileNotFoundError
        With the list of places that were tried.

    Examples
    --------
    ``EQUIV_DATA`` takes precedence over the folders found from the repository and the current
    directory:

    >>> import os, tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> os.mkdir(os.path.join(tmp.name, "rmd17"))
    >>> old = os.environ.get("EQUIV_DATA")
    >>> os.environ["EQUIV_DATA"] = tmp.name
    >>> data_dir() == Path(tmp.name), data_dir("rmd17") == Path(tmp.name) / "rmd17"
    (True, True)
    >>> try:
    ...     data_dir("3bpa")
    ... except FileNotFoundError:
    ...     print("no 3bpa/ in this data folder")
    no 3bpa/ in this data folder
    >>> if old is None:
    ...     del os.environ["EQUIV_DATA"]
    ... else:
    ...     os.environ["EQUIV_DATA"] = old
    >>> tmp.cleanup()
    """
    env = os.environ.get("EQUIV_DATA")
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"EQUIV_DATA={env!r} is not a directory")
    else:
        tried = _candidates()
        root = next((p for p in tried if p.is_dir()), None)
        if root is None:
            raise FileNotFoundError(
                "no shared data folder found; set EQUIV_DATA to the folder holding rmd17/, acac/, 3bpa/. "
                "Tried: " + ", ".join(str(p) for p in tried)
            )
    if subdir is None:
        return root
    sub = root / subdir
    if not sub.is_dir():
        raise FileNotFoundError(f"subdir: {subdir!r} not found in the data folder {str(root)!r}")
    return sub
