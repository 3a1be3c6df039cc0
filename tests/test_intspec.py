"""Properties of the integer specification (cellsim/intspec) checked against
Python integers and fractions, the RAM layout, the synchronous grid step, and the
symmetries and invariants the design relies on (docs/integer-spec.md)."""
import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cellsim.intspec import (RAM_BYTES, perceive, quantize_multiplier, requantize,
                             step_grid_sync, update_cell, update_ram)
from cellsim.intspec import layout
from cellsim.intspec.cell_update import hidden_activations, output_accumulators
from cellsim.intspec.perceive import SOBEL_X, SOBEL_Y
from strategies import int_params, random_int_params

C = layout.CHANNELS
INT32 = st.integers(-(1 << 31), (1 << 31) - 1)
MULTIPLIERS = st.one_of(st.just(0), st.integers(1 << 30, (1 << 31) - 1))
SHIFTS = st.integers(-31, 30)
params16 = int_params(channels=st.just(C), hidden=st.integers(1, 32))


def neighbourhoods(lo=-128, hi=127, channels=C):
    return arrays(np.int8, (3, 3, channels), elements=st.integers(lo, hi))


def round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


# ---- requantisation ------------------------------------------------------------

@settings(max_examples=400)
@given(INT32, MULTIPLIERS, SHIFTS)
def test_requantize_is_exact_rounding_of_the_rational_product(acc, multiplier, shift):
    expected = round_half_up(Fraction(acc * multiplier, 1 << (31 - shift)))
    assert int(requantize(acc, multiplier, shift)) == expected


@settings(max_examples=50)
@given(st.lists(st.tuples(INT32, MULTIPLIERS, SHIFTS), min_size=1, max_size=40))
def test_requantize_elementwise_on_arrays(triples):
    acc, mult, shift = (np.array(v, np.int64) for v in zip(*triples))
    got = requantize(acc, mult, shift)
    assert got.tolist() == [round_half_up(Fraction(a * m, 1 << (31 - s))) for a, m, s in triples]


@given(st.floats(min_value=2.0 ** -40, max_value=2.0 ** 29))
def test_quantize_multiplier_reproduces_the_ratio(real):
    multiplier, shift = quantize_multiplier(real)
    if multiplier == 0:
        # below 2^-32 the product of any int32 accumulator rounds to 0
        assert (shift, real < 2.0 ** -32) == (0, True)
        assert round_half_up(Fraction((1 << 31) - 1) * Fraction(real)) == 0
        return
    assert (1 << 30) <= multiplier < (1 << 31)
    assert -31 <= shift <= 30
    represented = Fraction(multiplier) * Fraction(2) ** (shift - 31)
    assert abs(represented - Fraction(real)) <= Fraction(real) / (1 << 31)


@pytest.mark.parametrize("real", [0.0, -1.0, math.inf, math.nan, 2.0 ** 30, 1e300])
def test_quantize_multiplier_refuses_unusable_ratios(real):
    with pytest.raises(ValueError):
        quantize_multiplier(real)


def test_quantize_multiplier_carries_when_rounding_reaches_one():
    assert quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    assert quantize_multiplier(0.5) == (1 << 30, 0)


# ---- perception -------------------------------------------------------------------

def sobel_sums(n):
    n = np.asarray(n, np.int64)
    return np.einsum("abc,ab->c", n, SOBEL_X), np.einsum("abc,ab->c", n, SOBEL_Y)


def rounded_eighth(s: int) -> int:
    """The spec's gradient: S / 8 rounded half up, saturated to int8."""
    return min(127, max(-128, round_half_up(Fraction(int(s), 8))))


@given(neighbourhoods())
def test_perception_is_identity_and_rounded_sobel_eighth(n):
    sx, sy = sobel_sums(n)
    assert (np.abs(sx) <= 1020).all() and (np.abs(sy) <= 1020).all()
    expected = n[1, 1].astype(np.int64).tolist() + [rounded_eighth(s) for s in sx] + [
        rounded_eighth(s) for s in sy]
    assert perceive(n).astype(np.int64).tolist() == expected


def test_perception_never_wraps_around():
    n = np.zeros((3, 3, C), np.int8)
    n[:, 0, :] = -128
    n[:, 2, :] = 127  # the steepest rising x gradient an int8 state can hold
    gx = perceive(n)[C:2 * C]
    assert (gx == 127).all(), f"gx = {gx[0]} for a maximal positive gradient"
    gx = perceive(n[:, ::-1])[C:2 * C]
    assert (gx == -127).all(), f"gx = {gx[0]} for a maximal negative gradient"


@given(neighbourhoods())
def test_perception_bounds_and_dtype(n):
    out = perceive(n)
    assert out.dtype == np.int8 and out.shape == (3 * C,)
    assert out[:C].tolist() == n[1, 1].tolist()


@given(arrays(np.int8, (C,)))
def test_constant_neighbourhood_has_zero_gradients(state):
    n = np.broadcast_to(state, (3, 3, C))
    out = perceive(n)
    assert out[:C].tolist() == state.tolist()
    assert not out[C:].any()


@given(neighbourhoods(-127, 127))  # keeps |S| <= 1016: no saturation at +128
def test_quarter_turn_swaps_and_negates_the_gradients(n):
    """Turning the neighbourhood 90 degrees counterclockwise (x right, y down) maps
    the Sobel sums (sx, sy) to (sy, -sx) exactly; after rounding half up the
    negated one differs by +1 exactly where the sum is 4 mod 8 (a tie)."""
    base = perceive(n).astype(np.int64)
    turned = perceive(np.rot90(n, 1, axes=(0, 1))).astype(np.int64)
    sx, sy = sobel_sums(n)
    gx, gy = base[C:2 * C], base[2 * C:]
    assert turned[:C].tolist() == base[:C].tolist()
    assert turned[C:2 * C].tolist() == gy.tolist()
    assert turned[2 * C:].tolist() == (-gx + (sx % 8 == 4)).tolist()
    # a half turn negates both sums; four quarter turns are the identity
    assert perceive(np.rot90(n, 4, axes=(0, 1))).tolist() == perceive(n).tolist()
    half = perceive(np.rot90(n, 2, axes=(0, 1))).astype(np.int64)
    assert half[C:2 * C].tolist() == (-gx + (sx % 8 == 4)).tolist()
    assert half[2 * C:].tolist() == (-gy + (sy % 8 == 4)).tolist()


# ---- the cell update against a from-scratch Python-integer reference ----------------

def reference_update(p, n):
    """docs/integer-spec.md, step by step, in Python ints (no numpy arithmetic)."""
    n = [[[int(v) for v in n[y, x]] for x in range(3)] for y in range(3)]
    state = n[1][1]
    cells = [(y, x) for y in range(3) for x in range(3)]
    sx = [sum(int(SOBEL_X[y][x]) * n[y][x][c] for y, x in cells) for c in range(C)]
    sy = [sum(int(SOBEL_Y[y][x]) * n[y][x][c] for y, x in cells) for c in range(C)]
    perception = state + [rounded_eighth(s) for s in sx] + [rounded_eighth(s) for s in sy]
    zp = int(p.hidden_zero_point)

    def rq(acc, m, shift):
        return round_half_up(Fraction(acc * int(m), 1 << (31 - int(shift))))

    hidden = []
    for o in range(p.hidden):
        acc = int(p.b1[o]) + sum(int(w) * x for w, x in zip(p.w1[o], perception))
        hidden.append(min(127, max(zp, rq(acc, p.m1[o], p.shift1[o]) + zp)))
    new = []
    for o in range(C):
        acc = int(p.b2[o]) + sum(int(w) * (h - zp) for w, h in zip(p.w2[o], hidden))
        delta = min(127, max(-128, rq(acc, p.m2[o], p.shift2[o])))
        new.append(min(127, max(-128, state[o] + delta)))
    alphas = [n[y][x][layout.ALPHA] for y in range(3) for x in range(3)]
    pre = max(alphas) > p.alive_threshold
    post = max(alphas[:4] + [new[layout.ALPHA]] + alphas[5:]) > p.alive_threshold
    return new if pre and post else [0] * C


@settings(max_examples=60, deadline=None)
@given(params16, neighbourhoods(-64, 63))
def test_update_cell_equals_the_python_integer_reference(p, n):
    assert update_cell(p, n).tolist() == reference_update(p, n)


@settings(max_examples=40, deadline=None)
@given(params16, neighbourhoods(-64, 63))
def test_relu_clamps_at_the_zero_point(p, n):
    h = hidden_activations(p, perceive(n))
    assert (h >= p.hidden_zero_point).all() and (h <= 127).all()


@settings(max_examples=40, deadline=None)
@given(params16, neighbourhoods(), st.randoms(use_true_random=False))
def test_streaming_hidden_units_in_any_order_gives_the_same_accumulators(p, n, random):
    """The firmware never holds all hidden activations: it computes one hidden
    unit, adds its contribution to the 16 int32 accumulators, and moves on."""
    perception = [int(v) for v in perceive(n)]
    zp = int(p.hidden_zero_point)
    acc2 = [int(b) for b in p.b2]
    order = list(range(p.hidden))
    random.shuffle(order)
    for j in order:
        acc1 = int(p.b1[j]) + sum(int(w) * x for w, x in zip(p.w1[j], perception))
        h = min(127, max(zp, int(requantize(acc1, p.m1[j], p.shift1[j])) + zp))
        for o in range(C):
            acc2[o] += int(p.w2[o, j]) * (h - zp)
            assert -(1 << 31) <= acc2[o] < (1 << 31)  # int32 never overflows
    assert output_accumulators(p, hidden_activations(p, perceive(n))).tolist() == acc2


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 48))
def test_float32_products_are_exact(seed, hidden):
    """Engines may run both layers as float32 GEMMs: every partial sum of the
    products is an integer below 2^24, so float32 adds it exactly in any order."""
    rng = np.random.default_rng(seed)
    p = random_int_params(rng, C, hidden, extreme=True)
    x = rng.integers(-128, 128, (64, 3 * C))
    x[:8] = -128  # worst cases: every product at its largest magnitude
    w1 = p.w1.copy()
    w1[0] = -127
    exact1 = x.astype(np.int64) @ w1.T.astype(np.int64)
    assert (np.abs(exact1) < 2 ** 24).all()
    assert np.array_equal((x.astype(np.float32) @ w1.T.astype(np.float32)).astype(np.int64), exact1)
    h = rng.integers(p.hidden_zero_point, 128, (64, hidden)) - p.hidden_zero_point
    h[:8] = 127 - p.hidden_zero_point
    w2 = p.w2.copy()
    w2[0] = 127
    exact2 = h.astype(np.int64) @ w2.T.astype(np.int64)
    assert (np.abs(exact2) < 2 ** 24).all()
    assert np.array_equal((h.astype(np.float32) @ w2.T.astype(np.float32)).astype(np.int64), exact2)


@settings(max_examples=60, deadline=None)
@given(int_params(channels=st.just(C), hidden=st.integers(1, 16)), neighbourhoods(),
       st.booleans())
def test_a_fresh_model_never_changes_a_live_state(p, n, any_alive):
    """w2 = 0 and b2 = 0 (the zero-initialised last layer): the delta is exactly 0."""
    fresh = dataclasses.replace(p, w2=np.zeros_like(p.w2), b2=np.zeros_like(p.b2))
    alive = bool((n[..., layout.ALPHA] > p.alive_threshold).any())
    out = update_cell(fresh, n)
    assert out.tolist() == (n[1, 1].tolist() if alive else [0] * C)


# ---- the 256-byte RAM -------------------------------------------------------------

def ram_for(n, rng) -> np.ndarray:
    """Random RAM bytes whose mailbox and state hold neighbourhood `n`."""
    ram = rng.integers(0, 256, RAM_BYTES).astype(np.uint8)
    layout.state(ram)[:] = n[1, 1]
    box = layout.mailbox(ram)
    for k, (dy, dx) in enumerate(layout.NEIGHBOUR_OFFSETS):
        box[k] = n[dy + 1, dx + 1]
    return ram


@settings(max_examples=60, deadline=None)
@given(params16, neighbourhoods(), st.integers(0, 2**32 - 1))
def test_update_ram_matches_update_cell_and_fills_the_scratch(p, n, seed):
    ram = ram_for(n, np.random.default_rng(seed))
    assume((n[..., layout.ALPHA] > p.alive_threshold).any())
    out = update_ram(p, ram)
    assert out.dtype == np.uint8 and out.shape == (RAM_BYTES,)
    assert layout.state(out).tolist() == update_cell(p, n).tolist()
    perception = perceive(n)
    gradients = out[layout.GRAD_X:layout.GRAD_Y + C].view(np.int8)
    assert gradients.tolist() == perception[C:].tolist()
    acc = out[layout.ACC:layout.ACC + 4 * C].view("<i4")
    assert acc.tolist() == output_accumulators(p, hidden_activations(p, perception)).tolist()
    # the mailbox and everything after the update count belong to other agents
    assert out[:layout.STATE].tolist() == ram[:layout.STATE].tolist()
    assert out[layout.RNG:layout.COUNT].tolist() == ram[layout.RNG:layout.COUNT].tolist()
    assert out[layout.FLAGS:].tolist() == ram[layout.FLAGS:].tolist()
    count_before = int(layout.u32(ram, layout.COUNT)[0])
    assert int(layout.u32(out, layout.COUNT)[0]) == (count_before + 1) % 2**32


@settings(max_examples=60, deadline=None)
@given(params16, neighbourhoods(), st.integers(0, 2**32 - 1))
def test_a_dead_neighbourhood_zeroes_the_state_and_leaves_the_scratch(p, n, seed):
    assume(p.alive_threshold > -128)
    n = n.copy()
    n[..., layout.ALPHA] = np.minimum(n[..., layout.ALPHA], p.alive_threshold)
    ram = ram_for(n, np.random.default_rng(seed))
    out = update_ram(p, ram)
    assert not layout.state(out).any()
    changed = np.flatnonzero(out != ram)
    allowed = {*range(layout.STATE, layout.STATE + C), *range(layout.COUNT, layout.COUNT + 4)}
    assert set(changed.tolist()) <= allowed


@pytest.mark.parametrize("before, after", [(0, 1), (41, 42), (2**32 - 1, 0)])
def test_update_count_increments_and_wraps(before, after):
    p = random_int_params(0, C, 8)
    rng = np.random.default_rng(1)
    for alive in (True, False):
        n = rng.integers(-128, 128, (3, 3, C)).astype(np.int8)
        n[..., layout.ALPHA] = 127 if alive else -128
        ram = ram_for(n, rng)
        layout.u32(ram, layout.COUNT)[0] = before
        assert int(layout.u32(update_ram(p, ram), layout.COUNT)[0]) == after


def test_update_ram_does_not_modify_its_argument():
    p = random_int_params(0, C, 8)
    n = np.full((3, 3, C), 100, np.int8)
    ram = ram_for(n, np.random.default_rng(2))
    copy = ram.copy()
    update_ram(p, ram)
    assert np.array_equal(ram, copy)


def test_mailbox_slots_follow_the_documented_offsets():
    assert len(layout.NEIGHBOUR_OFFSETS) == layout.MAILBOX_SLOTS
    for k, (dy, dx) in enumerate(layout.NEIGHBOUR_OFFSETS):
        # my neighbour at (dy, dx) sees me at (-dy, -dx): the receiver's slot
        assert layout.NEIGHBOUR_OFFSETS[layout.receiver_slot(k)] == (-dy, -dx)
    assert layout.ACC % 4 == 0 and layout.RNG % 4 == 0 and layout.COUNT % 4 == 0
    assert layout.ACC + 4 * C == layout.RNG and layout.RESERVED + 3 == RAM_BYTES


# ---- the synchronous grid step ---------------------------------------------------------

def neighbourhood_at(grid, y, x, torus):
    h, w, c = grid.shape
    out = np.zeros((3, 3, c), np.int8)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            yy, xx = y + dy, x + dx
            if torus:
                out[dy + 1, dx + 1] = grid[yy % h, xx % w]
            elif 0 <= yy < h and 0 <= xx < w:
                out[dy + 1, dx + 1] = grid[yy, xx]
    return out


@settings(max_examples=50, deadline=None)
@given(params16, st.integers(3, 7), st.integers(3, 7), st.booleans(), st.data())
def test_one_fired_cell_in_a_static_grid_is_update_cell(p, h, w, torus, data):
    """With every cell's own alpha above the threshold (so every other cell stays
    alive whatever the fired cell does), firing one cell changes that cell alone,
    exactly as update_cell of its neighbourhood says."""
    assume(p.alive_threshold < 127)
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    grid = rng.integers(-128, 128, (h, w, C)).astype(np.int8)
    grid[..., layout.ALPHA] = rng.integers(p.alive_threshold + 1, 128, (h, w))
    y, x = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    fire = np.zeros((h, w), bool)
    fire[y, x] = True
    out = step_grid_sync(p, grid, fire, torus=torus)
    expected = grid.copy()
    expected[y, x] = update_cell(p, neighbourhood_at(grid, y, x, torus))
    assert np.array_equal(out, expected)
    # no cell fired: nothing changes
    assert np.array_equal(step_grid_sync(p, grid, np.zeros((h, w), bool), torus=torus), grid)
