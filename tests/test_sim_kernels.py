"""The fast engine's first-layer requantisation (int64 with a 32-bit multiplier,
kernels.requantize_hidden) equals the spec's integer requantisation
(cellsim.intspec.requantize) for every genome GenomeTables lets it take, at
random, extreme and boundary dot products."""
import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from cellsim.intspec import IntParams, quantize_multiplier, requantize
from cellsim.sim.kernels import requantize_hidden
from cellsim.sim.rom import GenomeTables, batchable, padded_hidden
from strategies import random_int_params


@njit
def requantize_rows(dots, tables, g, hidden):
    for j in range(dots.shape[0]):
        requantize_hidden(dots[j], tables, g, hidden[j])


def spec_hidden(p: IntParams, dots):
    acc = dots.astype(np.int64) + p.b1.astype(np.int64)
    q = requantize(acc, p.m1, p.shift1) + p.hidden_zero_point
    return np.clip(q, p.hidden_zero_point, 127) - p.hidden_zero_point


def probe_dots(rng, p: IntParams, n: int):
    """Dots the pair products can give: random, the extremes, and those next to
    every rounding step of each unit's requantisation inside the clamp range."""
    reach = 128 * np.abs(p.w1.astype(np.int64)).sum(axis=1)
    rows = [rng.integers(-reach, reach + 1, (n, p.hidden)), reach[None], -reach[None]]
    steps = np.arange(-1, 258)[:, None]
    s = 31 - np.asarray(p.shift1, np.int64)
    m = np.maximum(np.asarray(p.m1, np.int64), 1)
    b = p.b1.astype(np.int64)
    with np.errstate(over="ignore"):
        edge = (np.left_shift(steps, s) - np.left_shift(1, s - 1)) // m - b  # q changes near here
    for delta in (-1, 0, 1):
        rows.append(np.clip(edge + delta, -reach, reach))
    return np.concatenate(rows).astype(np.int32)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.booleans(), st.integers(1, 40))
def test_batched_requantisation_equals_the_spec(seed, extreme, hidden):
    rng = np.random.default_rng(seed)
    p = random_int_params(rng, 16, hidden, extreme=extreme)
    if not batchable(p):
        return  # the int64 path (tests/test_sim_engine.py)
    tables = GenomeTables.build([p])
    dots = probe_dots(rng, p, 64)
    out = np.zeros((len(dots), padded_hidden(hidden)), np.int16)
    requantize_rows(dots, tables, 0, out)
    assert np.array_equal(out[:, :hidden], spec_hidden(p, dots))
    assert not out[:, hidden:].any()


def test_the_largest_shift_and_multiplier_stay_exact():
    rng = np.random.default_rng(5)
    p = random_int_params(rng, 16, 8)
    for real in (2.0 ** -31 * 0.99999, 2.0 ** -21, 2.0 ** -8, 0.9999999):
        pairs = [quantize_multiplier(real)] * 8
        q = dataclasses.replace(p, m1=np.array([m for m, _ in pairs]),
                                shift1=np.array([s for _, s in pairs]))
        assert batchable(q)
        dots = probe_dots(rng, q, 256)
        out = np.zeros((len(dots), padded_hidden(8)), np.int16)
        requantize_rows(dots, GenomeTables.build([q]), 0, out)
        assert np.array_equal(out[:, :8], spec_hidden(q, dots))
