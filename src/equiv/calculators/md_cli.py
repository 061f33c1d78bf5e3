"""``equiv md``: molecular dynamics with a trained potential, through ASE.

NVE uses velocity Verlet (Swope et al. 1982); NVT uses ASE's Langevin integrator with the centre of mass
held fixed by an ``ase.constraints.FixCom`` constraint for the run (ASE's recommended replacement for
its ``fixcm=True``, which does not sample the NVT distribution exactly, most visibly for small
molecules). Velocities start from a Maxwell–Boltzmann distribution at ``--temperature`` (centre-of-mass
motion, and for molecules rotation, removed). The trajectory is written every ``--interval`` steps (``.traj`` in ASE's format, anything
else through ``ase.io.write``, e.g. ``.xyz`` as extended XYZ with energies and forces).

Example::

    equiv md --model runs/ethanol/model.pt --structure rmd17:ethanol --steps 2000 --timestep 0.5 \\
        --ensemble nve --temperature 300 --trajectory md.xyz
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from equiv.cli import add_threads_argument, apply_threads

__all__ = ["add_arguments", "run", "run_md"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="saved potential (model.pt from equiv train potential)")
    parser.add_argument("--structure", required=True,
                        help="initial structure: any file ASE reads (last frame unless --index), or rmd17:<molecule>")
    parser.add_argument("--index", type=int, default=-1, help="frame of --structure (default: last)")
    parser.add_argument("--ensemble", choices=("nve", "langevin"), default="nve", help="default: nve")
    parser.add_argument("--temperature", type=float, default=300.0, help="K, initial velocities and Langevin bath (default 300)")
    parser.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    parser.add_argument("--steps", type=int, default=1000, help="number of MD steps (default 1000)")
    parser.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default 0.01)")
    parser.add_argument("--interval", type=int, default=10, help="write a frame every N steps (default 10)")
    parser.add_argument("--trajectory", default="md.traj", help="output trajectory (.traj or .xyz; default md.traj)")
    parser.add_argument("--log", default=None, help="ASE MD log file (default: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial velocities and Langevin noise")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    add_threads_argument(parser)


def _initial_structure(spec: str, index: int):
    from ase.io import read

    if spec.startswith("rmd17:"):
        from equiv.data.rmd17 import read_rmd17

        return read_rmd17(spec.split(":", 1)[1], "test", indices=[0])[0].to_ase()
    if not Path(spec).is_file():
        raise FileNotFoundError(f"--structure: no file at {spec!r}")
    return read(spec, index=index)


def run_md(atoms, calculator, ensemble: str = "nve", temperature: float = 300.0, timestep: float = 0.5,
           steps: int = 1000, friction: float = 0.01, interval: int = 10, trajectory: str | None = None,
           log: str | None = None, seed: int = 0, progress: bool = False, init_velocities: bool = True) -> dict:
    """Run MD on ``atoms`` with ``calculator``; return energies along the run.

    ``ensemble="langevin"`` adds an ``ase.constraints.FixCom`` to ``atoms`` for the run (removed
    afterwards), so the centre of mass stays where it started.

    Returns
    -------
    dict with ``time_fs``, ``potential``, ``kinetic``, ``total`` (eV, every ``interval`` steps, step 0
    included) and ``temperature`` (K).
    """
    from ase import units
    from ase.constraints import FixCom
    from ase.md import velocitydistribution as vd
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet
    from tqdm.auto import tqdm

    for name, v in (("timestep", timestep), ("steps", steps), ("interval", interval)):
        if v <= 0:
            raise ValueError(f"{name} must be > 0, got {v}")
    if ensemble not in ("nve", "langevin"):
        raise ValueError(f"ensemble must be 'nve' or 'langevin', got {ensemble!r}")
    atoms.calc = calculator
    rng = np.random.default_rng(seed)
    if init_velocities:
        if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29; MaxwellBoltzmannDistribution is deprecated there
            vd.thermalize_momenta(atoms, temperature, rng=rng)
        else:
            vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
        vd.Stationary(atoms)
        if not atoms.pbc.any():
            vd.ZeroRotation(atoms)
    constraints = list(atoms.constraints)
    if ensemble == "nve":
        dyn = VelocityVerlet(atoms, timestep * units.fs, logfile=log)
    else:
        if not any(isinstance(c, FixCom) for c in constraints):
            atoms.set_constraint(constraints + [FixCom()])
        dyn = Langevin(atoms, timestep * units.fs, temperature_K=temperature, friction=friction / units.fs,
                       fixcm=False, logfile=log, rng=rng)
    record = {"time_fs": [], "potential": [], "kinetic": [], "total": [], "temperature": []}

    def observe():
        ep, ek = atoms.get_potential_energy(), atoms.get_kinetic_energy()
        record["time_fs"].append(dyn.nsteps * timestep)
        record["potential"].append(float(ep))
        record["kinetic"].append(float(ek))
        record["total"].append(float(ep + ek))
        record["temperature"].append(float(atoms.get_temperature()))

    dyn.attach(observe, interval=interval)
    traj = None
    if trajectory is not None:
        if str(trajectory).endswith(".traj"):
            from ase.io.trajectory import Trajectory

            traj = Trajectory(trajectory, "w", atoms)
            dyn.attach(traj.write, interval=interval)
        else:
            from ase.io import write

            Path(trajectory).unlink(missing_ok=True)
            dyn.attach(lambda: write(trajectory, atoms, append=True), interval=interval)
    bar = tqdm(total=steps, disable=not progress, desc=f"MD {ensemble}", dynamic_ncols=True)
    dyn.attach(lambda: bar.update(1) if dyn.nsteps else None, interval=1)
    try:
        dyn.run(steps)
    finally:
        bar.close()
        if traj is not None:
            traj.close()
        atoms.set_constraint(constraints)
    return record


def run(args: argparse.Namespace) -> int:
    from equiv.calculators import EquivCalculator

    apply_threads(args)
    atoms = _initial_structure(args.structure, args.index)
    calc = EquivCalculator(args.model, device=args.device)
    rec = run_md(atoms, calc, args.ensemble, args.temperature, args.timestep, args.steps, args.friction,
                 args.interval, args.trajectory, args.log, args.seed, args.progress)
    total = np.asarray(rec["total"])
    summary = {"steps": args.steps, "time_fs": args.steps * args.timestep, "ensemble": args.ensemble,
               "final_temperature_K": rec["temperature"][-1], "mean_temperature_K": float(np.mean(rec["temperature"])),
               "total_energy_drift_eV": float(total[-1] - total[0]),
               "total_energy_max_deviation_eV": float(np.abs(total - total[0]).max()),
               "trajectory": args.trajectory}
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0
