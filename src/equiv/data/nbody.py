r"""The charged 5-body system: the standard N-body benchmark of equivariant GNNs.

Five unit-mass particles with charges :math:`q_i \in \{-1, +1\}` move under Coulomb forces

.. math::

    F_i = \sum_{j \neq i} q_i q_j \, \frac{x_i - x_j}{\lVert x_i - x_j \rVert^3},

each Cartesian component clipped to :math:`\pm 100`, integrated by leapfrog with
:math:`\Delta t = 10^{-3}`. The task (Satorras, Hoogeboom and Welling, *E(n) Equivariant Graph
Neural Networks*, ICML 2021, dataset "charged5_initvel1small", from Kipf et al. 2018's simulator) is
to predict the positions at frame 40 from positions, velocities and charges at frame 30.

:func:`generate_charged` reproduces the published protocol for ``seed=43``: the same random draws in
the same order from NumPy's legacy generator, and the same floating-point operations, vectorised over
all simulations at once (about half a minute for the 14000 simulations instead of over an hour) and
cached on disk. :func:`simulate_charged` is the integrator alone, for any initial state (optionally in
a uniform external field, which breaks rotation symmetry). :class:`NBodyDataset` serves the
frame-30 → frame-40 task as dense tensors.

Notes
-----
*Reproducibility.* The original code computes squared distances as
:math:`\lVert a\rVert^2 + \lVert b\rVert^2 - 2\,a\cdot b` with ``A.dot(B.T)``, whose rounding depends
on the BLAS library. Here the 3-term dot products are summed explicitly, left to right (every other
operation is identical, including the order of the force sum); trajectories then agree with a BLAS
run to about :math:`10^{-6}` at frame 40 in the worst of 100 simulations (median :math:`10^{-14}`),
far below the task's error scale (:math:`\sim 10^{-3}`), and are bit-for-bit reproducible across
machines with IEEE double arithmetic and the same ``pow``. ``np.power`` is not correctly rounded and
NumPy builds compute it differently, and a last-bit change there moves about 4 % of the systems by
more than :math:`10^{-2}` at frame 40 (measured: ``|r|^3`` as ``l2 * sqrt(l2)`` changes 83 of the
2000 test systems that much), so the splits — of this generator and of the original alike — depend
on the NumPy build; compare :func:`dataset_fingerprint` before comparing results across machines.

>>> import numpy as np
>>> x = np.array([[[0., 0, 0], [1, 0, 0]]]); v = np.zeros_like(x); q = np.array([[1., 1.]])
>>> pos, vel = simulate_charged(x, v, q, steps=1000, record_every=100)
>>> pos.shape
(1, 9, 2, 3)
>>> bool(pos[0, -1, 1, 0] > 1.0)   # like charges repel
True
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from equiv._atomic import atomic_write

__all__ = [
    "NBodySplit",
    "NBodyDataset",
    "cache_dir",
    "charged_energy",
    "dataset_fingerprint",
    "generate_charged",
    "simulate_charged",
]

#: Protocol constants of "charged5_initvel1small".
NUM_PARTICLES = 5
BOX_SIZE = 5.0
LOC_STD = 1.0
VEL_NORM = 0.5
DT = 1e-3
MAX_FORCE = 0.1 / DT  # = 100
STEPS = 5000
RECORD_EVERY = 100
_CACHE_VERSION = 1


class NBodySplit(NamedTuple):
    r"""One split of the charged N-body data, in the layout of the original ``.npy`` files.

    Attributes
    ----------
    positions : numpy.ndarray
        ``(N, 49, 3, 5)`` float64: simulation, frame, Cartesian component, particle (``loc_*.npy``).
    velocities : numpy.ndarray
        ``(N, 49, 3, 5)`` float64 (``vel_*.npy``).
    charges : numpy.ndarray
        ``(N, 5, 1)`` float64 in {-1, +1} (``charges_*.npy``).
    edges : numpy.ndarray
        ``(N, 5, 5)`` float64, :math:`q q^\top` (``edges_*.npy``).

    Examples
    --------
    :func:`generate_charged` returns one per split (here 2 short training simulations, 2 recorded
    frames each):

    >>> data = generate_charged(2, 1, 1, steps=300, cache=False, progress=False)
    >>> s = data["train"]
    >>> s._fields
    ('positions', 'velocities', 'charges', 'edges')
    >>> s.positions.shape, s.velocities.shape, s.charges.shape, s.edges.shape
    ((2, 2, 3, 5), (2, 2, 3, 5), (2, 5, 1), (2, 5, 5))
    >>> bool(np.array_equal(s.edges, s.charges @ s.charges.transpose(0, 2, 1)))
    True
    >>> s.positions[0, -1].T.shape   # last frame of the first simulation, one row per particle
    (5, 3)
    """

    positions: np.ndarray
    velocities: np.ndarray
    charges: np.ndarray
    edges: np.ndarray


# ---------------------------------------------------------------------------------------------------
# integrator


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    i, j = np.triu_indices(n, k=1)
    return i, j


def _forces(x: np.ndarray, qq: np.ndarray, q: np.ndarray, field, max_force, I, J) -> np.ndarray:
    """Coulomb forces for positions ``x`` (3, n, B); ``qq`` (P, B) pair charge products (i < j).

    Arithmetic mirrors the reference simulator operation by operation (see the module notes).
    """
    n = x.shape[1]
    sq = x * x
    norms = (sq[0] + sq[1]) + sq[2]  # (n, B): ((x0^2 + x1^2) + x2^2), as ndarray.sum(axis) does
    xi, xj = x[:, I], x[:, J]  # (3, P, B)
    dot = (xi[0] * xj[0] + xi[1] * xj[1]) + xi[2] * xj[2]
    l2 = (norms[I] + norms[J]) - 2 * dot
    with np.errstate(divide="ignore", invalid="ignore"):
        size = qq / np.power(l2, 1.5)  # (P, B), symmetric in (i, j) bit for bit
    term = size * (xi - xj)  # (3, P, B): force of j on i (i < j); that of i on j is -term exactly
    F = np.empty_like(x)
    # F_i = sum over j = 0 .. n-1 in that order (the reference's diagonal term is an exact zero);
    # adding -t equals subtracting t bit for bit.
    for i in range(n):
        out = F[:, i]
        first = True
        for j in range(n):
            if j == i:
                continue
            p = _PAIR_INDEX[n][(min(i, j), max(i, j))]
            if first:
                if i < j:
                    np.copyto(out, term[:, p])
                else:
                    np.negative(term[:, p], out=out)
                first = False
            elif i < j:
                np.add(out, term[:, p], out=out)
            else:
                np.subtract(out, term[:, p], out=out)
    if field is not None:
        F += q[None] * field[:, None, None]
    if max_force is not None:
        np.clip(F, -max_force, max_force, out=F)
    return F


class _PairIndex(dict):
    def __missing__(self, n):
        I, J = _pairs(n)
        self[n] = {(a, b): p for p, (a, b) in enumerate(zip(I.tolist(), J.tolist()))}
        return self[n]


_PAIR_INDEX = _PairIndex()
_CHUNK = 2048  # simulations integrated together: long enough vectors, small enough for the cache


def _leapfrog_chunk(x, v, q, steps, dt, record_every, max_force, field, pos_out, vel_out, bar):
    n = x.shape[1]
    I, J = _pairs(n)
    qq = q[I] * q[J]
    args = (qq, q, field, max_force, I, J)
    v += dt * _forces(x, *args)  # half kick
    frame = 0
    for step in range(1, steps):
        x += dt * v
        if step % record_every == 0:
            pos_out[frame] = x
            vel_out[frame] = v
            frame += 1
        v += dt * _forces(x, *args)
        if bar is not None and step % 100 == 0:
            bar.update(100 * x.shape[-1])


def _leapfrog(x, v, q, *, steps, dt, record_every, max_force, field, progress=False):
    """Leapfrog on (3, n, B) arrays in place; returns recorded positions and velocities (T, 3, n, B).

    Chunks of simulations run in two threads (NumPy releases the GIL inside its loops).
    """
    from concurrent.futures import ThreadPoolExecutor

    B = x.shape[-1]
    num_frames = (steps - 1) // record_every
    pos_out = np.empty((num_frames,) + x.shape)
    vel_out = np.empty((num_frames,) + x.shape)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=(steps - 1) // 100 * 100 * B, desc="simulating", unit="sim-step",
                   unit_scale=True, mininterval=1.0, leave=False)
    chunks = [slice(a, min(a + _CHUNK, B)) for a in range(0, B, _CHUNK)]

    def work(sl):
        xc, vc = np.ascontiguousarray(x[..., sl]), np.ascontiguousarray(v[..., sl])
        pc = np.empty((num_frames,) + xc.shape)
        vo = np.empty((num_frames,) + xc.shape)
        _leapfrog_chunk(xc, vc, np.ascontiguousarray(q[:, sl]), steps, dt, record_every, max_force,
                        field, pc, vo, bar)
        pos_out[..., sl], vel_out[..., sl] = pc, vo
        x[..., sl], v[..., sl] = xc, vc

    if len(chunks) == 1:
        work(chunks[0])
    else:
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            list(pool.map(work, chunks))
    if bar is not None:
        bar.close()
    return pos_out, vel_out


def _as_float_array(value, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers, got {type(value).__name__}") from exc
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def simulate_charged(
    positions,
    velocities,
    charges,
    *,
    steps: int = STEPS,
    dt: float = DT,
    record_every: int = RECORD_EVERY,
    external_field=None,
    max_force: float | None = MAX_FORCE,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Integrate charged particles with the benchmark's leapfrog scheme, vectorised over a batch.

    .. math::

        v \leftarrow v + \tfrac{\Delta t}{1}F(x_0);\quad
        \text{for } s = 1, \dots, S-1:\;
        x \leftarrow x + \Delta t\, v,\; \text{record } (x, v) \text{ if } s \bmod k = 0,\;
        v \leftarrow v + \Delta t\, F(x),

    with :math:`F_i = \sum_{j\ne i} q_i q_j (x_i - x_j)/\lVert x_i - x_j\rVert^3 + q_i E`, each
    component clipped to :math:`\pm` ``max_force``. Velocities are recorded at half steps, as in the
    benchmark. No box: the initial box reflection is part of :func:`generate_charged`'s sampling.

    Parameters
    ----------
    positions, velocities : array_like
        ``(..., n, 3)`` initial state (any leading batch shape).
    charges : array_like
        ``(..., n)`` or ``(..., n, 1)``.
    steps : int
        Number of steps :math:`S` (default 5000).
    dt : float
        Time step (default 1e-3).
    record_every : int
        Record every ``k`` steps (default 100); ``(steps - 1) // k`` frames are returned.
    external_field : array_like, optional
        A constant field :math:`E` of shape ``(3,)``; particle ``i`` feels the extra force
        :math:`q_i E` (added before clipping). Breaks O(3) symmetry down to rotations about ``E``.
    max_force : float or None
        Component-wise force clip (default 100, the benchmark's); ``None`` disables clipping.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    positions, velocities : numpy.ndarray
        ``(..., T, n, 3)`` float64 with ``T = (steps - 1) // record_every``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x, v = rng.normal(size=(2, 4, 5, 3)); q = rng.choice([-1.0, 1.0], size=(4, 5))
    >>> pos, vel = simulate_charged(x, v, q, steps=500, record_every=100)
    >>> pos.shape, vel.shape
    ((4, 4, 5, 3), (4, 4, 5, 3))
    """
    x = _as_float_array(positions, "positions")
    v = _as_float_array(velocities, "velocities")
    q = _as_float_array(charges, "charges")
    if x.ndim < 2 or x.shape[-1] != 3:
        raise ValueError(f"positions must have shape (..., n, 3), got {x.shape}")
    if v.shape != x.shape:
        raise ValueError(f"velocities must have the shape of positions {x.shape}, got {v.shape}")
    if q.shape == x.shape[:-1] + (1,):
        q = q[..., 0]
    if q.shape != x.shape[:-1]:
        raise ValueError(f"charges must have shape {x.shape[:-1]} or {x.shape[:-1] + (1,)}, got {q.shape}")
    for name, val in (("steps", steps), ("record_every", record_every)):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    if not (isinstance(dt, (int, float)) and dt > 0):
        raise ValueError(f"dt must be a positive number, got {dt!r}")
    if max_force is not None and not max_force > 0:
        raise ValueError(f"max_force must be positive or None, got {max_force!r}")
    field = None
    if external_field is not None:
        field = _as_float_array(external_field, "external_field")
        if field.shape != (3,):
            raise ValueError(f"external_field must have shape (3,), got {field.shape}")
    batch, n = x.shape[:-2], x.shape[-2]
    # (..., n, 3) -> (3, n, B), contiguous along the batch so every operation is a long vector op
    xb = np.ascontiguousarray(x.reshape(-1, n, 3).transpose(2, 1, 0))
    vb = np.ascontiguousarray(v.reshape(-1, n, 3).transpose(2, 1, 0))
    qb = np.ascontiguousarray(q.reshape(-1, n).T)
    pos, vel = _leapfrog(
        xb, vb, qb, steps=int(steps), dt=float(dt), record_every=int(record_every),
        max_force=max_force, field=field, progress=progress,
    )
    T = pos.shape[0]
    pos = pos.transpose(3, 0, 2, 1).reshape(batch + (T, n, 3))
    vel = vel.transpose(3, 0, 2, 1).reshape(batch + (T, n, 3))
    return np.ascontiguousarray(pos), np.ascontiguousarray(vel)


def charged_energy(positions, velocities, charges) -> np.ndarray:
    r"""Total energy :math:`\tfrac12\sum_i \lVert v_i\rVert^2 + \sum_{i<j} q_i q_j/\lVert x_i-x_j\rVert`.

    Parameters
    ----------
    positions, velocities : array_like
        ``(..., n, 3)``.
    charges : array_like
        ``(..., n)`` or ``(..., n, 1)``.

    Returns
    -------
    numpy.ndarray
        ``(...)``.

    Examples
    --------
    >>> float(charged_energy([[0., 0, 0], [2, 0, 0]], [[1., 0, 0], [0, 0, 0]], [1., -1.]))
    0.0
    """
    x = np.asarray(positions, dtype=np.float64)
    v = np.asarray(velocities, dtype=np.float64)
    q = np.asarray(charges, dtype=np.float64)
    if q.shape == x.shape[:-1] + (1,):
        q = q[..., 0]
    n = x.shape[-2]
    I, J = _pairs(n)
    r = np.linalg.norm(x[..., I, :] - x[..., J, :], axis=-1)
    return 0.5 * (v**2).sum(axis=(-1, -2)) + (q[..., I] * q[..., J] / r).sum(-1)


# ---------------------------------------------------------------------------------------------------
# the published dataset


def _draw_initial_states(rs: np.random.RandomState, num: int, n: int, num_frames: int):
    """Draw, per simulation and in the protocol's order: charges, positions, velocities, 2 noise arrays."""
    charges = np.empty((num, n, 1))
    loc = np.empty((num, 3, n))
    vel = np.empty((num, 3, n))
    for s in range(num):
        charges[s] = rs.choice(np.array([-1.0, 0.0, 1.0]), size=(n, 1), p=[0.5, 0.0, 0.5])
        loc[s] = rs.randn(3, n) * LOC_STD
        vel[s] = rs.randn(3, n)
        rs.randn(num_frames, 3, n)  # observation noise on positions (variance 0): drawn, unused
        rs.randn(num_frames, 3, n)  # ... and on velocities
    # normalise each particle's speed, then reflect into the box, as the reference does
    norm = np.sqrt((vel**2).sum(axis=1)).reshape(num, 1, n)
    vel = vel * VEL_NORM / norm
    over = loc > BOX_SIZE
    loc[over] = 2 * BOX_SIZE - loc[over]
    vel[over] = -np.abs(vel[over])
    under = loc < -BOX_SIZE
    loc[under] = -2 * BOX_SIZE - loc[under]
    vel[under] = np.abs(vel[under])
    return charges, loc, vel


def _simulate_split(charges, loc, vel, *, steps, record_every, progress) -> NBodySplit:
    q = np.ascontiguousarray(charges[:, :, 0].T)  # (n, B)
    x = np.ascontiguousarray(loc.transpose(1, 2, 0))  # (3, n, B)
    v = np.ascontiguousarray(vel.transpose(1, 2, 0))
    pos, velo = _leapfrog(x, v, q, steps=steps, dt=DT, record_every=record_every,
                          max_force=MAX_FORCE, field=None, progress=progress)
    pos = np.ascontiguousarray(pos.transpose(3, 0, 1, 2))  # (B, T, 3, n)
    velo = np.ascontiguousarray(velo.transpose(3, 0, 1, 2))
    edges = charges @ charges.transpose(0, 2, 1)
    return NBodySplit(pos, velo, charges, edges)


def cache_dir() -> Path:
    """Folder for cached datasets: ``$EQUIV_CACHE``, else ``$XDG_CACHE_HOME/equiv``, else ``~/.cache/equiv``.

    >>> isinstance(cache_dir(), Path)
    True
    """
    env = os.environ.get("EQUIV_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "equiv"


def _check_count(value, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def generate_charged(
    num_train: int = 10000,
    num_valid: int = 2000,
    num_test: int = 2000,
    seed: int = 43,
    *,
    steps: int = STEPS,
    record_every: int = RECORD_EVERY,
    subset: tuple[int, int, int] | None = None,
    cache: bool = True,
    progress: bool = True,
) -> dict[str, NBodySplit]:
    r"""The charged 5-body dataset "charged5_initvel1small" (seed 43 gives the published one).

    Protocol (Kipf et al. 2018's simulator as used by Satorras et al. 2021): ``np.random.seed(seed)``
    once; then ``num_train``, ``num_valid``, ``num_test`` simulations in that order. Per simulation the
    draws are: charges ``choice([-1, 0, 1], size=(5, 1), p=[.5, 0, .5])``; positions
    ``randn(3, 5)``; velocities ``randn(3, 5)`` rescaled to speed 0.5 per particle; after the
    simulation two ``randn(49, 3, 5)`` arrays (observation noise of variance 0, drawn but unused).
    Initial positions are reflected into the box :math:`[-5, 5]^3` (velocity pointed inwards), then
    :func:`simulate_charged` runs 5000 leapfrog steps recording every 100th (49 frames).

    All random numbers are drawn first (a :class:`numpy.random.RandomState` seeded with ``seed``
    produces exactly the stream of the legacy global generator after ``np.random.seed(seed)``; the
    global state is left untouched), then all simulations are integrated at once.

    Parameters
    ----------
    num_train, num_valid, num_test : int
        Number of simulations per split (defaults 10000, 2000, 2000).
    seed : int
        Seed of the legacy generator (default 43, the published dataset).
    steps, record_every : int
        Integration length and recording interval (defaults 5000 and 100). Changing them changes the
        draws of the noise arrays, hence the data.
    subset : (int, int, int), optional
        Simulate only the first ``subset[k]`` simulations of each split (train, valid, test). All random
        numbers of the full protocol are still drawn, so the result equals slicing the full dataset,
        bit for bit, at a fraction of the cost (the benchmark task needs 3000, 2000, 2000).
    cache : bool
        Load from / save to ``cache_dir()`` as ``.npz`` keyed by all arguments (default True).
    progress : bool
        Show a progress bar while simulating.

    Returns
    -------
    dict[str, NBodySplit]
        Keys ``"train"``, ``"valid"``, ``"test"``; positions and velocities ``(N, T, 3, 5)``, charges
        ``(N, 5, 1)``, edges ``(N, 5, 5)``, in the original files' layout.

    Examples
    --------
    >>> data = generate_charged(num_train=3, num_valid=1, num_test=1, steps=300, cache=False,
    ...                         progress=False)
    >>> data["train"].positions.shape, data["train"].charges.shape
    ((3, 2, 3, 5), (3, 5, 1))
    """
    counts = {
        "train": _check_count(num_train, "num_train"),
        "valid": _check_count(num_valid, "num_valid"),
        "test": _check_count(num_test, "num_test"),
    }
    seed = _check_count(seed, "seed")
    if subset is not None:
        if not (isinstance(subset, (tuple, list)) and len(subset) == 3):
            raise ValueError(f"subset must be a tuple (num_train, num_valid, num_test), got {subset!r}")
        keep = {s: min(_check_count(k, f"subset[{i}]"), counts[s])
                for i, (s, k) in enumerate(zip(counts, subset))}
    else:
        keep = dict(counts)
    steps = _check_count(steps, "steps", 1)
    record_every = _check_count(record_every, "record_every", 1)
    if steps % record_every != 0:
        raise ValueError(f"steps ({steps}) must be a multiple of record_every ({record_every}), as in "
                         "the reference simulator")
    base = f"charged5_initvel1small-seed{seed}-{num_train}-{num_valid}-{num_test}-{steps}-{record_every}"
    subset_tag = "" if keep == counts else "-subset" + "-".join(str(k) for k in keep.values())
    path = cache_dir() / f"nbody-{base}{subset_tag}-v{_CACHE_VERSION}.npz"
    full_path = cache_dir() / f"nbody-{base}-v{_CACHE_VERSION}.npz"
    for candidate in (path, full_path) if cache else ():
        if candidate.is_file():  # the exact file, or the full dataset to slice a subset from
            try:
                with np.load(candidate) as f:
                    return {s: NBodySplit(*(f[f"{s}_{k}"][: keep[s]] for k in NBodySplit._fields)) for s in counts}
            except (OSError, KeyError, ValueError):
                pass  # unreadable cache: regenerate
    num_frames = steps // record_every - 1
    rs = np.random.RandomState(seed)
    drawn = {s: _draw_initial_states(rs, c, NUM_PARTICLES, num_frames) for s, c in counts.items()}
    drawn = {s: tuple(a[: keep[s]] for a in drawn[s]) for s in counts}
    # one batched integration for all splits
    charges = np.concatenate([drawn[s][0] for s in counts])
    loc = np.concatenate([drawn[s][1] for s in counts])
    vel = np.concatenate([drawn[s][2] for s in counts])
    t0 = time.perf_counter()
    full = _simulate_split(charges, loc, vel, steps=steps, record_every=record_every,
                           progress=progress)
    elapsed = time.perf_counter() - t0
    out, start = {}, 0
    for s, c in keep.items():
        out[s] = NBodySplit(*(a[start:start + c] for a in full))
        start += c
    if progress:
        print(f"generated {sum(keep.values())} N-body simulations in {elapsed:.1f} s")
    if cache:
        _save_npz(path, {f"{s}_{k}": getattr(out[s], k) for s in counts for k in NBodySplit._fields})
    return out


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the cache file atomically (a concurrent reader never sees a partial file)."""
    atomic_write(path, lambda fh: np.savez(fh, **arrays))


def dataset_fingerprint(split: NBodySplit) -> str:
    """Short SHA-256 of a split's arrays (for recording which data a result used)."""
    h = hashlib.sha256()
    for a in split:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------
# the frame-30 -> frame-40 task


class NBodyDataset(torch.utils.data.Dataset):
    r"""The N-body prediction task as dense tensors: frame ``frame_in`` → positions at ``frame_out``.

    Item ``k`` is ``(positions, velocities, charges, target)`` with shapes ``(5, 3)``, ``(5, 3)``,
    ``(5, 1)``, ``(5, 3)``; the whole split is also available as the attributes of those names with a
    leading ``(N,)`` axis, so training can slice batches without a ``DataLoader``.

    Parameters
    ----------
    split : {"train", "valid", "test"}
    max_samples : int, optional
        Keep the first ``max_samples`` simulations (the benchmark uses 3000 for training, all 2000
        validation and test simulations).
    frame_in, frame_out : int
        Input and target frames (default 30 and 40).
    data : dict, optional
        Output of :func:`generate_charged`; generated (or loaded from the cache) if omitted.
    dtype : torch.dtype
        Default ``torch.float32``.

    Examples
    --------
    >>> data = generate_charged(4, 2, 2, steps=500, cache=False, progress=False)
    >>> ds = NBodyDataset("train", data=data, frame_in=1, frame_out=3)
    >>> len(ds), [tuple(t.shape) for t in ds[0]]
    (4, [(5, 3), (5, 3), (5, 1), (5, 3)])
    """

    def __init__(
        self,
        split: str = "train",
        *,
        max_samples: int | None = None,
        frame_in: int = 30,
        frame_out: int = 40,
        data: dict[str, NBodySplit] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if split not in ("train", "valid", "test"):
            raise ValueError(f"split must be 'train', 'valid' or 'test', got {split!r}")
        if data is None:
            data = generate_charged()
        if split not in data:
            raise ValueError(f"data has no split {split!r} (keys: {sorted(data)})")
        s = data[split]
        T = s.positions.shape[1]
        for name, f in (("frame_in", frame_in), ("frame_out", frame_out)):
            if not (isinstance(f, int) and -T <= f < T):
                raise ValueError(f"{name} must be a frame index in [0, {T}), got {f!r}")
        if max_samples is not None:
            max_samples = _check_count(max_samples, "max_samples", 1)
        sl = slice(0, max_samples)

        def t(a):
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype)

        self.split = split
        self.frame_in, self.frame_out = frame_in, frame_out
        self.positions = t(s.positions[sl, frame_in].transpose(0, 2, 1))
        self.velocities = t(s.velocities[sl, frame_in].transpose(0, 2, 1))
        self.charges = t(s.charges[sl])
        self.target = t(s.positions[sl, frame_out].transpose(0, 2, 1))

    def __len__(self) -> int:
        return self.positions.shape[0]

    def __getitem__(self, k):
        return self.positions[k], self.velocities[k], self.charges[k], self.target[k]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(positions, velocities, charges, target)`` for the whole split."""
        return self.positions, self.velocities, self.charges, self.target

    def __repr__(self) -> str:
        return (f"NBodyDataset(split={self.split!r}, num={len(self)}, frame_in={self.frame_in}, "
                f"frame_out={self.frame_out}, dtype={self.positions.dtype})")
