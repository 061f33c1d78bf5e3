"""Networks over group representations: exact constraints, gated and bilinear nonlinearities.

The models that :class:`~equiv.symmetry.SoftEquivariance` regularises: every linear layer maps between
known representations (:class:`equiv.groups.Rep`), so its weights can be projected onto, or
regularised towards, the equivariant ones for any candidate group, and the nonlinearities are
O(3)-equivariant (hence equivariant for every subgroup), as in EMLP (Finzi, Welling and Wilson,
"A practical method for constructing equivariant multilayer perceptrons for arbitrary matrix groups",
ICML 2021).
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.groups import Rep, TensorRep, as_rep

from ._projector import EquivariantProjector

__all__ = ["make_equivariant_", "GatedNonlinearity", "GatedProducts", "GatedMLP"]


class _Project(nn.Module):
    def __init__(self, projector: EquivariantProjector, which: str):
        super().__init__()
        self.projector, self.which = projector, which

    def forward(self, X):
        return self.projector.weight(X) if self.which == "weight" else self.projector.bias(X)


def make_equivariant_(module: nn.Module, rep_in, rep_out, group) -> nn.Module:
    """Constrain a linear module to be exactly ``group``-equivariant (in place).

    Registers a :mod:`torch.nn.utils.parametrize` parametrisation ``weight = P(V)`` (and
    ``bias = P_b(c)``): the free parameters ``V`` are unconstrained, the used weights are their
    projection, so training stays inside the equivariant subspace (the "hard" EMLP baseline of
    Finzi et al. 2021).

    >>> import torch
    >>> lin = make_equivariant_(torch.nn.Linear(3, 3), "1x1o", "1x1o", "o3")
    >>> W = lin.weight.detach()
    >>> torch.allclose(W, W[0, 0] * torch.eye(3), atol=1e-6)
    True
    """
    from torch.nn.utils import parametrize

    P = EquivariantProjector(rep_in, rep_out, group, bias=True)
    if tuple(module.weight.shape) != (P.rep_out.dim, P.rep_in.dim):
        raise ValueError(f"module weight {tuple(module.weight.shape)} does not match {P.rep_in} -> {P.rep_out}")
    parametrize.register_parametrization(module, "weight", _Project(P, "weight"))
    if isinstance(getattr(module, "bias", None), torch.Tensor):
        parametrize.register_parametrization(module, "bias", _Project(P, "bias"))
    return module


class GatedNonlinearity(nn.Module):
    """EMLP's gated nonlinearity (Finzi, Welling, Wilson 2021) for a :class:`~equiv.groups.Rep`.

    Input: ``rep.dim + rep.num_gates`` features (the features, then one gate scalar per non-scalar
    copy). Scalars pass through ``SiLU``; each non-scalar copy :math:`v` becomes
    :math:`\\sigma(g)\\, v` with its gate :math:`g`. Equivariant for every subgroup of O(3) (the gates
    are invariant).

    Shapes: ``(..., rep.dim + rep.num_gates) -> (..., rep.dim)``.

    Examples
    --------
    >>> import torch
    >>> from equiv.groups import Rep, get_group
    >>> rep = 2 * Rep.scalar() + Rep.vector()
    >>> act = GatedNonlinearity(rep)
    >>> rep.dim, rep.num_gates
    (5, 1)
    >>> x = torch.randn(4, 6, dtype=torch.float64)
    >>> G = get_group("o3")
    >>> g = G.sample(1, dtype=torch.float64)[0]
    >>> gx = torch.cat([G.act(g, x[:, :5], rep), x[:, 5:]], -1)   # the gate is invariant
    >>> bool(torch.allclose(act(gx), G.act(g, act(x), rep)))
    True
    """

    def __init__(self, rep):
        super().__init__()
        self.rep = as_rep(rep)
        scalar = torch.zeros(self.rep.dim, dtype=torch.bool)
        gate = torch.zeros(self.rep.dim, dtype=torch.long)
        g = 0
        for sl, (m, b) in zip(self.rep.slices(), self.rep.blocks):
            if b.is_scalar:
                scalar[sl] = True
            else:
                gate[sl] = torch.arange(g, g + m).repeat_interleave(b.dim)
                g += m
        self.register_buffer("scalar_mask", scalar, persistent=False)
        self.register_buffer("gate_index", gate, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.rep.dim
        if x.shape[-1] != n + self.rep.num_gates:
            raise ValueError(f"GatedNonlinearity({self.rep}): input has {x.shape[-1]} features, expected {n + self.rep.num_gates}")
        feats, gates = x[..., :n], x[..., n:]
        gated = feats * torch.sigmoid(gates[..., self.gate_index]) if gates.shape[-1] else feats
        return torch.where(self.scalar_mask, nn.functional.silu(feats), gated)


class GatedProducts(nn.Module):
    r"""Gated nonlinearity plus equivariant bilinear products, for Cartesian scalars, vectors and rank-2 tensors.

    A gated nonlinearity alone never multiplies two vectors, so a network built from it cannot form
    :math:`r r^\top` or :math:`|r|^2` from vector inputs. This layer adds one O(3)-equivariant
    product per output channel, computed from extra *factor* channels of the preceding linear layer:

    .. math::
        s_i \mapsto \mathrm{SiLU}(s_i) + p_i \cdot q_i, \qquad
        v_j \mapsto \sigma(g_j)\, v_j + M_j y_j, \qquad
        T_k \mapsto \sigma(g_k)\, T_k + u_k w_k^\top ,

    with vectors :math:`p, q, y, u, w`, rank-2 tensors :math:`M` and gate scalars :math:`g` (the role
    of EMLP's bilinear layer, Finzi et al. 2021). All products are between polar tensors, so the layer
    is equivariant under O(3) and every subgroup of it.

    Parameters
    ----------
    rep : Rep
        the output representation: blocks of ``Rep.scalar()``, ``Rep.vector()`` and ``Rep.tensor(2)``.

    Attributes
    ----------
    pre_rep : Rep
        the representation the preceding linear layer must output: ``rep``, then one gate scalar per
        non-scalar channel, then the factors block by block (``p, q`` for scalars, ``M, y`` for
        vectors, ``u, w`` for tensors).

    Shapes: ``(..., pre_rep.dim) -> (..., rep.dim)``.

    Examples
    --------
    >>> import torch
    >>> from equiv.groups import Rep, get_group
    >>> rep = Rep.scalar() + Rep.vector()
    >>> act = GatedProducts(rep)
    >>> act.pre_rep.dim                          # rep, one gate, then p, q, M, y
    23
    >>> x = torch.randn(4, act.pre_rep.dim, dtype=torch.float64)
    >>> G = get_group("o3")
    >>> g = G.sample(1, dtype=torch.float64)[0]
    >>> bool(torch.allclose(act(G.act(g, x, act.pre_rep)), G.act(g, act(x), rep)))
    True
    """

    _FACTORS = {0: (1, 1), 1: (2, 1), 2: (1, 1)}  # ranks of the two factors per output rank

    def __init__(self, rep):
        super().__init__()
        self.rep = as_rep(rep)
        factors = []
        for m, b in self.rep.blocks:
            if not (isinstance(b, TensorRep) and b.d == 3 and not b.pseudo and b.rank <= 2):
                raise ValueError(
                    f"GatedProducts: rep={self.rep} has block {b}; expected Cartesian scalars, vectors or rank-2 tensors"
                )
            r1, r2 = self._FACTORS[b.rank]
            factors += [(m, TensorRep(r1)), (m, TensorRep(r2))]
        self.pre_rep = self.rep + Rep([(self.rep.num_gates, TensorRep(0))]) + Rep(factors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.pre_rep.dim:
            raise ValueError(f"GatedProducts({self.rep}): input has {x.shape[-1]} features, expected {self.pre_rep.dim}")
        lead = x.shape[:-1]
        n, ng = self.rep.dim, self.rep.num_gates
        gates = torch.sigmoid(x[..., n : n + ng])
        pos, g0, outs = n + ng, 0, []
        for sl, (m, b) in zip(self.rep.slices(), self.rep.blocks):
            r1, r2 = self._FACTORS[b.rank]
            a = x[..., pos : pos + m * 3**r1].reshape(*lead, m, *([3] * r1))
            pos += m * 3**r1
            c = x[..., pos : pos + m * 3**r2].reshape(*lead, m, *([3] * r2))
            pos += m * 3**r2
            f = x[..., sl].reshape(*lead, m, *([3] * b.rank))
            if b.rank == 0:
                out = nn.functional.silu(f) + (a * c).sum(-1)
            elif b.rank == 1:
                out = gates[..., g0 : g0 + m, None] * f + (a @ c.unsqueeze(-1)).squeeze(-1)
                g0 += m
            else:
                out = gates[..., g0 : g0 + m, None, None] * f + a.unsqueeze(-1) * c.unsqueeze(-2)
                g0 += m
            outs.append(out.reshape(*lead, m * b.dim))
        return torch.cat(outs, -1)


class GatedMLP(nn.Module):
    """An MLP whose layers have group representations: Linear -> gated nonlinearity -> ... -> Linear.

    The building block of soft-equivariant models: every linear layer maps between given
    representations, so :class:`SoftEquivariance` can regularise it towards any subgroup of O(3), and
    :func:`make_equivariant_` can constrain it exactly. ``layer_reps`` lists the
    ``(linear, rep_in, rep_out)`` triples.

    Parameters
    ----------
    rep_in, rep_hidden, rep_out : Rep or irreps
    num_hidden : int
        number of hidden layers (``num_hidden + 1`` linear layers).
    equivariant_to : Group, name or None
        constrain every layer to be exactly equivariant to this group (the hard baseline).
    products : bool
        use :class:`GatedProducts` (gates and bilinear products; Cartesian ranks 0-2 only) instead of
        :class:`GatedNonlinearity`: needed when the output is quadratic or higher in vector inputs.
    skip : bool
        add a linear map ``rep_in -> rep_out`` to the output (a linear skip connection; also listed in
        ``layer_reps``, so it is regularised / constrained like the other layers).

    Shapes: ``(..., rep_in.dim) -> (..., rep_out.dim)``.

    Examples
    --------
    >>> import torch
    >>> from equiv.groups import Rep, get_group
    >>> rep_in = 2 * Rep.vector()
    >>> mlp = GatedMLP(rep_in, 16 * Rep.scalar() + 4 * Rep.vector(), Rep.scalar(), equivariant_to="o3").double()
    >>> len(mlp.layer_reps)                      # three linear layers, each with its representations
    3
    >>> x = torch.randn(8, rep_in.dim, dtype=torch.float64)
    >>> G = get_group("o3")
    >>> g = G.sample(1, dtype=torch.float64)[0]
    >>> bool(torch.allclose(mlp(G.act(g, x, rep_in)), mlp(x)))   # exactly O(3)-invariant
    True
    """

    def __init__(
        self, rep_in, rep_hidden, rep_out, num_hidden: int = 2, equivariant_to=None, products: bool = False, skip: bool = False
    ):
        super().__init__()
        if not isinstance(num_hidden, int) or num_hidden < 0:
            raise ValueError(f"num_hidden={num_hidden!r}: expected an integer >= 0")
        self.rep_in, self.rep_hidden, self.rep_out = as_rep(rep_in), as_rep(rep_hidden), as_rep(rep_out)
        if products:
            gated = GatedProducts(self.rep_hidden).pre_rep
        else:
            gated = self.rep_hidden + Rep([(self.rep_hidden.num_gates, TensorRep(0))])
        layers, reps, r = [], [], self.rep_in
        for _ in range(num_hidden):
            lin = nn.Linear(r.dim, gated.dim)
            layers += [lin, GatedProducts(self.rep_hidden) if products else GatedNonlinearity(self.rep_hidden)]
            reps.append((lin, r, gated))
            r = self.rep_hidden
        lin = nn.Linear(r.dim, self.rep_out.dim)
        layers.append(lin)
        reps.append((lin, r, self.rep_out))
        self.net = nn.Sequential(*layers)
        self.skip = nn.Linear(self.rep_in.dim, self.rep_out.dim, bias=False) if skip else None
        if skip:
            reps.append((self.skip, self.rep_in, self.rep_out))
        self.layer_reps = reps
        if equivariant_to is not None:
            for lin, rin, rout in reps:
                make_equivariant_(lin, rin, rout, equivariant_to)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x)
        return y if self.skip is None else y + self.skip(x)
