"""Saved potentials of user models: a model registered under a name by the user's own module loads in a
process that has not imported that module (the file records the class's import path)."""

import sys
import textwrap

import pytest
import torch
from ase.build import molecule

from equiv.data import AtomicData, collate
from equiv.models import _potential_registry
from equiv.train import load_potential, predict_properties, save_potential

MODULE = textwrap.dedent('''
    import torch
    from equiv.models import ToyPotential, register_potential

    @register_potential("user-toy-for-saving")
    class UserToy(ToyPotential):
        """A user's potential (here the toy one under another name and class)."""
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_potential_module.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = dict(_potential_registry._REGISTRY)
    yield "user_potential_module"
    sys.modules.pop("user_potential_module", None)
    _potential_registry._REGISTRY.clear()
    _potential_registry._REGISTRY.update(registry)


def test_user_model_loads_where_its_module_is_not_imported(user_module, tmp_path):
    import importlib

    module = importlib.import_module(user_module)
    torch.manual_seed(0)
    model = module.UserToy(species=[1, 6, 8], cutoff=3.5, channels=4, hidden=8).double()
    path = tmp_path / "model.pt"
    save_potential(model, path)
    batch = collate([AtomicData.from_ase(molecule("CH3CH2OH")).with_graph(3.5)]).to(dtype=torch.float64)
    energy = predict_properties(model, batch)["energy"]

    # a fresh process: neither the module nor its registry entry
    sys.modules.pop(user_module)
    del _potential_registry._REGISTRY["user-toy-for-saving"]
    loaded = load_potential(path)
    assert type(loaded).__module__ == user_module and type(loaded).__name__ == "UserToy"
    assert torch.allclose(predict_properties(loaded, batch)["energy"], energy, atol=1e-12)

    # neither the name nor the class can be found: the registry's error, naming the model
    sys.modules.pop(user_module)
    del _potential_registry._REGISTRY["user-toy-for-saving"]
    (tmp_path / "user_potential_module.py").unlink()
    with pytest.raises(ValueError, match="cannot import 'user_potential_module:UserToy'"):
        load_potential(path)


def test_equiv_info_summarises_a_saved_potential(tmp_path, capsys):
    import json

    import torch

    from equiv import __version__
    from equiv.cli import main
    from equiv.models import ToyPotential
    from equiv.train import save_potential

    torch.manual_seed(0)
    model = ToyPotential(species=[1, 8], cutoff=3.5, atomic_energies=[-13.6, -2038.0], channels=4)
    path = tmp_path / "m.pt"
    save_potential(model, path, metadata={"config": {"dataset": "extxyz", "train_file": "water.xyz"}, "n_train": 40,
                                          "epoch": 7, "global_step": 56,
                                          "valid_metrics": {"energy_mae": 1.5, "forces_mae": 20.25, "forces_rmse": 30.0}})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    n = sum(p.numel() for p in model.parameters())
    assert f"toy (equiv.models._toy_potential:ToyPotential), {n:,} parameters, float32" in out
    assert "species H, O; cut-off 3.5 Å" in out and "E0 (eV): H -13.6000, O -2038.0000" in out
    assert "trained on water.xyz (40 structures), saved at epoch 7, step 56" in out
    assert "F MAE 20.25 meV/Å" in out and f"equiv {__version__}" in out
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == n and info["species"] == ["H", "O"] and info["hparams"]["channels"] == 4
