"""Shared inputs of the interatomic-potential model tests: small molecules, dense graphs, batches."""

import torch

from equiv.data import Batch


def molecule(n=7, seed=0, dtype=torch.float64):
    """Random positions of ``n`` atoms (C, O, H) and their atomic numbers."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=dtype) * 1.1
    z = torch.tensor([6, 8, 1, 1, 6, 1, 8, 1, 6][:n])
    return pos, z


def single_batch(pos, z, edge_index):
    """One non-periodic graph as a `Batch` with the given edges."""
    n, e = pos.shape[0], edge_index.shape[1]
    return Batch(positions=pos, atomic_numbers=z, batch=torch.zeros(n, dtype=torch.long),
                 ptr=torch.tensor([0, n]), edge_index=edge_index, unit_shifts=torch.zeros(e, 3, dtype=torch.long),
                 shifts=torch.zeros(e, 3, dtype=pos.dtype), cell=torch.zeros(1, 3, 3, dtype=pos.dtype),
                 pbc=torch.zeros(1, 3, dtype=torch.bool))


def full_graph(n):
    """All ordered pairs ``i != j`` (the cut-off envelope handles distances beyond r_c)."""
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    return torch.stack([i[keep], j[keep]])


def check_forces_match_finite_differences(model, tol=1e-7):
    """Forces of `predict_properties` are -dE/dr by central differences (float64 model)."""
    from equiv.train.forces import predict_properties

    pos, z = molecule(5, seed=3)
    edge_index = full_graph(5)
    forces = predict_properties(model, single_batch(pos, z, edge_index))["forces"]
    h = 1e-5
    for atom, k in [(0, 0), (2, 1), (4, 2)]:
        dp = torch.zeros_like(pos)
        dp[atom, k] = h
        with torch.no_grad():
            ep = model(single_batch(pos + dp, z, edge_index))["energy"].item()
            em = model(single_batch(pos - dp, z, edge_index))["energy"].item()
        assert abs(-(ep - em) / (2 * h) - forces[atom, k].item()) < tol
    assert forces.abs().max() > 1e-4  # the test could fail


def check_smooth_at_cutoff(model, cutoff=3.0):
    """A neighbour just inside r_c contributes (energy and forces) as if absent; well inside, it matters."""
    from equiv.data import AtomicData, collate
    from equiv.train.forces import predict_properties

    delta = 1e-4
    d = AtomicData(positions=[[0, 0, 0], [1.2, 0, 0], [cutoff - delta, 0.0, 0.0]], atomic_numbers=[6, 8, 1])
    with_edge = predict_properties(model, collate([d.with_graph(cutoff)]))
    without = predict_properties(model, collate([d.with_graph(cutoff - 2 * delta)]))
    assert collate([d.with_graph(cutoff)]).edge_index.shape[1] == 6
    assert collate([d.with_graph(cutoff - 2 * delta)]).edge_index.shape[1] == 4
    assert abs(with_edge["energy"] - without["energy"]).item() < 1e-10
    assert (with_edge["forces"] - without["forces"]).abs().max().item() < 1e-8
    d2 = AtomicData(positions=[[0, 0, 0], [1.2, 0, 0], [cutoff - 0.5, 0.0, 0.0]], atomic_numbers=[6, 8, 1])
    a = predict_properties(model, collate([d2.with_graph(cutoff)]))["energy"]
    b = predict_properties(model, collate([d2.with_graph(cutoff - 0.6)]))["energy"]
    assert abs(a - b).item() > 1e-6


def check_periodic_stress(model, cutoff=3.0):
    """Stress of `predict_properties` on a small periodic cell = (1/V) dE/d(strain) by finite strain."""
    from equiv.data import AtomicData, collate
    from equiv.train.forces import predict_properties

    cell = torch.tensor([[3.2, 0.0, 0.0], [0.3, 3.0, 0.0], [0.0, 0.2, 3.4]], dtype=torch.float64)
    pos = torch.tensor([[0.1, 0.2, 0.3], [1.5, 1.1, 0.9], [2.2, 2.5, 2.0]], dtype=torch.float64)
    z = [6, 8, 1]
    eye = torch.eye(3, dtype=torch.float64)

    def energy(strain):
        d = AtomicData(positions=pos @ (eye + strain), atomic_numbers=z, cell=cell @ (eye + strain), pbc=True)
        return model(collate([d.with_graph(cutoff)]))["energy"].item()

    d = AtomicData(positions=pos, atomic_numbers=z, cell=cell, pbc=True).with_graph(cutoff)
    stress = predict_properties(model, collate([d]), compute_stress=True)["stress"][0]
    volume = torch.linalg.det(cell).abs().item()
    h = 1e-6
    for a, b in [(0, 0), (1, 2)]:
        eps = torch.zeros(3, 3, dtype=torch.float64)
        eps[a, b] = eps[b, a] = h / 2 if a != b else h  # symmetric strain: dE = V sigma_ab h either way
        fd = (energy(eps) - energy(-eps)) / (2 * h) / volume
        assert abs(fd - stress[a, b].item()) < 1e-6, (a, b, fd, stress[a, b].item())
    torch.testing.assert_close(stress, stress.T)
    assert stress.abs().max() > 1e-5


def check_save_load_and_unknown_elements(model, name, path):
    """Registered under ``name``; save -> load gives the same class, hparams and energies (bit for bit);
    an element outside the model's species raises ``ValueError``."""
    import pytest

    from equiv.models import get_potential_class
    from equiv.train.saved_model import load_potential, save_potential

    assert get_potential_class(name) is type(model)
    save_potential(model, path)
    loaded = load_potential(path)
    assert type(loaded) is type(model) and loaded.hparams == model.hparams
    pos, z = molecule()
    b = single_batch(pos, z, full_graph(len(z)))
    torch.testing.assert_close(loaded(b)["energy"], model(b)["energy"], atol=0, rtol=0)
    with pytest.raises(ValueError, match="unknown element"):
        model(single_batch(pos[:3], torch.tensor([6, 9, 1]), full_graph(3)))


def check_symmetries(model):
    """Energy invariant and forces equivariant under rotations, reflections, translations and atom
    permutations (float64, max error < 1e-9), and the energy really depends on the geometry."""
    from equiv.symmetry import assert_equivariant
    from equiv.train.forces import predict_properties

    pos, z = molecule()
    edge_index = full_graph(len(z))

    def fn(pos, z, edge_index):
        out = predict_properties(model, single_batch(pos, z, edge_index))
        return out["energy"][:, None], out["forces"]

    rep = assert_equivariant(fn, (pos, z, edge_index), ["cartesian_points", None, None], ["0e", "cartesian_vectors"],
                             permutations=True, node_inputs=(0, 1), index_inputs=(2,), node_outputs=(1,))
    assert rep.max_error < 1e-9
    e0, e1 = fn(pos, z, edge_index)[0], fn(pos * 1.05, z, edge_index)[0]
    assert (e0 - e1).abs().item() > 1e-6
