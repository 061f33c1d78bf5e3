r"""Energy, force and stress errors of a potential, in meV.

For structures :math:`s` with :math:`n_s` atoms and force components :math:`F_{ik}`:

.. math::

    \text{MAE}_E = \frac1S\sum_s |\hat E_s - E_s|,\qquad
    \text{RMSE}_E = \sqrt{\frac1S\sum_s (\hat E_s - E_s)^2},\qquad
    \text{MAE}_F = \frac{1}{3N}\sum_{i,k} |\hat F_{ik} - F_{ik}|,

and per-atom energies :math:`(\hat E_s - E_s)/n_s`. Force errors are over Cartesian components, the
convention of the rMD17 tables of NequIP and MACE. Reported in meV, meV/atom, meV/Å, meV/Å³.

:class:`ErrorAccumulator` keeps sums, so batches (and processes, via :meth:`ErrorAccumulator.all_reduce`)
can be combined exactly.

>>> import torch
>>> acc = ErrorAccumulator()
>>> acc.add(torch.tensor([1.001], dtype=torch.float64), torch.tensor([1.0], dtype=torch.float64), torch.tensor([2]))
>>> round(acc.compute()["energy_mae"], 9)
1.0
"""

from __future__ import annotations

import math

import torch

__all__ = ["ErrorAccumulator", "METRIC_UNITS"]

METRIC_UNITS = {
    "energy_mae": "meV", "energy_rmse": "meV", "energy_per_atom_mae": "meV/atom",
    "energy_per_atom_rmse": "meV/atom", "forces_mae": "meV/Å", "forces_rmse": "meV/Å",
    "stress_mae": "meV/Å³", "stress_rmse": "meV/Å³",
}
_KEYS = ("n_e", "e_abs", "e_sq", "ea_abs", "ea_sq", "n_f", "f_abs", "f_sq", "n_s", "s_abs", "s_sq")


class ErrorAccumulator:
    """Running sums of absolute and squared errors (inputs in eV, eV/Å, eV/Å³).

    Examples
    --------
    >>> import torch
    >>> acc = ErrorAccumulator()
    >>> f64 = dict(dtype=torch.float64)
    >>> for e_err in (0.002, 0.004):  # two batches of one 2-atom structure each
    ...     acc.add(energy_pred=torch.tensor([-1.0 + e_err], **f64), energy_ref=torch.tensor([-1.0], **f64),
    ...             n_atoms=torch.tensor([2]), forces_pred=torch.zeros(2, 3, **f64),
    ...             forces_ref=torch.full((2, 3), 0.001, **f64))
    >>> m = acc.compute()  # meV, meV/atom, meV/Å
    >>> round(m["energy_mae"], 6), round(m["energy_per_atom_mae"], 6), round(m["forces_mae"], 6)
    (3.0, 1.5, 1.0)
    >>> sorted(m)
    ['energy_mae', 'energy_per_atom_mae', 'energy_per_atom_rmse', 'energy_rmse', 'forces_mae', 'forces_rmse']
    >>> acc.reset(); acc.compute()
    {}
    """

    def __init__(self):
        self.sums = torch.zeros(len(_KEYS), dtype=torch.float64)

    def reset(self) -> None:
        self.sums.zero_()

    @torch.no_grad()
    def add(self, energy_pred=None, energy_ref=None, n_atoms=None, forces_pred=None, forces_ref=None,
            stress_pred=None, stress_ref=None) -> None:
        """Add a batch. Energies (G,), ``n_atoms`` (G,), forces (N, 3), stress (G, 3, 3)."""
        s = torch.zeros_like(self.sums)
        if energy_pred is not None and energy_ref is not None:
            d = (energy_pred.detach().double() - energy_ref.detach().double()).cpu()
            na = n_atoms.detach().double().cpu()
            s[0], s[1], s[2] = d.numel(), d.abs().sum(), d.pow(2).sum()
            s[3], s[4] = (d / na).abs().sum(), (d / na).pow(2).sum()
        if forces_pred is not None and forces_ref is not None:
            d = (forces_pred.detach().double() - forces_ref.detach().double()).cpu()
            s[5], s[6], s[7] = d.numel(), d.abs().sum(), d.pow(2).sum()
        if stress_pred is not None and stress_ref is not None:
            d = (stress_pred.detach().double() - stress_ref.detach().double()).cpu()
            s[8], s[9], s[10] = d.numel(), d.abs().sum(), d.pow(2).sum()
        self.sums += s

    def all_reduce(self) -> None:
        """Sum over processes (no-op without an initialised process group)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            t = self.sums.clone()
            if dist.get_backend() == "nccl":
                t = t.cuda()
            dist.all_reduce(t)
            self.sums = t.cpu()

    def state_dict(self) -> dict:
        return {"sums": self.sums.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.sums = state["sums"].clone().double()

    def compute(self) -> dict[str, float]:
        """Errors in meV units; a quantity never added is absent."""
        v = self.sums.tolist()
        out = {}
        if v[0] > 0:
            out.update(energy_mae=1e3 * v[1] / v[0], energy_rmse=1e3 * math.sqrt(v[2] / v[0]),
                       energy_per_atom_mae=1e3 * v[3] / v[0], energy_per_atom_rmse=1e3 * math.sqrt(v[4] / v[0]))
        if v[5] > 0:
            out.update(forces_mae=1e3 * v[6] / v[5], forces_rmse=1e3 * math.sqrt(v[7] / v[5]))
        if v[8] > 0:
            out.update(stress_mae=1e3 * v[9] / v[8], stress_rmse=1e3 * math.sqrt(v[10] / v[8]))
        return out
