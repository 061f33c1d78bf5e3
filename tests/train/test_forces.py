"""Forces and stress by autograd (equiv.train.forces) on the workflow's toy potential."""

import numpy as np
import pytest
import torch

from equiv.data import AtomicData, collate
from equiv.models import ToyPotential
from equiv.train.forces import predict_properties


CUTOFF = 3.0


def model(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    m = ToyPotential(species=[1, 6, 8], cutoff=CUTOFF, atomic_energies=[-1.0, -5.0, -7.0], channels=8, hidden=16)
    return m.to(dtype)


def molecule(rng):
    pos = rng.uniform(-1.2, 1.2, (6, 3))
    return AtomicData(positions=pos, atomic_numbers=[6, 8, 1, 1, 6, 1])


def crystal(rng):
    cell = np.array([[2.6, 0.2, 0.0], [0.3, 2.4, 0.1], [-0.2, 0.4, 2.8]])
    pos = rng.uniform(0, 1, (3, 3)) @ cell
    return AtomicData(positions=pos, atomic_numbers=[6, 8, 1], cell=cell, pbc=True)


def energy_of(m, d):
    return float(predict_properties(m, collate([d.with_graph(CUTOFF, None)]), compute_forces=False)["energy"][0])


@pytest.mark.parametrize("make", [molecule, crystal])
def test_forces_match_finite_differences(make):
    rng = np.random.default_rng(1)
    m, d = model(), make(rng)
    f = predict_properties(m, collate([d.with_graph(CUTOFF, None)]))["forces"].numpy()
    h, fd = 1e-5, np.zeros_like(f)
    for i in range(d.n_atoms):
        for k in range(3):
            plus, minus = d.positions.clone(), d.positions.clone()
            plus[i, k] += h
            minus[i, k] -= h
            ep = energy_of(m, AtomicData(plus, d.atomic_numbers, d.cell, d.pbc))
            em = energy_of(m, AtomicData(minus, d.atomic_numbers, d.cell, d.pbc))
            fd[i, k] = -(ep - em) / (2 * h)
    np.testing.assert_allclose(f, fd, atol=1e-7, rtol=1e-6)
    assert np.abs(f).max() > 1e-3  # not trivially zero


def test_stress_matches_finite_strain():
    rng = np.random.default_rng(2)
    m, d = model(), crystal(rng)
    out = predict_properties(m, collate([d.with_graph(CUTOFF, None)]), compute_stress=True)
    stress = out["stress"][0].numpy()
    assert d.with_graph(CUTOFF, None).edge_index.shape[1] > 0
    volume = abs(np.linalg.det(d.cell.numpy()))
    h, fd = 1e-5, np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] = e[b, a] = h / (2 if a != b else 1)
            vals = []
            for sgn in (1, -1):
                deform = np.eye(3) + sgn * e
                vals.append(energy_of(m, AtomicData(d.positions.numpy() @ deform, d.atomic_numbers,
                                                    d.cell.numpy() @ deform, True)))
            # dE/d(eps_ab) for the symmetric strain with eps_ab = eps_ba = h/2 (off-diagonal) or h
            fd[a, b] = (vals[0] - vals[1]) / (2 * h) / volume
    np.testing.assert_allclose(stress, fd, atol=1e-8, rtol=1e-6)
    np.testing.assert_allclose(stress, stress.T, atol=1e-12)
    assert np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(out["virial"][0].numpy(), -stress * volume, rtol=1e-12)


def test_stress_matches_ase_numerical_stress():
    from ase.build import bulk

    from equiv.calculators import EquivCalculator

    atoms = bulk("C", "diamond", a=3.57)
    atoms.rattle(0.05, seed=0)
    calc = EquivCalculator(model())
    atoms.calc = calc
    s = atoms.get_stress(voigt=False)
    from ase.calculators.fd import calculate_numerical_stress

    s_num = calculate_numerical_stress(atoms, eps=1e-5, voigt=False)
    np.testing.assert_allclose(s, s_num, atol=1e-8)


def test_invariance_and_equivariance():
    from equiv.symmetry import assert_equivariant

    m = model()
    d = molecule(np.random.default_rng(3))

    def energy_and_forces(positions, atomic_numbers):
        g = AtomicData(positions, atomic_numbers).with_graph(CUTOFF, None)
        out = predict_properties(m, collate([g]))
        return out["energy"], out["forces"]

    # energy invariant, forces rotate (and flip under inversion), under O(3), translations, permutations
    report = assert_equivariant(energy_and_forces, [d.positions, d.atomic_numbers], ["cartesian_points", None],
                                ["0e", "cartesian_vectors"], group="O(3)", translations=True, permutations=True,
                                node_inputs=(0, 1), node_outputs=(1,))
    assert report is not None
    f = energy_and_forces(d.positions, d.atomic_numbers)[1]
    torch.testing.assert_close(f.sum(0), torch.zeros(3, dtype=f.dtype), atol=1e-12, rtol=0)  # no net force


def test_dtypes_agree(dtype):
    rng = np.random.default_rng(4)
    batch = collate([molecule(rng).with_graph(CUTOFF, None), crystal(rng).with_graph(CUTOFF, None)])
    ref = predict_properties(model(torch.float64), batch, compute_stress=True)
    out = predict_properties(model(dtype), batch.to(dtype=dtype), compute_stress=True)
    assert out["energy"].dtype == dtype and out["forces"].dtype == dtype
    tol = 1e-4 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(out["energy"].double(), ref["energy"], atol=tol * 10, rtol=tol)
    torch.testing.assert_close(out["forces"].double(), ref["forces"], atol=tol, rtol=tol)
    assert torch.isnan(ref["stress"][0]).all() and torch.isfinite(ref["stress"][1]).all()


def test_smooth_at_cutoff():
    m = model()
    z = [6, 8]
    e = [energy_of(m, AtomicData([[0, 0, 0], [0, 0, r]], z)) for r in (CUTOFF - 1e-4, CUTOFF + 1e-4)]
    far = energy_of(m, AtomicData([[0, 0, 0], [0, 0, 10.0]], z))
    assert abs(e[1] - far) < 1e-12  # beyond the cut-off atoms do not interact
    assert abs(e[0] - e[1]) < 1e-10  # envelope: value and derivatives vanish at the cut-off


def test_errors():
    m = model()
    b = collate([AtomicData([[0, 0, 0], [0, 0, 1.0]], [7, 1]).with_graph(CUTOFF)])
    with pytest.raises(ValueError, match=r"unknown element.*\[7\]"):
        m(b)
    with pytest.raises(ValueError, match="species"):
        ToyPotential(species=[8, 1], cutoff=3.0)
    with pytest.raises(ValueError, match="atomic_energies"):
        ToyPotential(species=[1, 8], cutoff=3.0, atomic_energies=[1.0])
