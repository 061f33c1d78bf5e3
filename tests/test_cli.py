"""The equiv command: version, help, subcommands, shared options."""

import subprocess
import sys

import pytest

import equiv
from equiv.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert capsys.readouterr().out.strip() == f"equiv {equiv.__version__}"


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ("demo", "train", "nero", "md"):
        assert name in out


def test_module_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "equiv", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "equiv" in out and "train" in out


def test_threads_option():
    """`--threads` of the commands that run models (evaluate, md, nero) sets PyTorch's CPU threads."""
    import argparse

    import torch

    from equiv.cli import add_threads_argument, apply_threads, build_parser

    before = torch.get_num_threads()
    try:
        parser = argparse.ArgumentParser()
        add_threads_argument(parser)
        apply_threads(parser.parse_args(["--threads", "1"]))
        assert torch.get_num_threads() == 1
        with pytest.raises(SystemExit, match="--threads must be >= 1"):
            apply_threads(parser.parse_args(["--threads", "0"]))
        apply_threads(parser.parse_args([]))  # no option: unchanged
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for command in ("evaluate", "md", "nero"):
        sub = build_parser(command)._subparsers._group_actions[0].choices[command]
        assert "--threads" in sub.format_help()


def test_user_errors_print_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EQUIV_TRACEBACK", raising=False)
    missing = str(tmp_path / "missing.pt")
    assert main(["evaluate", "--model", missing, "--data", str(tmp_path / "x.xyz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("equiv evaluate: error: ") and missing in err and "Traceback" not in err
    monkeypatch.setenv("EQUIV_TRACEBACK", "1")  # the full traceback on request
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        main(["evaluate", "--model", missing, "--data", str(tmp_path / "x.xyz")])


def test_missing_optional_package_names_the_extra(capsys, monkeypatch):
    import equiv.train.check_cli as check_cli

    def needs_ase(args):
        raise ModuleNotFoundError("No module named 'ase'", name="ase")

    monkeypatch.delenv("EQUIV_TRACEBACK", raising=False)
    monkeypatch.setattr(check_cli, "run", needs_ase)
    assert main(["check", "toy"]) == 2
    assert "needs the optional package 'ase' (pip install 'equiv[atoms]')" in capsys.readouterr().err
