"""The fast engine's planner: every event of a window, known before any runs.

A cell's firing times depend only on its own clock (its rng word, its
oscillator and the faults that hit it), so a sequential pass per cell lists them
in advance, with the messages they send over faulty links; each worker then
sorts the events of its band of cells into key order (engine.run_band)."""
import numpy as np
from numba import njit

from ..intspec import layout
from . import clocks
from .events import (CLOCK, DELIVER, EV_ARG0, EV_ARG1, EV_ARG2, EV_ROUTE, FIRE, KEY_CELL_BITS,
                     KEY_KIND_BITS, KEY_SUB_BITS, KILL, MAX_SUB, RAMFLIP, REBOOT, ROMFLIP)
from .kernels import ROUTE_IMMEDIATE, ROUTE_LOST, read_u32
from .links import LOST, message_arrival
from .rng import exponential_ticks, reboot_seed, xorshift32
from .simd import WAIT_LANES, exponential_waits, prefetch_once

REST_SHIFT = KEY_CELL_BITS + KEY_SUB_BITS  # rest key = kind << 34 | cell << 10 | sub
TIME_SHIFT = REST_SHIFT + KEY_KIND_BITS
RNG_BITS = (layout.RNG * 8, layout.RNG * 8 + 32)
DEAD_BIT = layout.FLAGS * 8  # bit 0 of the flags byte
SLOTS = layout.MAILBOX_SLOTS
LOOKAHEAD = WAIT_LANES  # Poisson waits drawn at a time for a cell that only fires
PLAN_AHEAD = 16         # cells between the prefetch of a cell's clock line and its planning


@njit(cache=True, inline="always")
def _included(tick, rest, bound_tick, bound_rest):
    return tick < bound_tick or (tick == bound_tick and rest <= bound_rest)


@njit(cache=True, inline="always")
def event_key(tick, kind, cell, sub, start):
    """The packed sort key of an event: (tick - start, kind, cell, sub), bit
    widths in events.py."""
    return ((tick - start) << TIME_SHIFT) | (kind << REST_SHIFT) | (cell << KEY_SUB_BITS) | \
        np.minimum(sub, MAX_SUB)  # (np.minimum: event_key.py_func takes numpy arrays too)


@njit(cache=True, inline="always")
def key_cell(key):
    """The cell an event_key names."""
    return (key >> KEY_SUB_BITS) & ((1 << KEY_CELL_BITS) - 1)


@njit(cache=True, inline="always")
def key_kind(key):
    return (key >> REST_SHIFT) & ((1 << KEY_KIND_BITS) - 1)


@njit(cache=True, inline="always")
def key_sub(key):
    """The sub an event_key names (a delivery's mailbox slot), capped at MAX_SUB."""
    return key & MAX_SUB


@njit(cache=True, inline="always")  # the kinds are literals: one compile each otherwise
def _emit(out, keys, start, n, tick, kind, cell, sub, arg0, arg1, arg2, route):
    """Row n of the event table (columns EV_* of events.py) and its sort key
    (keys[n], keys of times since `start`), which alone holds the time, kind,
    cell and sub; returns n + 1. The key column is what the workers sort and
    scan: 8 bytes an event, not a 32-byte row.
    (Element by element: a row view would cost reference counts.)"""
    out[n, EV_ARG0], out[n, EV_ARG1], out[n, EV_ARG2], out[n, EV_ROUTE] = arg0, arg1, arg2, route
    keys[n] = event_key(tick, kind, cell, sub, start)
    return n + 1


@njit(cache=True)
def plan_window(cells, start, bound_tick, bound_rest, seed, clock, ram, next_fire, rate,
                genome_of, faults, cell_start, cell_faults, neighbours, links, link_last, out,
                keys, routes, pending_out, regions, counts):
    """List the events of cells[0] <= cell < cells[1] up to the bound, in per-cell
    time order, into the output regions [first, end) given by `regions` = (events
    and their keys, routes, pending; 2 each) and message ids from regions[6];
    keys count time from tick `start`.

    next_fire, rate, genome_of and link_last are advanced in place (the caller
    passes copies). faults = (time, kind, sub, bit, factor, rom_target) arrays,
    listed per cell by cell_start/cell_faults. links = (has_links, mask, start,
    end, loss, delay). Returns (events, route entries, messages, pending) written,
    or (-1, ...) when a region is full."""
    f_time, f_kind, f_sub, f_bit, f_factor, f_target = faults
    has_links, l_mask, l_start, l_end, l_loss, l_delay = links
    p_time, p_cell, p_slot, p_message = pending_out
    n, capacity, n_routes, route_capacity, n_pending, pending_capacity, n_messages = regions
    first_event, first_route, first_message, first_pending = n, n_routes, n_messages, n_pending
    ahead, waits = np.empty(LOOKAHEAD, np.int64), np.empty(LOOKAHEAD, np.int64)
    for cell in range(cells[0], cells[1]):
        # The clock line of a cell further on, if it fires in the window: a large
        # grid's window is about a unit (WINDOW_EVENTS), a cell fires in it about
        # once, and the line's read from memory was most of its planning.
        later = cell + PLAN_AHEAD
        if later < cells[1] and next_fire[later] <= bound_tick:
            prefetch_once(ram, later, layout.RNG & ~63)
        fire_tick = next_fire[cell]
        fire_rest = (FIRE << REST_SHIFT) | (cell << KEY_SUB_BITS)
        f = cell_start[cell]
        if f == cell_start[cell + 1] and not (fire_tick < clocks.NEVER and _included(
                fire_tick, fire_rest, bound_tick, bound_rest)):
            continue  # nothing happens to the cell in the window: its RAM is not read
        row = ram[cell]
        rng = read_u32(row, layout.RNG)
        dead = (row[layout.FLAGS] & layout.FLAG_DEAD) != 0
        genome = genome_of[cell]
        if not has_links and f == cell_start[cell + 1] and clock[clocks.P_KIND] == clocks.POISSON:
            # Only firings (no fault, no faulty link): the same draws as the
            # general loop below, LOOKAHEAD at a time so that their chains of
            # multiplies overlap; the draws past the window are dropped.
            first_fire, cell_rate, mean = n, rate[cell], clock[clocks.P_MEAN_LN2_Q8]
            while fire_tick < clocks.NEVER and _included(fire_tick, fire_rest, bound_tick,
                                                         bound_rest):
                if n == first_fire:  # the first draw alone (a short window's cell fires
                    if n + 1 > capacity:  # about once: LOOKAHEAD draws would be wasted)
                        return -1, 0, 0, 0
                    rng = xorshift32(rng)
                    wait = exponential_ticks(rng, mean)
                    n = _emit(out, keys, start, n, fire_tick, FIRE, cell, 0, genome, rng, wait, -1)
                    fire_tick = fire_tick + clocks.to_global(wait, cell_rate)
                    continue
                u = rng
                for j in range(LOOKAHEAD):
                    u = xorshift32(u)
                    ahead[j] = u
                exponential_waits(ahead, mean, waits)
                for j in range(LOOKAHEAD):
                    if fire_tick >= clocks.NEVER or not _included(fire_tick, fire_rest, bound_tick,
                                                                  bound_rest):
                        break
                    if n + 1 > capacity:
                        return -1, 0, 0, 0
                    n = _emit(out, keys, start, n, fire_tick, FIRE, cell, 0, genome, ahead[j],
                              waits[j], -1)
                    fire_tick = fire_tick + clocks.to_global(waits[j], cell_rate)
                    rng = ahead[j]
            counts[FIRE] += n - first_fire
            next_fire[cell] = fire_tick
            genome_of[cell] = genome
            continue
        while True:
            fire_due = fire_tick < clocks.NEVER and _included(fire_tick, fire_rest, bound_tick,
                                                              bound_rest)
            if f >= cell_start[cell + 1] and not fire_due:
                break
            if n + SLOTS + 1 > capacity or has_links and (
                    n_routes + SLOTS > route_capacity or n_pending + SLOTS > pending_capacity):
                return -1, 0, 0, 0
            sends_at, kind_sent, sub_sent, arg0, wait = -1, FIRE, 0, 0, 0
            if f < cell_start[cell + 1] and (not fire_due or f_time[cell_faults[f]] <= fire_tick):
                j = cell_faults[f]
                f += 1
                tick, kind = f_time[j], f_kind[j]
                counts[kind] += 1
                if kind == CLOCK:
                    new_rate = rate[cell] * f_factor[j]
                    fire_tick = clocks.rescaled_fire_time(tick, fire_tick, rate[cell], new_rate)
                    rate[cell] = new_rate
                elif dead:
                    continue  # a dead cell's RAM and ROM never change again
                elif kind == ROMFLIP:
                    if f_target[j] >= 0:
                        genome = f_target[j]
                elif kind == RAMFLIP:
                    bit = f_bit[j]
                    n = _emit(out, keys, start, n, tick, RAMFLIP, cell, f_sub[j], bit, 0, 0, -1)
                    if RNG_BITS[0] <= bit < RNG_BITS[1]:
                        rng ^= 1 << (bit - RNG_BITS[0])
                    elif bit == DEAD_BIT:
                        dead, fire_tick = True, clocks.NEVER
                elif kind == KILL:
                    n = _emit(out, keys, start, n, tick, KILL, cell, f_sub[j], 0, 0, 0, -1)
                    dead, fire_tick = True, clocks.NEVER
                elif kind == REBOOT:
                    rng, wait = clocks.first_wait(clock, reboot_seed(seed, cell, tick))
                    fire_tick = tick + clocks.to_global(wait, rate[cell])
                    sends_at = tick
                    kind_sent, sub_sent, arg0 = REBOOT, f_sub[j], 0
            else:
                tick = fire_tick
                rng, wait = clocks.next_wait(clock, rng)
                fire_tick = tick + clocks.to_global(wait, rate[cell])
                counts[FIRE] += 1
                sends_at = tick
                kind_sent, sub_sent, arg0 = FIRE, 0, genome
            if sends_at < 0:
                continue
            route_base = -1
            if has_links:
                route_base = n_routes
                n_routes += SLOTS
                for k in range(SLOTS):
                    receiver = neighbours[cell, k]
                    routes[route_base + k] = ROUTE_IMMEDIATE
                    if receiver < 0:
                        continue
                    slot = SLOTS - 1 - k
                    arrival = message_arrival(seed, cell, k, tick, l_mask[cell], l_start, l_end,
                                              l_loss, l_delay, link_last[receiver, slot])
                    if arrival == LOST:
                        routes[route_base + k] = ROUTE_LOST
                        continue
                    link_last[receiver, slot] = arrival
                    if arrival == tick:
                        continue
                    routes[route_base + k] = n_messages
                    rest = (DELIVER << REST_SHIFT) | (receiver << KEY_SUB_BITS) | slot
                    if _included(arrival, rest, bound_tick, bound_rest):
                        n = _emit(out, keys, start, n, arrival, DELIVER, receiver, slot, n_messages, 0, 0, -1)
                        counts[DELIVER] += 1
                    else:
                        p_time[n_pending], p_cell[n_pending] = arrival, receiver
                        p_slot[n_pending], p_message[n_pending] = slot, n_messages
                        n_pending += 1
                    n_messages += 1
            n = _emit(out, keys, start, n, tick, kind_sent, cell, sub_sent, arg0, rng, wait, route_base)
        next_fire[cell] = fire_tick
        genome_of[cell] = genome
    return (n - first_event, n_routes - first_route, n_messages - first_message,
            n_pending - first_pending)


@njit(cache=True, nogil=True)
def plan_band(w, workers, bands, start, bound_tick, bound_rest, seed, clock, ram, next_fire,
              rate, genome_of, faults, cell_start, cell_faults, neighbours, links, link_last, out,
              keys, routes, pending_out, regions, counts, results):
    """plan_window for worker w's band of cells (row w of `bands`), into its own
    output regions (row w of `regions`) and count row; its result to row w of
    `results`. The workers share nothing else (team.run_team)."""
    r = plan_window(bands[w], start, bound_tick, bound_rest, seed, clock, ram, next_fire, rate,
                    genome_of, faults, cell_start, cell_faults, neighbours, links, link_last, out,
                    keys, routes, pending_out, (regions[w, 0], regions[w, 1], regions[w, 2],
                                          regions[w, 3], regions[w, 4], regions[w, 5],
                                          regions[w, 6]), counts[w])
    results[w, 0], results[w, 1], results[w, 2], results[w, 3] = r


@njit(cache=True)
def sort_events(valid, all_keys):
    """The events `valid` in the order of their keys all_keys[valid] (event_key).
    A counting sort on the
    time's high bits, about one event per bucket, then an insertion sort, which
    only moves events within a bucket: many events at one instant (an erased
    region) come in cell order already. Returns (order, its keys); an empty
    order and the keys of `valid` when the insertion sort would take too long,
    for the caller to sort the keys (stably) itself."""
    n = valid.shape[0]
    keys = np.empty(n, np.int64)
    latest = np.int64(0)
    for j in range(n):
        keys[j] = all_keys[valid[j]]
        latest = max(latest, keys[j] >> TIME_SHIFT)
    time_bits = bit_length(latest)
    shift = TIME_SHIFT + time_bits - min(time_bits, bit_length(n))
    counts = np.zeros((latest >> (shift - TIME_SHIFT)) + 2, np.int64)
    for j in range(n):
        counts[(keys[j] >> shift) + 1] += 1
    for b in range(1, counts.shape[0]):
        counts[b] += counts[b - 1]
    order = np.empty(n, np.int64)
    sorted_keys = np.empty(n, np.int64)
    for j in range(n):
        b = keys[j] >> shift
        order[counts[b]], sorted_keys[counts[b]] = valid[j], keys[j]
        counts[b] += 1
    budget = MOVES_PER_EVENT * n
    for i in range(1, n):
        key, e = sorted_keys[i], order[i]
        j = i
        while j > 0 and sorted_keys[j - 1] > key:  # strictly: equal keys keep their order
            sorted_keys[j], order[j] = sorted_keys[j - 1], order[j - 1]
            j -= 1
        budget -= i - j
        if budget < 0:
            return order[:0], keys
        sorted_keys[j], order[j] = key, e
    return order, sorted_keys


MOVES_PER_EVENT = 16  # insertion sort moves allowed per event before sorting otherwise


@njit(cache=True)
def merge_order(items, keys):
    """(items, keys) reordered by key, equal keys in their given order: a
    bottom-up merge sort, sort_events' fallback inside the kernels (numba's
    own stable argsort and fancy indexing took 2.5 s to compile, the cold
    start's, for a path few windows take)."""
    n = keys.shape[0]
    items, keys = items.copy(), keys.copy()
    spare_items, spare_keys = np.empty_like(items), np.empty_like(keys)
    width = 1
    while width < n:
        for lo in range(0, n, 2 * width):
            mid, hi = min(lo + width, n), min(lo + 2 * width, n)
            i, j = lo, mid
            for k in range(lo, hi):
                if j >= hi or (i < mid and keys[i] <= keys[j]):
                    spare_items[k], spare_keys[k] = items[i], keys[i]
                    i += 1
                else:
                    spare_items[k], spare_keys[k] = items[j], keys[j]
                    j += 1
        items, spare_items = spare_items, items
        keys, spare_keys = spare_keys, keys
        width *= 2
    return items, keys


@njit(cache=True, inline="always")
def bit_length(x):
    bits = 0
    while (x >> bits) > 0:
        bits += 1
    return bits
