import os
import random

import numpy as np
import pytest
import torch

from equiv.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_roundtrip(tmp_path):
    state = {"epoch": 7, "model": {"w": torch.arange(4.0)}, "best": 1.25, "names": ["a", "b"]}
    p = tmp_path / "a" / "b" / "ckpt.pt"
    save_checkpoint(p, state)
    back = load_checkpoint(p)
    assert back["epoch"] == 7 and back["best"] == 1.25 and back["names"] == ["a", "b"]
    assert torch.equal(back["model"]["w"], torch.arange(4.0))
    # no temporary files left behind
    assert sorted(os.listdir(p.parent)) == ["ckpt.pt"]


def test_failed_write_leaves_previous_file(tmp_path):
    p = tmp_path / "ckpt.pt"
    save_checkpoint(p, {"epoch": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        save_checkpoint(p, {"epoch": 2, "bad": Unpicklable()})
    assert load_checkpoint(p)["epoch"] == 1
    assert os.listdir(tmp_path) == ["ckpt.pt"]


def test_errors(tmp_path):
    with pytest.raises(TypeError, match="state"):
        save_checkpoint(tmp_path / "x.pt", [1, 2])
    with pytest.raises(TypeError, match="path"):
        save_checkpoint(3, {})
    with pytest.raises(FileNotFoundError, match="path"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_state_roundtrip(tmp_path):
    s = rng_state()
    save_checkpoint(tmp_path / "rng.pt", {"rng": s})
    a = (random.random(), np.random.rand(), torch.rand(3))
    set_rng_state(load_checkpoint(tmp_path / "rng.pt", weights_only=True)["rng"])
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
