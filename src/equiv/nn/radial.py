r"""Radial bases and smooth cut-offs for interatomic distances.

A message-passing potential sees a neighbour at distance :math:`r < r_c` through a few smooth
functions of :math:`r` that vanish, with their derivatives, at the cut-off :math:`r_c`:

* :class:`BesselBasis` — the zeroth-order spherical Bessel functions that solve the radial
  Helmholtz equation in a ball of radius :math:`r_c` with a zero boundary condition (DimeNet,
  Klicpera, Groß & Günnemann, ICLR 2020, arXiv:2003.03123, eq. 7),

  .. math::

      b_n(r) = \sqrt{\frac{2}{r_c}}\;\frac{\sin(n \pi r / r_c)}{r},\qquad n = 1, \dots, N;

* :class:`PolynomialCutoff` — the polynomial envelope of DimeNet (eq. 8), with :math:`x = r/r_c`,

  .. math::

      u_p(x) = 1 - \frac{(p+1)(p+2)}{2} x^p + p(p+2)\, x^{p+1} - \frac{p(p+1)}{2} x^{p+2}
      \quad (x < 1), \qquad u_p(x) = 0 \quad (x \ge 1),

  which is 1 at :math:`x=0` and has :math:`u_p(1) = u_p'(1) = u_p''(1) = 0`, so energies and forces
  are continuous when a neighbour crosses the cut-off. MACE uses :math:`p = 5` (Batatia et al.,
  NeurIPS 2022), NequIP :math:`p = 6`;
* :class:`RadialEmbedding` — their product :math:`b_n(r)\,u_p(r/r_c)`, the edge features of MACE.

All take distances of any shape ``(...)`` and return ``(..., num_basis)`` (bases) or ``(...)``
(envelope). Distances must be positive: :math:`b_n` is finite as :math:`r \to 0`
(:math:`n\pi\sqrt{2/r_c}/r_c`) but evaluates to NaN at exactly 0; the neighbour lists of
:mod:`equiv.data` refuse atoms closer than 0.1 Å.

>>> import torch
>>> emb = RadialEmbedding(cutoff=5.0, num_basis=8, p=5)
>>> emb(torch.tensor([1.0, 4.0, 5.0, 6.0])).shape
torch.Size([4, 8])
>>> float(emb(torch.tensor([5.0])).abs().max())
0.0
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["BesselBasis", "PolynomialCutoff", "RadialEmbedding", "bessel_basis", "polynomial_cutoff"]


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def bessel_basis(r: torch.Tensor, cutoff: float, num_basis: int = 8) -> torch.Tensor:
    r"""Bessel radial basis :math:`b_n(r) = \sqrt{2/r_c}\,\sin(n\pi r/r_c)/r`, :math:`n = 1..N`.

    Parameters
    ----------
    r : torch.Tensor, shape (...)
        Distances (positive).
    cutoff : float
        :math:`r_c`.
    num_basis : int
        :math:`N`.

    Returns
    -------
    torch.Tensor, shape (..., num_basis)

    Examples
    --------
    >>> import torch
    >>> b = bessel_basis(torch.tensor([2.5]), cutoff=5.0, num_basis=2)
    >>> torch.allclose(b, torch.tensor([[0.2529822, 0.0]]), atol=1e-6)
    True
    """
    cutoff = _check_positive("cutoff", cutoff)
    num_basis = _check_count("num_basis", num_basis)
    n = torch.arange(1, num_basis + 1, dtype=r.dtype, device=r.device)
    r = r.unsqueeze(-1)
    return math.sqrt(2.0 / cutoff) * torch.sin(n * (math.pi / cutoff) * r) / r


def polynomial_cutoff(r: torch.Tensor, cutoff: float, p: int = 5) -> torch.Tensor:
    r"""DimeNet polynomial envelope :math:`u_p(r/r_c)`, zero for :math:`r \ge r_c`.

    Parameters
    ----------
    r : torch.Tensor, shape (...)
    cutoff : float
    p : int
        Order (MACE: 5); :math:`u_p` and its first two derivatives vanish at :math:`r_c`.

    Returns
    -------
    torch.Tensor, shape (...)

    Examples
    --------
    >>> import torch
    >>> polynomial_cutoff(torch.tensor([0.0, 2.5, 5.0, 7.0]), cutoff=5.0, p=5)
    tensor([1.0000, 0.7734, 0.0000, 0.0000])
    """
    cutoff = _check_positive("cutoff", cutoff)
    p = _check_count("p", p)
    x = r / cutoff
    xp = x.pow(p)
    u = 1.0 - 0.5 * (p + 1) * (p + 2) * xp + p * (p + 2) * xp * x - 0.5 * p * (p + 1) * xp * x * x
    return torch.where(x < 1.0, u, torch.zeros_like(u))


class BesselBasis(nn.Module):
    r"""Bessel radial basis of DimeNet (Klicpera et al. 2020, eq. 7) as a module.

    .. math::

        b_n(r) = \sqrt{\frac{2}{r_c}}\;\frac{\sin(\omega_n r)}{r},\qquad
        \omega_n = \frac{n\pi}{r_c}.

    Parameters
    ----------
    cutoff : float
        :math:`r_c` in the units of the distances (Å for atoms).
    num_basis : int
        Number of functions :math:`N` (MACE: 8).
    trainable : bool
        Learn the frequencies :math:`\omega_n` (DimeNet does, MACE does not by default).

    Shapes
    ------
    ``(...) -> (..., num_basis)``

    Examples
    --------
    >>> import torch
    >>> BesselBasis(cutoff=5.0, num_basis=8)(torch.rand(10) + 0.5).shape
    torch.Size([10, 8])
    """

    def __init__(self, cutoff: float, num_basis: int = 8, trainable: bool = False):
        super().__init__()
        self.cutoff = _check_positive("cutoff", cutoff)
        self.num_basis = _check_count("num_basis", num_basis)
        freq = math.pi / self.cutoff * torch.arange(1, num_basis + 1, dtype=torch.get_default_dtype())
        if trainable:
            self.frequencies = nn.Parameter(freq)
        else:
            self.register_buffer("frequencies", freq)
        self.prefactor = math.sqrt(2.0 / self.cutoff)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = r.unsqueeze(-1)
        return self.prefactor * torch.sin(self.frequencies.to(r.dtype) * r) / r

    def extra_repr(self) -> str:
        return (f"cutoff={self.cutoff}, num_basis={self.num_basis}, "
                f"trainable={isinstance(self.frequencies, nn.Parameter)}")


class PolynomialCutoff(nn.Module):
    r"""Smooth polynomial cut-off envelope of DimeNet (Klicpera et al. 2020, eq. 8).

    .. math::

        u_p(x) = 1 - \frac{(p+1)(p+2)}{2} x^p + p(p+2)\, x^{p+1} - \frac{p(p+1)}{2} x^{p+2},
        \qquad x = r / r_c < 1,

    and 0 beyond the cut-off.

    Parameters
    ----------
    cutoff : float
    p : int
        Order (MACE: 5).

    Shapes
    ------
    ``(...) -> (...)``

    Examples
    --------
    >>> import torch
    >>> PolynomialCutoff(cutoff=5.0, p=5)(torch.tensor([0.0, 5.0]))
    tensor([1., 0.])
    """

    def __init__(self, cutoff: float, p: int = 5):
        super().__init__()
        self.cutoff = _check_positive("cutoff", cutoff)
        self.p = _check_count("p", p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return polynomial_cutoff(r, self.cutoff, self.p)

    def extra_repr(self) -> str:
        return f"cutoff={self.cutoff}, p={self.p}"


class RadialEmbedding(nn.Module):
    r"""Edge features of MACE: Bessel basis times the polynomial envelope.

    .. math::

        e_n(r) = b_n(r)\, u_p(r / r_c)

    (Batatia et al., *MACE*, NeurIPS 2022, eq. 8 with the bases of Klicpera et al. 2020).

    Parameters
    ----------
    cutoff : float
    num_basis : int
        Bessel functions (default 8).
    p : int
        Envelope order (default 5).
    trainable : bool
        Learn the Bessel frequencies.

    Shapes
    ------
    ``(...) -> (..., num_basis)``

    Examples
    --------
    >>> import torch
    >>> RadialEmbedding(cutoff=4.0)(torch.tensor([1.0, 2.0])).shape
    torch.Size([2, 8])
    """

    def __init__(self, cutoff: float, num_basis: int = 8, p: int = 5, trainable: bool = False):
        super().__init__()
        self.bessel = BesselBasis(cutoff, num_basis, trainable)
        self.envelope = PolynomialCutoff(cutoff, p)
        self.num_basis = self.bessel.num_basis
        self.cutoff = self.bessel.cutoff

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.bessel(r) * self.envelope(r).unsqueeze(-1)
