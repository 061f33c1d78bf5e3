"""Tests of the charged N-body generator against a plain per-simulation implementation of the protocol."""

import numpy as np
import pytest
import torch

from equiv.data import nbody
from equiv.data.nbody import (
    NBodyDataset,
    charged_energy,
    generate_charged,
    simulate_charged,
)


# ------------------------------------------------------------------------------------------------
# reference: the published protocol written as a straightforward loop over simulations, with the
# global legacy RNG, one simulation at a time (3-term dot products summed left to right; see the
# module notes of equiv.data.nbody about BLAS).


def _dot_rows(loc):  # loc (3, n): G[i, j] = <x_i, x_j>
    return (np.outer(loc[0], loc[0]) + np.outer(loc[1], loc[1])) + np.outer(loc[2], loc[2])


def _reference_force(loc, edges, dot=_dot_rows):
    n = loc.shape[1]
    A = loc.transpose()
    A_norm = (A**2).sum(axis=1).reshape(n, 1)
    l2 = A_norm + A_norm.reshape(1, n) - 2 * dot(loc)
    with np.errstate(divide="ignore", invalid="ignore"):
        size = 1.0 * edges / np.power(l2, 3.0 / 2.0)
    np.fill_diagonal(size, 0)
    diff = np.concatenate([np.subtract.outer(loc[d], loc[d]).reshape(1, n, n) for d in range(3)])
    F = (size.reshape(1, n, n) * diff).sum(axis=-1)
    F[F > 100.0] = 100.0
    F[F < -100.0] = -100.0
    return F


def _reference_trajectory(T, sample_freq, dot=_dot_rows):
    n = 5
    T_save = T // sample_freq - 1
    charges = np.random.choice(np.array([-1.0, 0.0, 1.0]), size=(n, 1), p=[0.5, 0, 0.5])
    edges = charges.dot(charges.transpose())
    loc = np.zeros((T_save, 3, n))
    vel = np.zeros((T_save, 3, n))
    loc_next = np.random.randn(3, n) * 1.0
    vel_next = np.random.randn(3, n)
    v_norm = np.sqrt((vel_next**2).sum(axis=0)).reshape(1, -1)
    vel_next = vel_next * 0.5 / v_norm
    over = loc_next > 5.0
    loc_next[over] = 10.0 - loc_next[over]
    vel_next[over] = -np.abs(vel_next[over])
    under = loc_next < -5.0
    loc_next[under] = -10.0 - loc_next[under]
    vel_next[under] = np.abs(vel_next[under])
    vel_next += 0.001 * _reference_force(loc_next, edges, dot)
    counter = 0
    for i in range(1, T):
        loc_next += 0.001 * vel_next
        if i % sample_freq == 0:
            loc[counter], vel[counter] = loc_next, vel_next
            counter += 1
        vel_next += 0.001 * _reference_force(loc_next, edges, dot)
    loc += np.random.randn(T_save, 3, n) * 0.0
    vel += np.random.randn(T_save, 3, n) * 0.0
    return loc, vel, edges, charges


def _reference_dataset(counts, seed, T, dot=_dot_rows):
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        out = {}
        for split, num in counts.items():
            sims = [_reference_trajectory(T, 100, dot) for _ in range(num)]
            if not sims:
                continue
            out[split] = [np.stack([s[k] for s in sims]) for k in range(4)]
        return out
    finally:
        np.random.set_state(state)


@pytest.mark.parametrize("seed", [43, 0, 7])
def test_vectorised_generator_equals_per_simulation_reference(seed):
    counts = {"train": 3, "valid": 2, "test": 2}
    steps = 1500
    ref = _reference_dataset(counts, seed, steps)
    data = generate_charged(counts["train"], counts["valid"], counts["test"], seed=seed, steps=steps,
                            cache=False, progress=False)
    for split in counts:
        loc, vel, edges, charges = ref[split]
        got = data[split]
        np.testing.assert_array_equal(got.charges, charges)
        np.testing.assert_array_equal(got.edges, edges)
        np.testing.assert_array_equal(got.positions, loc)  # bit for bit
        np.testing.assert_array_equal(got.velocities, vel)


def test_chunked_threads_equal_single_chunk(monkeypatch):
    a = generate_charged(5, 0, 0, seed=3, steps=300, cache=False, progress=False)
    monkeypatch.setattr(nbody, "_CHUNK", 2)  # 3 chunks in 2 threads
    b = generate_charged(5, 0, 0, seed=3, steps=300, cache=False, progress=False)
    np.testing.assert_array_equal(a["train"].positions, b["train"].positions)
    np.testing.assert_array_equal(a["train"].velocities, b["train"].velocities)


def test_subset_equals_slice_of_full():
    full = generate_charged(6, 3, 3, seed=9, steps=300, cache=False, progress=False)
    sub = generate_charged(6, 3, 3, seed=9, steps=300, subset=(2, 3, 1), cache=False, progress=False)
    for split, k in (("train", 2), ("valid", 3), ("test", 1)):
        for a, b in zip(full[split], sub[split]):
            np.testing.assert_array_equal(a[:k], b)
    with pytest.raises(ValueError, match="subset"):
        generate_charged(6, 3, 3, subset=(1, 2), cache=False)


def test_rng_draw_order_and_unused_noise_draws():
    # After generating, the legacy stream must be exactly where the protocol leaves it: per simulation
    # 5 uniforms, 15 + 15 normals, then 2 x (T_save*15) normals.
    counts = (2, 1, 1)
    steps = 500
    data = generate_charged(*counts, seed=43, steps=steps, cache=False, progress=False)
    rs = np.random.RandomState(43)
    T_save = steps // 100 - 1
    for s in range(sum(counts)):
        q = rs.choice([-1.0, 0.0, 1.0], size=(5, 1), p=[0.5, 0, 0.5])
        x0 = rs.randn(3, 5)
        rs.randn(3, 5)
        rs.randn(T_save, 3, 5)
        rs.randn(T_save, 3, 5)
        split, k = ("train", s) if s < 2 else (("valid", 0) if s == 2 else ("test", 0))
        np.testing.assert_array_equal(data[split].charges[k], q)
        assert np.all(np.abs(x0) < 5)  # no box reflection for these draws
    # the first simulation's first frame follows from x0 by the dynamics: check it is close
    rs = np.random.RandomState(43)
    rs.choice([-1.0, 0.0, 1.0], size=(5, 1), p=[0.5, 0, 0.5])
    x0 = rs.randn(3, 5)
    assert np.abs(data["train"].positions[0, 0] - x0).max() < 0.2


def test_matches_blas_dot_reference_closely():
    # The original computes a.b with BLAS; the trajectories agree up to rounding amplification.
    ref = _reference_dataset({"train": 2, "valid": 0, "test": 0}, 43, 1000,
                             dot=lambda loc: loc.transpose().dot(loc))
    data = generate_charged(2, 0, 0, seed=43, steps=1000, cache=False, progress=False)
    np.testing.assert_allclose(data["train"].positions, ref["train"][0], atol=1e-9, rtol=0)


def test_shapes_and_values():
    data = generate_charged(4, 2, 3, seed=1, steps=5000, cache=False, progress=False)
    assert data["train"].positions.shape == (4, 49, 3, 5)
    assert data["valid"].velocities.shape == (2, 49, 3, 5)
    assert data["test"].charges.shape == (3, 5, 1)
    assert data["test"].edges.shape == (3, 5, 5)
    assert set(np.unique(data["train"].charges)) <= {-1.0, 1.0}
    ds = NBodyDataset("train", data=data, max_samples=3)
    pos, vel, q, target = ds[1]
    assert len(ds) == 3
    assert pos.shape == (5, 3) and vel.shape == (5, 3) and q.shape == (5, 1) and target.shape == (5, 3)
    assert pos.dtype == torch.float32
    np.testing.assert_allclose(pos.numpy(), data["train"].positions[1, 30].T, rtol=1e-6)
    np.testing.assert_allclose(target.numpy(), data["train"].positions[1, 40].T, rtol=1e-6)
    assert "NBodyDataset(split='train', num=3" in repr(ds)


def test_cache_roundtrip(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIV_CACHE", str(tmp_path))
    a = generate_charged(2, 1, 1, seed=5, steps=300, progress=False)
    files = list(tmp_path.glob("nbody-*.npz"))
    assert len(files) == 1
    b = generate_charged(2, 1, 1, seed=5, steps=300, progress=False)
    for split in a:
        for x, y in zip(a[split], b[split]):
            np.testing.assert_array_equal(x, y)
    # a subset is sliced from the cached full dataset, without simulating again
    monkeypatch.setattr(nbody, "_simulate_split", None)
    c = generate_charged(2, 1, 1, seed=5, steps=300, subset=(1, 1, 0), progress=False)
    np.testing.assert_array_equal(c["train"].positions, a["train"].positions[:1])
    assert c["test"].positions.shape[0] == 0


def test_simulate_charged_batched_equals_single_and_field():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 3))
    v = rng.normal(size=(3, 5, 3)) * 0.5
    q = rng.choice([-1.0, 1.0], size=(3, 5))
    pos, vel = simulate_charged(x, v, q, steps=400, record_every=100)
    assert pos.shape == (3, 3, 5, 3)
    p1, v1 = simulate_charged(x[1], v[1], q[1, :, None], steps=400, record_every=100)
    np.testing.assert_array_equal(p1, pos[1])
    # a field E pushes positive charges along E (net force on the system is sum_i q_i E)
    E = np.array([0.0, 0.0, 3.0])
    pf, _ = simulate_charged(x, v, q, steps=400, record_every=100, external_field=E)
    shift = (pf[:, -1] - pos[:, -1])[..., 2]  # (3, 5)
    assert np.all(np.sign(shift[np.abs(shift) > 1e-6]) == np.sign(q[np.abs(shift) > 1e-6]))
    # the centre of charge-weighted displacement follows 1/2 * sum q E t^2 approximately
    with pytest.raises(ValueError, match="external_field"):
        simulate_charged(x, v, q, external_field=[1.0, 2.0])


def test_rotation_equivariance_of_dynamics_without_clipping():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 5, 3)) * 2
    v = rng.normal(size=(2, 5, 3)) * 0.5
    q = np.ones((2, 5))
    Q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    p, _ = simulate_charged(x, v, q, steps=300, max_force=None)
    pr, _ = simulate_charged(x @ Q.T, v @ Q.T, q, steps=300, max_force=None)
    np.testing.assert_allclose(pr, p @ Q.T, atol=1e-10)


def test_energy_conserved_without_clipping():
    # like charges repel: no close encounters, so leapfrog conserves energy to O(dt^2)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 5, 3)) * 1.5
    v = rng.normal(size=(4, 5, 3)) * 0.5
    q = np.ones((4, 5))
    pos, vel = simulate_charged(x, v, q, steps=3000, record_every=10, max_force=None)
    # recorded velocities are half a step ahead; average neighbouring frames is not needed at 1e-3
    e = charged_energy(pos, vel, q[:, None, :])
    e0 = charged_energy(x, v, q)
    assert np.abs(e - e0[:, None]).max() / np.abs(e0).max() < 1e-3
    assert np.abs(e[:, -1] - e[:, 0]).max() / np.abs(e0).max() < 1e-4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_train=-1), "num_train"),
        (dict(seed=1.5), "seed"),
        (dict(steps=1050), "multiple of record_every"),
    ],
)
def test_generate_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_charged(**{**dict(num_train=1, num_valid=0, num_test=0, cache=False), **kwargs})


def test_simulate_bad_input():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="positions"):
        simulate_charged(np.zeros((5, 2)), np.zeros((5, 2)), np.ones(5))
    with pytest.raises(ValueError, match="charges"):
        simulate_charged(x, x, np.ones(4))
    with pytest.raises(ValueError, match="dt"):
        simulate_charged(x, x, np.ones(5), dt=-1.0)
    with pytest.raises(ValueError, match="split"):
        NBodyDataset("training", data={})
