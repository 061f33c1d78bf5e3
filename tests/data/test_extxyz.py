import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from equiv.data.atoms import AtomicData
from equiv.data.extxyz import isolated_atom_energies, least_squares_e0, read_extxyz, split_isolated_atoms
from equiv.data.paths import data_dir

try:
    DATA = data_dir()
except FileNotFoundError:  # pragma: no cover
    DATA = None
needs_data = pytest.mark.skipif(DATA is None, reason="shared data folder not found (set EQUIV_DATA)")


def water(shift=0.0):
    return Atoms("OH2", positions=[[0, 0, shift], [0.76, 0.59, shift], [-0.76, 0.59, shift]])


def test_ref_keys_and_custom_keys(tmp_path):
    frames = []
    for k in range(3):
        a = water(0.1 * k)
        a.info["REF_energy"] = -10.0 - k
        a.arrays["REF_forces"] = np.full((3, 3), 0.5 * k)
        a.info["my_e"] = 3.0 * k
        frames.append(a)
    p = tmp_path / "ref.xyz"
    write(p, frames, format="extxyz")
    data = read_extxyz(p)
    assert [float(d.energy) for d in data] == [-10.0, -11.0, -12.0]
    np.testing.assert_array_equal(data[2].forces.numpy(), np.full((3, 3), 1.0))
    data = read_extxyz(p, energy_key="my_e", require=("energy",))
    assert [float(d.energy) for d in data] == [0.0, 3.0, 6.0]
    with pytest.raises(KeyError, match="available keys"):
        read_extxyz(p, energy_key="nope")


def test_calculator_keys_and_stress(tmp_path):
    a = water()
    a.cell = 5 * np.eye(3)
    a.pbc = True
    stress = np.array([1.0, 2.0, 3.0, 0.1, 0.2, 0.3])
    a.calc = SinglePointCalculator(a, energy=-7.5, forces=np.ones((3, 3)), stress=stress)
    p = tmp_path / "calc.xyz"
    write(p, [a], format="extxyz")
    (d,) = read_extxyz(p, require=("energy", "forces", "stress"))
    assert float(d.energy) == -7.5 and d.pbc.all()
    np.testing.assert_allclose(d.stress.numpy(), [[1, 0.3, 0.2], [0.3, 2, 0.1], [0.2, 0.1, 3]])


def test_missing_key_in_later_frame(tmp_path):
    a, b = water(), water(0.2)
    a.info["REF_energy"] = -1.0
    a.arrays["REF_forces"] = np.zeros((3, 3))
    b.arrays["REF_forces"] = np.zeros((3, 3))
    p = tmp_path / "m.xyz"
    write(p, [a, b], format="extxyz")
    with pytest.raises(KeyError, match="frame 1"):
        read_extxyz(p)


def test_isolated_atoms_without_forces_at_the_top(tmp_path):
    """MACE-style training files start with isolated atoms that carry an energy but no forces: the
    forces key is taken from the first frame that has one, and the molecules keep their forces."""
    iso = Atoms("O", positions=[[0.0, 0.0, 0.0]])
    iso.info.update(REF_energy=-2041.0, config_type="IsolatedAtom")
    mol = water()
    mol.info["REF_energy"] = -2080.0
    mol.arrays["REF_forces"] = np.full((3, 3), 0.25)
    p = tmp_path / "iso_first.xyz"
    write(p, [iso, mol], format="extxyz")
    data = read_extxyz(p, require=("energy",))
    assert data[0].forces is None and data[1].forces is not None
    np.testing.assert_array_equal(data[1].forces.numpy(), np.full((3, 3), 0.25))
    e0, rest = split_isolated_atoms(data)
    assert e0 == {8: -2041.0} and len(rest) == 1
    with pytest.raises(KeyError, match="frame 0 has no forces key 'REF_forces'"):
        read_extxyz(p)  # forces required on every frame by default
    write(p, [iso], format="extxyz")
    with pytest.raises(KeyError, match="no frame has forces labels"):
        read_extxyz(p)


def test_nan_coordinates(tmp_path):
    p = tmp_path / "nan.xyz"
    p.write_text('2\nProperties=species:S:1:pos:R:3 energy=-1.0 pbc="F F F"\nH 0 0 0\nH 0 0 nan\n')
    with pytest.raises(ValueError, match="frame 0.*NaN"):
        read_extxyz(p, require=("energy",))


def test_least_squares_e0_recovers_exact_values():
    rng = np.random.default_rng(0)
    e0 = {1: -13.6, 6: -1027.0, 8: -2038.0}
    data = []
    for k in range(12):
        z = rng.choice([1, 6, 8], size=rng.integers(2, 8))
        pos = np.arange(len(z))[:, None] * np.array([1.5, 0, 0])
        data.append(AtomicData(positions=pos, atomic_numbers=z, energy=sum(e0[int(x)] for x in z)))
    fit = least_squares_e0(data)
    assert fit.keys() == e0.keys()
    for z in e0:
        assert fit[z] == pytest.approx(e0[z], abs=1e-8)
    with pytest.raises(ValueError, match="unknown element"):
        least_squares_e0(data, species=[1, 6])


@needs_data
def test_acac_and_3bpa():
    data = read_extxyz("acac/train_300K.xyz", index=":5")
    assert len(data) == 5 and data[0].n_atoms == 15
    first = (DATA / "acac" / "train_300K.xyz").read_text().splitlines()[1]
    e_file = float(first.split("energy=")[1].split()[0])
    assert float(data[0].energy) == e_file
    e0 = isolated_atom_energies("acac/isolated_atoms.xyz")
    assert e0 == {1: pytest.approx(-13.568422178253735), 6: pytest.approx(-1026.8538996116154),
                  8: pytest.approx(-2037.796869412825)}
    e0b, rest = split_isolated_atoms(read_extxyz("3bpa/iso_atoms.xyz", require=("energy",)))
    assert sorted(e0b) == [1, 6, 7, 8] and rest == []


def test_least_squares_e0_warns_when_compositions_do_not_determine_it():
    import warnings

    same = [AtomicData(positions=water(0.1 * k).positions, atomic_numbers=[8, 1, 1], energy=-14.0 - k) for k in range(3)]
    with pytest.warns(UserWarning, match="determine 1 combination"):
        e0 = least_squares_e0(same)
    assert e0[8] + 2 * e0[1] == pytest.approx(-15.0)  # the mean energy is still reproduced
    mixed = same + [AtomicData(positions=[[0, 0, 0], [0, 0, 0.74]], atomic_numbers=[1, 1], energy=-1.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        least_squares_e0(mixed)  # two compositions, two elements: determined, no warning
