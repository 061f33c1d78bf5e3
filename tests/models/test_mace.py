"""equiv.models.MACE: symmetry (rotation, reflection, translation, permutation), forces = -grad E,
smooth cut-off and stress (in test_potential_contract.py), protocol (registry, save/load), both tensor-product
algorithms, float32/float64."""

import math

import pytest
import torch

from equiv.data import AtomicData, collate
from equiv.models import get_potential_class
from equiv.models.mace import MACE
from equiv.train.forces import predict_properties
from potential_case import check_save_load_and_unknown_elements
from potential_case import full_graph as _full_graph
from potential_case import molecule as _molecule
from potential_case import single_batch as _batch


SMALL = dict(hidden_irreps="4x0e + 4x1o", max_ell=2, correlation=3, radial_mlp=[8], readout_hidden=4)


def _model(tp="cg", dtype=torch.float64, **kw):
    torch.manual_seed(0)
    m = MACE(species=[1, 6, 8], cutoff=3.0, atomic_energies=[-13.6, -1029.0, -2041.0], avg_num_neighbors=4.0,
             scale=0.7, shift=0.1, tp=tp, **{**SMALL, **kw})
    return m.to(dtype)


def test_gaunt_and_cg_are_different_models_with_fewer_weights_for_gaunt():
    cg, ga = _model("cg"), _model("gaunt")
    n_cg = sum(p.numel() for p in cg.parameters())
    n_ga = sum(p.numel() for p in ga.parameters())
    assert n_ga < n_cg
    pos, z = _molecule()
    b = _batch(pos, z, _full_graph(len(z)))
    assert (cg(b)["energy"] - ga(b)["energy"]).abs().item() > 1e-6


def test_float32_and_batching(dtype):
    model = _model(dtype=dtype)
    data = []
    for seed in range(3):
        pos, z = _molecule(6, seed=seed)
        data.append(AtomicData(positions=pos, atomic_numbers=z).with_graph(3.0))
    batch = collate(data).to(dtype=dtype)
    out = predict_properties(model, batch)
    assert out["energy"].dtype == dtype and out["energy"].shape == (3,) and out["forces"].shape == (18, 3)
    single = torch.cat([predict_properties(model, collate([d]).to(dtype=dtype))["energy"] for d in data])
    tol = 1e-10 if dtype == torch.float64 else 1e-3
    torch.testing.assert_close(out["energy"], single, atol=tol, rtol=0)
    # E0 + shift per atom when the interaction vanishes: isolated atoms (no edges)
    iso = collate([AtomicData(positions=[[0, 0, 0.0]], atomic_numbers=[8]).with_graph(3.0)]).to(dtype=dtype)
    e = model(iso)["energy"].item()
    inter = e - (-2041.0 + 0.1)
    assert math.isfinite(e) and abs(inter) < 10  # finite readout of the embedding only


def test_registry_and_save_load_roundtrip(tmp_path):
    check_save_load_and_unknown_elements(_model("gaunt"), "mace", tmp_path / "mace.pt")


def test_errors():
    for kwargs, match in [(dict(tp="fft"), "tp"), (dict(hidden_irreps="4x0e + 2x1o"), "hidden_irreps"),
                          (dict(hidden_irreps="4x1o"), "hidden_irreps"), (dict(correlation=0), "correlation"),
                          (dict(max_ell=-1), "max_ell"), (dict(radial_mlp=[0]), "radial_mlp")]:
        with pytest.raises(ValueError, match=match):
            MACE(species=[1, 6], **{**SMALL, **kwargs})
    with pytest.raises(ValueError, match="species"):
        MACE(species=[6, 1])
    with pytest.raises(TypeError, match="atomic numbers"):
        MACE(species=6)
    with pytest.raises(ValueError, match="1..118"):
        get_potential_class("toy")(species=[0, 1])
    with pytest.raises(ValueError, match="atomic_energies"):
        MACE(species=[1, 6], atomic_energies=[0.0])


def test_same_energies_and_forces_as_mace_torch_with_converted_weights(tmp_path):
    """A mace-torch ScaleShiftMACE and MACE.from_mace_torch(it) give the same energies and forces."""
    pytest.importorskip("mace.modules")
    from e3nn import o3
    from mace import modules

    from equiv.train.saved_model import load_potential, save_potential

    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(3)
        block = modules.interaction_classes["RealAgnosticResidualInteractionBlock"]
        ref = modules.ScaleShiftMACE(
            r_max=3.0, num_bessel=6, num_polynomial_cutoff=5, max_ell=2, interaction_cls=block,
            interaction_cls_first=block, num_interactions=2, num_elements=3, hidden_irreps=o3.Irreps("4x0e + 4x1o"),
            MLP_irreps=o3.Irreps("4x0e"), atomic_energies=[-13.6, -1029.0, -2041.0], avg_num_neighbors=4.0,
            atomic_numbers=[1, 6, 8], correlation=3, gate=torch.nn.functional.silu, atomic_inter_scale=0.7,
            atomic_inter_shift=0.1, radial_MLP=[8, 8])
    finally:
        torch.set_default_dtype(prev)
    ours = MACE.from_mace_torch(ref)
    assert ours.hparams["num_bessel"] == 6 and ours.hparams["radial_mlp"] == [8, 8]
    data = [AtomicData(positions=_molecule(7, seed=s)[0], atomic_numbers=_molecule(7, seed=s)[1]).with_graph(3.0)
            for s in range(2)]
    batch = collate(data)
    z = torch.tensor([1, 6, 8])
    inputs = dict(positions=batch.positions.clone(), node_attrs=(batch.atomic_numbers[:, None] == z).double(),
                  edge_index=batch.edge_index, shifts=batch.shifts, unit_shifts=batch.unit_shifts.double(),
                  cell=batch.cell.reshape(-1, 3), batch=batch.batch, ptr=batch.ptr)
    want = ref(inputs, training=False, compute_force=True)
    got = predict_properties(ours, batch)
    assert (want["energy"] - got["energy"]).abs().max() < 1e-9
    assert (want["forces"] - got["forces"]).abs().max() < 1e-9
    assert want["forces"].abs().max() > 1e-3
    # the converted model (incl. e3nn's activation constant) survives save/load
    save_potential(ours, tmp_path / "converted.pt")
    again = predict_properties(load_potential(tmp_path / "converted.pt"), batch)
    torch.testing.assert_close(again["energy"], got["energy"], atol=0, rtol=0)
    # the mace-torch weights were copied as they are (same coupling paths) ...
    w_ref = ref.products[0].symmetric_contractions.contractions[0].weights_max
    torch.testing.assert_close(ours.products[0].weights[0][:, -w_ref.shape[1]:].double(), w_ref.detach())
    # ... and mapping them onto the non-redundant basis gives the same function too
    basis = predict_properties(MACE.from_mace_torch(ref, product_weights="basis"), batch)
    assert (want["energy"] - basis["energy"]).abs().max() < 1e-9
    assert (want["forces"] - basis["forces"]).abs().max() < 1e-9
    # a float32 mace-torch model (rounded coupling tensors) converts too
    import copy

    ours32 = MACE.from_mace_torch(copy.deepcopy(ref).float())
    assert next(ours32.parameters()).dtype == torch.float32
    got32 = predict_properties(ours32, batch.to(dtype=torch.float32))
    assert (want["forces"] - got32["forces"].double()).abs().max() < 1e-5


def test_basis_product_weights_same_function_fewer_parameters():
    paths, basis = _model(), _model(product_weights="basis")
    assert sum(p.numel() for p in basis.parameters()) < sum(p.numel() for p in paths.parameters())
    with torch.no_grad():  # same basis weights -> same model
        for sp, sb in zip(paths.products, basis.products):
            for wb, w in zip(sb.weights, sp.basis_weights()):
                wb.copy_(w)
        for (name, p), (_, q) in zip(paths.named_parameters(), basis.named_parameters()):
            if "products" not in name:
                q.copy_(p)
    pos, z = _molecule()
    b = _batch(pos, z, _full_graph(len(z)))
    torch.testing.assert_close(basis(b)["energy"], paths(b)["energy"], atol=1e-10, rtol=0)
