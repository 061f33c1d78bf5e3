"""`equiv nero`: loads a checkpoint, evaluates along orbits, writes PNGs and a Markdown page."""

import json

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
