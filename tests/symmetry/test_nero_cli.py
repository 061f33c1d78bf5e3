"""`equiv nero`: loads a checkpoint, evaluates along orbits, writes PNGs and a Markdown page."""

import json

import numpy as np
import pytest
import torch

from equiv.cli import main
from equiv.models.digits import DigitsCNN, save_digits_checkpoint
from equiv.symmetry import nero_cli


def test_nero_digits_report(tmp_path, capsys):
    torch.manual_seed(0)
    ckpt = tmp_path / "digits.pt"
    save_digits_checkpoint(ckpt, DigitsCNN(channels=4), {"note": "untrained"})
    out = tmp_path / "report"
    rc = main(["nero", str(ckpt), "--out", str(out), "--samples", "12", "--num-points", "8", "--sample-plots", "1"])
    assert rc == 0
    page = (out / "report.md").read_text()
    assert "so2_confidence_truth.png" in page and "so2_accuracy_consensus.png" in page
    for name in ("so2_confidence_truth", "so2_accuracy_consensus"):
        assert (out / f"{name}.png").stat().st_size > 3000
        assert (out / f"{name}_samples.png").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["so2_confidence_truth"]["reference"] == "ground truth"
    assert summary["so2_accuracy_consensus"]["reference"] == "consensus"
    assert 0.0 <= summary["so2_accuracy_consensus"]["mean"] <= 1.0
    assert "wrote" in capsys.readouterr().out


def test_nero_nbody_report(tmp_path, monkeypatch):
    """An N-body checkpoint written by `equiv train nbody`'s format, with synthetic test systems."""
    from equiv.train import nbody as tn

    model = tn.build_model("mlp")
    ckpt = tmp_path / "mlp.pt"
    from equiv.train.checkpoint import save_checkpoint

    save_checkpoint(ckpt, {"format": "equiv-nbody-v1", "model": "mlp", "model_kwargs": {}, "dtype": "float32",
                           "state_dict": model.state_dict(), "epoch": 0})
    gen = torch.Generator().manual_seed(0)

    def fake(samples, dtype):
        x, v, y = (torch.randn(samples, 5, 3, generator=gen, dtype=dtype) for _ in range(3))
        q = torch.randint(0, 2, (samples, 5, 1), generator=gen).to(dtype) * 2 - 1
        return x, v, q, y

    monkeypatch.setattr(nero_cli, "_nbody_test_data", fake)
    out = tmp_path / "r"
    assert main(["nero", str(ckpt), "--group", "so3", "--out", str(out), "--samples", "6", "--num-points", "20", "--num-angles", "2", "--sample-plots", "0"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["so3_l2_consensus"]["mean"] > 1e-4  # an MLP on raw coordinates is not equivariant
    assert (out / "so3_l2_truth.png").exists() and not (out / "so3_l2_truth_samples.png").exists()


def test_nero_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nero_cli.load_for_nero(tmp_path / "missing.pt")
    from equiv.train.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "other.pt", {"format": "something-else"})
    with pytest.raises(ValueError, match="format 'something-else'"):
        nero_cli.load_for_nero(tmp_path / "other.pt")
    save_digits_checkpoint(tmp_path / "d.pt", DigitsCNN(channels=2))
    assert main(["nero", str(tmp_path / "d.pt"), "--group", "lorentz", "--out", str(tmp_path / "x")]) == 2


def _water_extxyz(path, n=3, seed=0):
    """``n`` distorted water molecules with (random) reference forces, as extxyz."""
    import ase.io
    from ase.build import molecule

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        atoms = molecule("H2O")
        atoms.positions += 0.05 * rng.standard_normal(atoms.positions.shape)
        atoms.info["REF_energy"] = float(rng.standard_normal())
        atoms.arrays["REF_forces"] = rng.standard_normal(atoms.positions.shape)
        frames.append(atoms)
    ase.io.write(path, frames, format="extxyz")
    return frames


def test_nero_potential_report(tmp_path):
    """A saved potential along SO(3) and O(3) orbits of water molecules: its forces are equivariant, so
    the consensus error is zero and the error against the reference forces is the same for every
    element (the plain force MAE)."""
    from equiv.data import collate
    from equiv.models import ToyPotential
    from equiv.train import predict_properties, save_potential

    torch.manual_seed(0)
    model = ToyPotential(species=[1, 8], cutoff=3.5, channels=4, hidden=8).double()
    save_potential(model, tmp_path / "model.pt")
    _water_extxyz(tmp_path / "water.xyz")
    from equiv.data import read_extxyz

    frames = read_extxyz(tmp_path / "water.xyz")  # the reference forces as written (8 digits)
    batch = collate([d.with_graph(3.5) for d in frames]).to(dtype=torch.float64)
    forces = predict_properties(model, batch)["forces"].detach().view(3, 3, 3)
    ref = torch.stack([d.forces for d in frames]).to(torch.float64)
    mae = (forces - ref).abs().mean(dim=(1, 2))  # per structure

    for group in ("so3", "o3"):
        out = tmp_path / group
        assert main(["nero", str(tmp_path / "model.pt"), "--data", str(tmp_path / "water.xyz"), "--group", group,
                     "--samples", "3", "--num-points", "10", "--num-angles", "2", "--sample-plots", "0",
                     "--out", str(out)]) == 0
        summary = json.loads((out / "summary.json").read_text())
        truth, consensus = summary[f"{group}_mae_truth"], summary[f"{group}_mae_consensus"]
        assert consensus["mean"] < 1e-12 and truth["orbit_std"] < 1e-12
        assert truth["mean"] == pytest.approx(float(mae.mean()), rel=1e-10)

    # the wrapper itself: copies of the structures in order, forces moved with the positions
    from equiv.so3 import random_rotation

    wrapper, spec = nero_cli.load_for_nero(tmp_path / "model.pt", samples=3, data=str(tmp_path / "water.xyz"))
    pos = spec["inputs"][0]
    R = random_rotation(1, dtype=torch.float64)[0]
    moved = wrapper(torch.cat([pos, pos @ R.T]))
    assert torch.allclose(moved[:3], forces, atol=1e-12) and torch.allclose(moved[3:], forces @ R.T, atol=1e-12)


def test_nero_potential_errors(tmp_path, capsys):
    from equiv.models import ToyPotential
    from equiv.train import save_potential

    save_potential(ToyPotential(species=[1, 8], cutoff=3.5, channels=4, hidden=8), tmp_path / "model.pt")
    _water_extxyz(tmp_path / "water.xyz")
    assert main(["nero", str(tmp_path / "model.pt"), "--out", str(tmp_path / "x")]) == 2
    assert "needs --data" in capsys.readouterr().out
    assert main(["nero", str(tmp_path / "model.pt"), "--data", str(tmp_path / "water.xyz"), "--group", "scaling",
                 "--out", str(tmp_path / "x")]) == 2
    assert "scaling" in capsys.readouterr().out
