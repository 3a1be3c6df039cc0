"""The planner's sort and level grouping against plain numpy: any events, sparse
or crowded in time (the radix fallback), in key order, stable on equal keys."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.sim.events import neighbour_table
from cellsim.sim.schedule import TIME_SHIFT, level_order, sort_events


@st.composite
def event_arrays(draw):
    n = draw(st.integers(0, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    start = draw(st.integers(0, 1 << 30))
    span = draw(st.sampled_from([1, 3, 100, 1 << 20, (1 << 26) - 1]))
    time = start + rng.integers(0, span, n)
    kind = rng.integers(0, 8, n)
    cell = rng.integers(0, draw(st.sampled_from([2, 50, 1 << 24])), n)
    sub = rng.integers(0, 2000, n)
    valid = np.sort(rng.choice(n + 10, n, replace=False)) if n else np.zeros(0, np.int64)
    full = [np.zeros(n + 10, np.int64) for _ in range(4)]
    for a, v in zip(full, (time, kind, cell, sub)):
        a[valid] = v
    return valid.astype(np.int64), full, start


@settings(max_examples=200, deadline=None)
@given(event_arrays())
def test_sort_events_is_a_stable_key_sort(events):
    valid, (time, kind, cell, sub), start = events
    keys = [time[valid] - start, kind[valid], cell[valid], np.minimum(sub[valid], 1023)]
    expected = valid[np.lexsort(keys[::-1])]
    order, packed = sort_events(valid, time, kind, cell, sub, start)
    if len(order) < len(valid):  # too crowded: the engine sorts the packed keys
        order = valid[np.argsort(packed, kind="stable")]
    assert np.array_equal(order, expected)
    assert TIME_SHIFT + 26 <= 63


def test_crowded_instants_sort_themselves_only_when_nearly_in_order():
    n = 1000
    zeros = np.zeros(n, np.int64)
    in_order, _ = sort_events(np.arange(n), zeros, zeros, np.arange(n), zeros, 0)
    assert np.array_equal(in_order, np.arange(n))
    backwards, keys = sort_events(np.arange(n), zeros, zeros, np.arange(n)[::-1].copy(), zeros, 0)
    assert len(backwards) == 0 and np.array_equal(np.argsort(keys), np.arange(n)[::-1])


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 60), st.integers(0, 2 ** 32 - 1))
def test_levels_are_independent_and_keep_each_neighbourhoods_order(height, width, n, seed):
    rng = np.random.default_rng(seed)
    neighbours = neighbour_table(height, width, False)
    cells = rng.integers(0, height * width, n)
    ev = tuple(np.arange(n) * 10 + j for j in range(8))
    ev = ev[:2] + (cells,) + ev[3:]
    order = rng.permutation(n)
    level_start, grouped = level_order(order, ev, neighbours)
    assert level_start[0] == 0 and level_start[-1] == n
    assert np.array_equal(np.sort(grouped[0]), np.sort(ev[1][order]))
    position = {int(e): i for i, e in enumerate(order)}
    level_of = np.zeros(n, np.int64)
    for level in range(len(level_start) - 1):
        members = grouped[0][level_start[level]:level_start[level + 1]] // 10
        assert np.all(np.diff(cells[members]) > 0)  # one event per cell, in cell order
        level_of[members] = level
    for a in range(n):  # events in each other's 3x3 neighbourhood keep the key order
        for b in range(n):
            near = cells[a] == cells[b] or cells[b] in neighbours[cells[a]]
            if near and position[a] < position[b]:
                assert level_of[a] < level_of[b]
