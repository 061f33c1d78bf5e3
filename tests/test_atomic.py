"""equiv._atomic.atomic_write: all-or-nothing file writes."""

import os
import stat

import pytest

from equiv._atomic import atomic_write


def test_writes_creates_folders_and_gives_the_mode_of_a_plain_open(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"
    assert atomic_write(target, lambda fh: fh.write(b"new")) == target
    assert target.read_bytes() == b"new"
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]  # no temporary file left


@pytest.mark.parametrize("durable", [False, True])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, durable):
    target = tmp_path / "out.json"
    target.write_text("old")

    def half_then_fail(fh):
        fh.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, half_then_fail, durable=durable)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]
    atomic_write(target, lambda fh: fh.write(b"new"), durable=durable)
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.json"]
