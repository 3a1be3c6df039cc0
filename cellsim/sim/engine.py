"""The fast engine: exactly the reference's events and bytes, batched.

Each window's events are planned in advance (schedule.py) and split into levels
of pairwise independent events; the worker threads share each level, running
every update whole (both layers as int16 pair products, simd.py) while its
data is in cache, and meet after it (team.py). The synchronous clock runs whole
grid steps (sync.py)."""
import os

import numba
import numpy as np
from numba import njit

from ..intspec import layout
from . import clocks, team
from .events import DELIVER, FIRE, KILL, MAX_WINDOW_TICKS, RAMFLIP, REBOOT, ROMFLIP, SYNC
from .kernels import (ALPHA, CHANNELS, FLAG_DEAD, FLAGS, STATE, Scratch, batch_network,
                      begin_update, commit_state, deliver, flip_bit, mailbox_alive, reboot,
                      residual_into, send_state, worker_scratch)
from .rom import GenomeTables, flip_rom_bit, padded_hidden
from .schedule import level_order, plan_band, sort_events
from .state import LAST_REST, Pending, rest_key
from .sync import apply_sync_fault, block_count, sync_steps
from .team import meet

SLOTS = layout.MAILBOX_SLOTS
# Events planned at a time: 8 units (20k events on 72x72) keep the planner's
# arrays in cache, where 16 units took it 50-60 ns more per update.
WINDOW_UNITS = 8


# -- executing a level ---------------------------------------------------------

@njit(cache=True)
def run_events(first, last, ev, ram, words, dead, neighbours, routes, inflight, tables, s):
    """Events first..last-1 (in level order: pairwise independent); ev = the
    planned arrays after the time; words = ram as uint64, inflight too."""
    kinds, cells, subs, args0, args1, args2, route = ev
    count = np.int64(0)  # from a literal 0, numba would compile batch_network a second time
    for e in range(first, last):
        kind, cell = kinds[e], cells[e]
        row = ram[cell]
        if kind == FIRE:
            genome = args0[e]
            begin_update(row, args1[e], args2[e])
            threshold = tables.threshold[genome]
            if row[STATE + ALPHA] > threshold or mailbox_alive(row, threshold):
                s.events[count], s.cells[count], s.genomes[count] = e, cell, genome
                count += 1
            else:  # the dead-cell shortcut: no live neighbour, state 0, scratch kept
                row[STATE:STATE + CHANNELS] = 0
                send_state(words, dead, cell, neighbours, routes, route[e], inflight)
        elif kind == DELIVER:
            deliver(words, dead, cell, subs[e], inflight, args0[e])
        elif kind == RAMFLIP:
            flip_bit(row, args0[e])
            dead[cell] = row[FLAGS] & FLAG_DEAD
        elif kind == KILL:
            row[FLAGS] |= FLAG_DEAD
            dead[cell] = 1
        elif kind == REBOOT:
            reboot(row, args1[e], args2[e])
            send_state(words, dead, cell, neighbours, routes, route[e], inflight)
    batch_network(ram, count, tables, s)
    for j in range(count):
        cell, genome = s.cells[j], s.genomes[j]
        residual_into(ram[cell], s.acc2[j], tables, genome, s.new_state)
        commit_state(ram[cell], s.new_state, tables.threshold[genome])
        send_state(words, dead, cell, neighbours, routes, route[s.events[j]], inflight)


@njit(cache=True, nogil=True)
def run_levels(w, workers, level_start, ev, ram, words, dead, neighbours, routes, inflight,
               tables, workspace, arrived, give_way):
    """Worker w's share of every level, level after level; the workers meet at
    a barrier after each (team.run_team)."""
    scratch = worker_scratch(workspace, w)
    for level in range(level_start.shape[0] - 1):
        lo, hi = level_start[level], level_start[level + 1]
        run_events(lo + (hi - lo) * w // workers, lo + (hi - lo) * (w + 1) // workers, ev, ram,
                   words, dead, neighbours, routes, inflight, tables, scratch)
        meet(arrived, (level + 1) * workers, give_way)


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


class FastEngine:
    """Runs a GridState forward with `workers` threads (default: default_workers())."""

    def __init__(self, state, schedule, neighbours, workers=None):
        self.state, self.schedule, self.neighbours = state, schedule, neighbours
        self.workers = team.team_size(workers or default_workers())
        self.vector = state.clock.vector()
        self._tables_for = None
        self._workspace = None
        self.levels_run = 0      # statistics: levels, their events, and those
        self.level_events = 0    # big enough to be shared by the workers
        self.shared_levels = 0

    # The genome tables are rebuilt only when the genome list changed.
    def tables(self):
        key = tuple(map(id, self.state.genomes))
        if self._tables_for != key:
            self._tables = GenomeTables.build(self.state.genomes)
            self._tables_for = key
        return self._tables

    def workspace(self, capacity):
        padded = padded_hidden(self.state.genomes[0].hidden)
        ws = self._workspace
        if ws is None or ws.cells.shape[1] < capacity or ws.dots1.shape[2] != padded:
            self._workspace = Scratch.allocate(self.workers, capacity, padded)
        return self._workspace

    def run(self, bound: tuple, max_updates=None) -> None:
        st = self.state
        done = 0
        while st.cursor < bound and (max_updates is None or done < max_updates):
            start = max(st.cursor[0], 0)
            window = min(bound, (start + min(WINDOW_UNITS * clocks.TICKS_PER_UNIT,
                                             MAX_WINDOW_TICKS - 1) - 1, LAST_REST))
            left = None if max_updates is None else max_updates - done
            if st.clock.synchronous:
                done += self._run_sync(window, left)
            else:
                done += self._run_async(window, left)
        self._compact_genomes()

    # -- asynchronous clocks ---------------------------------------------------
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
        rest = ((events.kind << 34) | (events.cell << 10) | np.minimum(events.sub, 1023))
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
        faults, targets, genomes = self._fault_events(bound)
        by_cell = np.argsort(faults.cell, kind="stable")
        cell_start = np.searchsorted(faults.cell[by_cell], np.arange(st.cells + 1))
        pending = st.pending
        p_rest = (DELIVER << 34) | (pending.cell << 10) | pending.slot
        due = (pending.time < bound[0]) | ((pending.time == bound[0]) & (p_rest <= bound[1]))
        first_message = int(due.sum())
        pending = Pending(*(np.ascontiguousarray(a) for a in (pending.time, pending.cell,
                                                              pending.slot, pending.payload)))
        links = (sched.has_links, sched.link_mask, sched.link_start, sched.link_end,
                 sched.link_loss, sched.link_delay)
        # Each worker plans a band of cells into its own regions of the outputs.
        workers = min(self.workers, st.cells)
        bands = np.array([[st.cells * w // workers, st.cells * (w + 1) // workers]
                          for w in range(workers)], np.int64)
        span = (bound[0] - max(st.cursor[0], 0) + 1) / clocks.TICKS_PER_UNIT
        per_band = int(st.cells / workers * span * st.clock.fire_rate * 1.3) + 16 * len(faults) + 64
        due_events = (pending.time[due], pending.cell[due], pending.slot[due])
        while True:
            next_fire, rate, genome_of = st.next_fire.copy(), st.rate.copy(), st.genome_of.copy()
            link_last = st.link_last.copy()
            band_routes = SLOTS * per_band if sched.has_links else 0
            out = tuple(np.empty(first_message + workers * per_band, np.int64) for _ in range(8))
            routes = np.empty(workers * band_routes, np.int64)
            pending_out = tuple(np.empty(workers * band_routes, np.int64) for _ in range(4))
            regions = np.array([[first_message + w * per_band, first_message + (w + 1) * per_band,
                                 w * band_routes, (w + 1) * band_routes, w * band_routes,
                                 (w + 1) * band_routes, first_message + w * band_routes]
                                for w in range(workers)], np.int64)
            counts = np.zeros((workers, len(st.counts)), np.int64)
            # The deliveries of messages sent in earlier windows are events (and
            # messages) 0, 1, ...
            d_time, d_cell, d_slot = due_events
            for a, v in zip(out, (d_time, DELIVER, d_cell, d_slot, np.arange(first_message), 0, 0,
                                  -1)):
                a[:first_message] = v
            plan_args = (bound[0], bound[1], np.uint64(st.seed), self.vector, st.ram, next_fire,
                         rate, genome_of, (faults.time, faults.kind, faults.sub, faults.bit,
                                           faults.factor, targets), cell_start, by_cell,
                         self.neighbours, links, link_last, out, routes, pending_out)
            results = np.zeros((workers, 4), np.int64)
            team.run_team(plan_band, workers, bands, *plan_args, regions, counts, results)
            if (results[:, 0] >= 0).all():
                break
            per_band *= 2
        ev = out
        counts = counts.sum(axis=0)
        counts[DELIVER] += first_message
        valid = np.concatenate([np.arange(first_message)] + [
            np.arange(regions[w, 0], regions[w, 0] + results[w, 0]) for w in range(workers)])
        inflight = np.zeros((max(first_message + workers * band_routes, 1), CHANNELS),
                            pending.payload.dtype)
        inflight[:first_message] = pending.payload[due]
        order, keys = sort_events(valid, ev[0], ev[1], ev[2], ev[3], max(st.cursor[0], 0))
        if len(order) < len(valid):
            order = valid[np.argsort(keys, kind="stable")]
        new_pending = tuple(np.concatenate([a[regions[w, 4]:regions[w, 4] + results[w, 3]]
                                            for w in range(workers)]) for a in pending_out)
        return dict(bound=bound, ev=ev, order=order, routes=routes, inflight=inflight,
                    next_fire=next_fire, rate=rate, genome_of=genome_of, link_last=link_last,
                    genomes=genomes, counts=counts, fires=int(counts[FIRE]),
                    carried=Pending(*(a[~due] for a in (pending.time, pending.cell, pending.slot,
                                                        pending.payload))),
                    new_pending=new_pending)

    def _key_of_fire(self, plan, nth):
        """The key of the nth (1-based) update of a plan: the bound that stops there."""
        ev, order = plan["ev"], plan["order"]
        fires = order[ev[1][order] == FIRE]
        e = fires[nth - 1]
        return (int(ev[0][e]), rest_key(FIRE, int(ev[2][e]), 0))

    def _execute(self, plan):
        st = self.state
        st.genomes = plan["genomes"]
        # Level order, so that the workers read their events in sequence.
        level_start, ev = level_order(plan["order"], plan["ev"], self.neighbours)
        top = len(level_start) - 1
        biggest = int(np.diff(level_start).max()) if top else 0
        args = (level_start, ev, st.ram.view(np.int8), st.ram.view(np.uint64), dead_mirror(st.ram),
                self.neighbours, plan["routes"], plan["inflight"].view(np.uint64), self.tables(),
                self.workspace(biggest))
        team.run_team(run_levels, self.workers, *args, np.zeros(1, np.int64), team.YIELD)
        self.levels_run += top
        self.level_events += len(plan["order"])
        if self.workers > 1:
            self.shared_levels += int((np.diff(level_start) >= self.workers).sum())
        self._commit(plan)

    def _commit(self, plan):
        """The planned clocks, wires and counters become the state's."""
        st = self.state
        st.next_fire, st.rate, st.genome_of = plan["next_fire"], plan["rate"], plan["genome_of"]
        st.link_last = plan["link_last"]
        st.counts += plan["counts"]
        p_time, p_cell, p_slot, p_message = plan["new_pending"]
        carried = plan["carried"]
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
                                 self.tables(), workspace, *scratch, team.YIELD)
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
        used = np.unique(st.genome_of)
        if not st.genomes or len(used) == len(st.genomes):
            return
        remap = np.full(len(st.genomes), -1, np.int64)
        remap[used] = np.arange(len(used))
        st.genomes = [st.genomes[g] for g in used]
        st.genome_of = remap[st.genome_of]
