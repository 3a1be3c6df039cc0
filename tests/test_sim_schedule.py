"""The planner's packed keys and sort against plain numpy: any events, sparse or
crowded in time (the insertion sort's fallback), in key order, stable on equal
keys, and each key giving back its event's time, kind, cell and sub."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.sim.events import MAX_SUB
from cellsim.sim.schedule import (TIME_SHIFT, event_key, key_cell, key_kind, key_sub,
                                  sort_events)

TIME, KIND, CELL, SUB = range(4)  # columns of the test's event arrays


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
    full = np.zeros((n + 10, 4), np.int64)
    for column, v in zip((TIME, KIND, CELL, SUB), (time, kind, cell, sub)):
        full[valid, column] = v
    return valid.astype(np.int64), full, start


@settings(max_examples=200, deadline=None)
@given(event_arrays())
def test_sort_events_is_a_stable_key_sort(events):
    valid, ev, start = events
    time, kind, cell, sub = (ev[valid, c] for c in (TIME, KIND, CELL, SUB))
    keys = [time - start, kind, cell, np.minimum(sub, 1023)]
    expected = valid[np.lexsort(keys[::-1])]
    all_keys = event_key.py_func(ev[:, TIME], ev[:, KIND], ev[:, CELL], ev[:, SUB], start)
    mine = all_keys[valid]
    assert np.array_equal(key_kind.py_func(mine), kind)
    assert np.array_equal(key_cell.py_func(mine), cell)
    assert np.array_equal(key_sub.py_func(mine), np.minimum(sub, MAX_SUB))
    order, packed = sort_events(valid, all_keys)
    if len(order) < len(valid):  # too crowded: the engine sorts the packed keys
        order = valid[np.argsort(packed, kind="stable")]
    else:  # the keys come back in the order's order
        assert np.all(np.diff(packed) >= 0)
        assert np.array_equal(packed >> TIME_SHIFT, ev[order, TIME] - start)
    assert np.array_equal(order, expected)
    assert TIME_SHIFT + 26 <= 63


def test_crowded_instants_sort_themselves_only_when_nearly_in_order():
    n = 1000
    in_order, _ = sort_events(np.arange(n), event_key.py_func(0, 0, np.arange(n), 0, 0))
    assert np.array_equal(in_order, np.arange(n))
    backwards, keys = sort_events(np.arange(n), event_key.py_func(0, 0, np.arange(n)[::-1], 0, 0))
    assert len(backwards) == 0 and np.array_equal(np.argsort(keys), np.arange(n)[::-1])
