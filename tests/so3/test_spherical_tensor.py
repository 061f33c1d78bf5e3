"""SphericalTensor: e3nn 0.4.4's irreps and outputs (sum of deltas, samples, norms, evaluation, grid,
plot surfaces, peaks), with_peaks_at (broken in e3nn 0.4.4 under current PyTorch) by its defining
property, equivariance, pickling, errors."""

import math
import pickle

import pytest
import torch
from e3nn import io as e3nn_io

from equiv.so3 import SphericalTensor, random_rotation

PARITIES = [(1, -1), (1, 1), (-1, 1), (-1, -1)]


@pytest.mark.parametrize("p_val, p_arg", PARITIES)
def test_irreps_match_e3nn(p_val, p_arg):
    for lmax in (0, 1, 4):
        assert str(SphericalTensor(lmax, p_val, p_arg)) == str(e3nn_io.SphericalTensor(lmax, p_val, p_arg))
    s = SphericalTensor(3, p_val, p_arg)
    assert s.dim == 16 and s.lmax == 3 and (s.p_val, s.p_arg) == (p_val, p_arg)
    assert pickle.loads(pickle.dumps(s)) == s


def test_outputs_match_e3nn():
    torch.manual_seed(0)
    ours, ref = SphericalTensor(5, 1, -1), e3nn_io.SphericalTensor(5, 1, -1)
    pos, val = torch.randn(2, 7, 3, dtype=torch.float64), torch.randn(2, 7, dtype=torch.float64)
    x = ours.sum_of_diracs(pos, val)
    assert x.shape == (2, 36) and (x - ref.sum_of_diracs(pos, val)).abs().max() < 1e-12
    assert (ours.norms(x) - ref.norms(x)).abs().max() < 1e-12
    r = torch.randn(4, 3, dtype=torch.float64)
    assert (ours.signal_xyz(x, r) - ref.signal_xyz(x, r)).abs().max() < 1e-12
    grid, values = ours.signal_on_grid(x[0], res=20)
    ref_grid, ref_values = ref.signal_on_grid(x[0].float(), res=20)
    assert torch.allclose(grid.float(), ref_grid, atol=1e-6) and torch.allclose(values.float(), ref_values, atol=1e-5)
    r_ours, f_ours = ours.plot(x[0].float(), res=20)
    r_ref, f_ref = ref.plot(x[0].float(), res=20)
    assert torch.allclose(r_ours, r_ref, atol=1e-5) and torch.allclose(f_ours, f_ref, atol=1e-5)
    traces = ours.plotly_surface(x.float(), res=12)
    assert len(traces) == 2 and traces[0]["x"].shape == (12, 12) and set(traces[0]) == {"x", "y", "z", "surfacecolor"}
    # samples -> coefficients: the nearest-sample function projected (e3nn's quadrature is float32-accurate)
    samples = ours.from_samples_on_s2(pos, val, res=24)
    assert (samples - ref.from_samples_on_s2(pos, val, res=24)).abs().max() < 1e-5


def test_with_peaks_at_interpolates_and_e3nn_fails():
    s = SphericalTensor(4, 1, -1)
    pos = torch.tensor([[1.0, 0.0, 0.0], [3.0, 4.0, 0.0], [0.0, 0.0, -2.0]], dtype=torch.float64)
    x = s.with_peaks_at(pos)
    assert (s.signal_xyz(x, pos) - pos.norm(dim=1)).abs().max() < 1e-10
    val = torch.tensor([-1.5, 2.0, 0.5], dtype=torch.float64)
    assert (s.signal_xyz(s.with_peaks_at(pos, val), pos) - val).abs().max() < 1e-10
    assert torch.equal(s.with_peaks_at(torch.zeros(0, 3, dtype=torch.float64)), torch.zeros(25, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="lstsq"):  # e3nn 0.4.4 calls torch.lstsq, gone from PyTorch
        e3nn_io.SphericalTensor(4, 1, -1).with_peaks_at(pos)


def test_find_peaks_recovers_the_peaks_as_e3nn():
    s, ref = SphericalTensor(4, 1, -1), e3nn_io.SphericalTensor(4, 1, -1)
    pos = torch.tensor([[4.0, 0.0, 4.0], [0.0, 5.0, 0.0]])  # the second on the grid's pole
    x = s.with_peaks_at(pos.double()).float()
    p, v = s.find_peaks(x)
    p_ref, v_ref = ref.find_peaks(x)
    strong, strong_ref = p[v > 4.0], p_ref[v_ref > 4.0]
    assert len(strong) == len(strong_ref) == 2
    assert torch.cdist(strong, strong_ref).min(1).values.max() < 1e-5
    expected = torch.nn.functional.normalize(pos, dim=1)
    assert torch.cdist(strong, expected).min(1).values.max() < 2 * math.pi / 100  # within a grid step


def test_equivariance():
    """Rotating the deltas rotates the coefficients: sum_of_diracs(R r) = D(R) sum_of_diracs(r)."""
    s = SphericalTensor(6, 1, -1)
    pos, val = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    R = random_rotation(1, dtype=torch.float64)[0]
    D = s.D_from_matrix(R)
    assert (s.sum_of_diracs(pos @ R.T, val) - D @ s.sum_of_diracs(pos, val)).abs().max() < 1e-12
    assert (s.with_peaks_at(pos @ R.T, val) - D @ s.with_peaks_at(pos, val)).abs().max() < 1e-10


def test_errors():
    with pytest.raises(ValueError, match="lmax"):
        SphericalTensor(-1, 1, 1)
    with pytest.raises(ValueError, match="p_val and p_arg"):
        SphericalTensor(2, 0, 1)
    with pytest.raises(ValueError, match="p_val must be 1"):
        SphericalTensor(2, -1, 1).with_peaks_at(torch.randn(3, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., 9\) coefficients"):
        SphericalTensor(2, 1, -1).signal_xyz(torch.randn(3, 8), torch.randn(4, 3))
    with pytest.raises(ValueError, match="coefficients"):
        SphericalTensor(2, 1, -1).norms(torch.randn(16))
    with pytest.raises(ValueError, match="one signal"):
        SphericalTensor(2, 1, -1).find_peaks(torch.randn(2, 9))
