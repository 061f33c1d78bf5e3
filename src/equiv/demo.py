"""``equiv demo`` / ``make demo``: the main job on an embedded default — a short N-body training.

Generates the charged 5-body data (Satorras et al. 2021, seed 43; cached after the first run), trains
EGNN for ``--time-limit`` seconds on the 3000 training systems, and prints the test MSE at the best
validation epoch and the trained model's equivariance error measured in float64. The full protocol
(thousands of epochs) is ``equiv train nbody`` / ``benchmarks/nbody.py``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="egnn", help="N-body model (default egnn)")
    parser.add_argument("--time-limit", type=float, default=90.0,
                        help="seconds of training (default 90)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary folder)")


def run(args: argparse.Namespace) -> int:
    import tempfile
    import time

    from equiv.train.nbody import MODELS, train_nbody

    t0 = time.perf_counter()
    print(f"equiv demo: charged 5-body task, {args.model} trained for {args.time_limit:.0f} s on CPU "
          "(3000 training systems, 2000 validation, 2000 test)")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or tmp
        r = train_nbody(model=args.model, epochs=10000, time_limit=args.time_limit,
                        seed=args.seed, out=out, device="cpu", progress=True)
    eq = r["equivariance"]
    published = MODELS[args.model]["published_mse"]
    print()
    print(f"  data generation          {r['data_time_s']:.1f} s (cached for the next run)")
    print(f"  epochs                   {r['epochs_run']} ({r['mean_epoch_s']:.2f} s each), best at {r['best_epoch']}")
    print(f"  test MSE                 {r['test_mse']:.5f}" + (f"   (published after 10000 epochs: {published})"
                                                                if published else ""))
    print(f"  equivariance error       {eq['rel_proper']:.1e} rotations, {eq['rel_improper']:.1e} reflections "
          f"(relative, float64, with translations and permutations)")
    if args.out:
        print(f"  learning curve           {args.out}/learning_curve.png (model: {args.out}/best.pt)")
    print(f"  total                    {time.perf_counter() - t0:.0f} s")
    return 0
