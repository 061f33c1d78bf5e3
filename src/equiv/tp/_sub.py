r"""Convenience tensor products: fully connected, channelwise, elementwise, full, square (e3nn-compatible)."""

from __future__ import annotations

from equiv import so3

from ._instruction import irreps as _irreps
from ._tensor_product import TensorProduct

__all__ = [
    "FullyConnectedTensorProduct",
    "ChannelwiseTensorProduct",
    "ElementwiseTensorProduct",
    "FullTensorProduct",
    "channelwise_irreps_out",
    "TensorSquare",
]


def _filter(filter_ir_out, name):
    if filter_ir_out is None:
        return None
    if isinstance(filter_ir_out, (str, so3.Irreps)):
        return [ir for _, ir in _irreps(filter_ir_out, f"{name}: filter_ir_out")]
    try:
        return [so3.Irrep(ir) for ir in filter_ir_out]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: filter_ir_out={filter_ir_out!r} must be an iterable of irreps ({exc})") from None


class FullyConnectedTensorProduct(TensorProduct):
    r"""All allowed paths, every output channel a learned mix of all input pairs (mode ``uvw``).

    .. math::

        z^{(k)}_w = \sum_{(i, j) \to k} \alpha_{ijk} \sum_{u,v} W^{(ijk)}_{uvw}\, (x^{(i)}_u \otimes y^{(j)}_v)_{l_k}

    Same instructions, weights and normalisation as ``e3nn.o3.FullyConnectedTensorProduct``.

    Examples
    --------
    >>> from equiv.tp import FullyConnectedTensorProduct
    >>> tp = FullyConnectedTensorProduct("2x0e + 1x1o", "1x0e + 1x1o", "3x0e + 2x1o")
    >>> tp.weight_numel  # 0e: 2*1*3 + 1*1*3 ; 1o: 2*1*2 + 1*1*2
    15
    """

    def __init__(self, irreps_in1, irreps_in2, irreps_out, **kwargs):
        i1, i2, io = _irreps(irreps_in1, "irreps_in1"), _irreps(irreps_in2, "irreps_in2"), _irreps(irreps_out, "irreps_out")
        instr = [
            (a, b, c, "uvw", True, 1.0)
            for a, (_, ir1) in enumerate(i1)
            for b, (_, ir2) in enumerate(i2)
            for c, (_, iro) in enumerate(io)
            if iro in ir1 * ir2
        ]
        super().__init__(i1, i2, io, instr, **kwargs)


def channelwise_irreps_out(irreps_in1, irreps_in2, filter_ir_out=None):
    """Output irreps and ``uvu`` instructions of `ChannelwiseTensorProduct` (MACE/NequIP recipe).

    Examples
    --------
    >>> irreps_out, instructions = channelwise_irreps_out("8x0e + 8x1o", "0e + 1o", filter_ir_out=["0e", "1o"])
    >>> irreps_out
    8x0e+8x0e+8x1o+8x1o
    >>> instructions[0], len(instructions)
    ((0, 0, 0, 'uvu', True), 4)
    """
    i1, i2 = _irreps(irreps_in1, "irreps_in1"), _irreps(irreps_in2, "irreps_in2")
    filt = _filter(filter_ir_out, "ChannelwiseTensorProduct")
    out, instr = [], []
    for a, (m1, ir1) in enumerate(i1):
        for b, (_, ir2) in enumerate(i2):
            for ir in ir1 * ir2:
                if filt is not None and ir not in filt:
                    continue
                instr.append((a, b, len(out), "uvu", True))
                out.append((m1, ir))
    out = so3.Irreps(out)
    out_sorted, perm, _ = out.sort()
    instr = [(a, b, perm[c], mode, w) for a, b, c, mode, w in instr]
    return out_sorted, sorted(instr, key=lambda t: t[2])


class ChannelwiseTensorProduct(TensorProduct):
    r"""Channelwise (``uvu``) product: each channel of ``x`` times all channels of ``y``.

    .. math::

        z^{(k)}_{u} = \sum_{(i, j) \to k} \alpha_{ijk} \sum_v W^{(ijk)}_{uv}\, (x^{(i)}_u \otimes y^{(j)}_v)_{l_k}

    This is the convolution of NequIP and MACE (``y`` = edge spherical harmonics, per-edge weights
    from a radial network: ``shared_weights=False``). With ``irreps_out=None`` every reachable
    output irrep is produced (optionally restricted by ``filter_ir_out``), one block per path,
    sorted like ``e3nn`` recipes (``tp_out_irreps_with_instructions`` in MACE); with explicit
    ``irreps_out`` every allowed path into it is made. Runs on the fast channelwise engine.

    Examples
    --------
    >>> import torch
    >>> from equiv.tp import ChannelwiseTensorProduct
    >>> tp = ChannelwiseTensorProduct("16x0e + 16x1o", "0e + 1o + 2e", "16x0e + 16x1o", shared_weights=False)
    >>> tp(torch.randn(5, 64), torch.randn(5, 9), torch.randn(5, tp.weight_numel)).shape
    torch.Size([5, 64])
    """

    def __init__(self, irreps_in1, irreps_in2, irreps_out=None, filter_ir_out=None, **kwargs):
        i1, i2 = _irreps(irreps_in1, "irreps_in1"), _irreps(irreps_in2, "irreps_in2")
        if irreps_out is None:
            io, instr = channelwise_irreps_out(i1, i2, filter_ir_out)
        else:
            io = _irreps(irreps_out, "irreps_out")
            instr = [
                (a, b, c, "uvu", True)
                for a, (m1, ir1) in enumerate(i1)
                for b, (_, ir2) in enumerate(i2)
                for c, (mo, iro) in enumerate(io)
                if iro in ir1 * ir2 and mo == m1
            ]
        super().__init__(i1, i2, io, instr, **kwargs)


class ElementwiseTensorProduct(TensorProduct):
    r"""Elementwise product :math:`z_u = x_u \otimes y_u` (mode ``uuu``, no weights), like e3nn's.

    Both inputs must have the same number of irreps (counted with multiplicity); they are split so
    that channels pair up.

    Examples
    --------
    >>> from equiv.tp import ElementwiseTensorProduct
    >>> ElementwiseTensorProduct("5x1o + 5x1e", "10x1e", ["0e", "0o"])
    ElementwiseTensorProduct(5x1o+5x1e x 10x1e -> 5x0o+5x0e | 10 paths | 0 weights)
    """

    def __init__(self, irreps_in1, irreps_in2, filter_ir_out=None, **kwargs):
        i1 = list(_irreps(irreps_in1, "irreps_in1").simplify())
        i2 = list(_irreps(irreps_in2, "irreps_in2").simplify())
        filt = _filter(filter_ir_out, "ElementwiseTensorProduct")
        n1, n2 = sum(m for m, _ in i1), sum(m for m, _ in i2)
        if n1 != n2:
            raise ValueError(
                f"ElementwiseTensorProduct: irreps_in1 has {n1} irreps and irreps_in2 has {n2}; they must be equal"
            )
        k = 0
        while k < len(i1):
            (m1, ir1), (m2, ir2) = i1[k], i2[k]
            if m1 < m2:
                i2[k] = (m1, ir2)
                i2.insert(k + 1, (m2 - m1, ir2))
            elif m2 < m1:
                i1[k] = (m2, ir1)
                i1.insert(k + 1, (m1 - m2, ir1))
            k += 1
        out, instr = [], []
        for k, ((mul, ir1), (_, ir2)) in enumerate(zip(i1, i2)):
            for ir in ir1 * ir2:
                if filt is not None and ir not in filt:
                    continue
                instr.append((k, k, len(out), "uuu", False))
                out.append((mul, ir))
        super().__init__(so3.Irreps(i1), so3.Irreps(i2), so3.Irreps(out), instr, **kwargs)


class FullTensorProduct(TensorProduct):
    r"""Full product :math:`z_{uv} = x_u \otimes y_v` of every pair (mode ``uvuv``, no weights).

    Output irreps are sorted (like e3nn's ``FullTensorProduct``).

    Examples
    --------
    >>> from equiv.tp import FullTensorProduct
    >>> FullTensorProduct("1o", "1o").irreps_out
    1x0e+1x1e+1x2e
    """

    def __init__(self, irreps_in1, irreps_in2, filter_ir_out=None, **kwargs):
        i1 = _irreps(irreps_in1, "irreps_in1").simplify()
        i2 = _irreps(irreps_in2, "irreps_in2").simplify()
        filt = _filter(filter_ir_out, "FullTensorProduct")
        out, instr = [], []
        for a, (m1, ir1) in enumerate(i1):
            for b, (m2, ir2) in enumerate(i2):
                for ir in ir1 * ir2:
                    if filt is not None and ir not in filt:
                        continue
                    instr.append((a, b, len(out), "uvuv", False))
                    out.append((m1 * m2, ir))
        out, perm, _ = so3.Irreps(out).sort()
        instr = [(a, b, perm[c], mode, w) for a, b, c, mode, w in instr]
        super().__init__(i1, i2, out, instr, **kwargs)


def _square_alpha(normalization: str, ir1, ir_out, diagonal: bool) -> float:
    """Path weight of a square path (e3nn's constants). ``diagonal``: a channel times itself (mode
    ``uuu``), whose symmetric product has a different second moment (for l = 0 the square of one
    copy, :math:`E[(x\\cdot x)^2]` includes the variance of :math:`|x|^2`)."""
    if normalization == "none":
        return 1.0
    if not diagonal:
        return float(ir_out.dim) if normalization == "component" else float(ir1.dim * ir1.dim)
    if normalization == "component":
        return ir_out.dim / (ir1.dim + 2) if ir_out.l == 0 else ir_out.dim / 2
    return float(ir_out.dim * ir1.dim) if ir_out.l == 0 else ir1.dim * (ir1.dim + 2) / 2


def _square_alpha_pair(normalization: str, ir1, ir2, ir_out) -> float:
    if normalization == "none":
        return 1.0
    return float(ir_out.dim) if normalization == "component" else float(ir1.dim * ir2.dim)


class TensorSquare(TensorProduct):
    r"""The tensor product of a feature with itself, without repeated pairs (e3nn's ``TensorSquare``).

    :math:`x \otimes x` holds each unordered pair of channels twice and the antisymmetric part of a
    channel with itself vanishes, so only these paths are kept (blocks :math:`i, j` of the simplified
    ``irreps_in``):

    * :math:`i < j`: every pair of channels (mode ``uvuv``, or ``uvw`` with weights);
    * :math:`i = j`: pairs :math:`u < v` (mode ``uvu<v``, or ``u<vw``), and each channel with itself
      (``uuu``) into even :math:`l_\text{out}` only — the symmetric part.

    Without ``irreps_out`` there are no weights and the output irreps are all the products (sorted;
    ``filter_ir_out`` keeps some); with ``irreps_out`` the paths are fully connected with learned
    weights. The path weights are e3nn's (``irrep_normalization`` ``"component"``, ``"norm"`` or
    ``"none"``), including its constants for the diagonal ``uuu`` paths, so the output equals
    ``e3nn.o3.TensorSquare``'s with the same weights.

    Shapes: ``x (..., irreps_in.dim)`` (and ``weight`` as `TensorProduct`) → ``(..., irreps_out.dim)``.

    Examples
    --------
    >>> from equiv.tp import TensorSquare
    >>> sq = TensorSquare("2x1o")
    >>> sq.irreps_out         # pairs u<v: 0e+1e+2e; each vector with itself: 0e+2e (no 1e)
    1x0e+2x0e+1x1e+1x2e+2x2e
    >>> TensorSquare("2x1o", irreps_out="4x0e").weight_numel
    12
    """

    def __init__(self, irreps_in, irreps_out=None, filter_ir_out=None, irrep_normalization: str | None = None,
                 **kwargs):
        normalization = "component" if irrep_normalization is None else irrep_normalization
        if normalization not in ("component", "norm", "none"):
            raise ValueError(f"TensorSquare: irrep_normalization must be 'component', 'norm' or 'none', "
                             f"got {irrep_normalization!r}")
        irreps_in = _irreps(irreps_in, "TensorSquare: irreps_in").simplify()
        filt = _filter(filter_ir_out, "TensorSquare")
        if irreps_out is not None and filt is not None:
            raise ValueError("TensorSquare: give irreps_out or filter_ir_out, not both")
        instr = []
        if irreps_out is None:
            out = []
            for a, (mul1, ir1) in enumerate(irreps_in):
                for b, (mul2, ir2) in enumerate(irreps_in):
                    if b < a:
                        continue
                    for ir_out in ir1 * ir2:
                        if filt is not None and ir_out not in filt:
                            continue
                        if a < b:
                            instr.append((a, b, len(out), "uvuv", False, _square_alpha_pair(normalization, ir1, ir2, ir_out)))
                            out.append((mul1 * mul2, ir_out))
                            continue
                        if mul1 > 1:
                            instr.append((a, a, len(out), "uvu<v", False, _square_alpha(normalization, ir1, ir_out, False)))
                            out.append((mul1 * (mul1 - 1) // 2, ir_out))
                        if ir_out.l % 2 == 0:
                            instr.append((a, a, len(out), "uuu", False, _square_alpha(normalization, ir1, ir_out, True)))
                            out.append((mul1, ir_out))
            order = so3.Irreps(out).sort()
            irreps_out = order.irreps
            instr = [(a, b, order.p[c], mode, train, alpha) for a, b, c, mode, train, alpha in instr]
        else:
            irreps_out = _irreps(irreps_out, "TensorSquare: irreps_out").simplify()
            for a, (mul1, ir1) in enumerate(irreps_in):
                for b, (mul2, ir2) in enumerate(irreps_in):
                    if b < a:
                        continue
                    for c, (_, ir_out) in enumerate(irreps_out):
                        if ir_out not in ir1 * ir2:
                            continue
                        if a < b:
                            instr.append((a, b, c, "uvw", True, _square_alpha_pair(normalization, ir1, ir2, ir_out)))
                            continue
                        if mul1 > 1:
                            instr.append((a, a, c, "u<vw", True, _square_alpha(normalization, ir1, ir_out, False)))
                        if ir_out.l % 2 == 0:
                            instr.append((a, a, c, "uuw", True, _square_alpha(normalization, ir1, ir_out, True)))
        super().__init__(irreps_in, irreps_in, irreps_out, instr, irrep_normalization="none", **kwargs)
        self.irreps_in = irreps_in

    def forward(self, x, weight=None):
        """:math:`x \\otimes x` restricted to the square's paths."""
        return super().forward(x, x, weight)
