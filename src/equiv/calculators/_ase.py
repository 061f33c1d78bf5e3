r"""ASE calculator for equiv potentials.

>>> from ase.build import molecule
>>> from equiv.models import ToyPotential
>>> atoms = molecule("H2O")
>>> atoms.calc = EquivCalculator(ToyPotential(species=[1, 8], cutoff=4.0))
>>> atoms.get_forces().shape
(3, 3)
"""

from __future__ import annotations

import os

import torch
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from equiv.data import AtomicData, collate
from equiv.train.forces import predict_properties
from equiv.train.saved_model import load_potential

__all__ = ["EquivCalculator"]


class EquivCalculator(Calculator):
    r"""An :class:`ase.calculators.calculator.Calculator` running an equiv potential.

    Energies in eV, forces in eV/Å, stress in eV/Å³ (Voigt order xx, yy, zz, yz, xz, xy; ASE sign
    convention :math:`\sigma = \frac1V \partial E/\partial\varepsilon`). Forces and stress come from
    autograd (:func:`equiv.train.forces.predict_properties`). The neighbour list is rebuilt at every
    call. Stress needs a cell with non-zero volume.

    Parameters
    ----------
    model : str, os.PathLike or torch.nn.Module
        A saved potential (:func:`equiv.train.save_potential`), loaded with frozen weights (only
        evaluated here; layers then keep what depends on the weights alone between steps), or a model
        instance, used as it is (freeze it with ``model.requires_grad_(False)`` for the same speed).
    device : str
        ``"cpu"`` or ``"cuda"``.
    dtype : torch.dtype, optional
        Default: the model's dtype.

    Examples
    --------
    Save a tiny potential, then load it as an ASE calculator:

    >>> import os, tempfile
    >>> from ase.build import molecule
    >>> from equiv.models import ToyPotential
    >>> from equiv.train import save_potential
    >>> model = ToyPotential(species=[1, 8], cutoff=3.5, atomic_energies=[-13.6, -2038.0], channels=4, hidden=8)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = os.path.join(tmp, "model.pt")
    ...     save_potential(model.double(), path)
    ...     calc = EquivCalculator(path)
    >>> atoms = molecule("H2O")
    >>> atoms.calc = calc
    >>> isinstance(atoms.get_potential_energy(), float)
    True
    >>> forces = atoms.get_forces()
    >>> forces.shape
    (3, 3)
    >>> bool(abs(forces.sum(axis=0)).max() < 1e-10)  # translation invariance: no net force
    True
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(self, model, device: str = "cpu", dtype: torch.dtype | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, (str, os.PathLike)):
            model = load_potential(model, device=device, dtype=dtype)
            # a model loaded here is only evaluated: frozen weights let layers keep what depends on the
            # weights alone between steps (SymmetricContraction's coefficients)
            model.requires_grad_(False)
        elif isinstance(model, torch.nn.Module):
            model = model.to(device=device, dtype=dtype).eval()
        else:
            raise TypeError(f"model must be a path or a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.device = torch.device(device)
        params = list(model.parameters())
        self.dtype = dtype or (params[0].dtype if params else torch.get_default_dtype())
        self.cutoff = float(model.cutoff)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        want_stress = "stress" in properties
        if want_stress and not (self.atoms.pbc.any() and abs(self.atoms.cell.volume) > 0):
            raise PropertyNotImplementedError("stress needs a periodic cell with non-zero volume")
        data = AtomicData.from_ase(self.atoms).with_graph(self.cutoff)
        batch = collate([data]).to(device=self.device, dtype=self.dtype)
        out = predict_properties(self.model, batch, compute_forces=True, compute_stress=want_stress)
        energy = float(out["energy"][0])
        self.results["energy"] = self.results["free_energy"] = energy
        self.results["forces"] = out["forces"].cpu().double().numpy()
        if "node_energy" in out:
            self.results["energies"] = out["node_energy"].cpu().double().numpy()
        if want_stress:
            self.results["stress"] = full_3x3_to_voigt_6_stress(out["stress"][0].cpu().double().numpy())
