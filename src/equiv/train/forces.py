r"""Forces and stress from an energy model by automatic differentiation.

Forces are :math:`\mathbf F_i = -\partial E / \partial \mathbf r_i`. The stress follows from a
symmetric strain :math:`\boldsymbol\varepsilon` applied to positions and cell,
:math:`\mathbf r \to \mathbf r(\mathbf I + \boldsymbol\varepsilon)`,
:math:`\mathbf C \to \mathbf C(\mathbf I + \boldsymbol\varepsilon)` (rows are vectors), at
:math:`\boldsymbol\varepsilon = 0`:

.. math::

    \mathbf W = -\frac{\partial E}{\partial \boldsymbol\varepsilon},\qquad
    \boldsymbol\sigma = -\frac{\mathbf W}{V} = \frac{1}{V}\frac{\partial E}{\partial \boldsymbol\varepsilon},

the virial :math:`\mathbf W` and the stress :math:`\boldsymbol\sigma` in ASE's sign convention
(eV/Å³), as in NequIP and MACE (Batzner et al. 2022; Batatia et al. 2022). Because the model computes
edge vectors from ``batch.shifts`` (the Cartesian image shifts), straining the cell strains the shifts
too, and the stress includes the periodic images.

Model protocol: see :mod:`equiv.models._potential_registry`; in short ``model(batch)["energy"]`` with
shape ``(n_graphs,)`` in eV, differentiable in ``batch.positions`` and ``batch.shifts``.

>>> import torch
>>> from equiv.data import AtomicData, collate
>>> from equiv.models import ToyPotential
>>> model = ToyPotential(species=[1], cutoff=2.0).double()
>>> batch = collate([AtomicData(positions=[[0, 0, 0], [0, 0, 0.9]], atomic_numbers=[1, 1]).with_graph(2.0)])
>>> out = predict_properties(model, batch)
>>> torch.allclose(out["forces"].sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-12)
True
"""

from __future__ import annotations

import torch

__all__ = ["strain_batch", "compute_forces_and_stress", "predict_properties"]


def strain_batch(batch, compute_stress: bool = False):
    """Prepare a batch for differentiation.

    Returns
    -------
    (strained_batch, positions, displacement)
        ``positions`` is the leaf tensor (requires grad) to differentiate against; ``displacement``
        ``(n_graphs, 3, 3)`` is the strain leaf (``None`` unless ``compute_stress``). With a stress,
        ``strained_batch`` has positions, cell and shifts multiplied by :math:`\\mathbf I + \\varepsilon`
        (numerically unchanged at :math:`\\varepsilon = 0`).
    """
    positions = batch.positions.detach().clone().requires_grad_(True)
    if not compute_stress:
        return batch.replace(positions=positions), positions, None
    g = batch.num_graphs
    displacement = torch.zeros(g, 3, 3, dtype=positions.dtype, device=positions.device, requires_grad=True)
    sym = 0.5 * (displacement + displacement.transpose(-1, -2))
    strained_pos = positions + torch.einsum("ni,nij->nj", positions, sym[batch.batch])
    cell = batch.cell + torch.bmm(batch.cell, sym)
    edge_graph = batch.batch[batch.edge_index[0]]
    shifts = torch.einsum("ek,ekc->ec", batch.unit_shifts.to(positions.dtype), cell[edge_graph])
    return batch.replace(positions=strained_pos, cell=cell, shifts=shifts), positions, displacement


def compute_forces_and_stress(energy: torch.Tensor, positions: torch.Tensor, displacement: torch.Tensor | None = None,
                              cell: torch.Tensor | None = None, training: bool = False):
    r"""Forces (and virial and stress) from an energy by autograd.

    Parameters
    ----------
    energy : torch.Tensor, shape (n_graphs,)
    positions : torch.Tensor, shape (n_atoms, 3)
        The leaf returned by :func:`strain_batch`.
    displacement : torch.Tensor, shape (n_graphs, 3, 3), optional
        The strain leaf; gives virial and stress.
    cell : torch.Tensor, shape (n_graphs, 3, 3), optional
        Unstrained cells, for the volume (required with ``displacement``).
    training : bool
        ``create_graph=True`` so a loss on forces can be back-propagated to the weights.

    Returns
    -------
    forces : (n_atoms, 3); virial, stress : (n_graphs, 3, 3) or None
        Stress of a structure with zero cell volume is NaN.

    Examples
    --------
    >>> from ase.build import molecule
    >>> from equiv.data import AtomicData, collate
    >>> from equiv.models import ToyPotential
    >>> _ = torch.manual_seed(0)
    >>> model = ToyPotential(species=[1, 8], cutoff=3.5, channels=4, hidden=8).double()
    >>> batch = collate([AtomicData.from_ase(molecule("H2O")).with_graph(3.5)])
    >>> strained, positions, displacement = strain_batch(batch)
    >>> forces, virial, stress = compute_forces_and_stress(model(strained)["energy"], positions)
    >>> tuple(forces.shape), virial is None, stress is None
    ((3, 3), True, True)
    >>> bool(torch.allclose(forces.sum(0), torch.zeros(3, dtype=torch.float64), atol=1e-10))
    True

    With the strain leaf the virial and stress come too (NaN stress here: a molecule has no volume):

    >>> strained, positions, displacement = strain_batch(batch, compute_stress=True)
    >>> energy = model(strained)["energy"]
    >>> forces, virial, stress = compute_forces_and_stress(energy, positions, displacement, batch.cell)
    >>> tuple(virial.shape), bool(stress.isnan().all())
    ((1, 3, 3), True)
    """
    inputs = [positions] if displacement is None else [positions, displacement]
    grads = torch.autograd.grad([energy.sum()], inputs, create_graph=training, retain_graph=training)
    forces = -grads[0]
    if displacement is None:
        return forces, None, None
    if cell is None:
        raise ValueError("cell is required with displacement to compute the stress")
    virial = -grads[1]
    volume = torch.linalg.det(cell).abs()
    volume = torch.where(volume > 0, volume, torch.full_like(volume, float("nan")))
    stress = -virial / volume[:, None, None]
    return forces, virial, stress


def predict_properties(model, batch, compute_forces: bool = True, compute_stress: bool = False,
                       training: bool = False) -> dict[str, torch.Tensor]:
    """Energy, forces and (optionally) virial and stress of a batch under ``model``.

    Parameters
    ----------
    model : potential following the protocol (may be wrapped in DistributedDataParallel)
    batch : equiv.data.Batch
    compute_forces, compute_stress : bool
    training : bool
        Keep the graph for a force/stress loss (``create_graph=True``).

    Returns
    -------
    dict with ``"energy"`` (n_graphs,), ``"forces"`` (n_atoms, 3) and, with ``compute_stress``,
    ``"virial"`` and ``"stress"`` (n_graphs, 3, 3); plus anything else the model returned.

    Examples
    --------
    >>> from ase.build import molecule
    >>> from equiv.data import AtomicData, collate
    >>> water = AtomicData.from_ase(molecule("H2O")).with_graph(3.5)
    >>> from equiv.models import ToyPotential
    >>> _ = torch.manual_seed(0)
    >>> model = ToyPotential(species=[1, 8], cutoff=3.5, channels=4, hidden=8).double()
    >>> out = predict_properties(model, collate([water, water]))
    >>> sorted(out), tuple(out["energy"].shape), tuple(out["forces"].shape)
    (['energy', 'forces', 'node_energy'], (2,), (6, 3))
    >>> bool(torch.allclose(out["energy"][0], out["energy"][1])), out["forces"].requires_grad
    (True, False)
    >>> sorted(predict_properties(model, collate([water]), compute_stress=True))
    ['energy', 'forces', 'node_energy', 'stress', 'virial']
    """
    if not (compute_forces or compute_stress):
        if training:
            return dict(model(batch))
        with torch.no_grad():
            return dict(model(batch))
    strained, positions, displacement = strain_batch(batch, compute_stress)
    with torch.enable_grad():
        out = dict(model(strained))
        energy = out["energy"]
        if energy.shape != (batch.num_graphs,):
            raise ValueError(f"model returned energy of shape {tuple(energy.shape)}; expected ({batch.num_graphs},)")
        forces, virial, stress = compute_forces_and_stress(energy, positions, displacement, batch.cell, training)
    out["forces"] = forces
    if compute_stress:
        out["virial"], out["stress"] = virial, stress
    if not training:
        out = {k: v.detach() for k, v in out.items()}
    return out
