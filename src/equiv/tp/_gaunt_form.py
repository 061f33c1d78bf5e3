r"""The symmetric Gaunt form and its derivatives, chunked, differentiable to any order.

Both Gaunt algorithms (`equiv.tp._gaunt_grid`, `equiv.tp._gaunt_fourier`) evaluate the trilinear form

.. math::

    F(x, y, z) = \int_{S^2} f_x\, f_y\, f_z \, d\Omega, \qquad f_x = \sum_{lm} x_{lm} Y_{lm},

which is symmetric in its three *legs*. The Gaunt product is :math:`\partial F / \partial z` and
the gradients are :math:`\partial F/\partial x`, :math:`\partial F/\partial y`: the same kernel
("synthesise two legs, multiply, analyse the third") evaluates all of them. A plan supplies
``synthesis(t, leg, coeffs)`` (coefficients ``(n, c, rows)`` → function values),
``analysis(t, leg, values)`` (values → coefficients, the integral against each harmonic), the number
of ``points`` per channel and the ``channel_dim`` of the values. The batch is processed in chunks that
fit in the cache; the backward reuses the forward's synthesised legs when they are small (else it
recomputes them) and is itself made of the same kernels (double backward for forces).
"""

from __future__ import annotations

import torch

from ._budget import chunk_bytes, keep_bytes

__all__ = ["gaunt_form", "LegPlan"]

#: Size (bytes) of one array of function values of one chunk (about three are live).
_CHUNK_BYTES = 2 * 2**20
#: The forward keeps the two synthesised legs for the backward when they take less than this.
_KEEP_BYTES = 64 * 2**20


def _chunks(plan, n, c, itemsize, device):
    step = max(1, chunk_bytes(_CHUNK_BYTES, device) // (plan.points * c * itemsize))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


class LegPlan:
    """Base of the Gaunt plans: per-leg numpy matrices ``_np`` (list of dicts), per-leg row ranges
    ``rows`` (list of ``(start, stop)`` per order m), and their torch copies cached per dtype/device."""

    _np: list
    rows: list

    def tensors(self, dtype, device):
        key = (dtype, device)
        cache = self.__dict__.setdefault("_cache", {})
        t = cache.get(key)
        if t is None:
            t = [{k: torch.as_tensor(v, dtype=dtype, device=device) for k, v in leg.items()} for leg in self._np]
            cache[key] = t
        return t

    def num_rows(self, leg: int) -> int:
        return self.rows[leg][-1][1]


def _ch(plan, leg, coeffs):
    """Channels of a leg's coefficient tensor (plans with a flat ``mul_ir`` layout say themselves)."""
    return plan.channels(leg) if hasattr(plan, "channels") else coeffs.shape[1]


def _new_coeffs(plan, like, n, c, leg):
    if hasattr(plan, "channels"):
        return like.new_empty(n, c * plan.num_rows(leg))
    return like.new_empty(n, c, plan.num_rows(leg))


def _reduce(plan, h, out_c):
    d = plan.channel_dim
    return h.sum(d, keepdim=True) if h.shape[d] != out_c else h


def _other_legs(target):
    return [k for k in range(3) if k != target]


def _form_eval(plan, target, a, b, out_c, keep=None):
    """D_target(a, b): analysis in leg ``target`` of the product of the two other legs' values.

    With ``keep`` (a list), the synthesised legs of every chunk are appended for the backward.
    """
    t = plan.tensors(a.dtype, a.device)
    la, lb = _other_legs(target)
    n = a.shape[0]
    chunks = _chunks(plan, n, max(_ch(plan, la, a), _ch(plan, lb, b)), a.element_size(), a.device)
    out = _new_coeffs(plan, a, n, out_c, target) if len(chunks) > 1 else None
    for s, e in chunks:
        fa, fb = plan.synthesis(t, la, a[s:e]), plan.synthesis(t, lb, b[s:e])
        if keep is not None:
            keep.append((fa, fb))
        r = plan.analysis(t, target, _reduce(plan, fa * fb, out_c))
        if out is None:
            return r
        out[s:e] = r
    return out


def _pair_eval(plan, target, a, b, g, need_a, need_b, kept=None):
    """(D_{la}(b, g), D_{lb}(a, g)) sharing the syntheses: the VJP of D_target."""
    t = plan.tensors(a.dtype, a.device)
    la, lb = _other_legs(target)
    n = a.shape[0]
    ga = a.new_empty(a.shape) if need_a else None
    gb = b.new_empty(b.shape) if need_b else None
    for k, (s, e) in enumerate(_chunks(plan, n, max(_ch(plan, la, a), _ch(plan, lb, b)), a.element_size(), a.device)):
        fg = plan.synthesis(t, target, g[s:e])
        if need_a:
            fb = kept[k][1] if kept is not None else plan.synthesis(t, lb, b[s:e])
            ga[s:e] = plan.analysis(t, la, _reduce(plan, fb * fg, _ch(plan, la, a)))
        if need_b:
            fa = kept[k][0] if kept is not None else plan.synthesis(t, la, a[s:e])
            gb[s:e] = plan.analysis(t, lb, _reduce(plan, fa * fg, _ch(plan, lb, b)))
    return ga, gb


class _GauntForm(torch.autograd.Function):
    """D_target(a, b) = dF/d(leg target) of the symmetric form F, given the two other legs."""

    @staticmethod
    def forward(ctx, plan, target, a, b, out_c):
        ctx.plan, ctx.target = plan, target
        ctx.save_for_backward(a, b)
        la, lb = _other_legs(target)
        size = a.shape[0] * (_ch(plan, la, a) + _ch(plan, lb, b)) * plan.points * a.element_size()
        ctx.kept = [] if any(ctx.needs_input_grad[2:4]) and size <= keep_bytes(_KEEP_BYTES, a.device) else None
        return _form_eval(plan, target, a, b, out_c, ctx.kept)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        ga, gb = _GauntPair.apply(
            ctx.plan, ctx.target, a, b, g, ctx.needs_input_grad[2], ctx.needs_input_grad[3], ctx.kept
        )
        return None, None, ga, gb, None


class _GauntPair(torch.autograd.Function):
    """(ga, gb) = (D_{la}(b, g), D_{lb}(a, g)); its backward is made of `_GauntForm` again."""

    @staticmethod
    def forward(ctx, plan, target, a, b, g, need_a, need_b, kept=None):
        ctx.plan, ctx.target, ctx.needs = plan, target, (need_a, need_b)
        ctx.save_for_backward(a, b, g)
        return _pair_eval(plan, target, a, b, g, need_a, need_b, kept)

    @staticmethod
    def backward(ctx, gga, ggb):
        a, b, g = ctx.saved_tensors
        plan, t = ctx.plan, ctx.target
        la, lb = _other_legs(t)
        gga = gga if ctx.needs[0] else None
        ggb = ggb if ctx.needs[1] else None
        want_a, want_b, want_g = ctx.needs_input_grad[2:5]
        # S = F(gga, b, g) + F(a, ggb, g) on legs (la, lb, t)
        da = db = dg = None
        if want_a and ggb is not None:
            da = _form(plan, la, *_order(lb, ggb, t, g), _ch(plan, la, a))
        if want_b and gga is not None:
            db = _form(plan, lb, *_order(la, gga, t, g), _ch(plan, lb, b))
        if want_g:
            if gga is not None:
                dg = _form(plan, t, gga, b, _ch(plan, t, g))
            if ggb is not None:
                x = _form(plan, t, a, ggb, _ch(plan, t, g))
                dg = x if dg is None else dg + x
        return None, None, da, db, dg, None, None, None


def _order(k1, t1, k2, t2):
    return (t1, t2) if k1 < k2 else (t2, t1)


def _form(plan, target, a, b, out_c):
    if torch.compiler.is_compiling():  # plain ops traced by dynamo; autograd does the backward
        t = plan.tensors(a.dtype, a.device)
        la, lb = _other_legs(target)
        h = plan.synthesis(t, la, a) * plan.synthesis(t, lb, b)
        return plan.analysis(t, target, _reduce(plan, h, out_c))
    return _GauntForm.apply(plan, target, a, b, out_c)


def gaunt_form(plan, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The Gaunt product ``dF/dz`` for coefficients ``x (n, C, rows1)``, ``y (n, 1 or C, rows2)``
    (or flat ``(n, dim)`` tensors in ``mul_ir`` layout for a plan with ``channels``)."""
    return _form(plan, 2, x, y, _ch(plan, 0, x))
