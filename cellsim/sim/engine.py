"""The fast engine: exactly the reference's events and bytes, batched.

Each window's events are planned in advance (schedule.py); every worker thread
runs the events of its band of rows in key order, in batches of consecutive,
pairwise independent updates (both layers as packed integer products, simd.py),
and waits for the other band only at the rows where they meet (team.py). The
synchronous clock runs whole grid steps (sync.py)."""
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import njit

from ..intspec import layout
from . import clocks, team
from .cells import RamCells
from .events import (DELIVER, EV_ARG0, EV_ARG1, EV_ARG2, EV_ROUTE, EVENT_FIELDS, FIRE, KILL,
                     MAX_WINDOW_TICKS, RAMFLIP, REBOOT, ROMFLIP, SYNC)
from .kernels import (ALPHA, CHANNELS, FLAG_DEAD, FLAGS, STATE, Scratch, batch_network,
                      begin_update, commit_state, deliver, flip_bit, mailbox_alive, reboot,
                      queue_update, residual_words, send_state, worker_scratch, ZERO_WORD)
from .memory import aligned_empty
from .rom import GenomeTables, flip_rom_bit, padded_hidden
from .schedule import (TIME_SHIFT, event_key, key_cell, key_kind, key_sub, merge_order, plan_band,
                       sort_events)
from .simd import prefetch_line, prefetch_once
from .state import LAST_REST, Pending, rest_key
from .sync import apply_sync_fault, block_count, sync_steps
from .team import atomic_load, atomic_store

SLOTS = layout.MAILBOX_SLOTS
# Events planned at a time (time units). Each window costs a round trip through
# Python and two hand-overs to the worker threads (about 0.3 ms at 72x72). On a
# 72x72 grid 32 and 64 units measured alike in 400-unit runs, and 64 made
# 40-unit runs (one window instead of two) 7-12% faster. A window's table takes
# about 40 bytes x 1.3 x 32 events a cell (8.6 MB at 72x72).
WINDOW_UNITS = 64
# Large grids plan shorter windows: at most about this many events a window
# (a window costs some 60 bytes an event in the table, keys and sorted order,
# kept from window to window; a 1024x1024 grid planned 64 units at a time
# held 1.3-1.7 GB, five times its cell RAM). A window of half a million events
# is tens of milliseconds of work, so its own costs no longer matter there.
WINDOW_EVENTS = 1 << 19
# The planner's last-arrival table when no link is faulty (it reads it only with links).
NO_LINKS = np.full((1, SLOTS), -1, np.int64)
AHEAD_RUNS = 16  # a caller stepping in runs of u units gets windows of 16 u (to the above)
# ... and at least this many events (50 units at 72x72): each window costs
# its planning's start, a sort per band and the start of its crew's helper.
# 40 units in 0.5-unit runs, measured in one process against 40-unit runs:
# 0.64 (median 0.58) of their rate with windows of 2^16 events, 0.87 (0.71)
# with 2^18. A window cut short (a restore, a new fault) wastes its planning.
AHEAD_EVENTS = 1 << 18
BATCH = 64                 # most events a worker queues before running their network
DONE = np.iinfo(np.int64).max
AHEAD = 12                 # events between a RAM row's prefetch and its use
ROW_BYTES = layout.RAM_BYTES


# -- executing a band ----------------------------------------------------------

@njit(cache=True, inline="always")
def start_event(e, key, ev, ram, words, dead, neighbours, routes, inflight, threshold, s, count):
    """Event e (its key, and row e of the event table ev), except the network of
    a live update, which joins the queue (the worker's Scratch s) at position
    `count`; returns the queue's new length. words = ram as uint64, inflight too."""
    kind, cell = key_kind(key), key_cell(key)
    row = ram[cell]
    if kind == FIRE:
        genome = ev[e, EV_ARG0]
        begin_update(row, ev[e, EV_ARG1], ev[e, EV_ARG2])
        if row[STATE + ALPHA] > threshold[genome] or mailbox_alive(row, threshold[genome]):
            queue_update(row, cell, genome, e, s, count)
            return count + 1
        # the dead-cell shortcut: no live neighbour, state 0, scratch kept
        row[STATE:STATE + CHANNELS] = 0
        send_state(words, dead, cell, ZERO_WORD, ZERO_WORD, neighbours, routes, ev[e, EV_ROUTE],
                   inflight)
    elif kind == DELIVER:
        deliver(words, dead, cell, key_sub(key), inflight, ev[e, EV_ARG0])
    elif kind == RAMFLIP:
        flip_bit(row, ev[e, EV_ARG0])
        dead[cell] = row[FLAGS] & FLAG_DEAD
    elif kind == KILL:
        row[FLAGS] |= FLAG_DEAD
        dead[cell] = 1
    elif kind == REBOOT:
        reboot(row, ev[e, EV_ARG1], ev[e, EV_ARG2])
        send_state(words, dead, cell, ZERO_WORD, ZERO_WORD, neighbours, routes, ev[e, EV_ROUTE],
                   inflight)
    return count


@njit(cache=True, _nrt=False)
def finish_updates(count, ev, ram, words, dead, neighbours, routes, inflight, tables, s):
    """The queued updates s[:count] (pairwise independent): both layers for all
    of them, then each one's state, alive test and messages."""
    batch_network(count, tables, s)
    for j in range(count):
        cell, genome = s.cells[j], s.genomes[j]
        low, high = residual_words(ram[cell], s.acc2[j], tables, genome)
        low, high = commit_state(ram[cell], words, cell, low, high, tables.threshold[genome])
        send_state(words, dead, cell, low, high, neighbours, routes, ev[s.events[j], EV_ROUTE],
                   inflight)


@njit(cache=True, inline="always")
def neighbours_done(pending, neighbours, cell, lo, hi, key):
    """Whether every event before `key` at the cell's neighbours outside the
    band [lo, hi) is done: each such cell's word in `pending` holds the key of
    its first event not yet done."""
    for k in range(SLOTS):
        other = neighbours[cell, k]
        if other >= 0 and (other < lo or other >= hi) and atomic_load(pending, other) < key:
            return False
    return True


@njit(cache=True)  # once a window: a call, compiled once for run_band and run_segment
def band_order(w, lo, hi, spans, all_keys):
    """Worker w's events in key order: (rows of ev, their keys). Its events are
    every event of the spans (rows [start, end, owner]: index ranges of ev, all
    at cells of band `owner`, or anywhere if owner < 0) at a cell of its band
    [lo, hi): a span of its own whole, and those of mixed spans found by the
    cell bits of their keys (8 bytes an event, read in sequence)."""
    total = 0
    for span in range(spans.shape[0]):
        if spans[span, 2] == w:
            total += spans[span, 1] - spans[span, 0]
        elif spans[span, 2] < 0:
            for e in range(spans[span, 0], spans[span, 1]):
                total += lo <= key_cell(all_keys[e]) < hi
    mine = np.empty(total, np.int64)
    n = 0
    for span in range(spans.shape[0]):
        for e in range(spans[span, 0], spans[span, 1]):
            if spans[span, 2] == w or spans[span, 2] < 0 and lo <= key_cell(all_keys[e]) < hi:
                mine[n] = e
                n += 1
    order, keys = sort_events(mine, all_keys)
    if order.shape[0] < n:  # crowded instants out of order: a stable sort of the keys
        order, keys = merge_order(mine, keys)
    return order, keys


@njit(cache=True)  # once a window: a call, compiled once for run_band and run_segment
def edge_successors(keys, lo, hi, edge, pending, then):
    """then[i]: for an event at an edge cell, the key of the cell's next event
    (what `pending` says of the cell once event i is done); each edge cell's
    word in `pending` becomes the key of its first event."""
    first_key = np.full(hi - lo, DONE, np.int64)
    for i in range(keys.shape[0] - 1, -1, -1):
        cell = key_cell(keys[i])
        if edge[cell]:
            then[i] = first_key[cell - lo]
            first_key[cell - lo] = keys[i]
    for cell in range(lo, hi):
        if edge[cell]:
            atomic_store(pending, cell, first_key[cell - lo])


@njit(cache=True, inline="always")
def next_batch(mark):
    """One past the last batch number in `mark` (a loop: numba's array max
    compiles its NaN handling, 0.8 s of the cold start)."""
    last = mark[0]
    for batch in mark:
        last = max(last, batch)
    return last + 1


@njit(cache=True, inline="always")
def first_after(keys, lo, hi, bound):
    """The first i in [lo, hi) with keys[i] > bound (hi if none), keys sorted:
    np.searchsorted(keys[lo:hi], bound, side="right") + lo as a loop (numba's
    compiles comparisons for every dtype, complex too: 1 s of the cold start)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] <= bound:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def run_band(w, workers, bands, spans, ev, all_keys, ram, words, dead, neighbours, edge, routes,
             inflight, tables, workspace, marks, pending, started, stats):
    """Worker w runs the events at the cells of its band (row w of `bands`), in
    key order (band_order), collecting runs of consecutive, pairwise
    independent events into batches.
    Only events at edge cells (cells with a neighbour in another band) touch
    another band's bytes or read bytes another band writes, so only they wait:
    until the other bands have done every earlier event at their neighbours.
    Each worker keeps, for each of its edge cells, the key of the cell's first
    event not yet done in `pending` (set for all before the workers meet at
    `started`, then after each batch); one about to wait runs its batch first,
    so the earliest pending edge event never waits and the workers cannot
    deadlock."""
    s = worker_scratch(workspace, w)
    lo, hi = bands[w, 0], bands[w, 1]
    order, keys = band_order(w, lo, hi, spans, all_keys)
    then = np.empty(keys.shape[0], np.int64)
    edge_successors(keys, lo, hi, edge, pending, then)
    team.meet(started, workers)
    mark = marks[w]
    batches, waits = run_in_order(ev, order, keys, then, lo, hi, ram, words, dead, neighbours,
                                  edge, routes, inflight, tables, s, mark, next_batch(mark),
                                  pending)
    stats[w, 0], stats[w, 1], stats[w, 2] = keys.shape[0], batches, waits


@njit(cache=True, nogil=True)
def run_segment(w, workers, bands, spans, ev, all_keys, order, keys, then, progress, key_bound,
                ram, words, dead, neighbours, edge, routes, inflight, tables, workspace, marks,
                pending, started, stats):
    """run_band for a window planned once and run in pieces: each call runs
    worker w's next events up to key_bound. Worker w's events are span w + 1
    (spans whose owners are the workers) and go, in key order, to the same
    index range of order, keys and then, on the first call (progress[w, 0] <
    0: the workers meet once, at `started`). progress[w] = (next event, next
    batch number); the words of `pending` carry over from call to call."""
    s = worker_scratch(workspace, w)
    lo, hi = bands[w, 0], bands[w, 1]
    first, last = spans[w + 1, 0], spans[w + 1, 1]
    mark = marks[w]
    if progress[w, 0] < 0:
        o, k = band_order(w, lo, hi, spans, all_keys)
        for i in range(last - first):  # (a loop: a slice assignment compiles numba's
            order[first + i], keys[first + i] = o[i], k[i]  # shape-mismatch message, 3 s)
        edge_successors(keys[first:last], lo, hi, edge, pending, then[first:last])
        if progress[w, 1] < 0:  # the last window's next batch number, unless unknown
            progress[w, 1] = next_batch(mark)
        progress[w, 0] = first
        team.meet(started, workers)
    pos = progress[w, 0]
    end = first_after(keys, pos, last, key_bound)
    batches, waits = run_in_order(ev, order[pos:end], keys[pos:end], then[pos:end], lo, hi, ram,
                                  words, dead, neighbours, edge, routes, inflight, tables, s, mark,
                                  progress[w, 1], pending)
    progress[w, 0], progress[w, 1] = end, progress[w, 1] + batches
    stats[w, 0], stats[w, 1], stats[w, 2] = end - pos, batches, waits


@njit(cache=True, nogil=True)
def serve_segments(w, workers, control, bands, spans, ev, all_keys, order, keys, then, progress,
                   ram, words, dead, neighbours, edge, routes, inflight, tables, workspace, marks,
                   pending, started, stats):
    """run_segment's pieces for worker w of a team.Crew, one after another as
    the caller posts them, until it stops the crew or none comes for a while."""
    served, idle = atomic_load(control, team.DONE), 0
    while True:
        bound, idle = team.next_piece(control, served, idle)
        if bound < 0:
            return
        run_segment(w, workers, bands, spans, ev, all_keys, order, keys, then, progress, bound,
                    ram, words, dead, neighbours, edge, routes, inflight, tables, workspace, marks,
                    pending, started, stats)
        served += 1
        team.atomic_add(control, team.DONE, 1)


@njit(cache=True)
def next_fires(keys, spans, progress, start, next_fire):
    """Each cell's next firing (global tick) after a piece of a window: its
    first firing among the events not yet run (next_fire holds the window's
    final ones, for the cells that fire no more in it)."""
    for w in range(progress.shape[0]):
        for i in range(spans[w + 1, 1] - 1, progress[w, 0] - 1, -1):
            if key_kind(keys[i]) == FIRE:
                next_fire[key_cell(keys[i])] = start + (keys[i] >> TIME_SHIFT)


# numba counts references to every array a function is given, at every call and
# at every inlined call: with some twenty arrays, that cost several times the
# update itself. The kernels below allocate nothing and take arrays their
# callers own, so they are compiled without reference counting (_nrt=False).

@njit(cache=True, inline="always")
def finish_batch(first, end, order, keys, then, ev, ram, words, dead, neighbours, edge, routes,
                 inflight, tables, s, count, pending):
    """Run the queued updates of the batch (events first .. end - 1 of `order`),
    then tell the other bands that its edge events are done."""
    # np.int64: the queue's length is a literal 0 in some of the caller's paths,
    # and numba would compile finish_updates (and batch_network) for Literal[int](0) too
    finish_updates(np.int64(count), ev, ram, words, dead, neighbours, routes, inflight, tables, s)
    for i in range(first, end):
        cell = key_cell(keys[i])
        if edge[cell]:
            atomic_store(pending, cell, then[i])


@njit(cache=True, nogil=True, _nrt=False)
def run_in_order(ev, order, keys, then, lo, hi, ram, words, dead, neighbours, edge, routes,
                 inflight, tables, s, mark, batch, pending):
    """The events `order` (rows of ev in key order, `keys` theirs) as run_band
    says, in batches numbered from `batch` on (`mark` holds, for each cell, the
    last batch that held the cell or a neighbour: an event conflicts with the
    batch if its own cell's mark is the batch's); returns (batches, waits).
    Events come from all over the table and their cells from all over the band:
    both are fetched ahead."""
    capacity = s.cells.shape[0]
    n = order.shape[0]
    size = count = batches = waits = first = 0
    for i in range(n):
        if i + 2 * AHEAD < n:
            prefetch_once(ev, order[i + 2 * AHEAD], 0)
            # ... and its neighbour list, read below AHEAD events before the
            # event (a large grid's list of 64 bytes a cell is far bigger than the caches)
            prefetch_once(neighbours, key_cell(keys[i + 2 * AHEAD]), 0)
        if i + AHEAD < n:
            ahead = key_cell(keys[i + AHEAD])
            for line in range(0, ROW_BYTES, 64):
                prefetch_line(ram, ahead, line)
            for k in range(SLOTS):  # the mailbox lines its messages will land in
                other = neighbours[ahead, k]
                if other >= 0:
                    prefetch_line(ram, other, (CHANNELS * (SLOTS - 1 - k)) & ~63)
        e, key = order[i], keys[i]
        cell = key_cell(key)
        conflict = size == capacity or mark[cell] == batch
        ready = not edge[cell] or neighbours_done(pending, neighbours, cell, lo, hi, key)
        if conflict or not ready:
            if size:
                finish_batch(first, i, order, keys, then, ev, ram, words, dead, neighbours, edge,
                             routes, inflight, tables, s, count, pending)
                batch, size, count, batches, first = batch + 1, 0, 0, batches + 1, i
            if not ready:
                waits += 1
                spins = 0
                while not neighbours_done(pending, neighbours, cell, lo, hi, key):
                    spins += 1
                    if spins > team.SPINS:
                        team.give_way()
        mark[cell] = batch
        for k in range(SLOTS):
            other = neighbours[cell, k]
            if other >= 0:
                mark[other] = batch
        size += 1
        count = start_event(e, key, ev, ram, words, dead, neighbours, routes, inflight,
                            tables.threshold, s, count)
    if size:
        finish_batch(first, n, order, keys, then, ev, ram, words, dead, neighbours, edge, routes,
                     inflight, tables, s, count, pending)
        batches += 1
    return batches, waits


# -- the engine ----------------------------------------------------------------

def dead_mirror(ram) -> np.ndarray:
    """(N,) uint8 copy of each cell's dead bit, kept current by the kernels."""
    return (ram[:, FLAGS] & FLAG_DEAD).astype(np.uint8)


def default_workers() -> int:
    """numba's threads, minus the cores other processes keep busy: a level is a
    few tens of microseconds of work, and a worker that has to wait for the OS
    to give it a core stalls every level (the lesson of a shared machine)."""
    threads = numba.get_num_threads()
    try:
        busy = round(os.getloadavg()[0])
    except (OSError, AttributeError):
        busy = 0
    return max(1, min(threads, (os.cpu_count() or 1) - busy))


class FastEngine(RamCells):
    """Runs a GridState forward with `workers` threads (default: default_workers())."""

    def __init__(self, state, schedule, neighbours, workers=None):
        self.state, self.schedule, self.neighbours = state, schedule, neighbours
        self.workers = team.team_size(workers or default_workers())
        self.vector = state.clock.vector()
        self._tables_for = None
        self._workspace = None
        self._edge = self._mark = self._pending_keys = None
        self._buffers = {}  # arrays kept from window to window (_kept)
        self._window = None  # a window planned once and run in pieces (_open_window)
        self._crew_pool = None  # the thread of its crew's helper (team.Crew), made when needed
        self._ahead = 1      # runs of the last length the next window plans for
        # Kept between windows of firings only (O(cells) to make afresh): the
        # cells' dead flags, and each worker's next batch number (marks).
        self._dead = self._batch_next = None
        # Statistics: events each worker ran, batches, waits at band edges.
        self.band_events = np.zeros(self.workers, np.int64)
        self.batches = 0
        self.waits = 0
        # Built now, with the grid, rather than in its first run (0.5 ms on 72x72).
        self.tables()
        self._edges()
        self._marks()
        self._pending()

    # The genome tables are rebuilt only when the genome list changed.
    def tables(self):
        key = tuple(map(id, self.state.genomes))
        if self._tables_for != key:
            self._tables = GenomeTables.build(self.state.genomes)
            self._tables_for = key
        return self._tables

    def dead_flags(self):
        """The dead flags the kernels keep current between windows of firings,
        or None when the RAM may have changed since (settle(keep=False))."""
        return self._dead

    def workspace(self, capacity):
        padded = padded_hidden(self.state.genomes[0].hidden)
        ws = self._workspace
        if ws is None or ws.cells.shape[1] < capacity or ws.dots1.shape[2] != padded:
            self._workspace = Scratch.allocate(self.workers, capacity, padded)
        return self._workspace

    def run(self, bound: tuple, max_updates=None, plan_until=None) -> None:
        """Every event up to `bound` (or max_updates updates). plan_until: the
        last tick of the caller's short runs, if it knows it (Grid.run's horizon):
        no window is planned past it."""
        st = self.state
        if max_updates is not None:
            self.settle(keep=False)
        done = 0
        while st.cursor < bound and (max_updates is None or done < max_updates):
            if self._window is None and max_updates is None and self.plans_ahead:
                self._window = self._open_window(bound, plan_until)
            if self._window is not None:
                self._advance(bound)
                continue
            start = max(st.cursor[0], 0)
            window = min(bound, (start + self._window_ticks() - 1, LAST_REST))
            left = None if max_updates is None else max_updates - done
            if st.clock.synchronous:
                done += self._run_sync(window, left)
            else:
                done += self._run_async(window, left)
        self._compact_genomes()

    # -- asynchronous clocks, a window planned once and run in pieces -----------
    # A run to time T used to plan, sort and start the workers for its events
    # alone: 0.3-0.5 ms a call before any update, most of a 0.5-unit run. When
    # nothing but firings can happen in the next WINDOW_UNITS (no fault, no
    # message on a wire, no faulty link), the engine plans and sorts them once
    # and each run takes the next piece of the window: one start of the workers
    # per call. Anything else that changes what the plan assumed (new faults,
    # a restored snapshot, the RAM handed out to the caller) settles the state
    # at the cut and drops the plan (settle); the next run plans from there.
    plans_ahead = True

    def _window_ticks(self, events=WINDOW_EVENTS) -> int:
        """Ticks a window spans: WINDOW_UNITS, or fewer where that would plan
        more than about `events` events (large grids, fast clocks)."""
        st = self.state
        per_unit = st.cells * st.clock.fire_rate * max(1.0, float(st.rate.max(initial=1.0)))
        units = min(WINDOW_UNITS, events / max(per_unit, 1.0))
        return max(1, min(int(units * clocks.TICKS_PER_UNIT), MAX_WINDOW_TICKS - 1))

    def _open_window(self, bound, plan_until=None):
        """Plan the next window of firings only (a dict), or None when this
        window needs the general path. The first window after a start plans
        just the run asked for (a run from a restored snapshot should not pay
        for planning what it will not run); the next ones, AHEAD runs of the
        last one's length (a caller stepping in short runs), or, when the caller
        said where its steps end (plan_until), up to there."""
        st, sched = self.state, self.schedule
        if st.clock.synchronous or sched.has_links or len(st.pending) or \
                st.cursor[1] != LAST_REST or st.cells < self.workers:
            return None
        start = max(st.cursor[0], 0)
        if plan_until is not None and plan_until >= bound[0]:
            # The caller says where its steps end: plan to there, no further.
            end = min(start + self._window_ticks() - 1, plan_until)
        else:
            asked = bound[0] - st.cursor[0]
            span = max(asked, self._ahead * asked)
            if self._ahead > 1:
                span = max(span, self._window_ticks(AHEAD_EVENTS))
            end = start + min(self._window_ticks(), span) - 1
        self._ahead = AHEAD_RUNS
        faults = sched.events(st.cursor[0] + 1, end + 1)
        if len(faults):
            end = int(faults.time.min()) - 1  # the window ends before the first fault
            if end <= st.cursor[0]:
                return None
        plan = self._plan((end, LAST_REST))
        n = len(plan["keys"])
        progress = np.full((self.workers, 2), -1, np.int64)
        if self._batch_next is not None:
            progress[:, 1] = self._batch_next
        if self._dead is None:
            self._dead = dead_mirror(st.ram)
        return dict(plan=plan, order=self._kept("order", (n,)), keys=self._kept("sorted", (n,)),
                    then=self._kept("then", (n,)), progress=progress, dead=self._dead,
                    started=np.zeros(1, np.int64), stats=np.zeros((self.workers, 3), np.int64))

    def _advance(self, bound):
        """Run the open window's events up to the bound (or its end)."""
        st, window = self.state, self._window
        plan = window["plan"]
        target = min(bound, plan["bound"])
        stats = window["stats"]
        key_bound = ((target[0] - plan["start"]) << TIME_SHIFT) | target[1]
        if "kernel" not in window:  # typed and gathered once a window, not once a run
            # (nothing here changes within a window: whatever would, drops it)
            head, tail = self._window_arguments(plan, window)
            window["kernel"] = team.compiled(run_segment, *head, key_bound, *tail)
            window["arguments"] = head, tail
            if self.workers == 2:
                if self._crew_pool is None:
                    self._crew_pool = ThreadPoolExecutor(1, thread_name_prefix="cellsim-crew")
                window["crew"] = team.Crew(serve_segments, head + tail, self._crew_pool)
        head, tail = window["arguments"]
        kernel = window["kernel"]
        if "crew" in window:
            window["crew"].run(lambda bound: kernel(0, 2, *head, bound, *tail), key_bound)
        else:
            team.run_team(kernel, self.workers, *head, key_bound, *tail)
        self.band_events += stats[:, 0]
        events, batches, waits = stats.sum(axis=0).tolist()
        self.batches += batches
        self.waits += waits
        st.counts[FIRE] += events  # a window of firings only
        st.cursor = target
        if target == plan["bound"]:
            st.next_fire = plan["next_fire"]
            self._batch_next = window["progress"][:, 1].copy()
            self._close_window()

    def _window_arguments(self, plan, window) -> tuple:
        """run_segment's arguments before its key bound and after it."""
        head = (self._bands(), plan["spans"], plan["ev"], plan["keys"], window["order"],
                window["keys"], window["then"], window["progress"])
        return head, self._cells_arguments(plan, window["dead"], window["started"],
                                           window["stats"])

    def _band_arguments(self, plan, dead) -> tuple:
        """run_band's arguments."""
        return (self._bands(), plan["spans"], plan["ev"], plan["keys"],
                *self._cells_arguments(plan, dead, np.zeros(1, np.int64),
                                       np.zeros((self.workers, 3), np.int64)))

    def _cells_arguments(self, plan, dead, started, stats) -> tuple:
        """The last arguments of run_band and run_segment: the cells, the plan's
        messages, the genome, the workers' scratch and meeting words."""
        st = self.state
        return (st.ram.view(np.int8), st.ram.view(np.uint64), dead, self.neighbours,
                self._edges(), plan["routes"], plan["inflight"].view(np.uint64), self.tables(),
                self.workspace(BATCH), self._marks(), self._pending(), started, stats)

    def compile_kernels(self, kernels=("run_segment", "serve_segments", "run_band")) -> None:
        """Compile, or load from numba's cache, kernels that run windows (by
        name: run_segment with next_fires, its crew's serve_segments, the general
        path's run_band) for an empty window of the types a planned one has,
        without planning one: `cellsim compile` compiles the planner in another
        process meanwhile."""
        empty = np.zeros(0, np.int64)
        plan = dict(spans=np.zeros((self.workers + 1, 3), np.int64),
                    ev=np.zeros((0, EVENT_FIELDS), np.int64), keys=empty, routes=empty,
                    inflight=np.zeros((1, CHANNELS), self.state.pending.payload.dtype))
        window = dict(order=empty, keys=empty, then=empty, dead=dead_mirror(self.state.ram),
                      progress=np.full((self.workers, 2), -1, np.int64),
                      started=np.zeros(1, np.int64), stats=np.zeros((self.workers, 3), np.int64))
        head, tail = self._window_arguments(plan, window)
        if "run_segment" in kernels:
            team.compiled(run_segment, *head, 0, *tail)
            next_fires(window["keys"], plan["spans"], window["progress"], 0,
                       self.state.next_fire.copy())  # (an empty window: nothing to do)
        if "serve_segments" in kernels:
            team.compiled(serve_segments, np.zeros(4, np.int64), *head, *tail)
        if "run_band" in kernels:
            team.compiled(run_band, *self._band_arguments(plan, window["dead"]))

    def compile_planner(self) -> None:
        """Compile, or load, the planner's kernels: plan a unit ahead and drop it
        (the state is left as it was)."""
        self._plan((max(self.state.cursor[0], 0) + clocks.TICKS_PER_UNIT, LAST_REST))

    def _close_window(self) -> None:
        """Drop the open window, sending its crew's helper away."""
        if self._window is not None and "crew" in self._window:
            self._window["crew"].stop()
        self._window = None

    def settle(self, keep=True) -> None:
        """Make the state's clocks those of the cut the last run stopped at
        (each cell's next firing), and drop the open window unless `keep`."""
        window = self._window
        if window is not None and window["progress"][0, 0] >= 0:
            plan = window["plan"]
            next_fire = plan["next_fire"].copy()
            next_fires(window["keys"], plan["spans"], window["progress"], plan["start"],
                       next_fire)
            self.state.next_fire = next_fire
        if not keep:  # (the RAM may change: its dead flags are read again)
            if window is not None:
                self._batch_next = window["progress"][:, 1].copy()
            self._close_window()
            self._ahead = 1
            self._dead = None

    def forget(self) -> None:
        """Drop the open window without settling: the state was replaced."""
        self._close_window()
        self._ahead = 1
        self._dead = self._batch_next = None

    # -- asynchronous clocks, the general path ---------------------------------
    def _run_async(self, bound, left) -> int:
        plan = self._plan(bound)
        if left is not None and plan["fires"] >= left > 0:
            plan = self._plan(self._key_of_fire(plan, left))
        self._execute(plan)
        return plan["fires"]

    def _fault_events(self, bound):
        """This window's fault events (key in (cursor, bound]) and ROM flip targets."""
        st = self.state
        events = self.schedule.events(max(st.cursor[0], 0), bound[0] + 1)
        if len(events) == 0:  # (most windows: spared a dozen numpy calls)
            return events, np.zeros(0, np.int64), list(st.genomes)
        rest = rest_key(events.kind, events.cell, events.sub)
        after = (events.time > st.cursor[0]) | ((events.time == st.cursor[0])
                                                & (rest > st.cursor[1]))
        within = (events.time < bound[0]) | ((events.time == bound[0]) & (rest <= bound[1]))
        keep = after & within
        events = type(events)(*[getattr(events, f)[keep] for f in
                                ("time", "kind", "cell", "sub", "bit", "factor")])
        genomes = list(st.genomes)
        current = st.genome_of.copy()
        targets = np.full(len(events), -1, np.int64)
        for j in np.flatnonzero(events.kind == ROMFLIP):
            cell = events.cell[j]
            flipped = flip_rom_bit(genomes[current[cell]], int(events.bit[j]))
            if flipped is not None:
                genomes.append(flipped)
                targets[j] = current[cell] = len(genomes) - 1
        return events, targets, genomes

    def _plan(self, bound):
        st, sched = self.state, self.schedule
        start = max(st.cursor[0], 0)  # the keys count ticks from here
        faults, targets, genomes = self._fault_events(bound)
        if len(faults):
            by_cell = np.argsort(faults.cell, kind="stable")
            cell_start = np.searchsorted(faults.cell[by_cell], np.arange(st.cells + 1))
        else:  # (most windows: a few numpy calls fewer, as below)
            by_cell, cell_start = np.zeros(0, np.int64), np.zeros(st.cells + 1, np.int64)
        pending = st.pending
        if len(pending):
            p_rest = rest_key(DELIVER, pending.cell, pending.slot)
            due = (pending.time < bound[0]) | ((pending.time == bound[0]) & (p_rest <= bound[1]))
            pending = Pending(*(np.ascontiguousarray(a) for a in (
                pending.time, pending.cell, pending.slot, pending.payload)))
        else:
            due = np.zeros(0, bool)
        first_message = int(due.sum())
        links = (sched.has_links, sched.link_mask, sched.link_start, sched.link_end,
                 sched.link_loss, sched.link_delay)
        # Each worker plans its band of cells (the one it runs, _bands) into its
        # own regions of the outputs.
        workers = min(self.workers, st.cells)
        bands = self._bands(workers)
        span = (bound[0] - start + 1) / clocks.TICKS_PER_UNIT
        per_band = int(st.cells / workers * span * st.clock.fire_rate * 1.3) + 16 * len(faults) + 64
        due_events = (pending.time[due], pending.cell[due], pending.slot[due])
        while True:
            # The planner advances these; rates and genomes change only by faults,
            # the links' last arrivals only with links (link_last is N x 8).
            next_fire = st.next_fire.copy()
            rate, genome_of = (st.rate.copy(), st.genome_of.copy()) if len(faults) else \
                (st.rate, st.genome_of)
            link_last = st.link_last.copy() if sched.has_links else NO_LINKS
            band_routes = SLOTS * per_band if sched.has_links else 0
            out = self._kept("events", (first_message + workers * per_band, EVENT_FIELDS))
            keys = self._kept("keys", (len(out),))
            routes = np.empty(workers * band_routes, np.int64)
            pending_out = tuple(np.empty(workers * band_routes, np.int64) for _ in range(4))
            regions = np.array([[first_message + w * per_band, first_message + (w + 1) * per_band,
                                 w * band_routes, (w + 1) * band_routes, w * band_routes,
                                 (w + 1) * band_routes, first_message + w * band_routes]
                                for w in range(workers)], np.int64)
            counts = self._kept("counts", (workers, -(-len(st.counts) // 8) * 8))
            counts[:] = 0  # a cache line a worker: each planner counts its events in its own
            # The deliveries of messages sent in earlier windows are events (and
            # messages) 0, 1, ...
            if first_message:
                d_time, d_cell, d_slot = due_events
                for column, v in ((EV_ARG0, np.arange(first_message)), (EV_ARG1, 0),
                                  (EV_ARG2, 0), (EV_ROUTE, -1)):
                    out[:first_message, column] = v
                keys[:first_message] = event_key.py_func(d_time, DELIVER, d_cell, d_slot, start)
            plan_args = (start, bound[0], bound[1], np.uint64(st.seed), self.vector, st.ram,
                         next_fire, rate, genome_of, (faults.time, faults.kind, faults.sub,
                                                      faults.bit, faults.factor, targets),
                         cell_start, by_cell, self.neighbours, links, link_last, out, keys,
                         routes, pending_out)
            results = np.zeros((workers, 4), np.int64)
            team.run_team(plan_band, workers, bands, *plan_args, regions, counts, results)
            if (results[:, 0] >= 0).all():
                break
            per_band *= 2
        ev = out
        counts = counts[:, :len(st.counts)].sum(axis=0)
        counts[DELIVER] += first_message
        # A planner's region holds events of its own band only, unless links
        # send messages (deliveries) across, or the planners' bands are not the
        # workers' (fewer cells than workers).
        pure = not sched.has_links and workers == self.workers
        spans = np.array([[0, first_message, -1]] + [
            [regions[w, 0], regions[w, 0] + results[w, 0], w if pure else -1]
            for w in range(workers)], np.int64)
        inflight = np.zeros((max(first_message + workers * band_routes, 1), CHANNELS),
                            pending.payload.dtype)
        if first_message:
            inflight[:first_message] = pending.payload[due]
        new_pending = tuple(np.concatenate([a[regions[w, 4]:regions[w, 4] + results[w, 3]]
                                            for w in range(workers)]) for a in pending_out)
        return dict(bound=bound, start=start, ev=ev, keys=keys, spans=spans, routes=routes,
                    inflight=inflight,
                    next_fire=next_fire, rate=rate, genome_of=genome_of,
                    link_last=link_last if sched.has_links else st.link_last,
                    genomes=genomes, counts=counts, fires=int(counts[FIRE]),
                    carried=Pending(*(a[~due] for a in (pending.time, pending.cell, pending.slot,
                                                        pending.payload))) if len(pending)
                    else pending,
                    new_pending=new_pending)

    @staticmethod
    def _key_order(plan):
        """All the plan's events (rows of plan["ev"]) in key order, as one list."""
        valid = np.concatenate([np.arange(a, b) for a, b, _ in plan["spans"]])
        order, keys = sort_events(valid, plan["keys"])
        return order if len(order) == len(valid) else valid[np.argsort(keys, kind="stable")]

    def _key_of_fire(self, plan, nth):
        """The key of the nth (1-based) update of a plan: the bound that stops there."""
        keys = plan["keys"][self._key_order(plan)]
        key = int(keys[key_kind.py_func(keys) == FIRE][nth - 1])
        return (plan["start"] + (key >> TIME_SHIFT), rest_key(FIRE, int(key_cell.py_func(key)), 0))

    def _execute(self, plan):
        st = self.state
        st.genomes = plan["genomes"]
        args = self._band_arguments(plan, dead_mirror(st.ram))
        team.run_team(run_band, self.workers, *args)
        self._dead, self._batch_next = args[6], None  # the kernels kept the dead flags current
        stats = args[-1]
        self.band_events += stats[:, 0]
        self.batches += int(stats[:, 1].sum())
        self.waits += int(stats[:, 2].sum())
        self._commit(plan)

    def _kept(self, name, shape):
        """An int64 array of this shape in a buffer the engine keeps for the next
        windows (grown when short): a window's event table is megabytes, and
        fresh memory costs the kernel a page fault and a clearing every 4 KB."""
        size = int(np.prod(shape))
        buffer = self._buffers.get(name)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[name] = aligned_empty(size + size // 4, np.int64)
        return buffer[:size].reshape(shape)

    def _bands(self, workers=None):
        """(workers, 2): worker w's cells [lo, hi), a band of whole rows when it can."""
        n, workers = self.state.cells, workers or self.workers
        return np.array([[n * w // workers, n * (w + 1) // workers] for w in range(workers)],
                        np.int64)

    def _edges(self):
        """uint8 (N,): cells with a neighbour in another worker's band."""
        if self._edge is None:
            band = np.searchsorted(self._bands()[:, 1], np.arange(self.state.cells),
                                   side="right").astype(np.int32)
            edge = np.zeros(self.state.cells, bool)
            for k in range(SLOTS):  # a slot at a time: (N, 8) temporaries were 0.7 GB at 2048^2
                nb = self.neighbours[:, k]
                edge |= (nb >= 0) & (band[np.maximum(nb, 0)] != band)
            self._edge = edge.astype(np.uint8)
        return self._edge

    def _pending(self):
        """Per edge cell, the key of its first event not yet done (run_band)."""
        if self._pending_keys is None:
            self._pending_keys = np.full(self.state.cells, DONE, np.int64)
        return self._pending_keys

    def _marks(self):
        """Per worker and cell, the last batch that held the cell or a neighbour (run_band)."""
        if self._mark is None:
            self._mark = np.zeros((self.workers, self.state.cells), np.int64)
        return self._mark

    def _commit(self, plan):
        """The planned clocks, wires and counters become the state's."""
        st = self.state
        st.next_fire, st.rate, st.genome_of = plan["next_fire"], plan["rate"], plan["genome_of"]
        st.link_last = plan["link_last"]
        st.counts += plan["counts"]
        p_time, p_cell, p_slot, p_message = plan["new_pending"]
        carried = plan["carried"]
        if len(p_time) == 0 and len(carried) == 0:
            st.pending = carried
        else:
            st.pending = Pending(np.concatenate([carried.time, p_time]),
                                 np.concatenate([carried.cell, p_cell]),
                                 np.concatenate([carried.slot, p_slot]),
                                 np.concatenate([carried.payload, plan["inflight"][p_message]]))
        st.cursor = plan["bound"]

    # -- the synchronous clock -------------------------------------------------
    def _sync_keys(self, faults, bound):
        """[(key, j)] in order: fault j, or a step of the sync clock (j = -1)."""
        st = self.state
        step = max(0, -(-(st.cursor[0] + 1) // clocks.TICKS_PER_UNIT))
        steps = []
        while step * clocks.TICKS_PER_UNIT <= bound[0]:
            key = (step * clocks.TICKS_PER_UNIT, rest_key(SYNC, 0, 0))
            if st.cursor < key <= bound:
                steps.append(key)
            step += 1
        return sorted([((int(faults.time[j]), rest_key(int(faults.kind[j]), int(faults.cell[j]),
                                                        int(faults.sub[j]))), j)
                       for j in range(len(faults))] + [(key, -1) for key in steps])

    def _run_sync(self, bound, left) -> int:
        st = self.state
        self._dead = self._batch_next = None  # (its faults change flags outside run_band)
        faults, targets, genomes = self._fault_events(bound)
        st.genomes = genomes
        keys = self._sync_keys(faults, bound)
        done = self._sync_events(keys, faults, targets, bound, left)
        st.counts[FIRE] += done
        return done

    def _sync_events(self, keys, faults, targets, bound, left) -> int:
        """Faults one by one; the steps between them as one run of the workers."""
        st = self.state
        n = st.cells
        scratch = (np.zeros(n, bool), np.zeros(n, bool), np.zeros((n, CHANNELS), np.int64))
        workspace = self.workspace(block_count(n, self.workers))
        ram = st.ram.view(np.int8)
        dead = dead_mirror(st.ram)
        none = np.zeros(0, np.int64)
        inflight = np.zeros((1, 2), np.uint64)
        done = 0
        i = 0
        while i < len(keys):
            key, j = keys[i]
            if j >= 0:
                apply_sync_fault(int(faults.kind[j]), int(faults.cell[j]), int(faults.time[j]),
                                 int(faults.bit[j]), float(faults.factor[j]), int(targets[j]),
                                 np.uint64(st.seed), ram, st.ram.view(np.uint64), dead, st.rate,
                                 st.genome_of, self.neighbours, none, inflight)
                st.counts[faults.kind[j]] += 1
                st.cursor = key
                i += 1
                continue
            steps = 1
            while i + steps < len(keys) and keys[i + steps][1] < 0:
                steps += 1
            updates = sync_steps(self.workers, steps, -1 if left is None else left - done, ram,
                                 self.neighbours, st.genome_of, st.rate, self.vector,
                                 self.tables(), workspace, *scratch)
            done += int(updates.sum())
            st.counts[SYNC] += len(updates)
            i += len(updates)
            st.cursor = keys[i - 1][0]
            if left is not None and done >= left:
                return done
        st.cursor = bound
        return done

    def _compact_genomes(self):
        """Drop genomes no cell runs any more (ROM flips leave old copies behind)."""
        st = self.state
        if len(st.genomes) < 2:
            return
        used = np.unique(st.genome_of)
        if len(used) == len(st.genomes):
            return
        remap = np.full(len(st.genomes), -1, np.int64)
        remap[used] = np.arange(len(used))
        st.genomes = [st.genomes[g] for g in used]
        st.genome_of = remap[st.genome_of]
