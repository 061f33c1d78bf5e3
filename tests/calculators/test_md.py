"""NVE molecular dynamics with a trained equiv potential through ASE: energy conservation."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from potential_helpers import lj_frames, write_lj_dataset  # noqa: E402

from equiv.calculators import EquivCalculator  # noqa: E402
from equiv.calculators.md_cli import run_md  # noqa: E402
from equiv.cli import main  # noqa: E402
from equiv.train.potential import resolve_config, train_potential  # noqa: E402


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("md")
    train = write_lj_dataset(d / "train.xyz", 16, seed=2)
    cfg = resolve_config(dict(dataset="extxyz", train_file=train, valid_fraction=0.25, cutoff=4.0, epochs=6,
                              batch_size=4, lr=0.01, model="toy", model_kwargs={"channels": 8, "hidden": 16},
                              output_dir=str(d / "run"), progress=False, test=False, device="cpu"))
    report = train_potential(cfg)
    return report["model_path"]


def total_energy_deviation(model_path, dt, time_fs=20.0):
    atoms = lj_frames(1, seed=11)[0]
    rec = run_md(atoms, EquivCalculator(model_path), "nve", temperature=300.0, timestep=dt,
                 steps=int(round(time_fs / dt)), interval=1, seed=0)
    total = np.asarray(rec["total"])
    return np.abs(total - total[0]).max(), np.ptp(rec["kinetic"])


def test_nve_energy_conservation(trained_model):
    dev_1, ekin_range = total_energy_deviation(trained_model, 0.5)
    dev_2, _ = total_energy_deviation(trained_model, 0.25)
    # the dynamics is not trivial: kinetic energy exchanges with potential energy
    assert ekin_range > 0.1
    # total energy is conserved far better than the kinetic energy varies (measured: 0.1%)
    assert dev_2 < 0.005 * ekin_range
    # velocity Verlet: the energy error scales as dt^2 (halving dt divides it by 4; measured 3.9), which
    # holds only when the forces are the exact gradient of a smooth energy
    assert 3.5 < dev_1 / dev_2 < 4.5, (dev_1, dev_2)


def test_md_cli_writes_trajectory(trained_model, tmp_path, capsys):
    start = tmp_path / "start.xyz"
    from ase.io import read, write

    write(start, lj_frames(1, seed=5)[0])
    traj = tmp_path / "md.xyz"
    rc = main(["md", "--model", trained_model, "--structure", str(start), "--steps", "20", "--interval", "5",
               "--ensemble", "langevin", "--trajectory", str(traj), "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 20 and summary["ensemble"] == "langevin"
    frames = read(traj, index=":")
    assert len(frames) == 5  # steps 0, 5, 10, 15, 20
    assert frames[-1].get_potential_energy() == pytest.approx(frames[-1].calc.results["energy"])


def test_langevin_holds_the_centre_of_mass_and_restores_constraints(trained_model):
    import warnings

    from ase.constraints import FixAtoms, FixCom

    atoms = lj_frames(1, seed=7)[0]
    atoms.set_constraint(FixAtoms(indices=[]))  # a user's constraint survives the run unchanged
    com0 = atoms.get_center_of_mass()
    with warnings.catch_warnings():
        # ASE deprecates Langevin's fixcm=True and MaxwellBoltzmannDistribution: neither may be used
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        rec = run_md(atoms, EquivCalculator(trained_model), "langevin", temperature=300.0, timestep=0.5,
                     steps=40, friction=0.05, interval=10, seed=3)
    assert len(rec["total"]) == 5
    # the thermostat's noise moves the atoms but not their centre of mass (FixCom during the run)
    assert np.abs(atoms.get_positions() - lj_frames(1, seed=7)[0].get_positions()).max() > 1e-3
    np.testing.assert_allclose(atoms.get_center_of_mass(), com0, atol=1e-10)
    np.testing.assert_allclose(atoms.get_momenta().sum(0), 0.0, atol=1e-10)
    assert [type(c) for c in atoms.constraints] == [FixAtoms]
    assert not any(isinstance(c, FixCom) for c in atoms.constraints)
