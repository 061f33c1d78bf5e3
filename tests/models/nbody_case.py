"""Shared inputs of the N-body model tests: five charged particles, positions, velocities, charges."""

import torch

#: Kinds of (positions, velocities, charges) -> predicted positions, for `assert_equivariant`.
KINDS = (["cartesian_points", "cartesian_vectors", None], ["cartesian_points"])
#: Particles are the nodes of every input and of the output.
PERM = dict(permutations=True, node_inputs=(0, 1, 2), node_outputs=(0,))


def nbody_inputs(batch=None, dtype=torch.float64, seed=0, spread=2.0):
    """``(x, v, q)`` for 5 particles (``(5, 3)`` or ``(batch, 5, 3)``), charges ±1."""
    g = torch.Generator().manual_seed(seed)
    shape = (5, 3) if batch is None else (batch, 5, 3)
    x = torch.randn(shape, generator=g, dtype=dtype) * spread
    v = torch.randn(shape, generator=g, dtype=dtype) * 0.5
    q = (torch.randint(0, 2, shape[:-1] + (1,), generator=g) * 2 - 1).to(dtype)
    return x, v, q
