r"""`SphericalTensor`: the irreps of a signal on the sphere, with tools to build, evaluate and read it
(e3nn's ``e3nn.io.SphericalTensor``).

A signal :math:`f(\hat x) = \sum_{l \le L} A^l \cdot Y^l(\hat x)` has coefficients :math:`A^l`
transforming under rotations as the irreps :math:`l = 0..L` (one copy each). Under parity,
:math:`(P f)(\hat x) = p_v f(p_a \hat x) = \sum_l p_v p_a^l A^l \cdot Y^l(\hat x)`: the irreps are
:math:`(l, p_v p_a^l)`. An ordinary function on the sphere (the harmonics of a vector) has
:math:`p_v = 1, p_a = -1`: ``0e + 1o + 2e + ...``.

Harmonics use the ``"integral"`` normalisation, :math:`\int (Y^l_m)^2 d\Omega = 1`, as e3nn's.
Differences from e3nn 0.4.4: ``with_peaks_at`` solves its least-squares problem with
``torch.linalg.lstsq`` (e3nn's uses ``torch.lstsq``, removed from PyTorch, and fails on current
versions); ``find_peaks`` treats the azimuth as periodic (e3nn's misses a peak on the
:math:`\alpha = 0` meridian of a grid), and both take the grids of `equiv.so3.ToS2Grid`.
"""

from __future__ import annotations

import math
from collections import namedtuple

import torch

from ._irreps import Irrep, Irreps
from ._rotation import angles_to_matrix
from ._s2grid import FromS2Grid, ToS2Grid
from ._spherical_harmonics import spherical_harmonics

__all__ = ["SphericalTensor"]

SignalOnGrid = namedtuple("SignalOnGrid", "grid, values")


def _grid_peaks(values: torch.Tensor) -> torch.Tensor:
    """``(k, 2)`` (beta, alpha) indices of the strict local maxima of ``values (res_beta, res_alpha)``
    against the 4 neighbours (alpha periodic; the first and last beta rows are not candidates)."""
    v = values
    up, down = v[:-2], v[2:]
    mid = v[1:-1]
    left, right = mid.roll(1, dims=1), mid.roll(-1, dims=1)
    peak = (mid > up) & (mid > down) & (mid > left) & (mid > right)
    idx = peak.nonzero()
    idx[:, 0] += 1
    return idx


class SphericalTensor(Irreps):
    r"""Irreps ``(l, p_val * p_arg**l)`` for ``l = 0..lmax``, one copy each, with signal tools.

    Parameters
    ----------
    lmax : int
    p_val, p_arg : {+1, -1}
        Parity of the values and of the argument (module docstring).

    Examples
    --------
    >>> SphericalTensor(3, 1, -1)
    1x0e+1x1o+1x2e+1x3o
    >>> s = SphericalTensor(4, 1, -1)
    >>> pos = torch.tensor([[1.0, 0.0, 0.0], [3.0, 4.0, 0.0]], dtype=torch.float64)
    >>> x = s.with_peaks_at(pos)                   # a signal worth |r_i| at r_i
    >>> [round(v, 6) for v in s.signal_xyz(x, pos).tolist()]
    [1.0, 5.0]
    """

    def __new__(cls, lmax: int, p_val: int, p_arg: int):
        if isinstance(lmax, bool) or not isinstance(lmax, int) or lmax < 0:
            raise ValueError(f"SphericalTensor: lmax must be a non-negative int, got {lmax!r}")
        if p_val not in (1, -1) or p_arg not in (1, -1):
            raise ValueError(f"SphericalTensor: p_val and p_arg must be +1 or -1, got {p_val!r}, {p_arg!r}")
        out = super().__new__(cls, [(1, Irrep(l, p_val * p_arg**l)) for l in range(lmax + 1)])
        out.p_val, out.p_arg = p_val, p_arg
        return out

    def __reduce__(self):
        return (SphericalTensor, (self.lmax, self.p_val, self.p_arg))

    def _sh(self, r: torch.Tensor) -> torch.Tensor:
        return spherical_harmonics(list(range(self.lmax + 1)), r, normalize=True, normalization="integral")

    def with_peaks_at(self, vectors: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        r"""The signal of least norm with :math:`f(\hat r_i) = v_i` (default :math:`v_i = \|\vec r_i\|`):
        :math:`x = \sum_i s_i Y(\hat r_i)` with :math:`\sum_j Y(\hat r_i) \cdot Y(\hat r_j)\, s_j = v_i`
        (least squares when the points are more than the signal can fit). ``vectors (N, 3)``,
        ``values (N,)`` → ``(dim,)``. Requires ``p_val = 1`` (a norm is even).
        """
        if self.p_val != 1:
            raise ValueError("SphericalTensor.with_peaks_at: values are set by |r|, which is even: p_val must be 1")
        if vectors.dim() != 2 or vectors.shape[1] != 3:
            raise ValueError(f"SphericalTensor.with_peaks_at: vectors must be (N, 3), got {tuple(vectors.shape)}")
        if values is None:
            values = vectors.norm(dim=1)
        values = values.to(vectors.dtype).expand(vectors.shape[0])
        keep = values != 0
        vectors, values = vectors[keep], values[keep]
        if vectors.shape[0] == 0:
            return vectors.new_zeros(self.dim)
        y = self._sh(vectors)  # (N, dim)
        gram = y @ y.T
        driver = "gelsd" if gram.device.type == "cpu" else None  # gelsd: rank-deficient systems too
        solution = torch.linalg.lstsq(gram, values[:, None], driver=driver).solution[:, 0]
        return solution @ y

    def sum_of_diracs(self, positions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        r"""The band-limited sum of deltas :math:`\frac{4\pi}{(L+1)^2} \sum_i v_i Y(\hat r_i)` (each
        delta projected on degrees :math:`\le L` and scaled so that its peak is about :math:`v_i`):
        ``positions (..., N, 3)``, ``values (..., N)`` (broadcast) → ``(..., dim)``."""
        positions, values = torch.broadcast_tensors(positions, values[..., None])
        values = values[..., 0]
        if positions.numel() == 0:
            return positions.new_zeros(values.shape[:-1] + (self.dim,))
        y = self._sh(positions)
        return 4 * math.pi / (self.lmax + 1) ** 2 * (y * values[..., None]).sum(-2)

    def from_samples_on_s2(self, positions: torch.Tensor, values: torch.Tensor, res: int = 100) -> torch.Tensor:
        r"""Coefficients of the piecewise-constant signal that takes, at each point of a ``res`` grid,
        the value of the nearest sample: ``positions (..., N, 3)``, ``values (..., N)`` → ``(..., dim)``."""
        positions, values = torch.broadcast_tensors(positions, values[..., None])
        values = values[..., 0]
        if positions.numel() == 0:
            return positions.new_zeros(values.shape[:-1] + (self.dim,))
        positions = torch.nn.functional.normalize(positions, dim=-1)
        size, n = positions.shape[:-2], positions.shape[-2]
        positions, values = positions.reshape(-1, n, 3), values.reshape(-1, n)
        s2 = FromS2Grid(res=res, lmax=self.lmax, normalization="integral", dtype=values.dtype, device=values.device)
        grid = s2.grid.reshape(1, -1, 3)
        nearest = torch.cdist(grid.expand(len(values), -1, -1), positions).argmin(2)  # (batch, points)
        sampled = values.gather(1, nearest).reshape(*size, s2.res_beta, s2.res_alpha)
        return s2(sampled)

    def _check(self, signal: torch.Tensor, what: str) -> None:
        if signal.shape[-1:] != (self.dim,):
            raise ValueError(f"SphericalTensor.{what}: signals of {self} need (..., {self.dim}) coefficients, "
                             f"got {tuple(signal.shape)}")

    def norms(self, signal: torch.Tensor) -> torch.Tensor:
        """The norm of each degree's coefficients, ``(..., dim) -> (..., lmax + 1)``."""
        self._check(signal, "norms")
        return torch.stack([signal[..., l * l : (l + 1) ** 2].norm(dim=-1) for l in range(self.lmax + 1)], dim=-1)

    def signal_xyz(self, signal: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        r""":math:`f(\hat r)` for every signal and point: ``signal (*A, dim)``, ``r (*B, 3)`` → ``(*A, *B)``."""
        self._check(signal, "signal_xyz")
        sh = self._sh(r).reshape(-1, self.dim)
        out = signal.reshape(-1, self.dim) @ sh.T
        return out.reshape(signal.shape[:-1] + r.shape[:-1])

    def signal_on_grid(self, signal: torch.Tensor, res=100, normalization: str = "integral"):
        """``(grid (res_beta, res_alpha, 3), values (..., res_beta, res_alpha))`` on `ToS2Grid`'s grid."""
        s2 = ToS2Grid(lmax=self.lmax, res=res, normalization=normalization, dtype=signal.dtype, device=signal.device)
        return SignalOnGrid(s2.grid, s2(signal))

    def plot(self, signal: torch.Tensor, center=None, res=100, radius: bool = True, relu: bool = False,
             normalization: str = "integral"):
        r"""A closed surface for plotting one signal: points ``(res_beta, res_alpha + 1, 3)`` (the poles
        closed, the azimuth wrapped; scaled by :math:`|f|` when ``radius``) and values
        ``(res_beta, res_alpha + 1)``."""
        if signal.dim() != 1:
            raise ValueError(f"SphericalTensor.plot: one signal (dim,), got {tuple(signal.shape)}")
        r, f = self.signal_on_grid(signal, res, normalization)
        f = f.relu() if relu else f
        r, f = r.clone(), f.clone()
        r[0], r[-1] = r.new_tensor([0.0, 1.0, 0.0]), r.new_tensor([0.0, -1.0, 0.0])
        f[0], f[-1] = f[0].mean(), f[-1].mean()
        r, f = torch.cat([r, r[:, :1]], dim=1), torch.cat([f, f[:, :1]], dim=1)
        if radius:
            r = r * f.abs().unsqueeze(-1)
        if center is not None:
            r = r + center
        return r, f

    def plotly_surface(self, signals: torch.Tensor, centers=None, res=100, radius: bool = True, relu: bool = False,
                       normalization: str = "integral") -> list[dict]:
        """Keyword dicts for ``plotly.graph_objects.Surface`` (``x, y, z, surfacecolor``), one per signal."""
        signals = signals.reshape(-1, self.dim)
        centers = [None] * len(signals) if centers is None else centers.reshape(-1, 3)
        traces = []
        for signal, center in zip(signals, centers):
            r, f = self.plot(signal, center, res, radius, relu, normalization)
            traces.append(dict(x=r[..., 0].numpy(), y=r[..., 1].numpy(), z=r[..., 2].numpy(), surfacecolor=f.numpy()))
        return traces

    def find_peaks(self, signal: torch.Tensor, res=100) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Local maxima of one signal: directions ``(k, 3)`` and values ``(k,)``, on a ``res`` grid and on
        a rotated copy (so that peaks at the grid's poles are found too), merged.

        Examples
        --------
        >>> s = SphericalTensor(4, 1, -1)
        >>> x = s.with_peaks_at(torch.tensor([[4.0, 0.0, 4.0], [0.0, 5.0, 0.0]], dtype=torch.float64))
        >>> pos, val = s.find_peaks(x)
        >>> pos[val > 4.0].mul(10).round().abs().tolist(), val[val > 4.0].mul(10).round().tolist()
        ([[7.0, 0.0, 7.0], [0.0, 10.0, 0.0]], [57.0, 50.0])
        """
        if signal.dim() != 1:
            raise ValueError(f"SphericalTensor.find_peaks: one signal (dim,), got {tuple(signal.shape)}")
        x1, f1 = self.signal_on_grid(signal, res)
        R = angles_to_matrix(*(torch.tensor(math.pi / 2, dtype=signal.dtype, device=signal.device),) * 3)
        x2, f2 = self.signal_on_grid(self.D_from_matrix(R).to(signal.dtype) @ signal, res)
        x2 = x2 @ R  # grid points of the rotated signal, back in the original frame
        i1, i2 = _grid_peaks(f1), _grid_peaks(f2)
        p1, v1 = x1[i1[:, 0], i1[:, 1]], f1[i1[:, 0], i1[:, 1]]
        p2, v2 = x2[i2[:, 0], i2[:, 1]], f2[i2[:, 0], i2[:, 1]]
        n_beta = x1.shape[0]
        if len(p1) and len(p2):
            far = (torch.cdist(p1, p2) >= 2 * math.pi / n_beta).all(1)
            p1, v1 = p1[far], v1[far]
        return torch.cat([p1, p2]), torch.cat([v1, v2])
