"""Learning curves: what is drawn from a history, errors, and plots skipped without matplotlib."""

import json

import pytest

from equiv.train import curves


def _history(n=6):
    out = []
    for e in range(1, n + 1):
        lr = 0.01 if e < 3 else (0.008 if e < 5 else 0.0064)
        out.append({"epoch": e, "step": 10 * e, "lr": lr, "time_s": 900.0 * e,
                    "train": {"energy_mae": 5.0 / e, "forces_mae": 20.0 / e},
                    "valid": {"energy_mae": 6.0 / e, "forces_mae": 25.0 / e + (3.0 if e == 6 else 0.0)}})
    return out


def test_summary_and_png(tmp_path):
    hist = _history()
    (tmp_path / "history.json").write_text(json.dumps(hist))
    png = tmp_path / "curve.png"
    out = curves.learning_curve(tmp_path, png, title="toy", references={"MACE": (0.4, 2.1), "E only": (1.0, None)},
                                spans=[(0.5, 0.75, "GPU")])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert out["hours"] == pytest.approx(1.5)
    assert out["lr_drops"] == [pytest.approx(0.75), pytest.approx(1.25)]  # epochs 3 and 5
    best = out["best_valid"]  # epoch 6 is worse than epoch 5 on forces
    assert best["epoch"] == 5 and best["forces_mae"] == pytest.approx(5.0) and best["hours"] == pytest.approx(1.25)


def test_train_only_history_and_axes(tmp_path):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    hist = [{k: v for k, v in r.items() if k != "valid"} for r in _history(3)]
    fig, axes = plt.subplots(1, 2)
    out = curves.learning_curve(hist, axes=axes, marks=[(0.4, "restart")])
    assert out["best_valid"] is None and out["lr_drops"] == [pytest.approx(0.75)]
    assert len(axes[1].get_lines()) >= 3  # the training curve, the learning-rate drop and the mark
    assert "restart" in axes[1].get_legend_handles_labels()[1]
    plt.close(fig)


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        curves.learning_curve([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="either"):
        curves.learning_curve(_history(2))


def test_training_without_matplotlib_skips_plots(tmp_path, monkeypatch, capsys):
    import importlib.util

    from potential_helpers import write_lj_dataset

    from equiv.train.potential import resolve_config, train_potential

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    train, test = write_lj_dataset(tmp_path / "train.xyz", 8, seed=0), write_lj_dataset(tmp_path / "test.xyz", 2, seed=1)
    cfg = resolve_config(dict(dataset="extxyz", train_file=train, test_file=[test], valid_fraction=0.25, cutoff=3.5,
                              model="toy", model_kwargs={"channels": 4, "hidden": 8, "num_basis": 4}, batch_size=3, epochs=1,
                              output_dir=str(tmp_path / "run"), progress=False, num_threads=1, device="cpu"))
    report = train_potential(cfg)
    assert report["tests"]["test"]["forces_mae"] > 0
    assert not list((tmp_path / "run").glob("*.png"))
    said = capsys.readouterr().out
    assert "learning_curve.png skipped" in said and "parity_test.png skipped" in said


def test_mse_curve_best_points_and_errors(tmp_path):
    h1 = {"epoch": [1, 2, 3, 4], "train_mse": [0.1, 0.05, 0.01, 0.005], "valid_mse": [0.2, 0.1, 0.12, None]}
    h2 = {"epoch": [1, 2], "train_mse": [0.3, 0.2], "valid_mse": [None, None]}  # never validated: no curve
    best = curves.mse_curve([{"label": "a", "history": h1, "best_epoch": 2}, {"label": "b", "history": h2}],
                            tmp_path / "m.png", title="t", published=0.0043)
    assert best == {"a": (2, 0.1)} and (tmp_path / "m.png").stat().st_size > 5000
    with pytest.raises(ValueError, match="no runs"):
        curves.mse_curve([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="either"):
        curves.mse_curve([{"label": "a", "history": h1}])


def test_energy_only_history(tmp_path):
    """Data without forces: the curve is drawn and the best record is chosen by energy error."""
    hist = [{"epoch": e, "time_s": 60.0 * e, "lr": 0.01, "train": {"energy_mae": 5.0 / e},
             "valid": {"energy_mae": [3.0, 1.0, 2.0][e - 1]}} for e in (1, 2, 3)]
    out = curves.learning_curve(hist, tmp_path / "e.png")
    assert out["best_valid"]["epoch"] == 2 and out["best_valid"]["forces_mae"] is None
    assert (tmp_path / "e.png").stat().st_size > 5000
