"""team.run_team starts every worker at once (they can all pass a barrier of
their own), more workers than cores included, and hands worker 0 the caller's
thread."""
import threading

import numpy as np
from numba import njit

from cellsim.sim.team import YIELD, atomic_load, meet, run_team


@njit(nogil=True)
def meet_and_mark(w, workers, arrived, marks, give_way):
    meet(arrived, workers, give_way)
    marks[w] = atomic_load(arrived, 0)


def test_every_worker_runs_at_once():
    for workers in (1, 2, 3):
        arrived, marks = np.zeros(1, np.int64), np.zeros(workers, np.int64)
        run_team(meet_and_mark, workers, arrived, marks, YIELD)
        assert (marks == workers).all()


def test_worker_zero_is_the_caller():
    seen = {}

    def kernel(w, workers):
        seen[w] = threading.current_thread()

    run_team(kernel, 2)
    assert seen[0] is threading.current_thread() and seen[1] is not seen[0]


@njit(nogil=True)
def weighted_sum(w, workers, values, out):
    total = 0.0
    for i in range(values.shape[0]):
        total += (i + 1) * values[i]
    out[0] = total


def test_compiled_entries_are_found_again_by_the_arguments_types():
    from cellsim.sim.team import compiled

    out = np.zeros(1)
    first = compiled(weighted_sum, np.arange(4.0), out)
    assert compiled(weighted_sum, np.ones(7), out) is first  # same types, new arrays
    strided = np.arange(8.0)[::2]  # another layout: another overload, not the first one's
    other = compiled(weighted_sum, strided, out)
    assert other is not first
    other(0, 1, strided, out)
    assert out[0] == sum((i + 1) * v for i, v in enumerate(strided))
    ints = np.arange(3)
    assert compiled(weighted_sum, ints, out) not in (first, other)
