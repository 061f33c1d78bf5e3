import json

import pytest
import torch

from equiv.cli import main
from equiv.train.nbody import build_model, load_model, train_nbody

SMALL = dict(model="egnn", num_train=40, num_valid=20, num_test=20, batch_size=10, lr=1e-3,
             model_kwargs=dict(hidden=8, num_layers=1), progress=False, equivariance_systems=2)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    # a private data cache shared by the tests of this module
    monkeypatch.setenv("EQUIV_CACHE", str(tmp_path_factory.getbasetemp() / "nbody-cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_train_writes_results_and_loadable_best(tmp_path):
    r = train_nbody(SMALL, epochs=2, out=str(tmp_path / "run"))
    data = json.loads((tmp_path / "run" / "nbody_egnn.json").read_text())
    assert data["epochs_run"] == 2 and data["best_epoch"] in (1, 2)
    assert data["test_mse"] == r["test_mse"] and 0 < data["test_mse"] < 10
    assert data["equivariance"]["max_rel"] < 1e-12  # EGNN is exactly E(3)-equivariant
    assert data["settings"]["num_train"] == 40
    h = data["history"]  # the learning curve, for benchmarks/nbody.py's figure
    assert h["epoch"] == [1, 2] and all(0 < v < 10 for v in h["train_mse"] + h["valid_mse"])
    assert min(h["valid_mse"]) == pytest.approx(data["best_valid_mse"], rel=1e-5)
    assert (tmp_path / "run" / "learning_curve.png").stat().st_size > 5000
    model = load_model(tmp_path / "run" / "best.pt")
    assert model.nbody_name == "egnn" and not model.training
    # the loaded model reproduces the recorded test MSE
    from equiv.data.nbody import NBodyDataset, generate_charged
    from equiv.train.nbody import evaluate_mse

    d = generate_charged(subset=(40, 20, 20), progress=False)
    mse = evaluate_mse(model, NBodyDataset("test", data=d).tensors())
    assert mse == pytest.approx(data["test_mse"], rel=1e-6)


def test_resume_equals_uninterrupted(tmp_path):
    full = train_nbody(SMALL, epochs=3, out=str(tmp_path / "a"))
    train_nbody(SMALL, epochs=2, out=str(tmp_path / "b"))
    resumed = train_nbody(SMALL, epochs=3, out=str(tmp_path / "b"), resume=True)
    assert resumed["epochs_run"] == 3
    assert resumed["best_valid_mse"] == full["best_valid_mse"]
    assert resumed["test_mse"] == full["test_mse"]
    a, b = load_model(tmp_path / "a" / "checkpoint.pt"), load_model(tmp_path / "b" / "checkpoint.pt")
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_cli_and_mlp_baseline_is_not_equivariant(tmp_path, capsys):
    rc = main(["train", "nbody", "--model", "mlp", "--epochs", "1", "--num-train", "40", "--num-valid", "20",
               "--num-test", "20", "--batch-size", "10", "--augment", "rotation", "--model-arg", "hidden=16",
               "--out", str(tmp_path / "m"), "--no-progress"])
    assert rc == 0
    data = json.loads((tmp_path / "m" / "nbody_mlp.json").read_text())
    assert data["equivariance"]["rel_proper"] > 1e-3  # raw-coordinate MLP: not equivariant
    assert data["settings"]["augment"] == "rotation"


def test_bad_options(tmp_path):
    with pytest.raises(ValueError, match="model must be one of"):
        train_nbody(model="transformer", out=str(tmp_path))
    with pytest.raises(ValueError, match="num_train"):
        train_nbody(model="egnn", num_train=20000, out=str(tmp_path))
    with pytest.raises(ValueError, match="augment"):
        train_nbody(model="egnn", augment="scale", out=str(tmp_path))
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("nope")
    with pytest.raises(ValueError, match="scheduler must be one of none, cosine, cosine-warmup"):
        train_nbody(model="egnn", scheduler="step", out=str(tmp_path))
    with pytest.raises(ValueError, match="warmup"):
        train_nbody(model="egnn", scheduler="cosine-warmup", warmup=-1, out=str(tmp_path))


def test_val_every_and_time_limit(tmp_path):
    r = train_nbody(SMALL, epochs=3, val_every=2, out=str(tmp_path / "v"))
    assert r["epochs_run"] == 3 and r["best_epoch"] in (2, 3)
    assert r["history"]["valid_mse"][0] is None and r["history"]["valid_mse"][1] is not None  # epoch 1 not validated
    r = train_nbody(SMALL, epochs=50, val_every=5, time_limit=0.0, out=str(tmp_path / "t"))
    assert r["epochs_run"] == 1 and r["stop_reason"] == "time_limit" and r["best_epoch"] == 1


def test_time_limit_counts_this_call_on_resume(tmp_path):
    train_nbody(SMALL, epochs=50, time_limit=0.0, out=str(tmp_path / "r"))
    r = train_nbody(SMALL, epochs=50, time_limit=0.0, out=str(tmp_path / "r"), resume=True)
    assert r["epochs_run"] == 2  # one more epoch, although the total time exceeds the limit


def test_ponita_reports_fine_grid_equivariance(tmp_path):
    r = train_nbody({**SMALL, "model": "ponita",
                     "model_kwargs": dict(hidden=4, num_layers=1, num_ori=4, basis_dim=4)},
                    epochs=1, out=str(tmp_path / "p"))
    eq = r["equivariance"]
    assert eq["fine_grid"]["num_ori"] == 16
    assert 0 < eq["fine_grid"]["max_rel"] < eq["max_rel"]


def test_resume_with_other_model_options_is_an_error(tmp_path):
    train_nbody(SMALL, epochs=1, out=str(tmp_path / "r"))
    with pytest.raises(ValueError, match="other model options.*'hidden': \\(8, 16\\)"):
        train_nbody({**SMALL, "model_kwargs": dict(hidden=16, num_layers=1)}, epochs=2, out=str(tmp_path / "r"),
                    resume=True)


def test_segnn_checkpoints_before_gate_norm_load_with_the_plain_gate():
    from equiv.train.nbody import checkpoint_model_kwargs

    old = dict(model="segnn", model_kwargs=dict(hidden=64, num_layers=4, lmax=1, product="cg"))
    assert checkpoint_model_kwargs(old)["gate_norm"] is False
    assert checkpoint_model_kwargs(dict(old, model_kwargs=dict(old["model_kwargs"], gate_norm=True)))["gate_norm"]
    assert checkpoint_model_kwargs(dict(model="egnn", model_kwargs=dict(hidden=8))) == dict(hidden=8)
    assert build_model("segnn", hidden=8, num_layers=1).gate_norm is True


def test_segnn_checkpoints_before_path_normalization_load_with_element():
    """The published setting uses e3nn 0.3.x's "path" normalisation; checkpoints written before the
    option existed were trained with "element" and rebuild that way."""
    from equiv.train.nbody import checkpoint_model_kwargs

    old = dict(model="segnn", model_kwargs=dict(hidden=64, num_layers=4, lmax=1, product="cg", gate_norm=True))
    assert checkpoint_model_kwargs(old)["path_normalization"] == "element"
    new = dict(old, model_kwargs=dict(old["model_kwargs"], path_normalization="path"))
    assert checkpoint_model_kwargs(new)["path_normalization"] == "path"
    assert build_model("segnn", hidden=8, num_layers=1).path_normalization == "path"


def test_resume_with_other_training_settings_is_an_error(tmp_path):
    train_nbody(SMALL, epochs=1, out=str(tmp_path / "r"))
    with pytest.raises(ValueError, match="other settings.*'lr': \\(0.001, 0.002\\)"):
        train_nbody({**SMALL, "lr": 2e-3}, epochs=2, out=str(tmp_path / "r"), resume=True)
    train_nbody({**SMALL, "scheduler": "cosine-warmup"}, epochs=2, out=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="'epochs': \\(2, 4\\)"):  # the schedule's length
        train_nbody({**SMALL, "scheduler": "cosine-warmup"}, epochs=4, out=str(tmp_path / "c"), resume=True)
    r = train_nbody({**SMALL, "scheduler": "cosine-warmup"}, epochs=2, time_limit=60, out=str(tmp_path / "c"),
                    resume=True)  # same settings: resumes (nothing left to run)
    assert r["epochs_run"] == 2


def test_cosine_warmup_schedule_follows_the_reference_formula(tmp_path):
    import math

    from equiv.train.nbody import MODELS, lr_factor

    assert MODELS["ponita"]["train"]["scheduler"] == "cosine-warmup" and MODELS["ponita"]["train"]["warmup"] == 10
    assert lr_factor(0, 10000, 10) == 0.0 and lr_factor(10000, 10000, 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(5, 10000, 10) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 5 / 10000)))
    assert lr_factor(11, 10000, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 11 / 10000)))
    r = train_nbody({**SMALL, "scheduler": "cosine-warmup", "warmup": 2}, epochs=4, out=str(tmp_path / "w"))
    assert r["settings"]["scheduler"] == "cosine-warmup" and r["settings"]["warmup"] == 2
    ck = torch.load(tmp_path / "w" / "checkpoint.pt", weights_only=False)
    assert ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * lr_factor(4, 4, 2), abs=1e-15)
    # epoch 1 runs at learning rate 0 (factor 0), as in the reference: the weights do not move
    frozen = train_nbody({**SMALL, "scheduler": "cosine-warmup", "warmup": 2}, epochs=1, out=str(tmp_path / "z"))
    assert frozen["history"]["train_mse"][0] > 0
    a = torch.load(tmp_path / "z" / "checkpoint.pt", weights_only=False)["state_dict"]
    torch.manual_seed(SMALL.get("seed", 0))
    from equiv.train.nbody import build_model

    b = build_model("egnn", **SMALL["model_kwargs"]).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_tune_malloc_option(tmp_path, monkeypatch):
    """On a CPU the trainer tunes glibc malloc (``equiv.tune_cpu_allocator``) unless told not to."""
    import equiv

    calls = []
    monkeypatch.setattr(equiv, "tune_cpu_allocator", lambda: calls.append(1) or True)
    train_nbody(SMALL, epochs=1, device="cpu", learning_curve=False, out=str(tmp_path / "a"))
    assert calls == [1]
    train_nbody(SMALL, epochs=1, device="cpu", learning_curve=False, tune_malloc=False, out=str(tmp_path / "b"))
    assert calls == [1]
    assert main(["train", "nbody", "--model", "egnn", "--epochs", "1", "--num-train", "40", "--num-valid", "20",
                 "--num-test", "20", "--batch-size", "10", "--model-arg", "hidden=8", "--model-arg", "num_layers=1",
                 "--no-progress", "--no-learning-curve", "--no-tune-malloc", "--device", "cpu",
                 "--out", str(tmp_path / "c")]) == 0
    assert calls == [1]


def _nan_on_calls(monkeypatch, bad):
    """Wrap the built model so that its training forward returns NaN on the given (1-based) calls."""
    import equiv.train.nbody as nb

    real, calls = nb.build_model, [0]

    def poison(module, args, out):
        if module.training:
            calls[0] += 1
            if calls[0] in bad:
                return out * float("nan")
        return out

    def build(name, **kw):
        model = real(name, **kw)
        model.register_forward_hook(poison)
        return model

    monkeypatch.setattr(nb, "build_model", build)


def test_nan_batches_are_skipped_and_divergence_stops(tmp_path, monkeypatch):
    _nan_on_calls(monkeypatch, {3})  # 4 batches per epoch: one bad batch in the first epoch
    r = train_nbody(SMALL, epochs=2, out=str(tmp_path / "one"))
    h = json.loads((tmp_path / "one" / "nbody_egnn.json").read_text())["history"]
    assert all(0 < v < 10 for v in h["train_mse"] + h["valid_mse"]) and 0 < r["test_mse"] < 10
    _nan_on_calls(monkeypatch, set(range(1, 1000)))
    with pytest.raises(FloatingPointError, match="10 steps in a row with a NaN or inf gradient"):
        train_nbody(SMALL, epochs=5, out=str(tmp_path / "all"))


def test_compiled_training_matches_eager(tmp_path):
    """`--compile` trains the compiled model (the constant-velocity baseline: one parameter, compiles in
    seconds) and ends where eager training ends."""
    cfg = dict(SMALL, model="linear", model_kwargs={}, epochs=3, lr=1e-2)
    eager = train_nbody(cfg, out=str(tmp_path / "eager"))
    compiled = train_nbody(cfg, out=str(tmp_path / "compiled"), compile=True)
    assert json.loads((tmp_path / "compiled" / "nbody_linear.json").read_text())["settings"]["compile"] is True
    assert compiled["test_mse"] == pytest.approx(eager["test_mse"], rel=1e-5)
    t_eager = load_model(tmp_path / "eager" / "best.pt").time.item()
    t_compiled = load_model(tmp_path / "compiled" / "best.pt").time.item()
    assert t_compiled == pytest.approx(t_eager, rel=1e-5) and t_compiled != pytest.approx(0.7, abs=1e-3)  # it trained
