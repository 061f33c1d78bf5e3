"""equiv.models.NequIP: symmetry (rotation, reflection, translation, permutation), forces = -grad E,
smooth cut-off, periodic stress, protocol (registry, save/load), float32/float64, errors; trains."""

import math

import pytest
import torch

from equiv.data import AtomicData, Batch, collate
from equiv.models import NequIP, get_potential_class
from equiv.symmetry import assert_equivariant
from equiv.train.forces import predict_properties

SMALL = dict(channels=4, lmax=2, num_layers=3, radial_mlp=[8], readout_hidden=4)


def _model(dtype=torch.float64, **kw):
    torch.manual_seed(0)
    m = NequIP(species=[1, 6, 8], cutoff=3.0, atomic_energies=[-13.6, -1029.0, -2041.0], avg_num_neighbors=4.0,
               scale=0.7, shift=0.1, **{**SMALL, **kw})
    return m.to(dtype)


def _molecule(n=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=dtype) * 1.1
    z = torch.tensor([6, 8, 1, 1, 6, 1, 8, 1, 6][:n])
    return pos, z


def _batch(pos, z, edge_index):
    n, e = pos.shape[0], edge_index.shape[1]
    return Batch(positions=pos, atomic_numbers=z, batch=torch.zeros(n, dtype=torch.long),
                 ptr=torch.tensor([0, n]), edge_index=edge_index, unit_shifts=torch.zeros(e, 3, dtype=torch.long),
                 shifts=torch.zeros(e, 3, dtype=pos.dtype), cell=torch.zeros(1, 3, 3, dtype=pos.dtype),
                 pbc=torch.zeros(1, 3, dtype=torch.bool))


def _full_graph(n):
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    return torch.stack([i[keep], j[keep]])


@pytest.mark.parametrize("parity", [True, False])
def test_energy_invariant_forces_equivariant(parity):
    model = _model(parity=parity)
    pos, z = _molecule()
    edge_index = _full_graph(len(z))

    def fn(pos, z, edge_index):
        out = predict_properties(model, _batch(pos, z, edge_index))
        return out["energy"][:, None], out["forces"]

    rep = assert_equivariant(fn, (pos, z, edge_index), ["cartesian_points", None, None], ["0e", "cartesian_vectors"],
                             permutations=True, node_inputs=(0, 1), index_inputs=(2,), node_outputs=(1,))
    assert rep.max_error < 1e-9
    e0, e1 = fn(pos, z, edge_index)[0], fn(pos * 1.05, z, edge_index)[0]
    assert (e0 - e1).abs().item() > 1e-6


def test_hidden_irreps_have_both_parities():
    model = _model()
    assert str(model.irreps_hidden) == "4x0e+4x0o+4x1o+4x1e+4x2e+4x2o"
    assert str(_model(parity=False).irreps_hidden) == "4x0e+4x1o+4x2e"


def test_forces_are_minus_gradient_finite_differences():
    model = _model()
    pos, z = _molecule(5, seed=3)
    edge_index = _full_graph(5)
    forces = predict_properties(model, _batch(pos, z, edge_index))["forces"]
    h = 1e-5
    for atom, k in [(0, 0), (2, 1), (4, 2)]:
        dp = torch.zeros_like(pos)
        dp[atom, k] = h
        with torch.no_grad():
            ep = model(_batch(pos + dp, z, edge_index))["energy"].item()
            em = model(_batch(pos - dp, z, edge_index))["energy"].item()
        assert abs(-(ep - em) / (2 * h) - forces[atom, k].item()) < 1e-7
    assert forces.abs().max() > 1e-4


def test_energy_is_smooth_at_the_cutoff():
    model = _model()
    delta = 1e-4
    d = AtomicData(positions=[[0, 0, 0], [1.2, 0, 0], [3.0 - delta, 0.0, 0.0]], atomic_numbers=[6, 8, 1])
    with_edge = predict_properties(model, collate([d.with_graph(3.0)]))
    without = predict_properties(model, collate([d.with_graph(3.0 - 2 * delta)]))
    assert abs(with_edge["energy"] - without["energy"]).item() < 1e-10
    assert (with_edge["forces"] - without["forces"]).abs().max().item() < 1e-8


def test_periodic_stress_matches_finite_strain():
    model = _model()
    cell = torch.tensor([[3.2, 0.0, 0.0], [0.3, 3.0, 0.0], [0.0, 0.2, 3.4]], dtype=torch.float64)
    pos = torch.tensor([[0.1, 0.2, 0.3], [1.5, 1.1, 0.9], [2.2, 2.5, 2.0]], dtype=torch.float64)
    z = [6, 8, 1]

    def energy(strain):
        eye = torch.eye(3, dtype=torch.float64)
        d = AtomicData(positions=pos @ (eye + strain), atomic_numbers=z, cell=cell @ (eye + strain), pbc=True)
        return model(collate([d.with_graph(3.0)]))["energy"].item()

    d = AtomicData(positions=pos, atomic_numbers=z, cell=cell, pbc=True).with_graph(3.0)
    stress = predict_properties(model, collate([d]), compute_stress=True)["stress"][0]
    volume = torch.linalg.det(cell).abs().item()
    h = 1e-6
    for a, b in [(0, 0), (1, 2)]:
        eps = torch.zeros(3, 3, dtype=torch.float64)
        eps[a, b] = eps[b, a] = h / 2 if a != b else h
        fd = (energy(eps) - energy(-eps)) / (2 * h) / volume
        assert abs(fd - stress[a, b].item()) < 1e-6
    assert stress.abs().max() > 1e-5


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
    from equiv.train.saved_model import load_potential, save_potential

    assert get_potential_class("nequip") is NequIP
    model = _model()
    save_potential(model, tmp_path / "nequip.pt")
    loaded = load_potential(tmp_path / "nequip.pt")
    assert type(loaded) is NequIP and loaded.hparams == model.hparams
    pos, z = _molecule()
    b = _batch(pos, z, _full_graph(len(z)))
    torch.testing.assert_close(loaded(b)["energy"], model(b)["energy"], atol=0, rtol=0)


def test_errors():
    model = _model()
    pos, _ = _molecule(3)
    with pytest.raises(ValueError, match="unknown element"):
        model(_batch(pos, torch.tensor([6, 9, 1]), _full_graph(3)))
    with pytest.raises(ValueError, match="channels must be"):
        NequIP(species=[1], channels=0)
    with pytest.raises(ValueError, match="one value per species"):
        NequIP(species=[1, 8], atomic_energies=[0.0])
    with pytest.raises(ValueError, match="species must be sorted"):
        NequIP(species=[8, 1])


def test_docstring_example():
    import doctest

    import equiv.models.nequip as module

    assert doctest.testmod(module).failed == 0


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
