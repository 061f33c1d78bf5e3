"""equiv.models.NequIP (symmetry, forces, cut-off and stress: test_potential_contract.py): hidden irreps,
protocol (registry, save/load), float32/float64, trainable Bessel frequencies, errors; trains."""

import math

import pytest
import torch

from equiv.data import AtomicData, collate
from equiv.models import NequIP
from equiv.train.forces import predict_properties
from potential_case import check_save_load_and_unknown_elements
from potential_case import full_graph as _full_graph
from potential_case import molecule as _molecule
from potential_case import single_batch as _batch

SMALL = dict(channels=4, lmax=2, num_layers=3, radial_mlp=[8], readout_hidden=4)


def _model(dtype=torch.float64, **kw):
    torch.manual_seed(0)
    m = NequIP(species=[1, 6, 8], cutoff=3.0, atomic_energies=[-13.6, -1029.0, -2041.0], avg_num_neighbors=4.0,
               scale=0.7, shift=0.1, **{**SMALL, **kw})
    return m.to(dtype)


def test_hidden_irreps_have_both_parities():
    model = _model()
    assert str(model.irreps_hidden) == "4x0e+4x0o+4x1o+4x1e+4x2e+4x2o"
    assert str(_model(parity=False).irreps_hidden) == "4x0e+4x1o+4x2e"


def test_float32_and_batching(dtype):
    model = _model(dtype=dtype)
    data = [AtomicData(positions=_molecule(6, seed=s)[0], atomic_numbers=_molecule(6, seed=s)[1]).with_graph(3.0)
            for s in range(3)]
    out = predict_properties(model, collate(data).to(dtype=dtype))
    assert out["energy"].dtype == dtype and out["energy"].shape == (3,) and out["forces"].shape == (18, 3)
    single = torch.cat([predict_properties(model, collate([d]).to(dtype=dtype))["energy"] for d in data])
    torch.testing.assert_close(out["energy"], single, atol=1e-10 if dtype == torch.float64 else 1e-3, rtol=0)
    iso = collate([AtomicData(positions=[[0, 0, 0.0]], atomic_numbers=[8]).with_graph(3.0)]).to(dtype=dtype)
    assert math.isfinite(model(iso)["energy"].item())


def test_registry_and_save_load_roundtrip(tmp_path):
    check_save_load_and_unknown_elements(_model(), "nequip", tmp_path / "nequip.pt")


def test_errors():
    with pytest.raises(ValueError, match="channels must be"):
        NequIP(species=[1], channels=0)
    with pytest.raises(ValueError, match="one value per species"):
        NequIP(species=[1, 8], atomic_energies=[0.0])
    with pytest.raises(ValueError, match="species must be sorted"):
        NequIP(species=[8, 1])


def test_trains_with_the_potential_workflow(tmp_path):
    """`equiv train potential` with model nequip: the validation loss falls over a few epochs."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
    from potential_helpers import write_lj_dataset

    from equiv.train.potential import resolve_config, train_potential

    train = write_lj_dataset(tmp_path / "train.xyz", 12, seed=0)
    cfg = resolve_config(dict(dataset="extxyz", train_file=train, valid_fraction=0.25, cutoff=3.5, model="nequip",
                              model_kwargs=dict(channels=4, lmax=1, num_layers=2, radial_mlp=[8]), batch_size=3,
                              epochs=5, lr=0.01, output_dir=str(tmp_path / "run"), progress=False, num_threads=1,
                              device="cpu", test=False))
    train_potential(cfg)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["valid_loss"] < history[0]["valid_loss"]


def test_trainable_bessel_frequencies():
    model = _model()
    assert isinstance(model.radial.bessel.frequencies, torch.nn.Parameter)
    pos, z = _molecule()
    model(_batch(pos, z, _full_graph(len(z))))["energy"].sum().backward()
    assert model.radial.bessel.frequencies.grad.abs().max() > 0
    assert not isinstance(_model(trainable_bessel=False).radial.bessel.frequencies, torch.nn.Parameter)
