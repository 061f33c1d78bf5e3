r"""The physics contract of an interatomic potential, checked in one call.

A potential (the protocol in docs/potentials.md) is trusted by the workflow to give

- an energy invariant and forces equivariant under rotations, reflections, translations and
  permutations of the atoms: :math:`E(Qr_\sigma + t) = E(r)`, :math:`F(Qr_\sigma + t) = Q F(r)_\sigma`;
- forces that are the negative gradient of the energy, :math:`F = -\partial E / \partial r`, by central
  finite differences;
- an energy that is smooth at the cut-off: a neighbour at :math:`r_c - \delta` contributes as if absent;
- a periodic stress that is the strain derivative, :math:`\sigma = V^{-1}\, \partial E / \partial \varepsilon`;
- a save/load round trip with the same energies, and a clear error for an element it does not know.

`check_potential` runs all of them on small generated structures (float64 copy of the model) and returns
a `PotentialReport`; ``equiv check`` does it from the command line for a saved model or a class. The
test suite runs it on every built-in potential.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from pathlib import Path

import torch

__all__ = ["PotentialCheck", "PotentialReport", "check_potential"]


@dataclasses.dataclass
class PotentialCheck:
    """One line of a `PotentialReport`: what was measured, against which tolerance.

    >>> c = PotentialCheck("forces = -dE/dr", True, 3.8e-8, 1e-6, "central differences")
    >>> c.passed, c.value < c.tolerance
    (True, True)
    """

    name: str
    passed: bool | None  # None: skipped
    value: float | None = None
    tolerance: float | None = None
    detail: str = ""


@dataclasses.dataclass
class PotentialReport:
    """The checks of `check_potential`; ``passed`` when none failed (skipped ones do not fail).

    >>> report = PotentialReport("MyModel", [PotentialCheck("a", True, 1e-12, 1e-9), PotentialCheck("b", None)])
    >>> report.passed, report["a"].value
    (True, 1e-12)
    >>> print(report)
    Potential contract of MyModel:
      ok    a  1.00e-12 (tol 1e-09)
      skip  b
      all checks passed
    """

    model: str
    checks: list[PotentialCheck]

    @property
    def passed(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    def __getitem__(self, name: str) -> PotentialCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check named {name!r}; checks: {[c.name for c in self.checks]}")

    def __str__(self) -> str:
        lines = [f"Potential contract of {self.model}:"]
        width = max(len(c.name) for c in self.checks)
        for c in self.checks:
            verdict = "skip" if c.passed is None else ("ok" if c.passed else "FAIL")
            measured = "" if c.value is None else f"{c.value:.2e}" + ("" if c.tolerance is None else f" (tol {c.tolerance:.0e})")
            lines.append((f"  {verdict:4s}  {c.name:<{width}}  {measured}" + (f"  {c.detail}" if c.detail else "")).rstrip())
        lines.append("  all checks passed" if self.passed else "  SOME CHECKS FAILED")
        return "\n".join(lines)


def _molecule(species, n, seed, dtype):
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=dtype) * 1.1
    z = torch.tensor([species[k % len(species)] for k in range(n)])
    return pos, z


def _batch(pos, z, cutoff, cell=None):
    from equiv.data import AtomicData, collate

    d = AtomicData(positions=pos.detach(), atomic_numbers=z, cell=cell, pbc=cell is not None)
    return collate([d.with_graph(cutoff)]).to(dtype=pos.dtype)


def full_graph(n: int) -> torch.Tensor:
    """``(2, n (n - 1))``: every ordered pair ``i != j`` (the cut-off envelope removes pairs beyond r_c)."""
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    return torch.stack([i[keep], j[keep]])


def single_batch(pos: torch.Tensor, z: torch.Tensor, edge_index: torch.Tensor):
    """One non-periodic graph as a `equiv.data.Batch` with the given edges (no neighbour list)."""
    from equiv.data import Batch

    n, e = pos.shape[0], edge_index.shape[1]
    return Batch(positions=pos, atomic_numbers=z, batch=torch.zeros(n, dtype=torch.long), ptr=torch.tensor([0, n]),
                 edge_index=edge_index, unit_shifts=torch.zeros(e, 3, dtype=torch.long),
                 shifts=torch.zeros(e, 3, dtype=pos.dtype), cell=torch.zeros(1, 3, 3, dtype=pos.dtype),
                 pbc=torch.zeros(1, 3, dtype=torch.bool))


def _dense_batch(pos, z):
    """One graph with every ordered pair as an edge, so that permuting and moving atoms never changes
    the edge set."""
    return single_batch(pos, z, full_graph(pos.shape[0]))


def _symmetries(model, species, seed):
    from equiv.symmetry import equivariance_error
    from equiv.train.forces import predict_properties

    pos, z = _molecule(species, 7, seed, torch.float64)

    def fn(pos, z):
        out = predict_properties(model, _dense_batch(pos, z))
        return out["energy"][:, None], out["forces"]

    report = equivariance_error(fn, (pos, z), ["cartesian_points", None], ["0e", "cartesian_vectors"],
                                permutations=True, node_inputs=(0, 1), node_outputs=(1,),
                                generator=torch.Generator().manual_seed(seed))
    return PotentialCheck("O(3) x translations x permutations", report.passed(atol=1e-9, rtol=1e-10), report.max_error,
                          None, "energy invariant, forces rotate (4 random group elements); tol 1e-9 + 1e-10 |output|")


def _geometry_dependence(model, species, seed):
    pos, z = _molecule(species, 7, seed, torch.float64)
    with torch.no_grad():
        e0 = model(_dense_batch(pos, z))["energy"].item()
        e1 = model(_dense_batch(pos * 1.05, z))["energy"].item()
    change = abs(e1 - e0)
    return PotentialCheck("energy depends on the geometry", change > 1e-6, change, 1e-6,
                          "|E(1.05 r) - E(r)| must exceed the tolerance")


def _finite_differences(model, species, seed):
    from equiv.train.forces import predict_properties

    pos, z = _molecule(species, 5, seed + 1, torch.float64)
    forces = predict_properties(model, _dense_batch(pos, z))["forces"].detach()
    h, worst = 1e-5, 0.0
    tol = 1e-6 * max(1.0, float(forces.abs().max()))
    for atom, k in [(0, 0), (2, 1), (4, 2), (1, 2)]:
        dp = torch.zeros_like(pos)
        dp[atom, k] = h
        with torch.no_grad():
            ep = model(_dense_batch(pos + dp, z))["energy"].item()
            em = model(_dense_batch(pos - dp, z))["energy"].item()
        worst = max(worst, abs(-(ep - em) / (2 * h) - forces[atom, k].item()))
    return PotentialCheck("forces = -dE/dr", worst < tol, worst, tol, "central differences, h = 1e-5 Å")


def _smooth_cutoff(model, species, cutoff):
    from equiv.train.forces import predict_properties

    delta = 1e-4 * cutoff
    z = torch.tensor([species[k % len(species)] for k in range(3)])
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.4 * cutoff, 0.0, 0.0], [cutoff - delta, 0.0, 0.0]], dtype=torch.float64)
    near = _batch(pos, z, cutoff)
    far = _batch(pos, z, cutoff - 2 * delta)
    if near.edge_index.shape[1] != far.edge_index.shape[1] + 2:
        return PotentialCheck("smooth at the cut-off", None, detail="could not place a neighbour at r_c - delta")
    a = predict_properties(model, near)
    b = predict_properties(model, far)
    de = (a["energy"] - b["energy"]).abs().max().item()
    df = (a["forces"] - b["forces"]).abs().max().item()
    ok = de < 1e-8 and df < 1e-6
    return PotentialCheck("smooth at the cut-off", ok, max(de, df), 1e-6,
                          f"a neighbour at r_c - {delta:.0e} Å: dE {de:.1e} eV (tol 1e-8), dF {df:.1e} eV/Å (tol 1e-6)")


def _stress(model, species, cutoff):
    from equiv.train.forces import predict_properties

    f = cutoff / 3.0
    cell = torch.tensor([[3.2, 0.0, 0.0], [0.3, 3.0, 0.0], [0.0, 0.2, 3.4]], dtype=torch.float64) * f
    pos = torch.tensor([[0.1, 0.2, 0.3], [1.5, 1.1, 0.9], [2.2, 2.5, 2.0]], dtype=torch.float64) * f
    z = torch.tensor([species[k % len(species)] for k in range(3)])
    eye = torch.eye(3, dtype=torch.float64)

    def energy(strain):
        with torch.no_grad():
            return model(_batch(pos @ (eye + strain), z, cutoff, cell @ (eye + strain)))["energy"].item()

    stress = predict_properties(model, _batch(pos, z, cutoff, cell), compute_stress=True)["stress"][0].detach()
    volume = torch.linalg.det(cell).abs().item()
    h, worst = 1e-6, 0.0
    for a, b in [(0, 0), (1, 2), (2, 2)]:
        eps = torch.zeros(3, 3, dtype=torch.float64)
        eps[a, b] = eps[b, a] = h / 2 if a != b else h  # symmetric strain: dE = V sigma_ab h either way
        fd = (energy(eps) - energy(-eps)) / (2 * h) / volume
        worst = max(worst, abs(fd - stress[a, b].item()))
    asym = (stress - stress.T).abs().max().item()
    tol = 1e-6 * max(1.0, float(stress.abs().max()))
    return PotentialCheck("stress = dE/d(strain) / V", worst < tol and asym < tol, max(worst, asym), tol,
                          "periodic triclinic cell, central differences in the strain, symmetric stress")


def _save_load(model, species, seed):
    from equiv.train.saved_model import load_potential, save_potential

    if not all(hasattr(model, a) for a in ("species", "cutoff", "hparams")):
        return PotentialCheck("save -> load", None, detail="not the potential protocol (species, cutoff, hparams)")
    pos, z = _molecule(species, 7, seed, torch.float64)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        save_potential(model, path)
        loaded = load_potential(path).double()
    with torch.no_grad():
        diff = (loaded(_dense_batch(pos, z))["energy"] - model(_dense_batch(pos, z))["energy"]).abs().max().item()
    return PotentialCheck("save -> load", diff == 0.0, diff, 0.0, f"rebuilt as {type(loaded).__name__}, same energy bit for bit")


def _unknown_element(model, species, seed):
    unknown = next(zz for zz in range(1, 119) if zz not in species)
    pos, z = _molecule(species, 3, seed, torch.float64)
    z = z.clone()
    z[1] = unknown
    try:
        with torch.no_grad():
            model(_dense_batch(pos, z))
    except ValueError as exc:
        return PotentialCheck("unknown element -> ValueError", True, detail=str(exc).splitlines()[0][:80])
    except Exception as exc:  # noqa: BLE001 - any other error is a failure of the contract
        return PotentialCheck("unknown element -> ValueError", False, detail=f"raised {type(exc).__name__}: {exc}"[:100])
    return PotentialCheck("unknown element -> ValueError", False, detail=f"Z = {unknown} gave an energy")


def check_potential(model: torch.nn.Module, *, seed: int = 0) -> PotentialReport:
    r"""Check the physics contract of an interatomic potential (see the module docstring).

    Runs on a float64 CPU copy of ``model`` in evaluation mode, with small generated structures of its own
    ``species`` (a 7-atom and a 5-atom cluster about 1 Å apart, a 3-atom chain across the cut-off, a
    3-atom triclinic periodic cell scaled to the cut-off). Tolerances: symmetry errors
    :math:`10^{-9} + 10^{-10}|\text{output}|` (energies include E0, thousands of eV); forces against
    central differences 1e-6 eV/Å (relative above 1 eV/Å); a neighbour at :math:`r_c - 10^{-4} r_c`
    changes the energy by less than 1e-8 eV and the forces by less than 1e-6 eV/Å; stress against
    finite strain 1e-6 eV/Å³; save and load bit for bit.

    Parameters
    ----------
    model : torch.nn.Module
        A potential: ``model(batch)["energy"]``, attributes ``species`` (atomic numbers) and ``cutoff``
        (Å); ``hparams`` for the save/load check (skipped without it).
    seed : int
        Seed of the generated structures and group elements.

    Returns
    -------
    PotentialReport
        ``report.passed``; ``str(report)`` is a table; ``report["forces = -dE/dr"].value`` one number.

    Examples
    --------
    >>> from equiv.models import ToyPotential
    >>> model = ToyPotential(species=[1, 6, 8], cutoff=3.0, atomic_energies=[-13.6, -1027.0, -2038.0])
    >>> report = check_potential(model)
    >>> report.passed, len(report.checks)
    (True, 7)
    >>> report["forces = -dE/dr"].value < 1e-6
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"check_potential: model must be a torch.nn.Module, got {type(model).__name__}")
    for attr in ("species", "cutoff"):
        if not hasattr(model, attr):
            raise ValueError(f"check_potential: the model has no {attr!r} attribute (the potential protocol, "
                             "docs/potentials.md)")
    m = copy.deepcopy(model).double().cpu().eval()  # small structures: the CPU is the right place
    species = [int(s) for s in m.species]
    cutoff = float(m.cutoff)
    checks = [
        _symmetries(m, species, seed),
        _geometry_dependence(m, species, seed),
        _finite_differences(m, species, seed),
        _smooth_cutoff(m, species, cutoff),
        _stress(m, species, cutoff),
        _save_load(m, species, seed),
        _unknown_element(m, species, seed),
    ]
    return PotentialReport(model=type(model).__name__, checks=checks)
