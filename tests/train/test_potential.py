"""equiv train potential: config handling, a short training run, exact resume, saved models."""

import json

import pytest
import torch
import yaml
from potential_helpers import write_lj_dataset

from equiv.cli import main
from equiv.train import load_potential
from equiv.train.checkpoint import load_checkpoint
from equiv.train.potential import resolve_config, train_potential


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("lj")
    return write_lj_dataset(d / "train.xyz", 12, seed=0), write_lj_dataset(d / "test.xyz", 4, seed=1)


def config(data, out, **kw):
    cfg = dict(dataset="extxyz", train_file=data[0], test_file=[data[1]], valid_fraction=0.25, cutoff=3.5,
               model="toy", model_kwargs={"channels": 4, "hidden": 8, "num_basis": 4}, batch_size=3, epochs=2, lr=0.01,
               output_dir=str(out), progress=False, num_threads=1, device="cpu")
    cfg.update(kw)
    return resolve_config(cfg)


def test_config_precedence_and_errors(tmp_path):
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml.safe_dump({"lr": 0.002, "batch-size": 7, "model_kwargs": {"channels": 3}, "ema": False}))
    cfg = resolve_config({"config": str(p), "batch_size": 9, "lr": None})
    assert (cfg["lr"], cfg["batch_size"], cfg["model_kwargs"], cfg["ema"]) == (0.002, 9, {"channels": 3}, False)
    assert cfg["optimizer"] == "amsgrad"  # default kept
    assert cfg["model"] == "mace"  # the default potential
    p.write_text(yaml.safe_dump({"learning_rate": 0.1}))
    with pytest.raises(ValueError, match="unknown option 'learning_rate'"):
        resolve_config({"config": str(p)})
    with pytest.raises(ValueError, match="optimizer"):
        resolve_config({"optimizer": "sgd"})
    with pytest.raises(ValueError, match="train_file"):
        resolve_config({"dataset": "extxyz"})
    with pytest.raises(ValueError, match="batch_size"):
        resolve_config({"batch_size": 0})
    for bad, message in ((dict(lr=-1e-3), "lr: must be >= 0"), (dict(forces_weight=-1.0), "forces_weight: must be >= 0"),
                         (dict(ema_decay=1.0), r"ema_decay: must be in \(0, 1\)"), (dict(patience=0), "patience: must be >= 1"),
                         (dict(clip_grad=0.0), "clip_grad: must be > 0"), (dict(device="tpu"), "device: expected auto"),
                         (dict(max_nonfinite_steps=0), "max_nonfinite_steps: must be >= 1")):
        with pytest.raises(ValueError, match=message):
            resolve_config(bad)
    assert resolve_config({"clip_grad": None, "patience": None, "device": "cuda:1"})["device"] == "cuda:1"


def test_cli_flags_parse():
    from equiv.cli import build_parser

    args = build_parser("train").parse_args(
        ["train", "potential", "--molecule", "aspirin", "--no-ema", "--lr", "1e-3", "--model-kwargs", "{channels: 4}"])
    cfg = resolve_config(args)
    assert cfg["molecule"] == "aspirin" and cfg["ema"] is False and cfg["lr"] == 1e-3
    assert cfg["model_kwargs"] == {"channels": 4}


def test_train_report_and_saved_model(data, tmp_path):
    out = tmp_path / "run"
    rc = main(["train", "potential", "--dataset", "extxyz", "--train-file", data[0], "--test-file", data[1],
               "--valid-fraction", "0.25", "--cutoff", "3.5", "--model", "toy", "--model-kwargs", "{channels: 4, hidden: 8}",
               "--batch-size", "3", "--epochs", "4", "--output-dir", str(out), "--no-progress", "--device", "cpu"])
    assert rc == 0
    report = json.loads((out / "test_report.json").read_text())
    m = report["tests"]["test"]
    assert m["n_structures"] == 4
    for key in ("energy_mae", "energy_rmse", "forces_mae", "forces_rmse"):
        assert m[key] > 0 and m[key] == m[key]
    assert m["energy_rmse"] >= m["energy_mae"] and m["forces_rmse"] >= m["forces_mae"]
    assert (out / "parity_test.png").stat().st_size > 1000
    assert (out / "learning_curve.png").stat().st_size > 1000
    assert "F MAE (meV/Å)" in (out / "test_report.md").read_text()
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    # training reduces the validation loss
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]
    model, meta = load_potential(out / "model.pt", return_metadata=True)
    assert model.species == [1, 6, 8] and model.cutoff == 3.5 and meta["config"]["batch_size"] == 3
    # E0 from least squares (no isolated atoms in the file) are stored with the model
    assert len(model.hparams["atomic_energies"]) == 3
    # `equiv evaluate` on the test file reproduces the training run's test report
    ev = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(out / "model.pt"), "--data", data[1], "--output", str(ev),
                 "--no-progress", "--device", "cpu"]) == 0
    metrics = json.loads(ev.read_text())["metrics"]
    for key in ("energy_mae", "forces_rmse"):
        assert metrics[key] == pytest.approx(m[key], rel=1e-12)


def test_resume_is_exact(data, tmp_path):
    full = train_potential(config(data, tmp_path / "full", test=False))
    assert full["global_step"] == 6  # 9 training structures, batch 3, 2 epochs
    part = train_potential(config(data, tmp_path / "part", max_steps=4, test=False))
    assert part["global_step"] == 4 and part["stop_reason"] == "max_steps"
    ck = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    assert (ck["epoch"], ck["step_in_epoch"]) == (1, 1)  # stopped inside the second epoch
    resumed = train_potential(config(data, tmp_path / "part", max_steps=None, test=False))
    assert resumed["global_step"] == 6
    a = load_checkpoint(tmp_path / "full" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    for key in a["model_state"]:
        assert torch.equal(a["model_state"][key], b["model_state"][key]), key
    for sa, sb in zip(a["ema_state"]["shadow"], b["ema_state"]["shadow"]):
        assert torch.equal(sa, sb)
    assert a["history"][-1]["valid"] == b["history"][-1]["valid"]
    assert a["best_metric"] == b["best_metric"]


def test_resume_refuses_a_different_run(data, tmp_path):
    train_potential(config(data, tmp_path / "r", max_steps=1, test=False))
    with pytest.raises(ValueError, match="lr"):
        train_potential(config(data, tmp_path / "r", lr=0.5, test=False))


def test_example_configs_resolve():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "examples" / "configs"
    configs = sorted(folder.glob("*.yaml"))
    assert len(configs) >= 4
    from equiv.models import get_potential_class

    for p in configs:
        cfg = resolve_config({"config": str(p)})
        assert cfg["model"] and cfg["cutoff"] > 0
        # the model the config names builds with its model_kwargs
        model = get_potential_class(cfg["model"])(species=[1, 6, 8], cutoff=cfg["cutoff"], **cfg["model_kwargs"])
        assert sum(q.numel() for q in model.parameters()) > 0
    assert {resolve_config({"config": str(p)})["model"] for p in configs} >= {"mace", "nequip"}


def test_init_model_starts_from_saved_weights(data, tmp_path):
    first = train_potential(config(data, tmp_path / "a", epochs=3, test=False))
    saved = load_potential(first["model_path"])
    # one step at lr 0: the model of the new run is the saved one, hyper-parameters (E0, statistics) included
    cfg = config(data, tmp_path / "b", init_model=first["model_path"], max_steps=1, lr=0.0, ema=False, test=False,
                 model_kwargs={"channels": 99})  # model_kwargs come from the saved model, not the config
    train_potential(cfg)
    again = load_potential(tmp_path / "b" / "model.pt")
    assert again.hparams == saved.hparams
    for (k, a), b in zip(saved.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    # an ordinary step moves the weights away from the saved ones
    train_potential(config(data, tmp_path / "c", init_model=first["model_path"], max_steps=1, ema=False, test=False))
    moved = load_potential(tmp_path / "c" / "model.pt")
    assert any(not torch.equal(a, b) for a, b in zip(saved.parameters(), moved.parameters()))
    with pytest.raises(FileNotFoundError, match="init_model: no saved potential"):
        train_potential(config(data, tmp_path / "e", init_model=str(tmp_path / "missing.pt"), test=False))
    from ase.io import write
    from potential_helpers import lj_frames

    frames = lj_frames(8, seed=3)
    frames[0].numbers[0] = 7  # nitrogen: not a species of the saved model
    write(str(tmp_path / "with_n.xyz"), frames, format="extxyz")
    with pytest.raises(ValueError, match="no parameters for the species \\['N'\\]"):
        train_potential(config((str(tmp_path / "with_n.xyz"), data[1]), tmp_path / "f", init_model=first["model_path"],
                               test=False))
    with pytest.raises(ValueError, match="not a saved equiv potential"):
        train_potential(config(data, tmp_path / "d", init_model=str(tmp_path / "a" / "checkpoint.pt"), test=False))


def _poisoned(monkeypatch, bad_calls):
    """Make the training forward return a NaN energy on the given (1-based) training calls."""
    import equiv.train.potential as tp_mod

    real, calls = tp_mod.predict_properties, [0]

    def predict(model, batch, **kw):
        out = real(model, batch, **kw)
        if kw.get("training"):
            calls[0] += 1
            if calls[0] in bad_calls:
                out = dict(out, energy=out["energy"] * float("nan"))
        return out

    monkeypatch.setattr(tp_mod, "predict_properties", predict)


def test_nonfinite_gradient_steps_are_skipped(data, tmp_path, monkeypatch):
    _poisoned(monkeypatch, {2})
    report = train_potential(config(data, tmp_path / "nan", test=False))
    assert report["global_step"] == 6 and report["skipped_steps"] == 1
    ck = load_checkpoint(tmp_path / "nan" / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for v in ck["model_state"].values() if v.is_floating_point())
    assert ck["history"][-1]["skipped_steps"] == 1 and ck["history"][-1]["valid_loss"] == ck["history"][-1]["valid_loss"]


def test_divergence_stops_with_a_clear_error(data, tmp_path, monkeypatch):
    _poisoned(monkeypatch, set(range(1, 100)))
    with pytest.raises(FloatingPointError, match="3 steps in a row with a NaN or inf gradient"):
        train_potential(config(data, tmp_path / "div", test=False, max_nonfinite_steps=3))


def test_e0s_option_every_form(data, tmp_path):
    """e0s: auto (isolated frames in train_file, else least squares), least_squares, isolated, zero, a
    file of isolated atoms, or a mapping by symbol or atomic number."""
    from ase import Atoms
    from ase.io import read, write

    from equiv.data import least_squares_e0
    from equiv.train.potential import load_data

    def e0_of(train_file, **kw):
        return load_data(config((train_file, data[1]), tmp_path / "unused", **kw))[3]

    isolated = []
    for z, e in ((1, -13.6), (6, -1027.0), (8, -2038.0)):
        a = Atoms(numbers=[z], positions=[[0.0, 0.0, 0.0]])
        a.info["REF_energy"] = e
        isolated.append(a)
    write(str(tmp_path / "e0.xyz"), isolated, format="extxyz")
    with_isolated = str(tmp_path / "with_isolated.xyz")
    write(with_isolated, isolated + read(data[0], index=":"), format="extxyz")
    expected = {1: -13.6, 6: -1027.0, 8: -2038.0}

    assert e0_of(with_isolated, e0s="auto") == expected == e0_of(with_isolated, e0s="isolated")
    assert e0_of(data[0], e0s=str(tmp_path / "e0.xyz")) == expected
    assert e0_of(data[0], e0s={"H": -13.6, 6: -1027.0, "8": -2038.0}) == expected
    assert e0_of(data[0], e0s="zero") == {1: 0.0, 6: 0.0, 8: 0.0}
    train = load_data(config(data, tmp_path / "unused", e0s="least_squares"))[0]
    ls = e0_of(data[0], e0s="least_squares")
    assert ls == e0_of(data[0], e0s="auto") and ls == pytest.approx(least_squares_e0(train, [1, 6, 8]))
    with pytest.raises(ValueError, match="'isolated' but train_file has no isolated-atom frames"):
        e0_of(data[0], e0s="isolated")
    with pytest.raises(ValueError, match="unknown element 'Xx'"):
        e0_of(data[0], e0s={"Xx": 1.0})
    with pytest.raises(ValueError, match=r"no isolated-atom energy for element\(s\) \['O'\]"):
        e0_of(data[0], e0s={"H": -13.6, "C": -1027.0})


def test_evaluate_writes_predictions_labelled_or_not(data, tmp_path, capsys):
    """`equiv evaluate --predictions out.xyz`: every structure with its predicted energy and forces (and
    stress for periodic cells), equal to the ASE calculator's; labels are kept and need not exist."""
    import numpy as np
    from ase.build import bulk
    from ase.io import read, write

    from equiv.calculators import EquivCalculator
    from equiv.models import ToyPotential
    from equiv.train import save_potential

    torch.manual_seed(0)
    model_path = tmp_path / "m.pt"
    save_potential(ToyPotential(species=[1, 6, 8], cutoff=3.5, atomic_energies=[-1.0, -2.0, -3.0], channels=4).double(),
                   model_path)
    calc = EquivCalculator(model_path)
    out = tmp_path / "pred.xyz"
    assert main(["evaluate", "--model", str(model_path), "--data", data[1], "--predictions", str(out),
                 "--no-progress", "--device", "cpu"]) == 0
    assert "forces_mae" in capsys.readouterr().out
    frames, refs = read(str(out), index=":"), read(data[1], index=":")
    assert len(frames) == len(refs) == 4
    for got, ref in zip(frames, refs):
        assert got.info["REF_energy"] == pytest.approx(ref.info["REF_energy"], abs=1e-9)
        np.testing.assert_allclose(got.arrays["REF_forces"], ref.arrays["REF_forces"], atol=1e-9)
        ref.calc = calc
        assert got.info["equiv_energy"] == pytest.approx(ref.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(got.arrays["equiv_forces"], ref.get_forces(), atol=1e-8)
    # unlabelled periodic structures: predictions only, stress included (Voigt, eV/Å^3)
    cells = [bulk("C", "diamond", a=3.6), bulk("C", "diamond", a=3.7) * (1, 1, 2)]
    write(str(tmp_path / "cells.xyz"), cells, format="extxyz")
    assert main(["evaluate", "--model", str(model_path), "--data", str(tmp_path / "cells.xyz"), "--predictions",
                 str(out), "--prefix", "toy_", "--no-progress", "--device", "cpu"]) == 0
    assert "no reference labels: predictions only" in capsys.readouterr().out
    for got, cell in zip(read(str(out), index=":"), cells):
        assert "REF_energy" not in got.info
        cell.calc = calc
        assert got.info["toy_energy"] == pytest.approx(cell.get_potential_energy(), abs=1e-8)
        np.testing.assert_allclose(got.arrays["toy_forces"], cell.get_forces(), atol=1e-8)
        np.testing.assert_allclose(got.info["toy_stress"], cell.get_stress(voigt=True), atol=1e-8)
    with pytest.raises(KeyError, match="no frame has energy labels"):  # without --predictions, labels are required
        from equiv.train.evaluate_cli import load_eval_data

        load_eval_data(str(tmp_path / "cells.xyz"))
