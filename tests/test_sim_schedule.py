"""The planner's packed keys and sort against plain numpy: any events, sparse or
crowded in time (the insertion sort's fallback), in key order, stable on equal
keys, and each key giving back its event's time, kind, cell and sub."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.sim.events import KEY_KIND_BITS, KEY_TIME_BITS, KIND_NAMES, MAX_SUB, MAX_WINDOW_TICKS
from cellsim.sim.schedule import (TIME_SHIFT, event_key, key_cell, key_kind, key_sub,
                                  merge_order, sort_events)

TIME, KIND, CELL, SUB = range(4)  # columns of the test's event arrays


@st.composite
def event_arrays(draw):
    n = draw(st.integers(0, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    start = draw(st.integers(0, 1 << 30))
    span = draw(st.sampled_from([1, 3, 100, 1 << 20, MAX_WINDOW_TICKS - 1]))
    time = start + rng.integers(0, span, n)
    kind = rng.integers(0, 1 << KEY_KIND_BITS, n)  # the kinds in use and the room for more
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
    assert TIME_SHIFT + KEY_TIME_BITS <= 63


def test_crowded_instants_sort_themselves_only_when_nearly_in_order():
    n = 1000
    in_order, _ = sort_events(np.arange(n), event_key.py_func(0, 0, np.arange(n), 0, 0))
    assert np.array_equal(in_order, np.arange(n))
    backwards, keys = sort_events(np.arange(n), event_key.py_func(0, 0, np.arange(n)[::-1], 0, 0))
    assert len(backwards) == 0 and np.array_equal(np.argsort(keys), np.arange(n)[::-1])


def test_the_key_has_room_for_new_event_kinds():
    """A new event kind (the next free number, up to 31) packs and unpacks beside
    the others, ordered after them at equal times and by time first; the
    windows the engine plans fit the time field, a 4096 x 4096 grid the cell field."""
    from cellsim.sim.engine import WINDOW_UNITS
    from cellsim.sim.events import KEY_CELL_BITS
    from cellsim.sim.grid import MAX_SIDE
    from cellsim.sim.state import LAST_REST, rest_key

    assert len(KIND_NAMES) == 8 and (1 << KEY_KIND_BITS) >= 4 * len(KIND_NAMES)
    new_kind = len(KIND_NAMES)
    last_kind = (1 << KEY_KIND_BITS) - 1
    cell, last_tick = MAX_SIDE * MAX_SIDE - 1, MAX_WINDOW_TICKS - 1
    events = [(0, new_kind, 5, 3), (0, len(KIND_NAMES) - 1, cell, MAX_SUB), (0, last_kind, 0, 0),
              (1, 0, 0, 0), (last_tick, last_kind, cell, MAX_SUB), (last_tick, new_kind, cell, 0)]
    keys = np.array([event_key.py_func(t, k, c, s, 0) for t, k, c, s in events], np.int64)
    assert (keys >= 0).all()
    assert np.array_equal(key_kind.py_func(keys), [e[1] for e in events])
    assert np.array_equal(key_cell.py_func(keys), [e[2] for e in events])
    assert np.array_equal(key_sub.py_func(keys), [e[3] for e in events])
    assert np.array_equal(keys >> TIME_SHIFT, [e[0] for e in events])
    assert np.array_equal(np.argsort(keys), [1, 0, 2, 3, 5, 4])
    assert rest_key(last_kind, cell, MAX_SUB) <= LAST_REST < 1 << TIME_SHIFT
    assert WINDOW_UNITS * 65536 < MAX_WINDOW_TICKS and MAX_SIDE ** 2 <= 1 << KEY_CELL_BITS


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-3, 3) | st.integers(-(1 << 62), 1 << 62), max_size=300))
def test_merge_order_is_a_stable_sort(values):
    """The kernels' fallback when sort_events gives up: numpy's stable sort."""
    keys = np.array(values, np.int64)
    items = np.arange(100, 100 + len(keys), dtype=np.int64)
    order, sorted_keys = merge_order(items, keys)
    by_key = np.argsort(keys, kind="stable")
    assert np.array_equal(order, items[by_key])
    assert np.array_equal(sorted_keys, keys[by_key])
    assert np.array_equal(keys, np.array(values, np.int64))  # the inputs are left as they were


def test_a_band_crowded_out_of_order_comes_in_stable_key_order():
    """engine.band_order when sort_events gives up (1000 events at one instant,
    cells backwards, each twice): the events of its band in stable key order."""
    from cellsim.sim.engine import band_order

    cells = np.repeat(np.arange(500)[::-1], 2)
    all_keys = event_key.py_func(0, 0, cells, 0, 0)
    assert len(sort_events(np.arange(len(cells)), all_keys)[0]) == 0  # the fallback's case
    spans = np.array([[0, len(cells), -1]], np.int64)  # a mixed span: band [100, 400) picks
    order, keys = band_order(0, 100, 400, spans, all_keys)
    mine = np.flatnonzero((cells >= 100) & (cells < 400))
    expected = mine[np.argsort(all_keys[mine], kind="stable")]
    assert np.array_equal(order, expected) and np.array_equal(keys, all_keys[expected])
