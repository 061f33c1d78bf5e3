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


def test_markdown_links_resolve():
    """Relative links in README, docs and benchmark results point at files that exist (anchors aside)."""
    import re

    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "benchmarks").rglob("*.md")]
    assert len(pages) > 10
    broken, checked = [], 0
    for page in pages:
        for link in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            path = link.split("#")[0]
            if not path or link.startswith(("http://", "https://", "mailto:")):
                continue
            checked += 1
            if not (page.parent / path).exists():
                broken.append(f"{page.relative_to(ROOT)}: {link}")
    assert checked > 30 and not broken, broken


def test_markdown_tables_have_a_header_separator():
    """A Markdown table renders only with a `|---|` line under its header."""
    import re

    pages = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "benchmarks").rglob("*.md")]
    bad = []
    for page in pages:
        lines = page.read_text(encoding="utf-8").splitlines()
        inside_code = False
        for k, line in enumerate(lines):
            if line.lstrip().startswith("```"):
                inside_code = not inside_code
            starts = line.startswith("|") and (k == 0 or not lines[k - 1].startswith("|"))
            if starts and not inside_code:
                following = lines[k + 1] if k + 1 < len(lines) else ""
                if not re.fullmatch(r"\|(\s*:?-{3,}:?\s*\|)+", following.strip()):
                    bad.append(f"{page.relative_to(ROOT)}:{k + 1}")
    assert not bad, bad
