import numpy as np
import pytest

from equiv.data.paths import data_dir
from equiv.data.rmd17 import KCAL_PER_MOL_IN_EV, read_rmd17, rmd17_splits

try:
    RMD17 = data_dir("rmd17")
except FileNotFoundError:  # pragma: no cover
    RMD17 = None
needs_data = pytest.mark.skipif(RMD17 is None, reason="shared data folder not found (set EQUIV_DATA)")


def test_conversion_factor():
    # 1 kcal/mol = 0.0433641 eV (CODATA); independent check via kJ: 1 eV = 96.485332 kJ/mol
    assert KCAL_PER_MOL_IN_EV == pytest.approx(4.184 / 96.48533212, rel=1e-9)
    assert KCAL_PER_MOL_IN_EV == pytest.approx(0.0433641, abs=1e-7)


@needs_data
def test_units_and_content():
    raw = np.load(RMD17 / "rmd17_ethanol_test_01.npz")
    frames = read_rmd17("ethanol", "test", indices=[0, 999])
    assert frames[0].atomic_numbers.tolist() == raw["nuclear_charges"].tolist()
    np.testing.assert_allclose(float(frames[1].energy), raw["energies"][999] * KCAL_PER_MOL_IN_EV, rtol=1e-14)
    np.testing.assert_allclose(frames[0].forces.numpy(), raw["forces"][0] * KCAL_PER_MOL_IN_EV, rtol=1e-14)
    np.testing.assert_array_equal(frames[0].positions.numpy(), raw["coords"][0])
    # ethanol total energy is about -97000 kcal/mol = -4209 eV
    assert -4220 < float(frames[0].energy) < -4200


@needs_data
def test_split_reproducible_and_disjoint():
    tr, va, te = rmd17_splits("ethanol", seed=0)
    assert (len(tr), len(va), len(te)) == (950, 50, 1000)
    itr = [d.info["index"] for d in tr]
    iva = [d.info["index"] for d in va]
    assert not set(itr) & set(iva) and sorted(itr + iva) == list(range(1000))
    assert all(d.info["source"].endswith("_test_01.npz") for d in te)
    tr2, va2, _ = rmd17_splits("ethanol", seed=0)
    assert [d.info["index"] for d in va2] == iva
    _, va3, _ = rmd17_splits("ethanol", seed=1)
    assert [d.info["index"] for d in va3] != iva


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="molecule"):
        read_rmd17("water")
    with pytest.raises(ValueError, match="split"):
        read_rmd17("ethanol", "valid")
    p = tmp_path / "bad.npz"
    np.savez(p, nuclear_charges=np.array([1, 1]), coords=np.zeros((2, 2, 3)), energies=np.zeros(2))
    with pytest.raises(KeyError, match="forces"):
        read_rmd17(str(p))
    coords = np.zeros((1, 2, 3))
    coords[0, 1, 2] = np.nan
    np.savez(p, nuclear_charges=np.array([1, 1]), coords=coords, energies=np.zeros(1), forces=np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        read_rmd17(str(p))
    np.savez(p, nuclear_charges=np.array([1, 0]), coords=np.ones((1, 2, 3)), energies=np.zeros(1), forces=np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="unknown element"):
        read_rmd17(str(p))
