from equiv.bench_cli import available, benchmarks_dir
from equiv.cli import main


def test_benchmarks_dir_found():
    assert (benchmarks_dir() / "run_all.py").is_file()
    assert "run_all" not in available()


def test_unknown_benchmark_is_an_error(capsys):
    assert main(["bench", "no_such_benchmark"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
