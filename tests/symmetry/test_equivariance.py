"""assert_equivariant / equivariance_error: passes equivariant functions, catches every kind of breaking."""

import pytest
import torch

from equiv.so3 import Irreps, clebsch_gordan, spherical_harmonics
from equiv.symmetry import EquivarianceReport, assert_equivariant, default_tolerance, equivariance_error


def _graph(n=6, dtype=torch.float64):
    pos = torch.randn(n, 3, dtype=dtype)
    src = torch.arange(n).repeat_interleave(n - 1)
    dst = torch.tensor([j for i in range(n) for j in range(n) if j != i])
    return pos, torch.stack([src, dst])


def _message_passing(pos, feats, charges, edge_index):
    """An E(3) x S_N equivariant layer: l=0,1 features, SH of edges, CG products, scatter."""
    src, dst = edge_index
    rel = pos[dst] - pos[src]
    sh = spherical_harmonics([1, 2], rel)  # (E, 3 + 5)
    s, v = feats[:, :1], feats[:, 1:4]
    C112 = clebsch_gordan(1, 1, 2, dtype=pos.dtype)
    vec_msg = s[src] * sh[:, :3] + torch.einsum("ijk,ej,ek->ei", C112, v[src], sh[:, 3:]) * charges[src, None]
    scal_msg = (v[src] * sh[:, :3]).sum(-1, keepdim=True) + rel.norm(dim=-1, keepdim=True)
    out = torch.zeros(pos.shape[0], 4, dtype=pos.dtype).index_add_(0, dst, torch.cat([scal_msg, vec_msg], -1))
    new_pos = pos + out[:, 1:4]
    energy = out[:, 0].pow(2).sum()
    return out, new_pos, energy


def test_passes_equivariant_graph_function():
    pos, edge_index = _graph()
    feats = Irreps("0e + 1o").randn(6, -1, dtype=torch.float64)
    charges = torch.randn(6, dtype=torch.float64)
    report = assert_equivariant(
        _message_passing,
        [pos, feats, charges, edge_index],
        ["cartesian_points", "0e + 1o", None, None],
        ["0e + 1o", "cartesian_points", "0e"],
        permutations=True,
        node_inputs=[0, 1, 2],
        index_inputs=[3],
        node_outputs=[0, 1],
        num_samples=6,
    )
    assert isinstance(report, EquivarianceReport)
    assert report.abs_errors.shape == (6, 3) and report.max_error < 1e-12
    assert report.elements[1] == "rotation+inversion+translation+permutation"
    assert (torch.det(report.matrices[1::2]) < 0).all() and (torch.det(report.matrices[::2]) > 0).all()


def test_forces_via_autograd():
    pos, edge_index = _graph(5)
    q = torch.randn(5, dtype=torch.float64)

    def forces(p, charges, e):
        energy = (charges[e[0]] * charges[e[1]] / (p[e[1]] - p[e[0]]).norm(dim=-1)).sum()
        (grad,) = torch.autograd.grad(energy, p, create_graph=True)
        return energy, -grad

    report = assert_equivariant(
        forces, [pos.requires_grad_(), q, edge_index], ["cartesian_points", None, None], [None, "cartesian_vectors"],
        permutations=True, node_inputs=[0, 1], index_inputs=[2], node_outputs=[1],
    )
    assert report.max_error < 1e-12


def test_catches_rotation_breaking(dtype):
    x = torch.randn(8, 3, dtype=dtype)
    with pytest.raises(AssertionError, match="FAIL"):
        assert_equivariant(lambda v: v[:, :1] + v.norm(dim=-1, keepdim=True), [x], ["1o"], ["0e"])
    report = equivariance_error(lambda v: v[:, :1], [x], ["1o"], ["0e"])
    assert report.max_relative_error > 0.1 and not report.passed()


def test_catches_parity_mislabel_only_under_O3():
    a, b = torch.randn(2, 10, 3, dtype=torch.float64)
    cross = lambda u, v: torch.linalg.cross(u, v, dim=-1)  # noqa: E731
    # the cross product of two vectors is a pseudovector, 1e; calling it 1o is wrong under O(3)
    assert_equivariant(cross, [a, b], ["1o", "1o"], ["1e"])
    assert_equivariant(cross, [a, b], ["1o", "1o"], ["1o"], group="SO(3)")
    with pytest.raises(AssertionError, match="rotation\\+inversion"):
        assert_equivariant(cross, [a, b], ["1o", "1o"], ["1o"])


def test_catches_translation_breaking():
    pos = torch.randn(7, 3, dtype=torch.float64)
    fn = lambda p: p.norm(dim=-1)  # noqa: E731  rotation invariant, not translation invariant
    assert_equivariant(fn, [pos], ["cartesian_points"], [None], translations=False)
    with pytest.raises(AssertionError):
        assert_equivariant(fn, [pos], ["cartesian_points"], [None])
    # "cartesian_vectors" are never translated
    assert_equivariant(fn, [pos], ["cartesian_vectors"], [None])


def test_catches_permutation_breaking():
    pos, edge_index = _graph(5)
    # uses a fixed node (0) as origin: equivariant under E(3), not under relabelling the nodes
    fn = lambda p, e: (p - p[0]).norm(dim=-1)  # noqa: E731
    assert_equivariant(fn, [pos, edge_index], ["cartesian_points", None], [None])
    with pytest.raises(AssertionError, match="permutation"):
        assert_equivariant(fn, [pos, edge_index], ["cartesian_points", None], [None],
                           permutations=True, node_inputs=[0], index_inputs=[1], node_outputs=[0])
    # forgetting to relabel edge_index is detected too: the edges then connect the wrong nodes
    deg = lambda p, e: torch.zeros(5, dtype=p.dtype).index_add_(0, e[1], (p[e[1]] - p[e[0]]).norm(dim=-1))  # noqa: E731
    assert_equivariant(deg, [pos, edge_index[:, ::3]], ["cartesian_points", None], [None],
                       permutations=True, node_inputs=[0], index_inputs=[1], node_outputs=[0])
    with pytest.raises(AssertionError):
        assert_equivariant(deg, [pos, edge_index[:, ::3]], ["cartesian_points", None], [None],
                           permutations=True, node_inputs=[0], node_outputs=[0])


def test_catches_wrong_irreps_on_outputs():
    x = torch.randn(6, 3, dtype=torch.float64)
    assert_equivariant(lambda v: spherical_harmonics([0, 2], v), [x], ["1o"], ["0e + 2e"])
    with pytest.raises(AssertionError):  # Y^2 is not an l = 1 object
        assert_equivariant(lambda v: spherical_harmonics([0, 2], v)[:, :4], [x], ["1o"], ["0e + 1o"])


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_outputs_never_pass(bad):
    """A NaN or inf output is not evidence of equivariance, even where it appears on both sides."""
    x = torch.randn(6, 3, dtype=torch.float64)
    report = equivariance_error(lambda v: v * bad, [x], ["1o"], ["1o"])
    assert not report.passed() and report.failures().all()
    with pytest.raises(AssertionError, match="FAIL"):
        assert_equivariant(lambda v: torch.cat([v[:1] * bad, v[1:]]), [x], ["1o"], ["1o"])


def test_float32_defaults_and_report_text(dtype):
    x = Irreps("4x0e + 2x1o + 2e").randn(5, -1, dtype=dtype)
    W = torch.randn(4, 4, dtype=dtype)
    fn = lambda f: torch.cat([f[:, :4] @ W, 2 * f[:, 4:]], -1)  # noqa: E731  an equivariant linear map
    report = assert_equivariant(fn, [x], ["4x0e + 2x1o + 2e"], ["4x0e + 2x1o + 2e"])
    assert report.dtype == dtype and report.atol == default_tolerance(dtype)
    assert report.max_error < (1e-5 if dtype == torch.float32 else 1e-13)
    text = str(report)
    assert "PASSED" in text and "max abs err" in text and text.count("rotation+inversion") == 2
    assert "passed=True" in repr(report)


def test_tolerance_override_and_reproducible_samples():
    x = torch.randn(6, 3, dtype=torch.float64)
    fn = lambda v: v + 1e-6 * v[:, :1]  # noqa: E731  breaks equivariance by ~1e-6
    with pytest.raises(AssertionError):
        assert_equivariant(fn, [x], ["1o"], ["1o"])
    assert_equivariant(fn, [x], ["1o"], ["1o"], atol=1e-4, rtol=0)
    r1 = equivariance_error(fn, [x], ["1o"], ["1o"], generator=torch.Generator().manual_seed(5))
    r2 = equivariance_error(fn, [x], ["1o"], ["1o"], generator=torch.Generator().manual_seed(5))
    assert torch.equal(r1.abs_errors, r2.abs_errors) and torch.equal(r1.matrices, r2.matrices)


def test_bad_arguments():
    x = torch.randn(4, 3, dtype=torch.float64)
    f = lambda v: v  # noqa: E731
    with pytest.raises(ValueError, match="irreps_in: has 2 entries"):
        equivariance_error(f, [x], ["1o", "1o"], ["1o"])
    with pytest.raises(ValueError, match="irreps_in\\[0\\]"):
        equivariance_error(f, [x], ["cartesian_point"], ["1o"])
    with pytest.raises(ValueError, match="dim 5"):
        equivariance_error(f, [x], ["2e"], ["2e"])
    with pytest.raises(ValueError, match="group"):
        equivariance_error(f, [x], ["1o"], ["1o"], group="SE(3)")
    with pytest.raises(ValueError, match="node_inputs"):
        equivariance_error(f, [x], ["1o"], ["1o"], permutations=True)
    with pytest.raises(ValueError, match="returned 1 output"):
        equivariance_error(f, [x], ["1o"], ["1o", "0e"])
