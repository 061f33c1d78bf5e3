"""tests/tp set-up: one intra-op thread.

The machine's two cores are shared by other jobs; with two OpenMP threads, every tiny op of a
gradcheck can stall on the busy core. One thread keeps these tests quick and their timing stable.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
