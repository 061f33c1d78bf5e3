import numpy as np
import pytest
import torch

from equiv.data.atoms import AtomicData
from equiv.data.batching import AtomsDataset, GraphSampler, collate, make_loader
from equiv.data.neighbors import edge_vectors


def structures(dtype=torch.float64):
    rng = np.random.default_rng(0)
    out = []
    for n, periodic in [(3, False), (5, True), (2, True), (4, False)]:
        cell = 3.0 * np.eye(3) + 0.2 * rng.uniform(-1, 1, (3, 3))
        pos = rng.uniform(0, 1, (n, 3)) @ cell
        out.append(AtomicData(positions=pos, atomic_numbers=rng.integers(1, 9, n), cell=cell, pbc=periodic,
                              energy=float(rng.normal()), forces=rng.normal(size=(n, 3))).with_graph(2.6, None))
    return out


def test_collate_offsets_and_vectors():
    data = structures()
    b = collate(data)
    assert b.num_graphs == 4 and b.ptr.tolist() == [0, 3, 8, 10, 14]
    assert b.n_atoms.tolist() == [3, 5, 2, 4]
    assert b.batch.tolist() == [0] * 3 + [1] * 5 + [2] * 2 + [3] * 4
    assert b.energy.shape == (4,) and b.forces.shape == (14, 3)
    vec = edge_vectors(b.positions, b.edge_index, b.shifts)
    ref = torch.cat([edge_vectors(d.positions, d.edge_index, d.unit_shifts.double() @ d.cell) for d in data])
    torch.testing.assert_close(vec, ref, rtol=0, atol=1e-12)
    # edges never cross structures
    assert torch.equal(b.batch[b.edge_index[0]], b.batch[b.edge_index[1]])


def test_to_dtype(dtype):
    b = collate(structures()).to(dtype=dtype)
    assert b.positions.dtype == dtype and b.shifts.dtype == dtype and b.energy.dtype == dtype
    assert b.edge_index.dtype == torch.long and b.pbc.dtype == torch.bool


def test_collate_errors():
    d = AtomicData(positions=[[0, 0, 0.0]], atomic_numbers=[1])
    with pytest.raises(ValueError, match="with_graph"):
        collate([d])
    with pytest.raises(ValueError, match="empty"):
        collate([])
    g = d.with_graph(1.0)
    labelled = AtomicData(positions=[[0, 0, 0.0]], atomic_numbers=[1], energy=1.0).with_graph(1.0)
    with pytest.raises(ValueError, match="energy"):
        collate([labelled, g])


def test_sampler_reproducible_and_sharded():
    s = GraphSampler(11, 4, shuffle=True, seed=3)
    s.set_epoch(2)
    a = list(s)
    s.set_epoch(2)
    assert list(s) == a
    s.set_epoch(3)
    assert list(s) != a
    assert sorted(sum(a, [])) == list(range(11))
    shards = []
    for r in range(2):
        t = GraphSampler(11, 4, shuffle=True, seed=3, rank=r, world_size=2)
        t.set_epoch(2)
        shards.append(list(t))
    # the two processes together see exactly the global batches (the last batch of 3 is kept: >= 2 items)
    assert [sorted(x + y) for x, y in zip(*shards)] == [sorted(b) for b in a]
    s.set_epoch(2, skip_batches=1)
    assert list(s) == a[1:] and len(s) == 2
    # training drops a last global batch too small to give every process an item; evaluation does not
    train = [list(GraphSampler(5, 4, shuffle=False, rank=r, world_size=2)) for r in range(2)]
    assert train == [[[0, 2]], [[1, 3]]]
    evals = [list(GraphSampler(5, 4, shuffle=False, rank=r, world_size=2, even_shards=False)) for r in range(2)]
    assert evals == [[[0, 2], [4]], [[1, 3]]]


def test_loader_and_dataset():
    data = [AtomicData(positions=[[0, 0, 0], [0, 0, 1.0 + 0.1 * k]], atomic_numbers=[1, 8], energy=k)
            for k in range(5)]
    ds = AtomsDataset(data, cutoff=1.2)
    assert [d.n_edges for d in ds] == [2, 2, 0, 0, 0]
    batches = list(make_loader(ds, batch_size=2))
    assert [b.num_graphs for b in batches] == [2, 2, 1]
    assert batches[1].energy.tolist() == [2.0, 3.0]
    with pytest.raises(ValueError, match="closer than"):
        AtomsDataset([AtomicData(positions=[[0, 0, 0], [0.05, 0, 0]], atomic_numbers=[1, 1])], 1.0)
