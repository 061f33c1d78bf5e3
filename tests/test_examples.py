"""Every runnable example in equiv runs and shows what it claims.

* the ``>>>`` examples in the docstrings of every module of the package (doctest);
* every public function and class (``__all__`` of the subpackages) has such an example;
* every Python block of README.md and docs/*.md.

A documentation block that needs names it does not define (a model, a data loader, a trained
potential) says so with a marker line before its fence, ``<!-- example: NAME -->``; ``CONTEXTS`` below
defines those names, small and quick, before the block runs, and may check what the block printed. Each
block runs in a temporary working directory, with its cache there, the default dtype, numpy and the
potential registry restored afterwards.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pathlib
import pkgutil
import re

import numpy as np
import pytest
import torch

import equiv

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODULES = sorted(m.name for m in pkgutil.walk_packages(equiv.__path__, "equiv."))
PACKAGES = ["equiv.so3", "equiv.groups", "equiv.tp", "equiv.nn", "equiv.models", "equiv.symmetry", "equiv.data",
            "equiv.train", "equiv.calculators"]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- example: (?P<name>[\w-]+) -->\n)?```python\n(?P<code>.*?)```", re.S)


# --------------------------------------------------------------------------- docstrings
def _with_examples(name):
    return any(t.examples for t in doctest.DocTestFinder().find(importlib.import_module(name)))


@pytest.fixture
def restored_state():
    """Default dtype and the potential registry as they were (examples may change both)."""
    from equiv.models import _potential_registry

    default, registry = torch.get_default_dtype(), dict(_potential_registry._REGISTRY)
    yield
    torch.set_default_dtype(default)
    _potential_registry._REGISTRY.clear()
    _potential_registry._REGISTRY.update(registry)


@pytest.mark.parametrize("name", [m for m in MODULES if _with_examples(m)])
def test_docstring_examples(name, restored_state):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def test_every_public_object_has_an_example():
    missing = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and ">>>" not in (inspect.getdoc(obj) or ""):
                missing.append(f"{package}.{name}")
    assert not missing, f"public objects without a runnable example: {missing}"


# --------------------------------------------------------------------------- documentation blocks
def _numbers(text):
    return [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", text)]


def _small_errors(out):
    values = _numbers(out)
    assert values and max(abs(v) for v in values) < 1e-12, out


def _few_percent_moved(out):
    # the last line: systems changed at all, by > 1e-6, by > 1e-2 (of 2000), the largest change
    changed, _, large, worst = _numbers(out.strip().splitlines()[-1])
    assert changed > large and 0.01 * 2000 < large < 0.1 * 2000 and worst > 1e-2, out


def _published_linear(out):
    # the constant-velocity baseline's fitted time and test MSE; published (EGNN, Table 2): 0.0819. The
    # test split's bootstrap standard error is 3.3 %, a last-bit change in the simulator moves it 1.1 %
    t, mse = _numbers(out.strip().splitlines()[-1])[:2]
    assert 0.70 < t < 0.76 and abs(mse / 0.0819 - 1) < 0.10, out


def _port_agrees(out):
    # the block before the gate agrees to rounding; after it, by e3nn's Monte-Carlo constants (~1e-3)
    before, after = _numbers(out)
    assert before < 1e-12 and 1e-5 < after < 1e-2, out


def _within_grid_step(out):
    assert _numbers(out)[-1] < 0.1, out


def _has_data():
    try:
        from equiv.data import data_dir

        data_dir("rmd17")
        return True
    except FileNotFoundError:
        return False


GRAPH_MODEL = '''
import torch
from equiv.nn import Linear
torch.set_default_dtype(torch.float64)
lin = Linear("8x0e + 4x1o", "8x0e + 4x1o")
def model(pos, feats, charges, edge_index):       # features, new positions, energy
    src, dst = edge_index
    d = pos[src] - pos[dst]
    w = torch.exp(-d.norm(dim=-1, keepdim=True))
    weight = torch.zeros(len(pos), 1).index_add(0, dst, w)
    new_pos = pos + torch.zeros_like(pos).index_add(0, dst, w * d)
    return lin(feats) * weight, new_pos, (weight * charges).sum()
pos, feats, charges = torch.randn(6, 3), torch.randn(6, 20), torch.randn(6, 1)
edge_index = torch.tensor([[i, j] for i in range(6) for j in range(6) if i != j]).t()
'''

NBODY_MODEL = '''
import torch, matplotlib
matplotlib.use("Agg")
from equiv.models import EGNN
torch.manual_seed(0)
model = EGNN(hidden=16, num_layers=2)
pos, vel, target = torch.randn(4, 5, 3), torch.randn(4, 5, 3), torch.randn(4, 5, 3)
charges = torch.randint(0, 2, (4, 5, 1)).float() * 2 - 1
'''

REGRESSION_DATA = '''
import torch
torch.manual_seed(0)
loader = [(torch.randn(16, 20), torch.randn(16, 9))]
'''

TRAINED_POTENTIAL = '''
from equiv.models import ToyPotential
from equiv.train import save_potential
save_potential(ToyPotential(species=[1, 6, 8], cutoff=3.5, atomic_energies=[-13.6, -1027.0, -2038.0], channels=8),
               "runs/rmd17_ethanol/model.pt")
'''

#: marker -> (code run before the block, check of its printed output, pytest marks)
CONTEXTS = {
    "equivariance-errors": ("", _small_errors, []),
    "graph-model": (GRAPH_MODEL, None, []),
    "nbody-model": (NBODY_MODEL, None, []),
    "regression-data": (REGRESSION_DATA, None, []),
    "trained-potential": (TRAINED_POTENTIAL, None, []),
    "nbody-power": ("", _few_percent_moved, [pytest.mark.slow]),
    "nbody-linear": ("", _published_linear, [pytest.mark.slow]),
    "e3nn-port": ("", _port_agrees, []),
    "sphere-peaks": ("", _within_grid_step, []),
    "rmd17": ("", None, [pytest.mark.skipif(not _has_data(), reason="shared data folder not found")]),
}


def _blocks():
    for path in DOCS:
        for i, m in enumerate(BLOCK.finditer(path.read_text())):
            name = m.group("name")
            if name is not None and name not in CONTEXTS:
                raise ValueError(f"{path.name}: unknown example marker {name!r}")
            marks = CONTEXTS[name][2] if name else []
            yield pytest.param(path, name, m.group("code"), id=f"{path.stem}-{i}", marks=marks)


@pytest.fixture
def sandbox(tmp_path, monkeypatch, restored_state):
    """A temporary working directory and cache; dtype, registry and numpy's functions restored."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EQUIV_CACHE", str(tmp_path / "cache"))
    np_funcs = dict(vars(np))
    yield tmp_path
    for key, value in np_funcs.items():
        if vars(np).get(key) is not value:
            setattr(np, key, value)
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize("path, name, code", list(_blocks()))
def test_documentation_block(path, name, code, sandbox, capsys):
    setup, check, _ = CONTEXTS[name] if name else ("", None, [])
    namespace = {"__name__": "__example__"}
    exec(compile(setup, "<setup>", "exec"), namespace)
    exec(compile(code, str(path), "exec"), namespace)
    if check is not None:
        check(capsys.readouterr().out)


def test_markers_are_used():
    """Every context is used by some block (a renamed marker would silently run nothing)."""
    used = {m.group("name") for path in DOCS for m in BLOCK.finditer(path.read_text())}
    assert set(CONTEXTS) <= used, set(CONTEXTS) - used
