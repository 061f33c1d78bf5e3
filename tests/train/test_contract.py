"""check_potential / `equiv check`: passes a correct potential, and each check catches its own defect."""
import pytest
import torch
from torch import nn

from equiv.cli import main
from equiv.train import check_potential, save_potential


class PairPotential(nn.Module):
    """E = sum over edges of a smooth pair term; ``defect`` breaks one property on purpose."""

    def __init__(self, species=(1, 6, 8), cutoff=3.0, defect=None):
        super().__init__()
        self.species, self.cutoff, self.defect = list(species), cutoff, defect
        self.hparams = dict(species=self.species, cutoff=cutoff, defect=defect)
        self.depth = nn.Parameter(torch.tensor([0.3, 0.5, 0.7]))
        self.register_buffer("z_table", torch.tensor(self.species))

    def forward(self, batch):
        z = batch.atomic_numbers
        if self.defect != "accepts-unknown" and not torch.isin(z, self.z_table).all():
            raise ValueError("unknown element")
        s, r = batch.edge_index
        pos = batch.positions
        if self.defect == "detached":
            pos = pos.detach() + (pos - pos.detach()) * 0.5  # half the gradient reaches the positions
        vec = pos[r] - pos[s] + (batch.shifts.detach() if self.defect == "detached-shifts" else batch.shifts)
        d = vec.norm(dim=-1)
        u = (d / self.cutoff).clamp(max=1.0)
        envelope = torch.ones_like(u) if self.defect == "hard-cutoff" else (1 - u) ** 3
        species = torch.searchsorted(self.z_table, z.clamp(max=int(self.z_table[-1])))
        pair = self.depth[species[s]] * self.depth[species[r]] * torch.exp(-d) * envelope
        if self.defect == "not-invariant":
            pair = pair * (1 + 0.1 * vec[:, 0] ** 2)  # depends on the direction of the bond
        node = pair.new_zeros(pos.shape[0]).index_add(0, r, pair)
        return {"energy": node.new_zeros(batch.num_graphs).index_add(0, batch.batch, node)}


def test_a_correct_potential_passes_every_check():
    report = check_potential(PairPotential())
    assert report.passed, str(report)
    assert all(c.passed is True for c in report.checks), str(report)  # none skipped
    assert report["energy depends on the geometry"].value > 1e-3
    assert "all checks passed" in str(report)


@pytest.mark.parametrize("defect, failing", [
    ("not-invariant", "O(3) x translations x permutations"),
    ("detached", "forces = -dE/dr"),
    ("hard-cutoff", "smooth at the cut-off"),
    ("detached-shifts", "stress = dE/d(strain) / V"),  # the strain does not reach the periodic images
    ("accepts-unknown", "unknown element -> ValueError"),
])
def test_each_defect_is_caught_by_its_check(defect, failing):
    report = check_potential(PairPotential(defect=defect))
    assert not report.passed and report[failing].passed is False, str(report)
    assert "SOME CHECKS FAILED" in str(report) and "FAIL" in str(report)


def test_without_hparams_the_save_check_is_skipped_and_errors_are_clear():
    m = PairPotential()
    del m.hparams
    report = check_potential(m)
    assert report["save -> load"].passed is None and report.passed
    with pytest.raises(ValueError, match="no 'cutoff' attribute"):
        check_potential(nn.Linear(2, 2).__class__.__new__(type("NoCutoff", (nn.Module,), {"species": [1]})))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        check_potential(object())
    with pytest.raises(KeyError, match="no check named"):
        report["nope"]


def test_equiv_check_command(tmp_path, capsys):
    from equiv.models import ToyPotential

    torch.manual_seed(0)
    path = tmp_path / "toy.pt"
    save_potential(ToyPotential(species=[1, 8], cutoff=3.0, atomic_energies=[-13.6, -2038.0], channels=4), path)
    assert main(["check", str(path), "--threads", "1"]) == 0
    assert "all checks passed" in capsys.readouterr().out
    assert main(["check", "toy", "--model-kwargs", "{channels: 4}", "--species", "H,O", "--cutoff", "3.5"]) == 0
    assert "Potential contract of ToyPotential" in capsys.readouterr().out
    assert main(["check", "toy", "--species", "H,Xx"]) == 2  # one-line error, exit 2
    assert "unknown element 'Xx'" in capsys.readouterr().err
