r"""Gaunt coefficients: integrals of three real spherical harmonics, exact, any degree.

For complex (Condon–Shortley) harmonics (Gaunt, Phil. Trans. R. Soc. A 228, 151 (1929);
Edmonds eq. 4.6.3)

.. math::

    \int_{S^2} Y^{m_1}_{l_1} Y^{m_2}_{l_2} Y^{m_3}_{l_3}\, d\Omega
    = \sqrt{\frac{(2l_1+1)(2l_2+1)(2l_3+1)}{4\pi}}
      \begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix}
      \begin{pmatrix} l_1 & l_2 & l_3 \\ m_1 & m_2 & m_3 \end{pmatrix}.

Changing each leg to e3nn's real basis with the same unitary :math:`U` as in
`clebsch_gordan` gives the real Gaunt tensor

.. math::

    G_{abc} = \int_{S^2} Y^{l_1}_a Y^{l_2}_b Y^{l_3}_c\, d\Omega
    = \sqrt{\frac{(2l_1+1)(2l_2+1)(2l_3+1)}{4\pi}}
      \begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix}
      \big[(U \otimes U \otimes U)\, 3j\big]_{abc}
    = \pm \sqrt{\frac{(2l_1+1)(2l_2+1)(2l_3+1)}{4\pi}}
      \begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix} C_{abc},

with :math:`C` the Clebsch–Gordan tensor, for "integral"-normalised :math:`Y`. The
:math:`(0\,0\,0)` symbol vanishes exactly when :math:`l_1+l_2+l_3` is odd; outside the triangle
rule the tensor is zero. Both are returned as exact zeros. Checked against quadrature on an exact
`sphere_grid` (tests/so3/test_gaunt.py).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ._clebsch_gordan import _real_invariant, _threej

__all__ = ["gaunt"]


@functools.lru_cache(maxsize=None)
def _gaunt_float64(l1: int, l2: int, l3: int) -> torch.Tensor:
    shape = (2 * l1 + 1, 2 * l2 + 1, 2 * l3 + 1)
    if (l1 + l2 + l3) % 2 == 1 or not abs(l1 - l2) <= l3 <= l1 + l2:
        return torch.zeros(shape, dtype=torch.float64)
    prefactor = math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1) / (4 * math.pi)) * _threej(l1, l2, l3, 0, 0, 0)
    G = prefactor * _real_invariant(l1, l2, l3)
    return torch.from_numpy(np.ascontiguousarray(G))


@torch.compiler.assume_constant_result  # torch.compile: evaluate eagerly, treat as a constant
def _gaunt_constant(l1: int, l2: int, l3: int) -> torch.Tensor:
    return _gaunt_float64(l1, l2, l3)


def gaunt(l1: int, l2: int, l3: int, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    r"""Real Gaunt coefficients :math:`G_{abc} = \int_{S^2} Y^{l_1}_a Y^{l_2}_b Y^{l_3}_c\, d\Omega`.

    For e3nn-basis real spherical harmonics with "integral" normalisation
    (:math:`\int (Y^l_m)^2 = 1`). Exact (3j symbols in integer arithmetic, see the module
    docstring); exact zeros when :math:`l_1+l_2+l_3` is odd or the triangle rule fails. The
    product of two harmonics expands as
    :math:`Y^{l_1}_a Y^{l_2}_b = \sum_{l_3, c} G_{abc}\, Y^{l_3}_c`, which is what the Gaunt tensor
    product (Luo et al., ICLR 2024) uses.

    Parameters
    ----------
    l1, l2, l3 : int
        Degrees :math:`\ge 0`.
    dtype, device : optional
        Of the result (computed once in float64, cached, then cast).

    Returns
    -------
    torch.Tensor
        Shape ``(2l1+1, 2l2+1, 2l3+1)``.

    Examples
    --------
    >>> G = gaunt(1, 1, 2, dtype=torch.float64)
    >>> from equiv.so3 import sphere_grid, spherical_harmonics
    >>> grid = sphere_grid(4, dtype=torch.float64)
    >>> Y1, Y2 = spherical_harmonics(1, grid.points), spherical_harmonics(2, grid.points)
    >>> quad = grid.integrate(Y1[:, :, None, None] * Y1[:, None, :, None] * Y2[:, None, None, :])
    >>> bool((G - quad).abs().max() < 1e-14)
    True
    >>> bool(gaunt(1, 1, 1).abs().max() == 0)  # odd l1 + l2 + l3
    True
    """
    for k, l in (("l1", l1), ("l2", l2), ("l3", l3)):
        if isinstance(l, bool) or not isinstance(l, int) or l < 0:
            raise ValueError(f"gaunt: {k} must be an int >= 0, got {l!r}")
    G = _gaunt_constant(l1, l2, l3)
    return G.to(dtype=dtype or torch.get_default_dtype(), device=device, copy=True)
