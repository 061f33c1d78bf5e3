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
