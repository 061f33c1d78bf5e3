import subprocess
import sys

import pytest

# Run in a fresh interpreter: the setting is process-wide and would change which product route the
# rest of the test session takes.
_SCRIPT = """
import torch, equiv
assert not equiv.cpu_allocator_tuned()
assert equiv.tune_cpu_allocator() is True and equiv.cpu_allocator_tuned()
assert equiv.tune_cpu_allocator() is True  # idempotent
a = torch.randn(512, 512, dtype=torch.float64)
assert torch.allclose(a @ torch.eye(512, dtype=torch.float64), a)
print("ok")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_tune_cpu_allocator_applies_and_is_idempotent():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
