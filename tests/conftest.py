"""Shared test set-up.

e3nn 0.4.4 (the numeric reference, the version mace-torch pins) reads its constants with ``torch.load``;
torch >= 2.6 refuses that file unless told it is trusted. Set before any test imports e3nn.
"""

import os

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# Tests use small tensors: with several OpenMP threads on a 2-core machine the threads spin-wait
# (measured here: a small index_add took 35 us with 1 thread, 4 ms with 2). One intra-op thread.
torch.set_num_threads(1)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["float32", "float64"])
def dtype(request):
    """Run a test in both float32 and float64 (DESIGN.md: everything works in both)."""
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
