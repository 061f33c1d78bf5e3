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
