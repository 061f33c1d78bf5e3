import pytest

from equiv.bench_cli import available, benchmarks_dir
from equiv.cli import main


def test_benchmarks_dir_found():
    assert (benchmarks_dir() / "run_all.py").is_file()
    assert "run_all" not in available()


def test_unknown_benchmark_is_an_error(capsys):
    assert main(["bench", "no_such_benchmark"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_rmd17_long_run_records_hardware_per_stretch():
    """`benchmarks/rmd17.py --long` keeps where each stretch of a resumed run trained (merging
    consecutive calls on the same hardware) and ends each stretch at the training time reached."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("rmd17_bench", benchmarks_dir() / "rmd17.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def entry(device, machine, budget, reached):
        return dict(device=device, machine=f"{machine}, load average 1.0 at start", budget_minutes_per_model=budget,
                    reports={"equiv-cg": {"train_time_s": 60 * reached}})

    cpu = mod._segments(None, entry("cpu", "2 CPUs", 65, 65))
    assert cpu == [dict(device="cpu", machine="2 CPUs", until_minutes=65)]
    gpu = mod._segments(dict(entry("cpu", "2 CPUs", 65, 65), segments=cpu), entry("cuda", "H100", 80, 78.5))
    assert [s["until_minutes"] for s in gpu] == [65, 78.5] and gpu[1]["machine"] == "H100"
    more = mod._segments(dict(entry("cuda", "H100", 80, 78.5), segments=gpu), entry("cuda", "H100", 90, 90))
    assert [s["until_minutes"] for s in more] == [65, 90]
    legacy = mod._segments(entry("cpu", "2 CPUs", 65, 65), entry("cuda", "H100", 80, 80))  # no stored segments
    assert [(s["device"], s["until_minutes"]) for s in legacy] == [("cpu", 65), ("cuda", 80)]


def test_rmd17_long_run_restart_continues_history_and_checkpoints_are_kept(tmp_path):
    """A restarted long run (checkpoint lost, continued from the saved model) continues the kept
    history's epochs, steps and time; and a kept checkpoint seeds the run folder of a fresh clone."""
    import importlib.util
    import json

    import torch

    spec = importlib.util.spec_from_file_location("rmd17_bench", benchmarks_dir() / "rmd17.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    keep, run = tmp_path / "keep", tmp_path / "run"
    keep.mkdir()
    run.mkdir()
    before = [{"epoch": e, "step": 10 * e, "time_s": 60.0 * e} for e in (1, 2, 3)]
    (keep / "history.json").write_text(json.dumps(before))
    restart = mod._new_restart(keep, "model.pt", 0.008, 1)
    assert (restart["at_epoch"], restart["at_step"], restart["at_minutes"]) == (3, 30, 3.0)
    (run / "history.json").write_text(json.dumps([{"epoch": 1, "step": 7, "time_s": 30.0}]))
    report = {"train_time_s": 30.0, "global_step": 7, "epochs_completed": 1, "best_epoch": 1}
    mod._merge_restarted_history(keep, run, restart, report)
    merged = json.loads((keep / "history.json").read_text())
    assert [(h["epoch"], h["step"], h["time_s"]) for h in merged[-2:]] == [(3, 30, 180.0), (4, 37, 210.0)]
    assert (report["train_time_s"], report["global_step"], report["epochs_completed"], report["best_epoch"]) == (
        210.0, 37, 4, 4)
    assert json.loads((keep / "history_before_restart_1.json").read_text()) == before

    torch.save({"step": 5}, run / "checkpoint.pt")
    assert mod.common.keep_checkpoint(run, keep)
    fresh = mod.common.seed_long_run(tmp_path / "no-bench-run", tmp_path / "clone" / "run", kept=keep)
    assert torch.load(fresh / "checkpoint.pt", weights_only=True) == {"step": 5}
    # a checkpoint above the size cap stays in runs/ only, and a stale kept copy is removed
    size = (run / "checkpoint.pt").stat().st_size
    assert not mod.common.keep_checkpoint(run, keep, max_bytes=size - 1)
    assert not (keep / "checkpoint.pt").exists()
    assert mod.common.keep_checkpoint(run, keep, max_bytes=size)


def test_soft_equivariance_merges_runs_by_seed(tmp_path):
    """`benchmarks/soft_equivariance.py --merge`: seeds run in separate processes combine by seed
    (a run already collected, e.g. by this invocation, wins over the same seed in a file merged
    later), the summary is recomputed from the runs, and a file with a different training setup is
    not merged."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("soft_bench", benchmarks_dir() / "soft_equivariance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def run(seed, mse, strengths=None):
        r = {"seed": seed, "test_mse": mse, "equivariance_error": {"O(3)": 0.1 * mse}}
        if strengths:
            r["strengths"] = strengths
        return r

    def payload(epochs, runs):
        cfg = {"epochs": epochs, "lr": 3e-3, "seeds": len(next(iter(runs.values()))), "seed_start": 0}
        return {"config": cfg, "results": {"inertia": {"runs": runs, "summary": mod._summarize(runs), "config": cfg}}}

    a = payload(8000, {"soft": [run(0, 1.0, {"O(3)": 0.2, "O(2)_z": 100.0})], "mlp": [run(0, 4.0)]})
    b = payload(8000, {"soft": [run(1, 3.0, {"O(3)": 100.0, "O(2)_z": 0.5}), run(0, 2.0, {"O(3)": 0.4, "O(2)_z": 100.0})]})
    other = payload(150, {"mlp": [run(1, 9.0)]})
    results = {}
    for p in (a, b, other):
        mod._merge_payload(results, json.loads(json.dumps(p)))
    runs = results["inertia"]["runs"]
    assert [r["seed"] for r in runs["soft"]] == [0, 1]
    assert [r["test_mse"] for r in runs["soft"]] == [1.0, 3.0]  # seed 0 collected first wins over b's
    assert [r["test_mse"] for r in runs["mlp"]] == [4.0]  # the 150-epoch file has a different setup
    s = results["inertia"]["summary"]["soft"]
    assert s["test_mse_mean"] == 2.0 and abs(s["test_mse_std"] - 2 ** 0.5) < 1e-12
    assert s["strengths_mean"] == {"O(3)": 50.1, "O(2)_z": 50.25}
    assert s["ranking_per_seed"] == [["O(2)_z", "O(3)"], ["O(3)", "O(2)_z"]]
    assert mod._merge_runs([{"test_mse": 5.0}], [run(1, 6.0)])[0]["seed"] == 0  # runs stored before seeds were recorded


def test_tensor_products_case_option():
    """`benchmarks/tensor_products.py --case SECTION:C:BATCH:L`: parsed strictly, and the repeats
    table reports each round and the min / median / max of the forward+backward ratio."""
    import argparse
    import importlib.util

    import pytest

    spec = importlib.util.spec_from_file_location("tp_bench", benchmarks_dir() / "tensor_products.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.parse_case("cg:64:1024:2") == ("cg", 64, 1024, 2)
    assert mod.parse_case("gaunt:16:1024:8") == ("gaunt", 16, 1024, 8)
    for bad in ("cg:64:1024", "mp:1:2:3", "cg:0:1024:2", "cg:a:1024:2"):
        with pytest.raises(argparse.ArgumentTypeError):
            mod.parse_case(bad)

    def row(r, ours_fwd, ours_bwd):
        times = {"e3nn_fwd": {"median_s": 0.2}, "e3nn_bwd": {"median_s": 0.4},
                 "grid_fwd": {"median_s": ours_fwd}, "grid_bwd": {"median_s": ours_bwd}}
        out = dict(C=16, B=1024, L=6, section="gaunt", round=r, ours="grid", times=times)
        out.update(ratio_fwd=0.2 / ours_fwd, ratio_fwd_bwd=mod._fwd_bwd_ratio(out, "e3nn", "grid"))
        return out

    rows = [row(0, 0.01, 0.02), row(1, 0.02, 0.04), row(2, 0.01, 0.01)]
    assert [r["ratio_fwd_bwd"] for r in rows] == pytest.approx([20.0, 10.0, 30.0])
    machine = {"cpu": "cpu", "torch_threads": 1, "torch": "2"}
    run1 = {"command": "x", "commit": "aaa", "wall_s": 60.0, "repeat": 5, "load_start": [1, 1, 1], "rows": rows,
            "machine": machine}
    cg = [dict(section="cg", C=64, B=1024, L=2, round=i, ours="equiv", ratio_fwd=1.5, ratio_fwd_bwd=v,
               times={"e3nn_fwd": {"median_s": 0.2}, "equiv_fwd": {"median_s": 0.1}}) for i, v in enumerate((1.7, 2.1, 2.2))]
    run2 = dict(run1, command="y", commit="bbb", rows=cg + [dict(rows[0], round=0, ratio_fwd_bwd=25.0)])
    # a file from before runs were kept is one run; the summary takes the newest run of each case
    assert mod.case_runs(run1) == [run1] and mod.case_runs({"runs": [run1, run2]}) == [run1, run2]
    text = mod.cases_markdown({"runs": [run1, run2]})
    assert "| gaunt | 16 | 1024 | 6 | 25.00 / 25.00 / 25.00 | 1 | 2 (bbb) |" in text
    assert "| cg | 64 | 1024 | 2 | 1.70 / 2.10 / 2.20 | 3 | 2 (bbb) |" in text
    assert "## Run 1" in text and "## Run 2" in text and text.count("| gaunt | 16 | 1024 | 6 |") == 5  # 3 + 1 + summary
    only1 = mod.cases_markdown(run1)
    assert "| gaunt | 16 | 1024 | 6 | 10.00 / 20.00 / 30.00 | 3 | 1 (aaa) |" in only1
    # the main results' target summary quotes the newest repeats' medians (same allocator, not --quick)
    import json
    import tempfile
    from pathlib import Path

    cases = Path(tempfile.mkdtemp()) / "cases.json"
    cases.write_text(json.dumps({"runs": [dict(run1, malloc="default"), dict(run2, malloc="tuned")]}))
    lines = mod.repeated_targets({"command": "benchmarks/tensor_products.py", "malloc": "default"}, cases)
    assert "  - gaunt C=16 batch 1024 L=6: 20.000x (10.00-30.00, 3 rounds, run 1, code aaa) (MET, target 20x)" in lines
    assert not any("cg C=64" in line for line in lines)  # measured with the other allocator setting only
    tuned = mod.repeated_targets({"command": "x", "malloc": "tuned"}, cases)
    assert "  - cg C=64 batch 1024 L=2: 2.100x (1.70-2.20, 3 rounds, run 2, code bbb) (MET, target 2x)" in tuned
    assert mod.repeated_targets({"command": "x --quick", "malloc": "default"}, cases) == []


def test_nbody_learning_curves_figure(tmp_path, monkeypatch):
    """`benchmarks/nbody.py --table` draws one panel per model from the results' histories (quick runs
    and results without a history are left out) and links the figure from nbody.md."""
    import importlib.util
    import json

    spec = importlib.util.spec_from_file_location("nbody_bench", benchmarks_dir() / "nbody.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    eq = {"rel_proper": 1e-16, "rel_improper": 1e-16}
    base = dict(model_kwargs={}, published_test_mse=0.0071, test_mse=0.007, best_valid_mse=0.008, best_epoch=2,
                epochs_run=3, epochs_planned=3, stop_reason="epochs", wall_time_s=10.0, mean_epoch_s=3.0, device="cpu",
                equivariance=eq)
    hist = {"epoch": [1, 2, 3], "train_mse": [0.1, 0.01, 0.005], "valid_mse": [0.1, 0.008, None]}
    (tmp_path / "nbody_egnn_cpu.json").write_text(json.dumps(dict(base, model="egnn", history=hist)))
    (tmp_path / "nbody_quick_egnn.json").write_text(json.dumps(dict(base, model="egnn", history=hist)))
    (tmp_path / "nbody_segnn_gpu.json").write_text(json.dumps(dict(base, model="segnn")))
    # another program's outputs kept beside the runs (no "model"): not a row, not a curve
    (tmp_path / "nbody_fa_gnn_reference_code.json").write_text(json.dumps({"what": "x", "history": hist}))
    assert not (tmp_path / "nbody.png").exists()
    md = mod.write_table().read_text()
    assert (tmp_path / "nbody.png").stat().st_size > 5000 and "![N-body learning curves](nbody.png)" in md
    assert md.count("| egnn_cpu |") == 1 and md.count("| segnn_gpu |") == 1 and "reference_code" not in md
    (tmp_path / "nbody_egnn_cpu.json").write_text(json.dumps(dict(base, model="egnn")))
    (tmp_path / "nbody.png").unlink()
    assert "nbody.png" not in mod.write_table().read_text() and not (tmp_path / "nbody.png").exists()


def test_nbody_keep_and_seed_resume_from_a_fresh_clone(tmp_path, monkeypatch):
    """`benchmarks/nbody.py --keep` copies the run's checkpoint next to the results; `--resume` in a
    checkout without runs/ continues from it (same epochs and best model as the uninterrupted run)."""
    import importlib.util

    from equiv.train.nbody import train_nbody

    spec = importlib.util.spec_from_file_location("nbody_bench", benchmarks_dir() / "nbody.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setenv("EQUIV_CACHE", str(tmp_path / "cache"))
    small = dict(model="egnn", num_train=40, num_valid=20, num_test=20, batch_size=10, lr=1e-3, device="cpu",
                 model_kwargs=dict(hidden=8, num_layers=1), progress=False, equivariance_systems=2,
                 learning_curve=False)
    full = train_nbody(small, epochs=3, out=str(tmp_path / "full"))
    run, kept, clone = tmp_path / "run", tmp_path / "kept", tmp_path / "clone"
    train_nbody(small, epochs=2, out=str(run))
    assert mod.keep_run(run, kept)
    assert sorted(p.name for p in kept.iterdir()) == ["best.pt", "checkpoint.pt"]
    assert mod.seed_run(clone, kept) and not mod.seed_run(clone, kept)  # seeds once, never over a local one
    resumed = train_nbody(small, epochs=3, out=str(clone), resume=True)
    assert resumed["epochs_run"] == 3
    assert resumed["test_mse"] == pytest.approx(full["test_mse"], rel=1e-6)
    assert not mod.keep_run(run, tmp_path / "too-big", max_bytes=10)
    assert not (tmp_path / "too-big").exists()


def test_every_benchmark_takes_quick():
    """`make bench` runs every script with --quick (benchmarks/run_all.py): each must accept it."""
    import pathlib

    here = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = [p for p in here.glob("*.py") if not p.stem.startswith("_") and p.stem != "run_all"]
    assert len(scripts) > 10
    missing = [p.name for p in scripts if '"--quick"' not in p.read_text()]
    assert not missing, f"benchmarks without --quick: {missing}"
