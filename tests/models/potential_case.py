"""Shared inputs of the interatomic-potential model tests: small molecules, dense graphs, batches."""

import torch

from equiv.train.contract import full_graph, single_batch  # noqa: F401 - shared with the model tests


def molecule(n=7, seed=0, dtype=torch.float64):
    """Random positions of ``n`` atoms (C, O, H) and their atomic numbers."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.randn(n, 3, generator=g, dtype=dtype) * 1.1
    z = torch.tensor([6, 8, 1, 1, 6, 1, 8, 1, 6][:n])
    return pos, z


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
