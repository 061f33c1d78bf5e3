r"""Clebsch–Gordan coefficients in e3nn's real basis (``e3nn.o3.wigner_3j``), any degree, exact.

Construction.

1. The Wigner 3j symbols :math:`\begin{pmatrix} l_1 & l_2 & l_3\\ m_1 & m_2 & m_3\end{pmatrix}`
   from Racah's formula (Racah, Phys. Rev. 62, 438 (1942); Edmonds, *Angular Momentum in Quantum
   Mechanics*, eq. 3.7.3). The alternating sum is evaluated in exact integer arithmetic, so every
   coefficient is correctly rounded up to the final square root: no cancellation, any :math:`l`.
2. Change of basis to e3nn's real harmonics on each leg,
   :math:`C_{abc} = \sum U^{l_1}_{a m_1} U^{l_2}_{b m_2} U^{l_3}_{c m_3} (3j)_{m_1 m_2 m_3}`
   with :math:`U` from `change_basis_complex_to_real`. :math:`C` is real for even
   :math:`l_1+l_2+l_3` and purely imaginary for odd (we keep the non-zero part). It is invariant,
   :math:`C_{abc} = \sum C_{ijk} D^{l_1}_{ia}(R) D^{l_2}_{jb}(R) D^{l_3}_{kc}(R)`, and
   :math:`\sum_{abc} C_{abc}^2 = 1` (the 3j symbols have unit Frobenius norm).
3. Sign (phase) convention, fixed to reproduce e3nn exactly: for :math:`l_1 \le l_2 \le l_3`
   the coefficient :math:`C_{l_1 l_2 l_3}` (the :math:`m=0,0,0` entry) is made positive; when it
   vanishes (odd :math:`l_1+l_2+l_3`) the first non-zero entry in row-major order is made
   positive. Other orders are obtained from the sorted one by permuting the axes, with a factor
   :math:`(-1)^{l_1+l_2+l_3}` for odd permutations (the 3j symmetry). Checked against e3nn's
   table for every triple with :math:`l_i \le 11` (tests/so3/test_clebsch_gordan.py).

Two e3nn conventions. The signs above are those of e3nn 0.4.x (``convention="e3nn-0.4"``, the
default; mace-torch pins e3nn 0.4.4, so MACE checkpoints use them). e3nn 0.5.0 (2022) changed its
construction to a change of basis of the complex coefficients with a fixed phase and no sign
fixing; its tensor is

.. math::

    C^{(0.5)}_{abc} = \operatorname{Re}\Big[(-i)^{l_1+l_2+l_3}
        \sum U^{l_1}_{a m_1} U^{l_2}_{b m_2} U^{l_3}_{c m_3} (3j)_{m_1 m_2 m_3}\Big],

which equals the 0.4 tensor up to a sign per triple (``convention="e3nn-0.5"``, for e3nn 0.5 and
later). For :math:`l_i \le 6`, 34 of the 175 triples differ, e.g. (1, 2, 2), (1, l, l) for every
:math:`l \ge 2`, (3, 4, 6) and their permutations, while (1, 1, 1) and (2, 2, 2) agree. Checked
against e3nn 0.6.0 for every triple with :math:`l_i \le 6` (the flipped triples are recorded in
tests/so3/test_clebsch_gordan.py). A model trained with e3nn >= 0.5 has the other sign on those
paths; build equiv's products with ``cg_convention="e3nn-0.5"`` to reproduce it.

The tensors are cached (``functools.lru_cache``, float64 on CPU) and cast on request.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ._wigner import change_basis_complex_to_real

__all__ = ["clebsch_gordan", "wigner_3j_complex", "CG_CONVENTIONS", "convention_sign"]

#: Sign conventions of `clebsch_gordan` (see the module docstring).
CG_CONVENTIONS = ("e3nn-0.4", "e3nn-0.5")


@functools.lru_cache(maxsize=None)
def _fact(n: int) -> int:
    return math.factorial(n)


def _check_triple(name: str, l1, l2, l3) -> None:
    for k, l in (("l1", l1), ("l2", l2), ("l3", l3)):
        if isinstance(l, bool) or not isinstance(l, int) or l < 0:
            raise ValueError(f"{name}: {k} must be an int >= 0, got {l!r}")
    if not abs(l1 - l2) <= l3 <= l1 + l2:
        raise ValueError(
            f"{name}: ({l1}, {l2}, {l3}) violates the triangle rule |l1 - l2| <= l3 <= l1 + l2"
        )


def _threej(j1: int, j2: int, j3: int, m1: int, m2: int, m3: int) -> float:
    """One Wigner 3j symbol (integer j), exact up to the final rounding."""
    if m1 + m2 + m3 != 0 or abs(m1) > j1 or abs(m2) > j2 or abs(m3) > j3:
        return 0.0
    kmin = max(0, j2 - j3 - m1, j1 - j3 + m2)
    kmax = min(j1 + j2 - j3, j1 - m1, j2 + m2)
    if kmin > kmax:
        return 0.0
    a, b = j3 - j2 + m1, j3 - j1 - m2  # (a + k)!, (b + k)!
    c, d, e = j1 + j2 - j3, j1 - m1, j2 + m2  # (c - k)!, (d - k)!, (e - k)!
    # common multiple of all denominators k! (a+k)! (b+k)! (c-k)! (d-k)! (e-k)!
    big = _fact(kmax) * _fact(a + kmax) * _fact(b + kmax) * _fact(c - kmin) * _fact(d - kmin) * _fact(e - kmin)
    s = 0
    for k in range(kmin, kmax + 1):
        den = _fact(k) * _fact(a + k) * _fact(b + k) * _fact(c - k) * _fact(d - k) * _fact(e - k)
        s += (-1) ** k * (big // den)
    if s == 0:
        return 0.0
    num = (
        _fact(j1 + j2 - j3) * _fact(j1 - j2 + j3) * _fact(-j1 + j2 + j3)
        * _fact(j1 + m1) * _fact(j1 - m1) * _fact(j2 + m2) * _fact(j2 - m2) * _fact(j3 + m3) * _fact(j3 - m3)
        * s * s
    )
    den = _fact(j1 + j2 + j3 + 1) * big * big
    sign = (-1) ** ((j1 - j2 - m3) % 2) * (1 if s > 0 else -1)
    return sign * math.sqrt(num / den)  # int / int is correctly rounded in Python


@functools.lru_cache(maxsize=None)
def wigner_3j_complex(l1: int, l2: int, l3: int) -> np.ndarray:
    r"""Wigner 3j symbols :math:`(l_1\, l_2\, l_3;\ m_1\, m_2\, m_3)` as a float64 array
    ``(2l1+1, 2l2+1, 2l3+1)`` indexed by :math:`m_i + l_i` (complex, Condon–Shortley basis).

    >>> w = wigner_3j_complex(1, 1, 0)  # (1 1 0; m -m 0) = (-1)^(1-m) / sqrt(3)
    >>> [round(float(w[m + 1, 1 - m, 0]) * 3**0.5, 12) for m in (-1, 0, 1)]
    [1.0, -1.0, 1.0]
    """
    _check_triple("wigner_3j_complex", l1, l2, l3)
    out = np.zeros((2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1))
    for m1 in range(-l1, l1 + 1):
        for m2 in range(max(-l2, -l3 - m1), min(l2, l3 - m1) + 1):
            out[m1 + l1, m2 + l2, -m1 - m2 + l3] = _threej(l1, l2, l3, m1, m2, -m1 - m2)
    return out


def _real_invariant(l1: int, l2: int, l3: int) -> np.ndarray:
    """(U1 x U2 x U3) 3j: the invariant tensor in the real basis, up to the phase i^(l1+l2+l3)."""
    w = wigner_3j_complex(l1, l2, l3)
    U1, U2, U3 = (change_basis_complex_to_real(l) for l in (l1, l2, l3))
    T = np.einsum("am,bn,co,mno->abc", U1, U2, U3, w, optimize=True)
    if (l1 + l2 + l3) % 2 == 0:
        main, other = T.real, T.imag
    else:
        main, other = T.imag, T.real
    assert np.abs(other).max(initial=0.0) < 1e-12, "real-basis Clebsch-Gordan tensor has the wrong phase"
    # Entries that cancel exactly (a real combination of +-3j symbols) come out as rounding
    # residues; set them to exact zeros by comparing with the sum of the magnitudes of the terms
    # (a genuinely small coefficient, e.g. ~2^(-2l) at extreme m, has equally small terms).
    bound = np.einsum("am,bn,co,mno->abc", np.abs(U1), np.abs(U2), np.abs(U3), np.abs(w), optimize=True)
    main = np.where(np.abs(main) <= 1e-12 * bound, 0.0, main)
    return np.ascontiguousarray(main)


@functools.lru_cache(maxsize=None)
def _clebsch_gordan_sorted(l1: int, l2: int, l3: int) -> np.ndarray:
    # l1 <= l2 <= l3
    C = _real_invariant(l1, l2, l3)
    center = C[l1, l2, l3]
    if center != 0.0:
        sign = np.sign(center)
    else:
        sign = np.sign(C.flat[np.flatnonzero(C)[0]])
    return C * sign


@functools.lru_cache(maxsize=None)
def _clebsch_gordan_float64(l1: int, l2: int, l3: int) -> torch.Tensor:
    ls = (l1, l2, l3)
    order = sorted(range(3), key=lambda i: ls[i])  # stable: ties keep their order
    C = _clebsch_gordan_sorted(*(ls[i] for i in order))
    # axis k of the sorted tensor is axis order[k] of the requested one
    C = np.transpose(C, np.argsort(order))
    inversions = sum(1 for i in range(3) for j in range(i + 1, 3) if order[i] > order[j])
    if inversions % 2 == 1 and (l1 + l2 + l3) % 2 == 1:
        C = -C
    return torch.from_numpy(np.ascontiguousarray(C))


@functools.lru_cache(maxsize=None)
def _e3nn05_sign(l1: int, l2: int, l3: int) -> float:
    w = wigner_3j_complex(l1, l2, l3)
    U1, U2, U3 = (change_basis_complex_to_real(l) for l in (l1, l2, l3))
    T = ((-1j) ** (l1 + l2 + l3) * np.einsum("am,bn,co,mno->abc", U1, U2, U3, w, optimize=True)).real
    overlap = float(np.sum(T * _clebsch_gordan_float64(l1, l2, l3).numpy()))
    assert abs(abs(overlap) - 1.0) < 1e-9, "e3nn-0.5 Clebsch-Gordan tensor is not +-the e3nn-0.4 one"
    return 1.0 if overlap > 0 else -1.0


def convention_sign(l1: int, l2: int, l3: int, convention: str = "e3nn-0.4") -> float:
    r"""The sign :math:`s` with ``clebsch_gordan(l1, l2, l3, convention=convention)`` =
    :math:`s \times` ``clebsch_gordan(l1, l2, l3)`` (see the module docstring).

    >>> convention_sign(1, 2, 2, "e3nn-0.5"), convention_sign(2, 2, 2, "e3nn-0.5")
    (-1.0, 1.0)
    """
    if convention not in CG_CONVENTIONS:
        raise ValueError(f"convention must be one of {CG_CONVENTIONS}, got {convention!r}")
    _check_triple("convention_sign", l1, l2, l3)
    return 1.0 if convention == "e3nn-0.4" else _e3nn05_sign(int(l1), int(l2), int(l3))


@functools.lru_cache(maxsize=None)
def _clebsch_gordan_signed(l1: int, l2: int, l3: int, convention: str) -> torch.Tensor:
    C = _clebsch_gordan_float64(l1, l2, l3)
    return -C if convention == "e3nn-0.5" and _e3nn05_sign(l1, l2, l3) < 0 else C


@torch.compiler.assume_constant_result  # torch.compile: evaluate eagerly, treat as a constant
def _clebsch_gordan_constant(l1: int, l2: int, l3: int, convention: str = "e3nn-0.4") -> torch.Tensor:
    return _clebsch_gordan_signed(l1, l2, l3, convention)


def clebsch_gordan(
    l1: int, l2: int, l3: int, dtype: torch.dtype | None = None, device=None, convention: str = "e3nn-0.4"
) -> torch.Tensor:
    r"""Clebsch–Gordan coefficients (e3nn's ``wigner_3j``) in the real basis, any degree.

    The unique (up to sign) invariant tensor of :math:`l_1 \otimes l_2 \otimes l_3`:

    .. math::

        C_{abc} = \sum_{ijk} C_{ijk}\, D^{l_1}_{ia}(R)\, D^{l_2}_{jb}(R)\, D^{l_3}_{kc}(R)
        \quad \forall R \in SO(3), \qquad \sum_{abc} C_{abc}^2 = 1,

    equal to ``e3nn.o3.wigner_3j(l1, l2, l3)`` including signs (convention in the module
    docstring). Contracting two inputs gives an equivariant product:
    ``z_c = einsum("abc,a,b->c", C, x, y)`` transforms with :math:`D^{l_3}`.

    Parameters
    ----------
    l1, l2, l3 : int
        Degrees satisfying the triangle rule :math:`|l_1 - l_2| \le l_3 \le l_1 + l_2`.
    dtype, device : optional
        Of the result (default dtype, CPU). Computed once in float64 (cached) and cast.
    convention : {"e3nn-0.4", "e3nn-0.5"}
        Sign convention: e3nn 0.4.x's (default, as mace-torch) or e3nn 0.5 and later's, which
        differ by a sign on some triples (`convention_sign`).

    Returns
    -------
    torch.Tensor
        Shape ``(2l1+1, 2l2+1, 2l3+1)``.

    Examples
    --------
    >>> C = clebsch_gordan(1, 1, 0, dtype=torch.float64)
    >>> torch.allclose(C[:, :, 0], torch.eye(3, dtype=torch.float64) / 3**0.5)
    True
    >>> C = clebsch_gordan(1, 1, 1, dtype=torch.float64)  # Levi-Civita / sqrt(6)
    >>> round(C[0, 1, 2].item() * 6**0.5, 12), round(C[1, 0, 2].item() * 6**0.5, 12)
    (1.0, -1.0)
    """
    _check_triple("clebsch_gordan", l1, l2, l3)
    if convention not in CG_CONVENTIONS:
        raise ValueError(f"clebsch_gordan: convention must be one of {CG_CONVENTIONS}, got {convention!r}")
    C = _clebsch_gordan_constant(l1, l2, l3, convention)
    # copy: the cached tensor must not be modified in place by a caller
    return C.to(dtype=dtype or torch.get_default_dtype(), device=device, copy=True)
