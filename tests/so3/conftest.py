"""Tests in this folder use tiny tensors: run them on one intra-op thread (and restore afterwards).

On a shared, oversubscribed CPU a multi-threaded BLAS call on a 4 x 34 matrix can wait ~20 ms for a
descheduled worker thread; one thread keeps these tests fast without changing what they check."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
