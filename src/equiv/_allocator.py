r"""Opt-in tuning of glibc's ``malloc`` for CPU training and benchmarks.

PyTorch allocates CPU tensors with the system ``malloc``. With glibc's defaults, freed blocks of a
few megabytes are soon returned to the operating system (heap trimming, ``mmap`` for large blocks),
so the next step's tensors of the same size are fresh pages again: every page is faulted in and
zeroed by the kernel. For equivariant models, whose steps allocate many intermediates of a few MB,
this can cost more than the arithmetic (measured on this project's 2-core CPU: mace-torch's
training step 1.34 s → 1.08 s and inference 7.5 → 13.9 structures/s; a C = 16, L = 2 channelwise
product about 1.5x faster). PyTorch's CPU performance guide gives the same advice in the form of
``jemalloc``/``tcmalloc`` or ``MALLOC_*`` environment variables.

`tune_cpu_allocator` makes glibc keep freed memory for reuse (``mallopt``: trim threshold 1 GiB,
top pad 64 MiB, ``mmap`` threshold 32 MiB, the largest it accepts). It changes the whole process,
so equiv never calls it on import: applications opt in (``equiv train`` does, see its
``tune_malloc`` option; the benchmarks offer ``--malloc tuned``). Memory freed by tensors then
stays in the process (its resident size does not shrink after a peak).

>>> import equiv
>>> equiv.cpu_allocator_tuned() in (True, False)  # equiv.tune_cpu_allocator() applies it (process-wide)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["tune_cpu_allocator", "cpu_allocator_tuned"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_TUNED = False


def tune_cpu_allocator(trim_threshold: int = 2**30, top_pad: int = 64 * 2**20, mmap_threshold: int = 32 * 2**20) -> bool:
    """Make glibc ``malloc`` keep freed memory for reuse (see the module docstring).

    Returns ``True`` when the settings were applied (Linux with glibc), ``False`` otherwise (then
    nothing changed). Idempotent.
    """
    global _TUNED
    if _TUNED:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = all(
        mallopt(param, value) == 1
        for param, value in ((_M_MMAP_THRESHOLD, mmap_threshold), (_M_TRIM_THRESHOLD, trim_threshold), (_M_TOP_PAD, top_pad))
    )
    _TUNED = ok
    return ok


def cpu_allocator_tuned() -> bool:
    """Whether `tune_cpu_allocator` has been applied in this process."""
    return _TUNED
