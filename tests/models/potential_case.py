"""Shared inputs of the interatomic-potential model tests: small molecules, dense graphs, batches."""

import torch

from equiv.data import Batch


def molecule(n=7, seed=0, dtype=torch.float64):
    """Random positions of ``n`` atoms (C, O, H) and their atomic numbers."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=dtype) * 1.1
    z = torch.tensor([6, 8, 1, 1, 6, 1, 8, 1, 6][:n])
    return pos, z


def single_batch(pos, z, edge_index):
    """One non-periodic graph as a `Batch` with the given edges."""
    n, e = pos.shape[0], edge_index.shape[1]
    return Batch(positions=pos, atomic_numbers=z, batch=torch.zeros(n, dtype=torch.long),
                 ptr=torch.tensor([0, n]), edge_index=edge_index, unit_shifts=torch.zeros(e, 3, dtype=torch.long),
                 shifts=torch.zeros(e, 3, dtype=pos.dtype), cell=torch.zeros(1, 3, 3, dtype=pos.dtype),
                 pbc=torch.zeros(1, 3, dtype=torch.bool))


def full_graph(n):
    """All ordered pairs ``i != j`` (the cut-off envelope handles distances beyond r_c)."""
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    keep = i != j
    return torch.stack([i[keep], j[keep]])


def check_save_load_and_unknown_elements(model, name, path):
    """Registered under ``name``; save -> load gives the same class, hparams and energies (bit for bit);
    an element outside the model's species raises ``ValueError``."""
    import pytest

    from equiv.models import get_potential_class
    from equiv.train.saved_model import load_potential, save_potential

    assert get_potential_class(name) is type(model)
    save_potential(model, path)
    loaded = load_potential(path)
    assert type(loaded) is type(model) and loaded.hparams == model.hparams
    pos, z = molecule()
    b = single_batch(pos, z, full_graph(len(z)))
    torch.testing.assert_close(loaded(b)["energy"], model(b)["energy"], atol=0, rtol=0)
    with pytest.raises(ValueError, match="unknown element"):
        model(single_batch(pos[:3], torch.tensor([6, 9, 1]), full_graph(3)))
