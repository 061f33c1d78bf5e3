r"""Wigner D matrices in e3nn's real basis, for any degree, batched over rotations.

Construction. With :math:`Y^l` the real spherical harmonics of `spherical_harmonics`,
:math:`D^l(R)` is the matrix with :math:`Y^l(R x) = D^l(R)\, Y^l(x)`. We build it from the
angular-momentum algebra:

1. In the complex basis :math:`Y^m_l` (Condon–Shortley phase, standard axes with polar axis
   :math:`Z`) the generators are :math:`J_z = \operatorname{diag}(m)`,
   :math:`J_\pm |m\rangle = \sqrt{(l \mp m)(l \pm m + 1)}\, |m \pm 1\rangle`,
   :math:`J_x = (J_+ + J_-)/2`, :math:`J_y = (J_+ - J_-)/2i`.
2. :math:`\frac{d}{dt} Y(R_n(t) x)|_{t=0} = i (n \cdot L) Y`, so on the real basis
   :math:`Y_\mathrm{real} = U Y_\mathrm{complex}` the (real, antisymmetric) generator of rotations
   about axis :math:`n` is :math:`G_n = U (i J_n^\top) U^\dagger`, with :math:`U` the usual
   real↔complex change of basis (`change_basis_complex_to_real`).
3. e3nn's axes are the standard ones relabelled, :math:`(X, Y, Z) = (z, x, y)`.
4. :math:`D^l(R_y(\theta))` is explicit (it mixes :math:`m` and :math:`-m` with
   :math:`\cos m\theta, \sin m\theta`), and :math:`R_x(\beta) = Q R_y(\beta) Q` for
   :math:`Q` the half-turn about :math:`(\hat x + \hat y)/\sqrt 2`;
   :math:`J^l = D^l(Q) = \exp(\pi G_{(\hat x+\hat y)/\sqrt 2})` is computed once per :math:`l`
   (float64, from the eigenvectors of :math:`iG`, cached). Then

   .. math:: D^l(\alpha, \beta, \gamma) = D^l_y(\alpha)\, J^l\, D^l_y(\beta)\, J^l\, D^l_y(\gamma),

   which costs one dense :math:`(2l+1)^3` product per rotation; the :math:`D_y` are applied as
   elementwise operations.

`wigner_D_upto` builds every degree at once from the rotation matrix instead, by the recursion
:math:`D^l = P_l (D^1 \otimes D^{l-1}) P_l^\top` with Clebsch–Gordan isometries :math:`P_l`: polynomial
in :math:`R`, so smooth everywhere (no Euler-angle singularity), as forces through edge frames need.

References: Varshalovich, Moskalev, Khersonskii, *Quantum Theory of Angular Momentum* (1988), ch. 4;
the Y-X-Y factorisation with a fixed :math:`J` is the one of e3nn / lie_learn (Cohen et al.).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from ._rotation import matrix_to_angles

__all__ = ["wigner_D", "wigner_D_from_matrix", "wigner_D_upto", "change_basis_complex_to_real", "so3_generators"]


@functools.lru_cache(maxsize=None)
def change_basis_complex_to_real(l: int) -> np.ndarray:
    r"""Unitary :math:`U` (complex128, ``(2l+1, 2l+1)``) with :math:`Y_\mathrm{real} = U\, Y_\mathrm{complex}`.

    Rows/columns are indexed by :math:`m = -l..l`. With Condon–Shortley complex harmonics
    :math:`Y^m_l`: :math:`Y_{l,m>0} = (Y^{-m}_l + (-1)^m Y^m_l)/\sqrt2`,
    :math:`Y_{l,-m} = i (Y^{-m}_l - (-1)^m Y^{m}_l)/\sqrt2`, :math:`Y_{l,0} = Y^0_l`.
    This gives exactly e3nn's real basis and signs (checked against e3nn's spherical harmonics).

    >>> U = change_basis_complex_to_real(2)
    >>> bool(np.allclose(U @ U.conj().T, np.eye(5)))
    True
    """
    U = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    s = 1 / math.sqrt(2)
    U[l, l] = 1
    for m in range(1, l + 1):
        sign = (-1) ** m
        U[l + m, l - m] = s
        U[l + m, l + m] = sign * s
        U[l - m, l - m] = 1j * s
        U[l - m, l + m] = -1j * sign * s
    return U


@functools.lru_cache(maxsize=None)
def so3_generators(l: int) -> np.ndarray:
    r"""Real generators ``G`` (float64, ``(3, 2l+1, 2l+1)``) in e3nn's axes: :math:`\frac{d}{dt} Y^l(R_a(t) x) = G_a Y^l(x)`.

    For :math:`l = 1` these are the usual :math:`\mathfrak{so}(3)` matrices, :math:`G_a x = \hat e_a \times x`.
    They satisfy :math:`[G_x, G_y] = G_z` (and cyclic), and
    :math:`D^l(R_a(t)) = \exp(t\, G_a)`.

    >>> G = so3_generators(3)
    >>> bool(np.allclose(G[0] @ G[1] - G[1] @ G[0], G[2]))
    True
    """
    m = np.arange(-l, l + 1, dtype=np.float64)
    Jz = np.diag(m).astype(np.complex128)
    Jp = np.zeros((2 * l + 1, 2 * l + 1), dtype=np.complex128)
    for i in range(2 * l):  # J+ |m> = sqrt((l-m)(l+m+1)) |m+1>
        mm = m[i]
        Jp[i + 1, i] = math.sqrt((l - mm) * (l + mm + 1))
    Jm = Jp.T
    Jx = (Jp + Jm) / 2
    Jy = (Jp - Jm) / 2j
    U = change_basis_complex_to_real(l)
    out = []
    for J in (Jy, Jz, Jx):  # e3nn axes x, y, z = standard Y, Z, X
        G = U @ (1j * J.T) @ U.conj().T
        assert np.abs(G.imag).max() < 1e-12
        out.append(G.real)
    return np.stack(out)


@torch.compiler.assume_constant_result  # torch.compile: evaluate eagerly, treat as a constant
def _J_float64(l: int) -> torch.Tensor:
    return _J_float64_cached(l)


@functools.lru_cache(maxsize=None)
def _J_float64_cached(l: int) -> torch.Tensor:
    # exp(pi G) through the eigenvectors of the Hermitian i G (eigenvalues exactly the integers
    # m = -l..l, gap 1, so the eigenvectors are accurate): J = sum_m (-1)^m v_m v_m^H. This is
    # ~100x more accurate than a Pade matrix exponential (orthogonality 2e-15 vs 1e-13 at l = 5).
    G = so3_generators(l)
    eigenvalues, V = np.linalg.eigh(1j * (G[0] + G[1]) / math.sqrt(2))
    signs = 1.0 - 2.0 * (np.rint(eigenvalues).astype(np.int64) % 2)
    J = ((V * signs) @ V.conj().T).real
    J = 0.5 * (J + J.T)  # exactly symmetric (an orthogonal involution)
    return torch.from_numpy(np.ascontiguousarray(J))


_J_CACHE: dict = {}


def _J(l: int, dtype: torch.dtype, device) -> torch.Tensor:
    key = (l, dtype, str(device))
    J = _J_CACHE.get(key)
    if J is None:
        J = _J_float64(l).to(dtype=dtype, device=device)
        _J_CACHE[key] = J
    return J


def _y_rot_factors(l: int, angle: torch.Tensor):
    """cos(m angle), -sin(m angle) for m = -l..l, shape (..., 2l+1)."""
    m = torch.arange(-l, l + 1, dtype=angle.dtype, device=angle.device)
    t = angle[..., None] * m
    return t.cos(), -t.sin()


def _left_y(l: int, angle: torch.Tensor, M: torch.Tensor) -> torch.Tensor:
    # D_y(angle) @ M with D_y[m, m] = cos(m a), D_y[m, -m] = -sin(m a)
    c, s = _y_rot_factors(l, angle)
    return c[..., :, None] * M + s[..., :, None] * M.flip(-2)


def wigner_D(l: int, alpha, beta, gamma) -> torch.Tensor:
    r"""Wigner D matrix :math:`D^l(\alpha, \beta, \gamma)` of e3nn's Y-X-Y Euler angles, any :math:`l`.

    .. math::

        D^l(\alpha, \beta, \gamma) = D^l(R_y(\alpha))\, D^l(R_x(\beta))\, D^l(R_y(\gamma)),
        \qquad Y^l(R x) = D^l(R)\, Y^l(x),

    a real orthogonal representation: :math:`D(R_1 R_2) = D(R_1) D(R_2)`,
    :math:`D(R^{-1}) = D(R)^\top`. Equal to ``e3nn.o3.wigner_D`` (same basis and signs).

    Parameters
    ----------
    l : int
        Degree :math:`l \ge 0`.
    alpha, beta, gamma : torch.Tensor
        Broadcastable angles, shape ``(...)``: rotation about :math:`y` by :math:`\gamma`
        (applied first), about :math:`x` by :math:`\beta`, about :math:`y` by :math:`\alpha`.

    Returns
    -------
    torch.Tensor
        Shape ``(..., 2l+1, 2l+1)``, dtype of the angles.

    Examples
    --------
    >>> D = wigner_D(2, torch.tensor(0.1), torch.tensor(0.2), torch.tensor(0.3))
    >>> D.shape, torch.allclose(D @ D.T, torch.eye(5), atol=1e-6)
    (torch.Size([5, 5]), True)
    """
    if isinstance(l, bool) or not isinstance(l, int) or l < 0:
        raise ValueError(f"wigner_D: l must be an int >= 0, got {l!r}")
    alpha, beta, gamma = (torch.as_tensor(t) for t in (alpha, beta, gamma))
    if not alpha.is_floating_point():
        alpha = alpha.to(torch.get_default_dtype())
    alpha, beta, gamma = torch.broadcast_tensors(alpha, beta.to(alpha), gamma.to(alpha))
    J = _J(l, alpha.dtype, alpha.device)
    # J D_y(gamma): right multiplication mixes columns j and -j
    c, s = _y_rot_factors(l, gamma)
    M = J * c[..., None, :] - J.flip(-1) * s[..., None, :]
    M = _left_y(l, beta, M)
    M = J @ M
    return _left_y(l, alpha, M)


def wigner_D_from_matrix(l: int, R: torch.Tensor) -> torch.Tensor:
    r"""Wigner D matrices :math:`D^l(R)` of a batch of rotation matrices, any :math:`l`.

    :math:`Y^l(R x) = D^l(R)\, Y^l(x)`, i.e. for points stored as rows,
    ``spherical_harmonics(l, x @ R.T) == spherical_harmonics(l, x) @ wigner_D_from_matrix(l, R).T``.

    Parameters
    ----------
    l : int
        Degree.
    R : torch.Tensor
        Proper rotation matrices, shape ``(..., 3, 3)``. (For :math:`O(3)` with parity use
        `Irrep.D_from_matrix` / `Irreps.D_from_matrix`.)

    Returns
    -------
    torch.Tensor
        Shape ``(..., 2l+1, 2l+1)``.

    Examples
    --------
    >>> from equiv.so3 import random_rotation, spherical_harmonics
    >>> R = random_rotation(100, dtype=torch.float64)
    >>> x = torch.randn(100, 3, dtype=torch.float64)
    >>> D = wigner_D_from_matrix(3, R)
    >>> lhs = spherical_harmonics(3, (R @ x[:, :, None])[..., 0])
    >>> rhs = (D @ spherical_harmonics(3, x)[:, :, None])[..., 0]
    >>> bool((lhs - rhs).abs().max() < 1e-12)
    True
    """
    R = torch.as_tensor(R)
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"wigner_D_from_matrix: R must have shape (..., 3, 3), got {tuple(R.shape)}")
    if not torch.compiler.is_compiling() and R.numel() > 0 and bool((torch.det(R) < 0).any()):
        raise ValueError(
            "wigner_D_from_matrix: R must be proper rotations (det +1); for improper ones use "
            "Irrep(l, p).D_from_matrix(R), which applies the parity"
        )
    return wigner_D(l, *matrix_to_angles(R))


_RECURSION_TABLES: dict = {}


def _recursion_tables(lmax: int):
    r"""Per degree :math:`l \ge 2`, the isometry :math:`P_l = \sqrt{2l+1}\, C^{1, l-1, l}` in two layouts.

    Cached in a plain dict (not ``lru_cache``), so that ``torch.compile`` reads the cached tensors as
    constants instead of tracing the Clebsch–Gordan construction; call it once before compiling.
    """
    if lmax in _RECURSION_TABLES:
        return _RECURSION_TABLES[lmax]
    from ._clebsch_gordan import clebsch_gordan  # (imports this module)

    tables = []
    for l in range(2, lmax + 1):
        n, m = 2 * l - 1, 2 * l + 1
        C = clebsch_gordan(1, l - 1, l, dtype=torch.float64) * math.sqrt(m)  # (3, n, m), P P^T = 1
        tables.append((C.permute(1, 0, 2).reshape(n, 3 * m), C.reshape(3 * n, m).t().contiguous()))
    _RECURSION_TABLES[lmax] = tables
    return tables


def wigner_D_upto(lmax: int, R: torch.Tensor) -> list[torch.Tensor]:
    r"""Wigner matrices :math:`D^l(R)`, :math:`l = 0..L`, as polynomials in the entries of ``R``.

    :math:`D^1 = R` (the degree-1 basis is :math:`x, y, z`) and, with the Clebsch–Gordan isometry
    :math:`P_l = \sqrt{2l+1}\, C^{1,l-1,l}` (:math:`P_l P_l^\top = 1`, :math:`P_l (D^1 \otimes D^{l-1}) = D^l P_l`),

    .. math::

        D^l = P_l\, (D^1 \otimes D^{l-1})\, P_l^\top ,

    evaluated as two matrix products and one small batched product per degree. Smooth in ``R`` (no
    Euler angles), so first and second derivatives exist everywhere.

    Unlike `wigner_D_from_matrix` (through Euler angles), this has no singular rotations, and it
    returns every degree at once for about the cost of the highest.

    Parameters
    ----------
    lmax : int
        Largest degree :math:`L`.
    R : torch.Tensor
        Proper rotations, shape ``(..., 3, 3)``.

    Returns
    -------
    list of torch.Tensor
        ``D[l]`` of shape ``(..., 2l+1, 2l+1)``.

    Examples
    --------
    >>> from equiv.so3 import random_rotation
    >>> R = random_rotation(4, dtype=torch.float64)
    >>> D = wigner_D_upto(5, R)
    >>> bool(torch.allclose(D[5], wigner_D_from_matrix(5, R), atol=1e-12))
    True
    """
    R = torch.as_tensor(R)
    if R.shape[-2:] != (3, 3) or not R.is_floating_point():
        raise ValueError(f"wigner_D_upto: R must be floating-point rotations of shape (..., 3, 3), got "
                         f"{tuple(R.shape)} {R.dtype}")
    if lmax < 0:
        raise ValueError(f"wigner_D_upto: lmax must be >= 0, got {lmax}")
    batch = R.shape[:-2]
    R = R.reshape(-1, 3, 3)
    E = R.shape[0]
    out = [torch.ones(E, 1, 1, dtype=R.dtype, device=R.device), R][: lmax + 1]
    for l, (P1, P2t) in enumerate(_recursion_tables(lmax), start=2):
        n, m = 2 * l - 1, 2 * l + 1
        P1, P2t = P1.to(dtype=R.dtype, device=R.device), P2t.to(dtype=R.dtype, device=R.device)
        S = (out[-1].reshape(E * n, n) @ P1).view(E, n, 3, m)  # S[e,b,c,j] = sum_d D^{l-1}[e,b,d] P[c,d,j]
        T = torch.bmm(R, S.transpose(1, 2).reshape(E, 3, n * m))  # T[e,a,(b,j)] = sum_c R[e,a,c] S[e,b,c,j]
        out.append(torch.matmul(P2t, T.view(E, 3 * n, m)))  # D[e,i,j] = sum_ab P[a,b,i] T[e,a,b,j]
    return [d.reshape(*batch, *d.shape[-2:]) for d in out]
