import sys

import pytest
import torch

import equiv


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_cpu_allocator_applies_and_is_idempotent():
    assert equiv.tune_cpu_allocator() is True
    assert equiv.cpu_allocator_tuned()
    assert equiv.tune_cpu_allocator() is True
    # allocation still works and gives correct results afterwards
    a = torch.randn(512, 512, dtype=torch.float64)
    assert torch.allclose(a @ torch.eye(512, dtype=torch.float64), a)
