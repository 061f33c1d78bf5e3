import itertools

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list

from equiv.data.neighbors import edge_vectors, neighbor_list


def brute_force(pos, cutoff, cell, pbc, reach=6):
    """Every pair and every lattice shift within +-reach along periodic axes."""
    ranges = [range(-reach, reach + 1) if p else range(1) for p in pbc]
    out = set()
    for s in itertools.product(*ranges):
        t = np.array(s) @ cell
        d = pos[None, :, :] + t - pos[:, None, :]  # d[i, j] = r_j - r_i + S C
        dist = np.linalg.norm(d, axis=-1)
        for i, j in zip(*np.nonzero(dist < cutoff)):
            if i == j and not any(s):
                continue
            out.add((int(i), int(j), tuple(int(x) for x in s)))
    return out


def as_set(ei, s):
    return set(zip(ei[0].tolist(), ei[1].tolist(), map(tuple, s.tolist())))


def random_cell(rng, scale):
    # skewed triclinic cell with positive determinant
    cell = scale * (np.eye(3) + 0.35 * rng.uniform(-1, 1, (3, 3)))
    return cell if np.linalg.det(cell) > 0 else -cell


@pytest.mark.parametrize("pbc", [(True, True, True), (True, False, True), (False, False, True), (False, False, False)])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(pbc, seed):
    rng = np.random.default_rng(seed)
    cell = random_cell(rng, 3.0)
    n = 7
    # positions partly outside the cell, to exercise wrapping
    pos = rng.uniform(-0.3, 1.3, (n, 3)) @ cell
    cutoff = 3.7  # larger than the cell: atoms see their own images, and images several cells away
    ei, s = neighbor_list(pos, cutoff, cell, pbc, min_distance=None)
    ref = brute_force(pos, cutoff, cell, pbc)
    assert as_set(ei, s) == ref
    assert len(ref) == ei.shape[1]  # no duplicates
    # vectors recomputed from the shifts are all within the cut-off
    vec = edge_vectors(torch.as_tensor(pos), ei, s.double() @ torch.as_tensor(cell))
    assert float(vec.norm(dim=1).max()) < cutoff


def test_matches_ase_bulk():
    from ase.build import bulk

    atoms = bulk("Si", "diamond", a=5.43).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=3)
    for cutoff in (2.0, 4.5, 7.0):
        i, j, S = ase_neighbor_list("ijS", atoms, cutoff)
        ei, s = neighbor_list(atoms.positions, cutoff, atoms.cell.array, atoms.pbc)
        assert as_set(ei, s) == set(zip(i.tolist(), j.tolist(), map(tuple, S.tolist())))


def test_single_atom_sees_own_images():
    ei, s = neighbor_list([[0.3, 0.2, 0.1]], 2.5, 2.0 * np.eye(3), True)
    assert ei.shape[1] == 6 and (ei == 0).all()
    assert sorted(map(tuple, s.tolist())) == sorted(
        [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)])


def test_molecule_symmetric_and_sorted():
    atoms = Atoms("CH4", positions=[[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                    [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])
    ei, s = neighbor_list(atoms.positions, 1.2)
    assert ei.shape == (2, 8) and (s == 0).all()
    assert set(zip(*ei.tolist())) == {(0, k) for k in range(1, 5)} | {(k, 0) for k in range(1, 5)}
    assert ei[0].tolist() == sorted(ei[0].tolist())


def test_errors():
    with pytest.raises(ValueError, match="closer than"):
        neighbor_list([[0, 0, 0], [0, 0, 0.05]], 2.0)
    with pytest.raises(ValueError, match="closer than"):  # an atom and its own image
        neighbor_list([[0, 0, 0]], 1.0, 0.05 * np.eye(3), True)
    with pytest.raises(ValueError, match="NaN"):
        neighbor_list([[0, 0, float("nan")]], 2.0)
    with pytest.raises(ValueError, match="cutoff"):
        neighbor_list([[0, 0, 0]], -1.0)
    with pytest.raises(ValueError, match="cell is required"):
        neighbor_list([[0, 0, 0]], 1.0, None, True)
    with pytest.raises(ValueError, match="shape"):
        neighbor_list([[0, 0]], 1.0)
    with pytest.raises(ValueError, match="singular"):
        neighbor_list([[0, 0, 0]], 1.0, np.diag([1.0, 1.0, 0.0]), True)


@pytest.mark.parametrize("case", ["molecule", "periodic", "skewed_small", "mixed_pbc", "self_interaction", "float32"])
def test_torch_backend_equals_numpy(case):
    """backend='torch' (the path a GPU MD loop takes) gives the NumPy result, edge for edge, in order."""
    rng = np.random.default_rng(sum(map(ord, case)))  # deterministic per case
    cell = np.array([[4.0, 0.0, 0.0], [1.0, 3.5, 0.0], [0.3, 0.2, 5.0]])
    kw = {}
    if case == "molecule":
        pos, cutoff = rng.normal(size=(60, 3)) * 3, 2.5
    elif case == "periodic":
        pos, cutoff, kw = rng.uniform(size=(25, 3)) @ cell, 3.0, dict(cell=cell, pbc=True)
    elif case == "skewed_small":
        small = np.array([[1.5, 0.0, 0.0], [1.2, 1.4, 0.0], [0.4, 0.3, 1.6]])
        pos, cutoff, kw = rng.uniform(size=(2, 3)) @ small, 3.5, dict(cell=small, pbc=True, min_distance=None)
    elif case == "mixed_pbc":
        pos, cutoff, kw = rng.uniform(size=(8, 3)) @ cell, 6.0, dict(cell=cell, pbc=[True, False, True])
    elif case == "self_interaction":
        pos, cutoff, kw = rng.uniform(size=(10, 3)) @ cell, 3.0, dict(cell=cell, pbc=True, self_interaction=True)
    else:
        pos, cutoff = (rng.normal(size=(40, 3)) * 3).astype(np.float32), 3.0
    a = neighbor_list(pos, cutoff, backend="numpy", **kw)
    b = neighbor_list(torch.as_tensor(pos), cutoff, backend="torch", **kw)
    assert a[0].shape[1] > 0
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_torch_backend_errors_and_empty():
    with pytest.raises(ValueError, match="closer than min_distance"):
        neighbor_list(torch.tensor([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0]]), 2.0, backend="torch")
    ei, s = neighbor_list(torch.tensor([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]), 2.0, backend="torch")
    assert ei.shape == (2, 0) and s.shape == (0, 3)
    with pytest.raises(ValueError, match="backend must be"):
        neighbor_list(torch.zeros(2, 3), 2.0, backend="jax")
