"""Multi-process training with ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node=N -m equiv train potential ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR/PORT`` in their environment. :func:`init_distributed`
reads them, joins the process group (``gloo`` on CPU, ``nccl`` on GPU) and picks this process's
device. Without those variables everything here is a no-op, so the same code runs in one process.

Each process takes a strided share of every global batch (:class:`equiv.data.GraphSampler`); losses
are normalised by *global* counts and multiplied by the world size, so that DDP's gradient average
equals the one-process gradient (up to floating-point summation order).

>>> info = init_distributed("cpu")
>>> info.world_size, info.is_main
(1, True)
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "init_distributed", "cleanup_distributed", "all_reduce_sum", "barrier", "rank_zero_print"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _pick_device(device: str, local_rank: int) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r} requested but CUDA is not available")
        return torch.device("cuda", local_rank if device == "cuda" else torch.device(device).index)
    if device != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<i>', got {device!r}")
    return torch.device("cpu")


def init_distributed(device: str = "auto", num_threads: int | None = None) -> DistInfo:
    """Join the ``torchrun`` process group if there is one, and choose the device.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        ``"auto"``: CUDA when available. Under ``torchrun`` each process uses ``cuda:LOCAL_RANK``.
    num_threads : int, optional
        CPU threads per process (default: cores / processes under ``torchrun``, else unchanged).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, local_rank)
    backend = None
    if world > 1:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        if not dist.is_initialized():
            dist.init_process_group(backend=backend, rank=rank, world_size=world)
        if num_threads is None and dev.type == "cpu":
            num_threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    return DistInfo(rank, world, local_rank, dev, backend)


def cleanup_distributed() -> None:
    """Leave the process group (no-op if none)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over processes (a copy; ``t`` itself when single-process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        t = t.clone()
        dist.all_reduce(t)
    return t


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def rank_zero_print(*args, **kwargs) -> None:
    """``print`` on rank 0 only (flushes, to stderr by default so stdout stays clean for reports)."""
    if int(os.environ.get("RANK", "0")) == 0:
        kwargs.setdefault("file", sys.stderr)
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)
