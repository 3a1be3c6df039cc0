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
from cellsim.sim.simd import requantize_high
from strategies import random_int_params


@njit
def requantize_padded_rows(dots, tables, g, hidden):
    for j in range(dots.shape[0]):
        requantize_hidden(dots[j], tables, g, hidden[j])


def requantize_rows(dots, tables, g, hidden):
    """requantize_hidden on rows of the padded width, as the engine keeps them."""
    padded = np.zeros((len(dots), hidden.shape[1]), np.int32)
    padded[:, :dots.shape[1]] = dots
    requantize_padded_rows(padded, tables, g, hidden)


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
    out = np.zeros((len(dots), padded_hidden(hidden)), np.uint8)
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
        out = np.zeros((len(dots), padded_hidden(8)), np.uint8)
        requantize_rows(dots, GenomeTables.build([q]), 0, out)
        assert np.array_equal(out[:, :8], spec_hidden(q, dots))


@njit
def high_word_rows(dots, tables, hidden):
    for j in range(dots.shape[0]):
        requantize_high(dots[j], tables.b1p, tables.m1p, tables.rshift1, 0, tables.top1[0],
                        hidden[j])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(33, 62), st.integers(0, 255),
       st.sampled_from(["random", "largest", "smallest"]))
def test_the_high_word_requantisation_equals_the_spec(seed, total_shift, top, multipliers):
    """simd.requantize_high against the spec's int64 requantisation, for every
    accumulator int32 holds (the extremes included) and multipliers across [2^30, 2^31)."""
    rng = np.random.default_rng(seed)
    hidden = 16
    p = random_int_params(rng, 16, hidden)
    m = {"random": rng.integers(1 << 30, 1 << 31, hidden), "largest": np.full(hidden, (1 << 31) - 1),
         "smallest": np.full(hidden, 1 << 30)}[multipliers]
    p = dataclasses.replace(p, m1=m, shift1=np.full(hidden, 31 - total_shift),
                            hidden_zero_point=127 - top)
    tables = GenomeTables.build([p])
    assert tables.high1[0] == tables.exact[0]
    width = padded_hidden(hidden)
    acc = np.concatenate([rng.integers(-2 ** 31, 2 ** 31, (64, hidden)),
                          np.full((1, hidden), -2 ** 31), np.full((1, hidden), 2 ** 31 - 1),
                          # next to the rounding steps of the clamp range
                          np.clip(np.arange(-2, 260)[:, None] * 2.0 ** total_shift / m[None],
                                  -2.0 ** 32, 2.0 ** 32).astype(np.int64)
                          + rng.integers(-1, 2, (262, hidden))])
    acc = np.clip(acc, -2 ** 31, 2 ** 31 - 1)
    dots = np.zeros((len(acc), width), np.int32)
    dots[:, :hidden] = acc - p.b1.astype(np.int64)[None]  # overflowing dots wrap, as a + b1 does
    out = np.zeros((len(acc), width), np.uint8)
    high_word_rows(dots, tables, out)
    expect = np.clip(requantize(acc, m, p.shift1), 0, top)
    assert np.array_equal(out[:, :hidden], expect)
    assert not out[:, hidden:].any()
