import pytest
import torch
from torch import nn

from equiv.nn.frame_averaging import FrameAveraging, from_frames, pca_frames, to_frames
from equiv.so3 import random_rotation
from equiv.symmetry import assert_equivariant, equivariance_error



class _Chiral(nn.Module):
    """A non-equivariant backbone: flattens a (M, N, 3) cloud through an MLP (also mixes charges)."""

    def __init__(self, n=5, with_q=False):
        super().__init__()
        self.n, self.with_q = n, with_q
        d = 3 * n * (2 if with_q else 1) + (n if with_q else 0)
        self.net = nn.Sequential(nn.Linear(d, 32), nn.Tanh(), nn.Linear(32, 3 * n + 2 * n))

    def forward(self, x, *rest):
        parts = [x.flatten(1)] + [r.flatten(1) for r in rest]
        y = self.net(torch.cat(parts, -1))
        M = x.shape[0]
        return y[:, : 3 * self.n].reshape(M, self.n, 3), y[:, 3 * self.n:].reshape(M, self.n, 2)


def _cloud(n=5, seed=0, batch=()):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, n, 3, generator=g, dtype=torch.float64) * torch.tensor([3.0, 1.5, 0.5]).double()


def test_pca_frames_shapes_orthogonality_and_determinants():
    x = _cloud(batch=(4,))
    R, t = pca_frames(x, "O(3)")
    assert R.shape == (4, 8, 3, 3) and t.shape == (4, 1, 3)
    eye = torch.eye(3, dtype=x.dtype)
    torch.testing.assert_close(R.transpose(-1, -2) @ R, eye.expand_as(R), atol=1e-12, rtol=0)
    dets = torch.linalg.det(R)
    assert (dets > 0).sum(-1).tolist() == [4] * 4
    Rs, _ = pca_frames(x, "SO(3)")
    assert Rs.shape == (4, 4, 3, 3)
    torch.testing.assert_close(torch.linalg.det(Rs), torch.ones(4, 4, dtype=x.dtype))


@pytest.mark.parametrize("group", ["O(3)", "SO(3)"])
def test_frames_transform_with_the_input(group):
    # F(Qx + s) = Q F(x) as a set, and t -> Qt + s
    x = _cloud(seed=1)
    Q = random_rotation(1, generator=torch.Generator().manual_seed(2), dtype=torch.float64)[0]
    if group == "O(3)":
        Q = -Q
    s = torch.randn(3, dtype=torch.float64)
    R, t = pca_frames(x, group)
    R2, t2 = pca_frames(x @ Q.T + s, group)
    torch.testing.assert_close(t2, t @ Q.T + s)
    expected = Q @ R  # (F, 3, 3)
    for f in range(R2.shape[0]):
        d = (expected - R2[f]).abs().amax((-1, -2))
        assert d.min() < 1e-10


def test_to_from_frames_roundtrip():
    x = _cloud(batch=(2,))
    R, t = pca_frames(x)
    torch.testing.assert_close(from_frames(to_frames(x, R, t), R, t), x)


def test_frame_averaging_makes_a_chiral_mlp_o3_equivariant():
    fa = FrameAveraging(_Chiral(), group="O(3)", input_types=["points"], output_types=["points", None]).double()
    x = _cloud(seed=3)
    assert_equivariant(fa, [x], ["cartesian_points"], ["cartesian_points", None], group="O(3)",
                       generator=torch.Generator().manual_seed(0))
    # the backbone alone is not
    with pytest.raises(AssertionError):
        assert_equivariant(lambda p: tuple(o[0] for o in fa.module(p[None])), [x], ["cartesian_points"],
                           ["cartesian_points", None], group="O(3)")


def test_so3_frames_give_rotation_but_not_reflection_equivariance():
    fa = FrameAveraging(_Chiral(with_q=True), group="SO(3)", input_types=["points", "vectors", None],
                        output_types=["vectors", None]).double()
    x = _cloud(seed=4)
    v = torch.randn(5, 3, dtype=torch.float64)
    q = torch.randn(5, 1, dtype=torch.float64)
    kinds = (["cartesian_points", "cartesian_vectors", None], ["cartesian_vectors", None])
    assert_equivariant(fa, [x, v, q], *kinds, group="SO(3)", generator=torch.Generator().manual_seed(0))
    rep = equivariance_error(fa, [x, v, q], *kinds, group="O(3)", generator=torch.Generator().manual_seed(0))
    improper = torch.linalg.det(rep.matrices) < 0
    assert rep.rel_errors[improper, 0].min() > 1e-3  # a chiral backbone stays chiral


def test_batched_and_graph_level_outputs():
    class Mean(nn.Module):
        def forward(self, x):
            return x.mean(1) * torch.tensor([1.0, 2.0, 3.0], dtype=x.dtype)  # (M, 3): not equivariant

    fa = FrameAveraging(Mean(), input_types=["points"], output_types=["vectors"])
    x = _cloud(batch=(3,))
    out = fa(x)
    assert out.shape == (3, 3)
    torch.testing.assert_close(out[1], fa(x[1]))
    assert "group=O(3), frames=8" in repr(fa)


def test_errors():
    with pytest.raises(ValueError, match="group"):
        FrameAveraging(nn.Identity(), group="E(2)")
    with pytest.raises(ValueError, match="input_types"):
        FrameAveraging(nn.Identity(), input_types=["scalars"])
    with pytest.raises(ValueError, match="frame_input"):
        FrameAveraging(nn.Identity(), input_types=["vectors"])
    with pytest.raises(TypeError, match="module"):
        FrameAveraging(lambda x: x)
    with pytest.raises(ValueError, match="points"):
        pca_frames(torch.zeros(5, 2))
    fa = FrameAveraging(nn.Identity(), input_types=["points", None])
    with pytest.raises(ValueError, match="expected 2 inputs"):
        fa(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="input 1"):
        fa(torch.randn(5, 3), torch.zeros(4, 1))


def test_centre_keeps_its_gradient_frames_do_not():
    x = _cloud(seed=3).requires_grad_(True)
    R, t = pca_frames(x, "O(3)")
    assert not R.requires_grad
    (g,) = torch.autograd.grad(t[0, 1], x)  # d mean_i x_i1 / d x = 1/N in column 1
    expected = torch.zeros_like(x)
    expected[:, 1] = 1 / x.shape[0]
    torch.testing.assert_close(g, expected, atol=1e-15, rtol=0)


def test_frame_averaged_energy_gives_forces_that_sum_to_zero():
    # E(x + s) = E(x) for every translation s, so the autograd forces must sum to zero over the atoms;
    # with a centre treated as constant they would not (the backbone is not translation invariant).
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(-2), nn.Linear(15, 16), nn.Tanh(), nn.Linear(16, 1))
    fa = FrameAveraging(backbone, group="O(3)", input_types=["points"], output_types=[None]).double()
    x = _cloud(seed=4).requires_grad_(True)
    (forces,) = torch.autograd.grad(-fa(x[None]).sum(), x)
    assert forces.abs().max() > 1e-3
    assert forces.sum(0).abs().max() < 1e-12
