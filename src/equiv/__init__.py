"""equiv: equivariant deep learning in plain PyTorch.

Subpackages, in the direction data flows (a module only imports from those to its left):

``so3`` → ``groups`` → ``tp`` → ``nn`` → ``models`` → ``symmetry`` → ``data`` → ``train`` → ``calculators``

>>> import equiv
>>> equiv.__version__
'0.1.0'
"""

__version__ = "0.1.0"

from ._allocator import cpu_allocator_tuned, tune_cpu_allocator  # noqa: E402

__all__ = ["__version__", "tune_cpu_allocator", "cpu_allocator_tuned"]
