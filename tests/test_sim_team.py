"""team.run_team starts every worker at once (they can all pass a barrier of
their own), more workers than cores included, and hands worker 0 the caller's
thread."""
import threading

import numpy as np
from numba import njit

from cellsim.sim.team import (DONE, POSTS, Crew, atomic_add, atomic_load, meet,
                              next_piece, run_team)


@njit(nogil=True)
def meet_and_mark(w, workers, arrived, marks):
    meet(arrived, workers)
    marks[w] = atomic_load(arrived, 0)


def test_every_worker_runs_at_once():
    for workers in (1, 2, 3):
        arrived, marks = np.zeros(1, np.int64), np.zeros(workers, np.int64)
        run_team(meet_and_mark, workers, arrived, marks)
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


@njit(nogil=True)
def add_pieces(w, workers, control, total):
    """A crew helper that adds each piece's bound to total[0]."""
    served, idle = atomic_load(control, DONE), 0
    while True:
        bound, idle = next_piece(control, served, idle)
        if bound < 0:
            return
        total[0] += bound
        served += 1
        atomic_add(control, DONE, 1)


def test_a_crew_runs_every_piece_leaves_when_idle_and_comes_back():
    import time

    total, mine = np.zeros(1, np.int64), []
    from concurrent.futures import ThreadPoolExecutor

    crew = Crew(add_pieces, (total,), ThreadPoolExecutor(1))
    for bound in (5, 7, 11):
        crew.run(mine.append, bound)
        assert total[0] == sum(mine)  # the helper's piece was done before run returned
    assert mine == [5, 7, 11] and crew.control[POSTS] & 1  # still in its kernel
    deadline = time.monotonic() + 10
    while crew.control[POSTS] & 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not crew.control[POSTS] & 1  # left on its own after IDLE_YIELDS
    gone = list(crew.futures)
    crew.run(mine.append, 13)  # started again: a new helper did the piece
    # (whether it is still in its kernel now depends on the scheduler: it
    # leaves after IDLE_YIELDS yields, a millisecond or so on an idle core)
    assert total[0] == 36 and crew.futures and crew.futures != gone
    helpers = list(crew.futures)
    crew.stop()
    assert helpers and all(f.done() for f in helpers) and not crew.control[POSTS] & 1
