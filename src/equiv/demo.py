"""``equiv demo`` / ``make demo``: the main job on an embedded default.

Until the N-body task lands this is a short showcase of the SO(3) layer: spherical harmonics, a
rotation, and an equivariance check, printed.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def run(args: argparse.Namespace) -> int:
    import torch

    from equiv.so3 import Irreps, random_rotation, spherical_harmonics
    from equiv.symmetry import assert_equivariant

    torch.manual_seed(args.seed)
    x = torch.randn(4, 3, dtype=torch.float64)
    irreps = Irreps("0e + 1o + 2e + 3o")
    y = spherical_harmonics([0, 1, 2, 3], x, normalize=True)
    print(f"spherical harmonics {irreps} of 4 points: shape {tuple(y.shape)}")
    R = random_rotation(1, dtype=torch.float64)[0]
    lhs = spherical_harmonics([0, 1, 2, 3], x @ R.T)
    rhs = y @ irreps.D_from_matrix(R).T
    print(f"Y(R x) vs D(R) Y(x): max |difference| = {(lhs - rhs).abs().max().item():.2e}")
    report = assert_equivariant(
        lambda p: spherical_harmonics([0, 1, 2, 3], p),
        inputs=[x],
        irreps_in=["cartesian_vectors"],
        irreps_out=[irreps],
    )
    print(report)
    return 0
