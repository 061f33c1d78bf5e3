r"""Gaunt product through 2D Fourier series on the torus (the route of Luo et al. 2024).

A real spherical harmonic in e3nn's basis factors as :math:`Y_{lm}(\beta, \alpha) = P_{lm}(\beta)
A_m(\alpha)` where :math:`A_m` is :math:`\cos(m\alpha)` or :math:`\sin(|m|\alpha)` and :math:`P_{lm}`,
continued to :math:`\beta \in [0, 2\pi)`, is a trigonometric polynomial of degree :math:`l` (a cosine
series for even :math:`|m|`, a sine series for odd :math:`|m|`). Hence every band-limited function
on the sphere is a 2D Fourier series on the torus,

.. math::

    f(\beta, \alpha) = \sum_{lm} x_{lm} Y_{lm}(\beta, \alpha)
    = \sum_{|k|, |v| \le L} \hat F_{kv}\, e^{i(k\beta + v\alpha)}, \qquad
    \hat F_{k v} = \sum_{l} x_{l, \pm v}\, p^{l, \pm v}_k\, a^{\pm v}_v,

with only :math:`m = \pm v` contributing to column :math:`v` (the sparsity that makes this
:math:`O(L^3)`). The product of two such series is the 2D convolution of their coefficients,
computed by FFT on an :math:`N \times N` torus grid (:math:`N > 2(L_1 + L_2)`, so nothing aliases),
and the result is projected back on :math:`Y_{l_3 m_3}` exactly with the closed-form integrals

.. math::

    \int_0^{2\pi}\!\!\int_0^\pi e^{i(k\beta + v\alpha)} P_{l m}(\beta) A_m(\alpha)\, \sin\beta\, d\beta\, d\alpha,
    \qquad \int_0^\pi e^{is\beta} d\beta = \begin{cases} \pi & s = 0 \\ 2i/s & s \text{ odd} \\ 0 & \text{else.}\end{cases}

Values of one chunk are ``(n, c, N, N)``; the symmetric form and its derivatives are evaluated by
`equiv.tp._gaunt_form` exactly as for the grid route.

Reference: S. Luo, T. Chen, A. S. Krishnapriyan, "Enabling efficient equivariant operations in the
Fourier basis via Gaunt tensor products", ICLR 2024 (arXiv:2401.10216).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from equiv import so3

from ._gaunt_form import LegPlan, gaunt_form
from ._gaunt_grid import row_order

__all__ = ["FourierPlan", "fourier_plan", "gaunt_fourier", "legendre_fourier"]


def _smooth_size(n: int) -> int:
    """Smallest integer >= n with no prime factor above 5 (fast FFT sizes)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


@functools.lru_cache(maxsize=None)
def legendre_fourier(lmax: int) -> np.ndarray:
    r"""Complex Fourier coefficients :math:`p^{lm}_k` of :math:`P_{lm}(\beta)` on :math:`[0, 2\pi)`:
    array ``(lmax+1, 2 lmax+1, 2 lmax+1)`` indexed ``[l, m + lmax, k + lmax]``.

    :math:`P_{lm}` is read off e3nn's harmonics, :math:`Y_{lm}(\beta, \alpha)/A_m(\alpha)` (least
    squares over two azimuths), continued by parity (:math:`P(2\pi-\beta) = \pm P(\beta)`) and
    transformed exactly (the sample count exceeds :math:`2l+1`).
    """
    ns = 4 * (lmax + 1)
    betas = 2 * math.pi * np.arange(ns) / ns
    half = np.where(betas <= math.pi, betas, 2 * math.pi - betas)  # reflect into [0, pi]
    sign_odd = np.where(betas <= math.pi, 1.0, -1.0)
    alphas = np.array([0.0, math.pi / (2 * lmax + 2)])
    pts = []
    for a in alphas:
        pts.append(np.stack([np.sin(half) * np.sin(a), np.cos(half), np.sin(half) * np.cos(a)], -1))
    pts = torch.as_tensor(np.stack(pts), dtype=torch.float64)  # (2, ns, 3)
    y = so3.spherical_harmonics(list(range(lmax + 1)), pts, normalization="integral").numpy()
    out = np.zeros((lmax + 1, 2 * lmax + 1, 2 * lmax + 1), dtype=np.complex128)
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            am = np.cos(m * alphas) if m >= 0 else np.sin(-m * alphas)
            p = (y[:, :, l * l + l + m] * am[:, None]).sum(0) / (am * am).sum()
            if abs(m) % 2 == 1:
                p = p * sign_odd
            c = np.fft.fft(p) / ns
            k = np.arange(-l, l + 1)
            if np.abs(np.delete(c, k % ns)).max(initial=0) > 1e-10:
                raise RuntimeError(f"P_(l={l}, m={m}) is not a trigonometric polynomial of degree l")
            out[l, m + lmax, k + lmax] = c[k % ns]
    return out


def _half_interval_integral(s: np.ndarray) -> np.ndarray:
    r""":math:`\int_0^\pi e^{i s \beta} d\beta` for integer ``s``."""
    out = np.zeros(s.shape, dtype=np.complex128)
    out[s == 0] = math.pi
    odd = s % 2 == 1
    out[odd] = 2j / s[odd]
    return out


class FourierPlan(LegPlan):
    r"""Cached matrices of the Fourier Gaunt form for three legs with degree sets ``ls``."""

    def __init__(self, ls1, ls2, ls3):
        self.ls = (tuple(sorted(ls1)), tuple(sorted(ls2)), tuple(sorted(ls3)))
        self.L = tuple(max(ls) for ls in self.ls)
        L1, L2, L3 = self.L
        self.N = N = _smooth_size(2 * max(L1 + L2, L1 + L3, L2 + L3) + 1)
        self.V = N // 2 + 1
        self.points = N * N
        self.channel_dim = 1  # values are (n, c, N, N)
        lmax = max(self.L)
        pk = legendre_fourier(lmax)  # [l, m + lmax, k + lmax]
        ks = np.arange(N)
        ks = np.where(ks <= N // 2, ks, ks - N)  # signed frequency of each FFT index
        self.rows, self._np = [], []
        for ls, L in zip(self.ls, self.L):
            order = row_order(ls)
            starts, mats = [], {}
            for m in range(-L, L + 1):
                rows = [(i, l) for i, (l, mm) in enumerate(order) if mm == m]
                starts.append((rows[0][0], rows[-1][0] + 1))
                a = 1.0 if m == 0 else (0.5 if m > 0 else -0.5j)  # coefficient of e^{i|m|alpha} in A_m
                syn = np.zeros((len(rows), N), dtype=np.complex128)
                ana = np.zeros((N, len(rows)), dtype=np.complex128)
                for r, (_, l) in enumerate(rows):
                    p = np.zeros(N, dtype=np.complex128)
                    kk = np.arange(-l, l + 1)
                    p[kk % N] = pk[l, m + lmax, kk + lmax]
                    syn[r] = p * a
                    # J_k = int_0^pi e^{ik beta} P(beta) sin(beta) d beta, P sin = sum_j q_j e^{ij beta}
                    q = np.zeros(2 * l + 3, dtype=np.complex128)  # j = -l-1 .. l+1
                    coeff = pk[l, m + lmax, kk + lmax]
                    q[2:] += coeff / 2j  # sin(beta) = (e^{i beta} - e^{-i beta}) / 2i
                    q[:-2] -= coeff / 2j
                    js = np.arange(-l - 1, l + 2)
                    ana[:, r] = (q[None, :] * _half_interval_integral(ks[:, None] + js[None, :])).sum(1)
                # synthesis: real (rows, 2N) producing interleaved (re, im) of F[k, |m|]
                mats[f"S{m}"] = np.stack([syn.real, syn.imag], -1).reshape(len(rows), 2 * N)
                # analysis: z = 2 pi Re(sum_k H_k J_k) (m >= 0) or -2 pi Im(...) (m < 0), H interleaved
                w = np.zeros((N, 2, len(rows)))
                if m >= 0:
                    w[:, 0], w[:, 1] = ana.real, -ana.imag
                else:
                    w[:, 0], w[:, 1] = -ana.imag, -ana.real
                mats[f"A{m}"] = 2 * math.pi * w.reshape(2 * N, len(rows))
            self.rows.append(starts)
            self._np.append(mats)
        self._cache = {}


    def synthesis(self, t, k, coeffs):
        """(n, c, rows) coefficients -> (n, c, N, N) values on the torus grid."""
        n, c, _ = coeffs.shape
        L, N, V = self.L[k], self.N, self.V
        x = coeffs.reshape(n * c, -1)
        cols = [x.new_zeros(n * c, 2 * N)] * V
        for m, (r0, r1) in zip(range(-L, L + 1), self.rows[k]):
            cols[abs(m)] = cols[abs(m)] + x[:, r0:r1] @ t[k][f"S{m}"]
        spec = torch.stack(cols, 2).view(n * c, N, 2, V).transpose(2, 3).contiguous()  # (nc, N, V, 2)
        f = torch.fft.irfft2(torch.view_as_complex(spec), s=(N, N), norm="forward")
        return f.view(n, c, N, N)

    def analysis(self, t, k, values):
        """(n, c, N, N) values -> (n, c, rows) coefficients (exact projection on the harmonics)."""
        n, c, N, _ = values.shape
        L = self.L[k]
        spec = torch.view_as_real(torch.fft.rfft2(values.reshape(n * c, N, N), norm="forward"))  # (nc, N, V, 2)
        spec = spec.permute(2, 0, 1, 3).reshape(self.V, n * c, 2 * N)
        out = torch.cat([spec[abs(m)] @ t[k][f"A{m}"] for m in range(-L, L + 1)], 1)
        return out.view(n, c, -1)

    def flops(self) -> int:
        """Approximate real multiply-adds per channel of one product (FFTs counted as 5 N^2 log2 N)."""
        fft = 5 * self.N * self.N * math.log2(self.N)
        mat = sum(2 * self.N * self.num_rows(k) for k in range(3))
        return int(mat + 3 * fft + self.N * self.N)


@functools.lru_cache(maxsize=None)
def fourier_plan(ls1, ls2, ls3) -> FourierPlan:
    return FourierPlan(tuple(ls1), tuple(ls2), tuple(ls3))


def gaunt_fourier(plan: FourierPlan, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""The Gaunt product by 2D FFT: ``x (n, C, rows1)``, ``y (n, 1 or C, rows2)`` → ``(n, C, rows3)``."""
    return gaunt_form(plan, x, y)
