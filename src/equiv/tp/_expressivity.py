r"""Expressivity of a tensor product: how many equivariant bilinear maps it can reach.

Following Xie et al. (2025), a tensor product :math:`T_w` with inputs :math:`V_1, V_2` and output
:math:`V_3` is measured by the dimension of

.. math::

    \mathcal{E}(T) = \operatorname{span}\{\, L_3 \circ T_w \circ (L_1 \otimes L_2) \,\}
    \subseteq \operatorname{Hom}_G(V_1 \otimes V_2, V_3),

over all equivariant linear maps :math:`L_i` (`equiv.nn.Linear`) and weights :math:`w`. The
ambient space has dimension :math:`\sum_{(\rho_1, \rho_2, \rho_3)} m_1 m_2 m_3 \cdot
\#\{\rho_3 \subset \rho_1 \otimes \rho_2\}` (`bilinear_hom_dimension`); a Clebsch–Gordan product
with all paths reaches all of it, a Gaunt product only its even (:math:`l_1+l_2+l_3`) part.

`expressivity` computes :math:`\dim \mathcal{E}` numerically: it draws random
:math:`(L_1, L_2, L_3, w)`, writes each map as a tensor :math:`B_{ijk}` by evaluating on basis
vectors, and returns the numerical rank of the stacked tensors (float64 SVD, relative tolerance
1e-9; the gap to the next singular value is about 1e-15 relative).

Values for inputs and output ``1x(0..L)`` (one copy of each degree; parities ignored, i.e. the
SO(3) count, the setting of the Price-of-Freedom comparison):

====  ======================  ======================  =========================
L     CG, all paths (SO(3))   Gaunt (grid/fourier)    ambient :math:`\dim` SO(3)
====  ======================  ======================  =========================
1     5                       4                       5
2     15                      11                      15
3     34                      23                      34
4     65                      42                      65
5     111                     69                      111
6     175                     106                     175
====  ======================  ======================  =========================

(With O(3) parities ``0e + 1o + 2e + ...`` the CG product is restricted to the even paths too and
both reach the same space.) Measured by ``python -m equiv.tp._expressivity`` and checked for
L = 1, 2 in tests/tp/test_expressivity.py.

Reference: Y. Xie, J. Daigavane, M. Kotak, T. Smidt, "The price of freedom: exploring expressivity
and runtime tradeoffs in equivariant tensor products", ICML 2025 (arXiv:2506.13523).
"""

from __future__ import annotations

import torch

from equiv import so3

__all__ = ["expressivity", "bilinear_hom_dimension"]


def bilinear_hom_dimension(irreps_in1, irreps_in2, irreps_out, group: str = "O(3)") -> int:
    r"""Dimension of the space of equivariant bilinear maps :math:`V_1 \times V_2 \to V_3`.

    Parameters
    ----------
    irreps_in1, irreps_in2, irreps_out : Irreps or str
    group : {"O(3)", "SO(3)"}
        With ``"SO(3)"`` parities are ignored.

    Examples
    --------
    >>> bilinear_hom_dimension("1o", "1o", "0e + 1e + 2e")  # dot, cross, symmetric traceless
    3
    >>> bilinear_hom_dimension("1o", "1o", "1o")
    0
    >>> bilinear_hom_dimension("1o", "1o", "1o", group="SO(3)")
    1
    """
    if group not in ("O(3)", "SO(3)"):
        raise ValueError(f"bilinear_hom_dimension: group must be 'O(3)' or 'SO(3)', got {group!r}")
    i1, i2, io = so3.Irreps(irreps_in1), so3.Irreps(irreps_in2), so3.Irreps(irreps_out)
    total = 0
    for m1, r1 in i1:
        for m2, r2 in i2:
            for m3, r3 in io:
                if abs(r1.l - r2.l) <= r3.l <= r1.l + r2.l and (group == "SO(3)" or r1.p * r2.p == r3.p):
                    total += m1 * m2 * m3
    return total


def _linear(irreps, generator, dtype):
    from equiv.nn import Linear  # nn is downstream of tp: imported lazily

    lin = Linear(irreps, irreps, internal_weights=False, shared_weights=True)
    w = torch.randn(lin.weight_numel, generator=generator, dtype=dtype) if lin.weight_numel else torch.zeros(0, dtype=dtype)
    eye = torch.eye(irreps.dim, dtype=dtype)
    return lin(eye, w) if lin.weight_numel else eye  # rows: images of the basis vectors


def expressivity(tp, num_samples: int | None = None, generator: torch.Generator | None = None, tol: float = 1e-9) -> int:
    r"""Dimension of :math:`\operatorname{span}\{L_3 \circ T_w \circ (L_1 \otimes L_2)\}` (numerical rank).

    Parameters
    ----------
    tp : TensorProduct or GauntTensorProduct
        Any module called as ``tp(x, y, weight)`` with ``irreps_in1``, ``irreps_in2``,
        ``irreps_out`` and ``weight_numel`` attributes and shared weights.
    num_samples : int, optional
        Random draws (default: ambient SO(3) dimension + 8, enough to span).
    generator : torch.Generator, optional
    tol : float
        Singular values below ``tol * largest`` count as zero.

    Returns
    -------
    int

    Examples
    --------
    >>> from equiv.tp import FullyConnectedTensorProduct, GauntTensorProduct
    >>> cg = FullyConnectedTensorProduct("0e + 1e", "0e + 1e", "0e + 1e")  # SO(3): all 5 paths
    >>> expressivity(cg)
    5
    >>> expressivity(GauntTensorProduct("0e + 1o", "0e + 1o", "0e + 1o"))  # no 1 x 1 -> 1 (cross product)
    4
    """
    for attr in ("irreps_in1", "irreps_in2", "irreps_out", "weight_numel"):
        if not hasattr(tp, attr):
            raise TypeError(f"expressivity: tp must be a tensor product module with .{attr}, got {type(tp).__name__}")
    if not getattr(tp, "shared_weights", True):
        raise ValueError("expressivity: tp must have shared_weights=True")
    i1, i2, io = tp.irreps_in1, tp.irreps_in2, tp.irreps_out
    bound = bilinear_hom_dimension(i1, i2, io, group="SO(3)")
    if bound == 0:
        return 0
    k = bound + 8 if num_samples is None else int(num_samples)
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    dtype = torch.float64
    tp = tp.to(dtype)
    d1, d2 = i1.dim, i2.dim
    maps = []
    with torch.no_grad():
        for _ in range(k):
            a, b = _linear(i1, gen, dtype), _linear(i2, gen, dtype)
            c = _linear(io, gen, dtype)
            w = torch.randn(tp.weight_numel, generator=gen, dtype=dtype)
            x = a[:, None, :].expand(d1, d2, d1)
            y = b[None, :, :].expand(d1, d2, d2)
            out = tp(x, y, w) if tp.weight_numel else tp(x, y)
            maps.append((out @ c).reshape(-1))
    s = torch.linalg.svdvals(torch.stack(maps))
    return int((s > tol * s[0]).sum())


def _table(lmax: int = 6) -> str:  # pragma: no cover - documentation helper
    from ._gaunt import GauntTensorProduct
    from ._sub import FullyConnectedTensorProduct

    lines = ["L  CG(SO(3))  Gaunt  ambient"]
    for L in range(1, lmax + 1):
        so3_irreps = "+".join(f"1x{l}e" for l in range(L + 1))
        sh = "+".join(f"1x{l}{'e' if l % 2 == 0 else 'o'}" for l in range(L + 1))
        cg = expressivity(FullyConnectedTensorProduct(so3_irreps, so3_irreps, so3_irreps))
        ga = expressivity(GauntTensorProduct(sh, sh, sh))
        lines.append(f"{L}  {cg}  {ga}  {bilinear_hom_dimension(sh, sh, sh, group='SO(3)')}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    print(_table())
