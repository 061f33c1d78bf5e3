import subprocess
import sys

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
