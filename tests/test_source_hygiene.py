"""Every source file compiles without warnings (Python 3.12 turns invalid escape sequences in
docstrings into a SyntaxWarning printed at import; seen on the GPU machine's Python)."""

import pathlib
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = sorted(p for d in ("src", "benchmarks", "examples", "tests") for p in (ROOT / d).rglob("*.py"))


def test_sources_compile_without_warnings():
    assert len(FILES) > 50
    problems = []
    for path in FILES:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compile(path.read_text(encoding="utf-8"), str(path), "exec")
        problems += [f"{path.relative_to(ROOT)}:{w.lineno}: {w.message}" for w in caught]
    assert not problems, problems
