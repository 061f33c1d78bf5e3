import numpy as np
import pytest
import torch
from ase.build import bulk, molecule
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from equiv.calculators import EquivCalculator
from equiv.data import AtomicData, collate
from equiv.models import ToyPotential
from equiv.train import load_potential, predict_properties, save_potential


@pytest.fixture
def model_path(tmp_path):
    torch.manual_seed(0)
    m = ToyPotential(species=[1, 6, 8], cutoff=3.5, atomic_energies=[-13.6, -1027.0, -2038.0], channels=8).double()
    path = tmp_path / "model.pt"
    save_potential(m, path, metadata={"note": "test"})
    return path


def test_properties_match_model(model_path):
    atoms = molecule("CH3CH2OH")
    calc = EquivCalculator(model_path)
    atoms.calc = calc
    assert set(calc.implemented_properties) >= {"energy", "forces", "stress"}
    model = load_potential(model_path)
    ref = predict_properties(model, collate([AtomicData.from_ase(atoms).with_graph(3.5)]))
    assert atoms.get_potential_energy() == pytest.approx(float(ref["energy"][0]), abs=1e-10)
    np.testing.assert_allclose(atoms.get_forces(), ref["forces"].numpy(), atol=1e-12)
    np.testing.assert_allclose(calc.results["energies"].sum(), atoms.get_potential_energy(), atol=1e-9)
    # E0 are part of the energy: a far-apart molecule pair is roughly twice one molecule
    with pytest.raises(PropertyNotImplementedError, match="periodic"):
        atoms.get_stress()


def test_forces_match_ase_finite_differences(model_path):
    atoms = molecule("H2O")
    atoms.calc = EquivCalculator(model_path)
    f_num = calculate_numerical_forces(atoms, eps=1e-5)
    np.testing.assert_allclose(atoms.get_forces(), f_num, atol=1e-7)


def test_stress_periodic(model_path):
    atoms = bulk("C", "diamond", a=3.57, cubic=True)
    atoms.rattle(0.03, seed=1)
    atoms.calc = EquivCalculator(model_path)
    s = atoms.get_stress()
    assert s.shape == (6,)
    np.testing.assert_allclose(s, calculate_numerical_stress(atoms, eps=1e-5), atol=1e-8)
    # cached results are reused, and a changed structure is recomputed
    e0 = atoms.get_potential_energy()
    atoms.positions[0, 0] += 0.05
    assert atoms.get_potential_energy() != e0


def test_float32(model_path):
    atoms = molecule("H2O")
    atoms.calc = EquivCalculator(model_path, dtype=torch.float32)
    e32 = atoms.get_potential_energy()
    atoms.calc = EquivCalculator(model_path)
    assert e32 == pytest.approx(atoms.get_potential_energy(), rel=1e-6)


def test_errors(model_path):
    with pytest.raises(TypeError, match="model"):
        EquivCalculator(3)
    with pytest.raises(FileNotFoundError):
        EquivCalculator(model_path.parent / "missing.pt")
    atoms = molecule("NH3")
    atoms.calc = EquivCalculator(model_path)
    with pytest.raises(ValueError, match="unknown element"):
        atoms.get_potential_energy()


@pytest.mark.parametrize("model", ["toy", "mace"])
def test_no_atoms_and_one_atom(tmp_path, model):
    """Zero atoms: zero energy, (0, 3) forces. One atom: zero force, half the energy of two far apart."""
    from ase import Atoms

    from equiv.models import MACE

    torch.manual_seed(0)
    e0 = [-13.6, -1027.0, -2038.0]
    m = (ToyPotential(species=[1, 6, 8], cutoff=3.5, atomic_energies=e0, channels=8) if model == "toy" else
         MACE(species=[1, 6, 8], cutoff=3.5, atomic_energies=e0, hidden_irreps="4x0e + 4x1o", max_ell=1,
              correlation=2, radial_mlp=[8], readout_hidden=4))
    save_potential(m.double(), tmp_path / "m.pt")
    calc = EquivCalculator(tmp_path / "m.pt")
    empty = Atoms()
    empty.calc = calc
    assert empty.get_potential_energy() == 0.0 and empty.get_forces().shape == (0, 3)
    one = Atoms("C", positions=[[0.0, 0.0, 0.0]])
    one.calc = calc
    np.testing.assert_array_equal(one.get_forces(), np.zeros((1, 3)))
    two = Atoms("CC", positions=[[0.0, 0.0, 0.0], [10.0, 0.0, 0.0]])
    two.calc = calc
    assert two.get_potential_energy() == pytest.approx(2 * one.get_potential_energy(), abs=1e-9)
    assert abs(one.get_potential_energy() - e0[1]) < 1.0  # E0 plus the model's per-atom shift
