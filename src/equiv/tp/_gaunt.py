r"""`GauntTensorProduct`: the product of two spherical functions, projected back to harmonics."""

from __future__ import annotations

import functools

import numpy as np
import torch

from equiv import so3

from ._instruction import irreps as _irreps
from ._layout import flatten_batch, inverse_permutation, select

__all__ = ["GauntTensorProduct", "gaunt_path_coefficient"]

METHODS = ("auto", "grid", "fourier", "matrix")
#: ``method="auto"`` takes the matrix route (one-channel second input) while ``L**3 <= AUTO_MATRIX_FACTOR * C``
#: (``L`` the largest degree, ``C`` the channels), else the grid. The matrix route's build grows as
#: ``L**6`` per sample and the grid as ``C L**3``. Forward + backward crossovers measured on CPU with the
#: eleventh session's kernels (batch 1024, matrix / grid time): C = 16: L = 9 0.97, L = 10 1.22; C = 32:
#: L = 11 0.87, L = 12 1.11; C = 64: L = 14 0.97, L = 15 1.15, i.e. at L**3 / C = 45-50 for all three.
AUTO_MATRIX_FACTOR = 45


@functools.lru_cache(maxsize=None)
def gaunt_path_coefficient(l1: int, l2: int, l3: int) -> float:
    r"""The scalar :math:`c` with :math:`G^{l_1 l_2 l_3} = c\, C^{l_1 l_2 l_3}` (Gaunt = scaled Clebsch–Gordan).

    .. math::

        c = \sum_{abc} G_{abc} C_{abc} = \pm\sqrt{\frac{(2l_1+1)(2l_2+1)(2l_3+1)}{4\pi}}
        \begin{pmatrix} l_1 & l_2 & l_3 \\ 0 & 0 & 0 \end{pmatrix},

    zero for odd :math:`l_1+l_2+l_3` (:math:`C` has unit Frobenius norm).
    """
    G = so3.gaunt(l1, l2, l3, dtype=torch.float64)
    C = so3.clebsch_gordan(l1, l2, l3, dtype=torch.float64)
    return float((G * C).sum())


def _row_permutation(irreps, order_fn=None):
    """perm[u * rows + r] = mul_ir column of (channel u, row r) in ``order_fn`` (default `row_order`);
    and its inverse."""
    from ._gaunt_grid import row_order

    order_fn = order_fn or row_order
    mul = irreps[0].mul
    start = {ir.l: sl.start for sl, (_, ir) in zip(irreps.slices(), irreps)}
    order = order_fn([ir.l for _, ir in irreps])
    col0 = np.array([start[l] + m + l for l, m in order])  # column of channel 0 of each row
    dim = np.array([2 * l + 1 for l, _ in order])
    perm = (col0[None, :] + np.arange(mul)[:, None] * dim[None, :]).reshape(-1)  # entry u * rows + r
    return inverse_permutation(perm, irreps.dim)


@functools.lru_cache(maxsize=None)
def _column_index(irreps) -> torch.Tensor:
    """For each ``mul_ir`` column, the index ``k * mul + u`` of its weight (irrep ``k``, channel ``u``)."""
    return torch.tensor([k * mul + u for k, (mul, ir) in enumerate(irreps) for u in range(mul) for _ in range(ir.dim)])


def _rows_by_channel(irreps):
    """``cols[r * mul + u]`` = ``mul_ir`` column of channel ``u`` of row ``r`` (in `row_order`)."""
    from ._gaunt_grid import row_order

    mul = irreps[0].mul
    start = {ir.l: sl.start for sl, (_, ir) in zip(irreps.slices(), irreps)}
    return mul, [start[l] + u * (2 * l + 1) + m + l for l, m in row_order([ir.l for _, ir in irreps]) for u in range(mul)]


def _weight_layout(irreps):
    """``(num_weights, row_weight, column_weight)`` of a leg's per-degree weights for `MulIrGridPlan`."""
    from ._gaunt_grid import row_order

    index = {ir.l: k for k, (_, ir) in enumerate(irreps)}
    rows = [index[l] for l, _ in row_order(list(index))]
    return len(irreps) * irreps[0].mul, rows, _column_index(irreps).tolist()


def _signal_irreps(irreps, name, muls):
    """Check a 'spherical signal' irreps: equal multiplicities, each l once, parity s * (-1)^l."""
    if len(irreps) == 0:
        raise ValueError(f"GauntTensorProduct: {name} is empty")
    mul = irreps[0].mul
    if any(m != mul for m, _ in irreps) or mul < 1 or (muls is not None and mul not in muls):
        allowed = "" if muls is None else f", in {sorted(muls)}"
        raise ValueError(f"GauntTensorProduct: {name}={irreps} must have one multiplicity >= 1 for all irreps{allowed}")
    ls = [ir.l for _, ir in irreps]
    if len(set(ls)) != len(ls):
        raise ValueError(f"GauntTensorProduct: {name}={irreps} repeats a degree; each l may appear once")
    signs = {ir.p * (-1) ** ir.l for _, ir in irreps}
    if len(signs) != 1:
        raise ValueError(
            f"GauntTensorProduct: {name}={irreps} must have parities s*(-1)^l with one sign s (like spherical "
            "harmonics, s=1, or pseudo-harmonics, s=-1): the product of functions cannot keep other parities apart"
        )
    return mul, signs.pop()


def _matrix_layout(plan, irreps):
    """`MulIrMatrixLayout` of a ``uvu`` product with one-channel second input."""
    from ._gaunt_matrix import MulIrMatrixLayout

    slices, start = [], 0
    for ir in irreps:
        slices.append((start, start + ir[0].mul * len(ir)))
        start = slices[-1][1]
    return MulIrMatrixLayout(plan, irreps, slices)


class GauntTensorProduct(torch.nn.Module):
    r"""Gaunt tensor product: multiply two spherical functions, project on harmonics.

    Seeing the features of each channel as coefficients of functions on the sphere,
    :math:`f_u = \sum_{lm} x_{u,lm} Y_{lm}` and :math:`g_v = \sum_{lm} y_{v,lm} Y_{lm}`,

    .. math::

        z_{u, l_3 m_3} = w^{(3)}_{u l_3} \int_{S^2} \Big(\sum_{l_1 m_1} w^{(1)}_{u l_1} x_{u, l_1 m_1} Y_{l_1 m_1}\Big)
        \Big(\sum_{l_2 m_2} w^{(2)}_{v l_2} y_{v, l_2 m_2} Y_{l_2 m_2}\Big) Y_{l_3 m_3}\, d\Omega ,

    with :math:`v = 1` (``irreps_in2`` of multiplicity 1, e.g. edge spherical harmonics: mode
    ``uvu``) or :math:`v = u` (equal multiplicities: mode ``uuu``), learnable per-degree weights
    :math:`w^{(1)}, w^{(2)}, w^{(3)}` (initialised to 1) and :math:`Y` the e3nn-basis real harmonics
    with "integral" normalisation. The integral is the Gaunt coefficient
    :math:`G = \int Y_{l_1 m_1} Y_{l_2 m_2} Y_{l_3 m_3} = c_{l_1 l_2 l_3}\, C^{l_1 l_2 l_3}_{m_1 m_2 m_3}`
    (`gaunt_path_coefficient`), so this is a Clebsch–Gordan product with path weights
    :math:`w^{(1)} w^{(2)} w^{(3)} c` — the path weights are *tied*, which is what makes it cheap.

    **Parity restriction.** :math:`c_{l_1 l_2 l_3} = 0` unless :math:`l_1 + l_2 + l_3` is even: the
    product of functions has no "odd" paths (e.g. no cross product :math:`1 \otimes 1 \to 1`). Inputs
    must be spherical signals, parities :math:`s_1 (-1)^l` and :math:`s_2 (-1)^l` (e.g.
    ``"0e + 1o + 2e"``), and every output irrep must be :math:`(l_3, s_1 s_2 (-1)^{l_3})` and reachable
    by an even path; anything else raises ``ValueError``.

    Three exact algorithms (they agree to 1e-12 in float64):

    * ``"grid"`` (Xie et al. 2025): values on a Gauss–Legendre × uniform grid exact for degree
      :math:`L_1+L_2+L_3`, separable synthesis/analysis, :math:`O(L^3)` per channel (`equiv.tp._gaunt_grid`);
    * ``"fourier"`` (Luo et al. 2024): harmonics → 2D Fourier coefficients on the torus, convolution
      by FFT, back to harmonics, :math:`O(L^3)` (`equiv.tp._gaunt_fourier`);
    * ``"matrix"``: for a one-channel second input (edge harmonics), the product is a matrix
      :math:`M(y)_{ij} = \sum_k G_{ikj} y_k` applied to every channel: one large matrix product to build
      it (:math:`O(L^6)` per sample, independent of :math:`C`) and one batched product to apply it
      (:math:`O(C L^4)`) (`equiv.tp._gaunt_matrix`). Fewer, larger operations than the grid: faster on
      CPU up to about :math:`L = 9` for 16 channels (more for more channels), slower beyond.

    ``"auto"`` (the default) takes ``"matrix"`` when ``irreps_in2`` has multiplicity 1 and
    :math:`L^3 \le 45\, C` (`AUTO_MATRIX_FACTOR`; :math:`L` the largest degree: up to 8 for 16 channels,
    11 for 32, 14 for 64), else ``"grid"``; ``method`` holds the choice.

    Parameters
    ----------
    irreps_in1 : Irreps or str
        ``C x (l, s1 (-1)^l)`` for a set of degrees.
    irreps_in2 : Irreps or str
        Multiplicity 1 (``uvu``) or ``C`` (``uuu``).
    irreps_out : Irreps or str
        Multiplicity ``C``.
    method : {"auto", "grid", "fourier", "matrix"}
    shared_weights, internal_weights : bool, optional
        As in `TensorProduct`; weights are ``[w1 (n1, C), w2 (n2, 1 or C), w3 (n3, C)]`` flattened.

    Shapes
    ------
    ``x (..., irreps_in1.dim)``, ``y (..., irreps_in2.dim)``, ``weight (weight_numel,)`` or
    ``(..., weight_numel)`` → ``(..., irreps_out.dim)``.

    Examples
    --------
    >>> import torch
    >>> from equiv.tp import GauntTensorProduct
    >>> irreps = "8x0e + 8x1o + 8x2e"
    >>> tp = GauntTensorProduct(irreps, "0e + 1o + 2e", irreps, method="grid")
    >>> x, y = torch.randn(5, tp.irreps_in1.dim), torch.randn(5, 9)
    >>> tp(x, y).shape
    torch.Size([5, 72])
    >>> fourier = GauntTensorProduct(irreps, "0e + 1o + 2e", irreps, method="fourier")
    >>> bool(torch.allclose(fourier(x, y), tp(x, y), atol=1e-5))
    True
    >>> auto = GauntTensorProduct(irreps, "0e + 1o + 2e", irreps)  # one-channel y, small L: the matrix route
    >>> auto.method, bool(torch.allclose(auto(x, y), tp(x, y), atol=1e-5))
    ('matrix', True)
    >>> GauntTensorProduct("4x1o", "1o", "4x1e")  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ValueError: GauntTensorProduct: irreps_out has 4x1e ...

    References
    ----------
    S. Luo, T. Chen, A. S. Krishnapriyan, "Enabling efficient equivariant operations in the Fourier
    basis via Gaunt tensor products", ICLR 2024 (arXiv:2401.10216).
    Y. Xie, J. Daigavane, M. Kotak, T. Smidt, "The price of freedom: exploring expressivity and
    runtime tradeoffs in equivariant tensor products", ICML 2025 (arXiv:2506.13523).
    """

    def __init__(
        self,
        irreps_in1,
        irreps_in2,
        irreps_out,
        method: str = "auto",
        *,
        shared_weights: bool | None = None,
        internal_weights: bool | None = None,
    ):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"GauntTensorProduct: method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.irreps_in1 = i1 = _irreps(irreps_in1, "irreps_in1")
        self.irreps_in2 = i2 = _irreps(irreps_in2, "irreps_in2")
        self.irreps_out = io = _irreps(irreps_out, "irreps_out")
        c, s1 = _signal_irreps(i1, "irreps_in1", None)
        v, s2 = _signal_irreps(i2, "irreps_in2", {1, c})
        co, _ = _signal_irreps(io, "irreps_out", {c})
        self.mul, self.mul2 = c, v
        self.mode = "uvu" if v == 1 and c != 1 else ("uuu" if v == c else "uvu")
        if method == "auto":
            top = max(ir.l for irreps in (i1, i2, io) for _, ir in irreps)
            method = self.method = "matrix" if v == 1 and top**3 <= AUTO_MATRIX_FACTOR * c else "grid"
        ls1, ls2 = [ir.l for _, ir in i1], [ir.l for _, ir in i2]
        for _, ir in io:
            want = s1 * s2 * (-1) ** ir.l
            if ir.p != want:
                raise ValueError(
                    f"GauntTensorProduct: irreps_out has {c}x{ir} but the product of {i1} and {i2} has parity "
                    f"{'e' if want == 1 else 'o'} at l={ir.l} (only l1+l2+l3 even paths exist)"
                )
            if not any(abs(a - b) <= ir.l <= a + b and (a + b + ir.l) % 2 == 0 for a in ls1 for b in ls2):
                raise ValueError(
                    f"GauntTensorProduct: irreps_out has {c}x{ir}, unreachable from degrees {ls1} x {ls2}: "
                    "a Gaunt product only has paths with |l1-l2| <= l3 <= l1+l2 and l1+l2+l3 even"
                )
        self.l1max, self.l2max, self.l3max = max(ls1), max(ls2), max(ir.l for _, ir in io)
        self._ls1, self._ls2, self._ls3 = ls1, ls2, [ir.l for _, ir in io]

        self._perms = [_row_permutation(i1), _row_permutation(i2), _row_permutation(io)]
        self._col_index = [_column_index(i1), _column_index(i2), _column_index(io)]
        if shared_weights is False and internal_weights is None:
            internal_weights = False
        shared_weights = True if shared_weights is None else shared_weights
        internal_weights = shared_weights if internal_weights is None else internal_weights
        if internal_weights and not shared_weights:
            raise ValueError("GauntTensorProduct: internal_weights=True requires shared_weights=True")
        self.shared_weights, self.internal_weights = shared_weights, internal_weights
        self.weight_numel = c * len(ls1) + v * len(ls2) + c * len(self._ls3)
        if internal_weights:
            self.weight = torch.nn.Parameter(torch.ones(self.weight_numel))
        else:
            self.register_buffer("weight", torch.Tensor(), persistent=False)
        if method == "grid":
            from ._gaunt_grid import MulIrGridPlan, grid_plan

            layouts = [_rows_by_channel(i1), _rows_by_channel(i2), _rows_by_channel(io)]
            weights = [_weight_layout(i1), _weight_layout(i2), _weight_layout(io)]
            self._plan = MulIrGridPlan(grid_plan(tuple(ls1), tuple(ls2), tuple(self._ls3)), layouts, weights)
            self._fn = None
        elif method == "fourier":
            from ._gaunt_fourier import fourier_plan, gaunt_fourier

            self._plan = fourier_plan(tuple(ls1), tuple(ls2), tuple(self._ls3))
            self._fn = gaunt_fourier
        else:
            from ._gaunt_matrix import gaunt_matrix, matrix_plan, parity_row_order

            self._perms = [_row_permutation(i, parity_row_order) for i in (i1, i2, io)]
            self._plan = matrix_plan(tuple(ls1), tuple(ls2), tuple(self._ls3))
            self._fn = gaunt_matrix
            self._layout = _matrix_layout(self._plan, (i1, i2, io)) if v == 1 else None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out} | "
            f"method={self.method!r} | {self.weight_numel} weights)"
        )

    # ------------------------------------------------------------------ CG equivalent
    def paths(self) -> list[tuple[int, int, int]]:
        """Instruction index triples ``(i_in1, i_in2, i_out)`` of the non-zero (even) paths."""
        return [
            (a, b, k)
            for a, l1 in enumerate(self._ls1)
            for b, l2 in enumerate(self._ls2)
            for k, l3 in enumerate(self._ls3)
            if abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0
        ]

    def cg_instructions(self) -> list[tuple]:
        """Instructions of the equivalent `TensorProduct` (use ``irrep_normalization="none",
        path_normalization="none"`` and the weights from `cg_weights`)."""
        return [(a, b, k, self.mode, True) for a, b, k in self.paths()]

    def cg_weights(self, weight: torch.Tensor | None = None) -> torch.Tensor:
        r"""Per-path weights :math:`w^{(1)} w^{(2)} w^{(3)} c_{l_1 l_2 l_3}` in `TensorProduct`'s flat layout."""
        w1, w2, w3 = self._split(self._get_weights(weight))
        parts = []
        for a, b, k in self.paths():
            coef = gaunt_path_coefficient(self._ls1[a], self._ls2[b], self._ls3[k])
            parts.append(w1[..., a, :] * w2[..., b, :] * w3[..., k, :] * coef)
        return torch.cat(parts, -1)

    # ------------------------------------------------------------------ forward
    def _get_weights(self, weight):
        if weight is None:
            if not self.internal_weights:
                raise ValueError("GauntTensorProduct: weight is required (internal_weights=False)")
            return self.weight
        if self.shared_weights and weight.shape != (self.weight_numel,):
            raise ValueError(
                f"GauntTensorProduct: weight has shape {tuple(weight.shape)}, expected ({self.weight_numel},)"
            )
        if not self.shared_weights and (weight.dim() < 2 or weight.shape[-1] != self.weight_numel):
            raise ValueError(
                f"GauntTensorProduct: weight has shape {tuple(weight.shape)}, expected (..., {self.weight_numel})"
            )
        return weight

    def _split(self, w):
        c, v = self.mul, self.mul2
        n1, n2, n3 = len(self._ls1), len(self._ls2), len(self._ls3)
        w1 = w[..., : n1 * c].unflatten(-1, (n1, c))
        w2 = w[..., n1 * c : n1 * c + n2 * v].unflatten(-1, (n2, v))
        w3 = w[..., n1 * c + n2 * v :].unflatten(-1, (n3, c))
        return w1, w2, w3

    def _columns(self, w, leg: int):
        """Per-degree weights (..., n_irreps, mul) of leg 0/1/2 -> per mul_ir column (..., dim), one gather."""
        return w.flatten(-2).index_select(-1, self._col_index[leg].to(w.device))

    def forward(self, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Evaluate the product; see the class docstring for shapes."""
        for name, t, irreps in (("x", x, self.irreps_in1), ("y", y, self.irreps_in2)):
            if not isinstance(t, torch.Tensor) or t.shape[-1:] != (irreps.dim,):
                raise ValueError(
                    f"GauntTensorProduct: {name} must have last dimension {irreps.dim}, got shape {tuple(getattr(t, 'shape', ()))}"
                )
        if x.dtype != y.dtype or not x.dtype.is_floating_point:
            raise ValueError(f"GauntTensorProduct: x and y must have the same floating-point dtype, got {x.dtype} and {y.dtype}")
        if x.device != y.device:
            raise ValueError(f"GauntTensorProduct: x and y must be on the same device, got {x.device} and {y.device}")
        w = self._get_weights(weight)
        if w.dtype != x.dtype or w.device != x.device:
            raise ValueError(
                f"GauntTensorProduct: the weights ({w.dtype}, {w.device}) must match x ({x.dtype}, {x.device})"
                + ("; convert the module with .to(...)" if weight is None else "")
            )
        try:
            batch, n, x, y, w = flatten_batch(x, y, w, self.shared_weights)
        except ValueError as err:
            raise ValueError(f"GauntTensorProduct: {err}") from None
        if n == 0:  # an empty batch (e.g. a graph without edges): empty output, zero gradients
            return (x.sum() + y.sum() + w.sum()).mul(0).expand(batch + (self.irreps_out.dim,))
        if self.method == "grid":  # mul_ir columns and per-degree weights handled chunk by chunk
            from ._gaunt_weighted import weighted_gaunt

            return weighted_gaunt(self._plan, x, y, w).reshape(batch + (self.irreps_out.dim,))
        if self.method == "matrix" and self._layout is not None:  # likewise, chunk by chunk
            from ._gaunt_matrix import weighted_gaunt_matrix

            out = weighted_gaunt_matrix(self._layout, x, y, w, self._plain_generic)
            return out.reshape(batch + (self.irreps_out.dim,))
        return self._generic(x, y, w).reshape(batch + (self.irreps_out.dim,))

    def _plain_generic(self, x, y, w):
        """`_generic` with the matrix route's plain kernel: what a differentiable backward differentiates."""
        from ._gaunt_matrix import _plain

        return self._generic(x, y, w, _plain)

    def _generic(self, x, y, w, kernel=None):
        """The product of flat ``x (n, dim1)``, ``y (n, dim2)``, ``w (1 or n, numel)`` as whole-batch
        differentiable operations: weights and layout by gathers, then the method's kernel (or
        ``kernel``)."""
        n = x.shape[0]
        w1, w2, w3 = self._split(w)
        (p1, i1), (p2, i2), (p3, i3) = ((p.to(x.device), i.to(x.device)) for p, i in self._perms)
        X = select(x * self._columns(w1, 0), p1, i1).view(n, self.mul, -1)
        Y = select(y * self._columns(w2, 1), p2, i2).view(n, self.mul2, -1)
        Z = (kernel or self._fn)(self._plan, X, Y)  # (n, C, rows3)
        return select(Z.reshape(n, -1), i3, p3) * self._columns(w3, 2)
