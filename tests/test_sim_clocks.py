"""Cell clocks: the integer random draws and what they add up to (one time unit
is one training step at fire rate 0.5)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.errors import ConfigError
from cellsim.sim import ClockSpec, Grid
from cellsim.sim import clocks
from cellsim.sim.rng import log2_q16, xorshift32
from strategies import random_int_params


def test_xorshift32_is_marsaglias_13_17_5():
    x, seen = 1, []
    for _ in range(3):
        x = xorshift32(x)
        seen.append(x)
    assert seen == [270369, 67634689, 2647435461]


@settings(deadline=None)  # the first example compiles log2_q16 when the cache is cold
@given(st.integers(1, 2 ** 32 - 1))
def test_log2_q16_is_the_truncated_binary_logarithm(u):
    exact = math.log2(u)
    got = log2_q16(u) / 65536
    assert exact - 2 ** -15 <= got <= exact + 1e-12


def draws(draw, clock, n=20000, rng=12345):
    vector = clock.vector()
    out = np.empty(n, np.int64)
    for i in range(n):
        rng, out[i] = draw(vector, rng)
    return out


@pytest.mark.parametrize("fire_rate", [0.5, 1.0, 0.125])
def test_poisson_waits_are_exponential_with_mean_one_over_fire_rate(fire_rate):
    waits = draws(clocks.next_wait, ClockSpec("poisson", fire_rate)) / clocks.TICKS_PER_UNIT
    mean = 1 / fire_rate
    assert abs(waits.mean() / mean - 1) < 0.03
    assert abs(waits.std() / waits.mean() - 1) < 0.05        # exponential: std = mean
    assert abs(np.mean(waits > mean) - math.exp(-1)) < 0.015  # its tail


def test_periodic_waits_stay_within_the_jitter():
    clock = ClockSpec("periodic", 0.5, jitter=0.25)
    period = 2 * clocks.TICKS_PER_UNIT
    waits = draws(clocks.next_wait, clock)
    assert waits.min() >= period * 0.75 and waits.max() <= period * 1.25
    assert abs(waits.mean() / period - 1) < 0.01
    phases = draws(clocks.first_wait, clock)
    assert phases.min() >= 1 and phases.max() <= period
    assert abs(phases.mean() / (period / 2) - 1) < 0.03


def test_sync_coin_fires_with_the_fire_rate():
    vector = ClockSpec("sync", 0.3).vector()
    rng, fired = 99, 0
    for _ in range(20000):
        rng, coin = clocks.sync_fires(vector, rng)
        fired += coin
    assert abs(fired / 20000 - 0.3) < 0.015


def test_oscillator_rate_converts_local_ticks():
    assert clocks.to_global(1000, 1.0) == 1000
    assert clocks.to_global(1000, 2.0) == 500
    assert clocks.to_global(1000, 0.0) == clocks.NEVER
    assert clocks.rescaled_fire_time(100, 300, 1.0, 2.0) == 200  # the rest runs twice as fast
    assert clocks.rescaled_fire_time(100, 300, 1.0, 0.0) == clocks.NEVER


@pytest.mark.parametrize("kind", ["poisson", "periodic"])
def test_a_time_unit_is_a_training_step_at_fire_rate_one_half(kind):
    """Each cell fires 0.5 times per unit on average, whatever its clock."""
    grid = Grid(random_int_params(1, 16, 4), 16, clock=ClockSpec(kind, 0.5, skew=0.1), seed=3)
    grid.run(until=40)
    assert abs(grid.updates / (0.5 * 256 * 40) - 1) < 0.05


def test_skewed_oscillators_fire_at_their_own_rates():
    grid = Grid(random_int_params(2, 16, 4), 12, clock=ClockSpec("periodic", 0.5, skew=0.5),
                seed=4)
    grid.run(until=80)
    counts = grid.ram[..., 248:252].copy().view("<u4")[..., 0].ravel()
    assert np.corrcoef(counts, grid.state.rate)[0, 1] > 0.95


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "fast"}, "unknown clock"),
    ({"fire_rate": 0.0}, "fire rate"),
    ({"fire_rate": 1.5}, "fire rate"),
    ({"skew": 0.95}, "skew"),
    ({"kind": "periodic", "jitter": 1.0}, "jitter"),
    ({"kind": "sync", "skew": 0.1}, "sync clock"),
    ({"kind": "poisson", "jitter": 0.1}, "periodic clock only"),
])
def test_bad_clocks_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ClockSpec(**kwargs)
