"""MACE symmetric contraction: coupling basis (symmetric, orthonormal, equivariant, complete),
layer equivariance, agreement with mace-torch's SymmetricContraction, gradients."""

import itertools

import numpy as np
import pytest
import torch

from equiv.nn.symmetric_contraction import SymmetricContraction, symmetric_coupling_basis
from equiv.so3 import Irrep, Irreps, random_rotation
from equiv.symmetry import assert_equivariant


def _rep(irreps, g):
    return Irreps(irreps).D_from_matrix(g).numpy()


@pytest.mark.parametrize("irreps, ir_out, nu", [("0e + 1o + 2e", "1o", 3), ("0e + 1o + 2e + 3o", "0e", 3),
                                                ("1o + 2e", "2e", 2), ("0e + 1o", "1o", 4)])
def test_basis_symmetric_orthonormal_equivariant(irreps, ir_out, nu):
    u = symmetric_coupling_basis(irreps, ir_out, nu)
    k = u.shape[-1]
    assert k > 0
    flat = u.reshape(-1, k)
    np.testing.assert_allclose(flat.T @ flat, np.eye(k), atol=1e-12)
    for perm in itertools.permutations(range(1, nu + 1)):
        np.testing.assert_allclose(u.transpose((0,) + perm + (nu + 1,)), u, atol=1e-14)
    g = random_rotation(2, dtype=torch.float64)
    g[1] = -g[1]  # an improper rotation: parity must be respected too
    for gi in g:
        d_in, d_out = _rep(irreps, gi), _rep(Irreps(ir_out), gi)
        v = u
        # U(D x, ..., D x) = D_L U(x, ..., x):  sum_i U[M, i..] D[i, i'] = sum_M' D_L[M, M'] U[M', i'..]
        for ax in range(1, nu + 1):
            v = np.moveaxis(np.tensordot(v, d_in, axes=([ax], [0])), -1, ax)
        w = np.tensordot(d_out, u, axes=([1], [0]))
        np.testing.assert_allclose(v, w, atol=1e-12)


def _brute_force_dimension(irreps, ir_out, nu, seed=0):
    """dim Hom_O(3)(Sym^nu V, L) from the null space of (D_in^{(x)nu} (x) D_out - 1) on Sym^nu V."""
    irreps = Irreps(irreps)
    dim = irreps.dim
    gen = torch.Generator().manual_seed(seed)
    gs = list(random_rotation(2, generator=gen, dtype=torch.float64)) + [-torch.eye(3, dtype=torch.float64)]
    # symmetric-tensor basis (columns) of Sym^nu V
    cols = []
    for t in itertools.combinations_with_replacement(range(dim), nu):
        e = np.zeros((dim,) * nu)
        for p in set(itertools.permutations(t)):
            e[p] = 1.0
        cols.append(e.reshape(-1))
    sym = np.linalg.qr(np.stack(cols, 1))[0]
    dl = Irrep(ir_out).dim
    rows = []
    for g in gs:
        d_in, d_out = _rep(irreps, g), _rep(Irreps(ir_out), g)
        big = d_in
        for _ in range(nu - 1):
            big = np.kron(big, d_in)
        op = np.kron(d_out, big) - np.eye(dl * dim**nu)
        rows.append(op @ np.kron(np.eye(dl), sym))
    s = np.linalg.svd(np.concatenate(rows, 0), compute_uv=False)
    return int(np.sum(s < 1e-9)) + max(0, dl * sym.shape[1] - len(s))


@pytest.mark.parametrize("irreps, ir_out, nu", [("0e + 1o", "0e", 3), ("0e + 1o", "1o", 3), ("1o + 2e", "1o", 2),
                                                ("0e + 1o + 1e", "1e", 2)])
def test_basis_is_complete(irreps, ir_out, nu):
    assert symmetric_coupling_basis(irreps, ir_out, nu).shape[-1] == _brute_force_dimension(irreps, ir_out, nu)


def test_layer_equivariance_and_permutations():
    torch.manual_seed(1)
    sc = SymmetricContraction("3x0e + 3x1o + 3x2e + 3x3o", "3x0e + 3x1o + 3x2e", correlation=3, num_species=2).double()
    x = sc.irreps_in.randn(7, -1, dtype=torch.float64)
    species = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    rep = assert_equivariant(sc, (x, species), [sc.irreps_in, None], [sc.irreps_out], permutations=True,
                             node_inputs=(0, 1), node_outputs=(0,))
    assert rep.max_error < 1e-10


def test_output_depends_on_species_and_correlation_four_runs(dtype):
    sc = SymmetricContraction("4x0e + 4x1o", "4x0e + 4x1o", correlation=4, num_species=3).to(dtype)
    x = sc.irreps_in.randn(5, -1, dtype=dtype)
    a = sc(x, torch.zeros(5, dtype=torch.long))
    b = sc(x, torch.full((5,), 2, dtype=torch.long))
    assert a.dtype == dtype and a.shape == (5, sc.irreps_out.dim)
    assert (a - b).abs().max() > 1e-3


def test_species_grouped_and_all_species_paths_agree(monkeypatch):
    # eager mode sorts nodes by species (one product per species); under torch.compile every species'
    # columns are computed and each node picks its own: the same numbers
    sc = SymmetricContraction("3x0e + 3x1o + 3x2e", "3x0e + 3x1o", correlation=3, num_species=3).double()
    x = sc.irreps_in.randn(8, -1, dtype=torch.float64)
    species = torch.tensor([2, 0, 1, 2, 2, 0, 1, 0])
    grouped = sc(x, species)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    torch.testing.assert_close(sc(x, species), grouped, atol=1e-13, rtol=0)


def test_component_normalisation():
    # each basis polynomial has E|B|^2 / (2L+1) = 1 for standard normal inputs (checked by sampling)
    sc = SymmetricContraction("16x0e + 16x1o + 16x2e", "16x0e + 16x1o", correlation=3, parametrization="basis").double()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3000, sc.irreps_in.dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        for j, (_, ir) in enumerate(sc.irreps_out):
            ks = sc.num_weights[str(ir)]
            sc.weights[j].zero_()
            assert sum(ks) <= 16
            for c in range(sum(ks)):
                sc.weights[j][0, c, c] = 1.0  # channel c evaluates basis polynomial c
        y = sc(x, torch.zeros(len(x), dtype=torch.long))
    for j, (mul, ir) in enumerate(sc.irreps_out):
        block = y[:, sc.irreps_out.slices()[j]].reshape(len(x), mul, ir.dim)
        k = sum(sc.num_weights[str(ir)])
        second = block[:, :k].pow(2).mean((0, 2))
        assert torch.all((second > 0.8) & (second < 1.25)), second


def test_agrees_with_mace_torch_given_mapped_weights():
    mace_sc = pytest.importorskip("mace.modules.symmetric_contraction")
    from e3nn import o3

    c, corr, n_el = 4, 3, 2
    irreps_in, irreps_out = Irreps(f"{c}x0e + {c}x1o + {c}x2e"), Irreps(f"{c}x0e + {c}x1o")
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref = mace_sc.SymmetricContraction(o3.Irreps(str(irreps_in)), o3.Irreps(str(irreps_out)), correlation=corr,
                                           num_elements=n_el)
    finally:
        torch.set_default_dtype(prev)
    ours = SymmetricContraction(irreps_in, irreps_out, correlation=corr, num_species=n_el,
                                parametrization="basis").double()
    mace_params = total_ours = 0
    with torch.no_grad():
        for j, contraction in enumerate(ref.contractions):
            dl = irreps_out[j].ir.dim
            ours_u = ours.coupling_tensors(j)
            mapped = []
            for nu in range(1, corr + 1):
                u_ref = getattr(contraction, f"U_matrix_{nu}")
                if dl == 1:
                    u_ref = u_ref.unsqueeze(0)
                k_ref = u_ref.shape[-1]
                # mace's U is not symmetrised: only its symmetric part acts on A^{(x)nu}
                u_sym = sum(u_ref.permute((0,) + tuple(1 + p for p in perm) + (nu + 1,))
                            for perm in itertools.permutations(range(nu))) / len(list(itertools.permutations(range(nu))))
                a_mat = ours_u[nu - 1].reshape(-1, ours_u[nu - 1].shape[-1])
                b_mat = u_sym.reshape(-1, k_ref)
                coef = torch.linalg.lstsq(a_mat, b_mat).solution  # (K_ours, K_ref)
                assert (a_mat @ coef - b_mat).abs().max() < 1e-12  # mace's space within ours
                assert torch.linalg.matrix_rank(b_mat) == a_mat.shape[1]  # ... and equal to it
                w_ref = contraction.weights_max if nu == corr else contraction.weights[corr - 1 - nu]
                mace_params += w_ref.numel()
                mapped.append(torch.einsum("kq,sqc->skc", coef, w_ref))
            ours.weights[j].copy_(torch.cat(mapped, 1))
            total_ours += ours.weights[j].numel()
    assert total_ours < mace_params  # same function space, fewer (non-redundant) weights
    x = irreps_in.randn(9, -1, dtype=torch.float64)
    species = torch.tensor([0, 1, 0, 0, 1, 1, 0, 1, 0])
    # mace's layout: (N, C, D) with D the irreps of one channel side by side
    x_mace = torch.cat([x[:, s].reshape(9, c, ir.dim) for s, (_, ir) in zip(irreps_in.slices(), irreps_in)], -1)
    want = ref(x_mace, torch.nn.functional.one_hot(species, n_el).double())
    got = ours(x, species)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_path_parametrization_is_mace_torchs():
    """parametrization="paths": the same coupling-path tensors as mace-torch (derived here from
    equiv.so3 alone), so mace-torch's weights copy over unchanged and give the same outputs."""
    mace_sc = pytest.importorskip("mace.modules.symmetric_contraction")
    from e3nn import o3

    irreps_in, irreps_out = Irreps("3x0e + 3x1o + 3x2e"), Irreps("3x0e + 3x1o")
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ref = mace_sc.SymmetricContraction(o3.Irreps(str(irreps_in)), o3.Irreps(str(irreps_out)), correlation=3,
                                           num_elements=2)
    finally:
        torch.set_default_dtype(prev)
    ours = SymmetricContraction(irreps_in, irreps_out, correlation=3, num_species=2).double()
    assert ours.parametrization == "paths"
    with torch.no_grad():
        for j, contraction in enumerate(ref.contractions):
            for nu, t in enumerate(ours.path_tensors(j), start=1):
                u_ref = getattr(contraction, f"U_matrix_{nu}")
                torch.testing.assert_close(t, u_ref.reshape(t.shape), atol=1e-12, rtol=0)
            ours.weights[j].copy_(torch.cat([contraction.weights[1], contraction.weights[0], contraction.weights_max], 1))
    x = irreps_in.randn(6, -1, dtype=torch.float64)
    species = torch.tensor([0, 1, 1, 0, 1, 0])
    x_mace = torch.cat([x[:, s].reshape(6, 3, ir.dim) for s, (_, ir) in zip(irreps_in.slices(), irreps_in)], -1)
    want = ref(x_mace, torch.nn.functional.one_hot(species, 2).double())
    torch.testing.assert_close(ours(x, species), want, atol=1e-12, rtol=1e-12)
    assert ours.num_weights == {"0e": [1, 3, 11], "1o": [1, 4, 21]}


def test_gradcheck_double_backward():
    # no custom autograd: this guards the monomial/gather construction (forces need double backward)
    sc = SymmetricContraction("1x0e + 1x1o", "1x0e + 1x1o", correlation=3, num_species=2).double()
    x = sc.irreps_in.randn(2, -1, dtype=torch.float64).requires_grad_(True)
    s = torch.tensor([0, 1])
    w = sc.weights[1].detach().clone().requires_grad_(True)
    fn = lambda x, w: torch.func.functional_call(sc, {"weights.1": w}, (x, s))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w))
    assert torch.autograd.gradgradcheck(fn, (x, w))


@pytest.mark.parametrize("args, match", [
    (("4x0e + 2x1o", "4x0e"), "multiplicity"), (("4x0e + 4x0e", "4x0e"), "once"),
    (("4x0e", "4x0e", 0), "correlation"), (("4x0e", "4x0e", 2, 0), "num_species"),
])
def test_bad_construction(args, match):
    with pytest.raises(ValueError, match=match):
        SymmetricContraction(*args)


def test_bad_inputs():
    sc = SymmetricContraction("2x0e + 2x1o", "2x0e")
    with pytest.raises(ValueError, match="x must have shape"):
        sc(torch.randn(3, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="species"):
        sc(torch.randn(3, 8), torch.zeros(3))


@pytest.mark.parametrize("num_species", [1, 3])
def test_weight_coefficients_cached_only_while_no_gradient_reaches_the_weights(num_species):
    """Inference reuses the weights-times-coupling coefficients; a changed weight (in place, as an
    optimiser step) or a gradient to the weights recomputes them, so results and gradients are those
    of the uncached layer."""
    torch.manual_seed(0)
    layer = SymmetricContraction("4x0e + 4x1o", "4x0e + 4x1o", correlation=3, num_species=num_species).double()
    x = Irreps("4x0e + 4x1o").randn(7, -1, dtype=torch.float64)
    species = torch.arange(7) % num_species
    with torch.no_grad():
        first = layer(x, species)
        assert layer._coefficient_cache  # kept
        cached = layer._coefficient_cache["value"]
        assert torch.equal(layer(x, species), first) and layer._coefficient_cache["value"] is cached
        layer.weights[0].mul_(2.0)  # an in-place update bumps the version: recomputed
        second = layer(x, species)
    assert layer._coefficient_cache["value"] is not cached and not torch.allclose(second, first)
    layer._coefficient_cache = {}
    with torch.no_grad():
        fresh = layer(x, species)
    assert torch.allclose(second, fresh, atol=1e-14)
    # with gradients to the weights the cache is not used, and the weight gradient is right
    out = layer(x, species)
    (g,) = torch.autograd.grad(out.pow(2).sum(), layer.weights[0])
    assert g.abs().max() > 0
    frozen = SymmetricContraction("4x0e + 4x1o", "4x0e + 4x1o", correlation=3, num_species=num_species).double()
    frozen.load_state_dict(layer.state_dict())
    frozen.requires_grad_(False)
    xg = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(frozen(xg, species).pow(2).sum(), xg)
    (gx_ref,) = torch.autograd.grad(layer(xg, species).pow(2).sum(), xg)
    assert torch.allclose(gx, gx_ref, atol=1e-12) and frozen._coefficient_cache
