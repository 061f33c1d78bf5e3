"""torchrun with 2 CPU processes (gloo) gives the same training as 1 process, up to float order."""

import os
import subprocess
import sys

import pytest
import torch
from potential_helpers import write_lj_dataset

from equiv.train.checkpoint import load_checkpoint
from equiv.train.distributed import all_reduce_sum, init_distributed
from equiv.train.potential import resolve_config, train_potential


ARGS = dict(dataset="extxyz", valid_fraction=0.2, cutoff=3.5, batch_size=4, epochs=2, lr=0.01, device="cpu",
            model="toy", model_kwargs="{channels: 4, hidden: 8, num_basis: 4}", progress=False, test=False)


def test_single_process_helpers_are_noops():
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.distributed, info.backend) == (0, 1, False, None)
    t = torch.arange(3.0)
    assert torch.equal(all_reduce_sum(t), t)


@pytest.mark.slow
def test_torchrun_two_processes_match_one(tmp_path):
    train = write_lj_dataset(tmp_path / "train.xyz", 10, seed=0)  # 8 train + 2 valid, 2 batches of 4 per epoch
    flags = []
    for k, v in ARGS.items():
        flag = "--" + k.replace("_", "-")
        flags += [flag] if v is True else [f"--no-{flag[2:]}"] if v is False else [flag, str(v)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "equiv", "train", "potential", "--train-file", train, "--output-dir", str(tmp_path / "ddp"), *flags]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stderr

    one = train_potential(resolve_config(dict(ARGS, train_file=train, output_dir=str(tmp_path / "one"), num_threads=1)))
    a = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    assert a["global_step"] == b["global_step"] == one["global_step"] == 4
    # identical weights up to floating-point summation order
    for key, va in a["model_state"].items():
        torch.testing.assert_close(va, b["model_state"][key], rtol=1e-10, atol=1e-12)
    for key in ("energy_mae", "forces_mae"):
        assert a["history"][-1]["valid"][key] == pytest.approx(b["history"][-1]["valid"][key], rel=1e-10)
    assert a["history"][0]["train"]["forces_mae"] == pytest.approx(b["history"][0]["train"]["forces_mae"], rel=1e-10)
