"""numba kernels of the int8 cell update on RAM rows: cellsim.intspec.update_ram
again, split into the steps the engines need (gather perception, both layers as
simd.py's integer products, requantise, finish the update, tell the neighbours), plus an
int64 path for genomes outside the products' bounds. Tested equal to the spec.

RAM is handled as int8 rows of 256 bytes; the genome as the tables of
GenomeTables (weights packed for simd.py, biases pre-multiplied, shifts as total
right shifts).
The per-update kernels are inlined into their callers: a call that takes array
views costs atomic reference counts, as much as the update's own arithmetic."""
import sys
from typing import NamedTuple

import numpy as np
from numba import njit

from ..intspec import layout
from ..intspec.perceive import (GRADIENT_FILTERS, GRADIENT_SHIFT, check_filters,
                                gradient_range, rounding)
from .simd import (first_layer, first_layer_pair, requantize_high, second_layer,
                   second_layer_pair)

CHANNELS = layout.CHANNELS
SLOTS = layout.MAILBOX_SLOTS
STATE, GRAD_X, GRAD_Y, ACC = layout.STATE, layout.GRAD_X, layout.GRAD_Y, layout.ACC
RNG, CLOCK, COUNT, FLAGS = layout.RNG, layout.CLOCK, layout.COUNT, layout.FLAGS
ALPHA, FLAG_DEAD = layout.ALPHA, layout.FLAG_DEAD
STATE_WORD = STATE // 8  # the state's first uint64 in a RAM row
assert CHANNELS == 16 and STATE % 8 == 0
assert sys.byteorder == "little"  # a state's 16 bytes travel as two uint64 words
ZERO_WORD = np.uint64(0)  # a word of a state that is all zeros
ROUTE_IMMEDIATE, ROUTE_LOST = -1, -2  # otherwise a route is an in-flight message id


@njit(cache=True, inline="always")
def read_u32(row, offset):
    value = np.int64(0)  # not a literal: callees would compile for Literal[int](0) too
    for i in range(4):
        value |= (np.int64(row[offset + i]) & 0xFF) << (8 * i)
    return value


@njit(cache=True, inline="always")
def write_u32(row, offset, value):
    for i in range(4):
        byte = (value >> (8 * i)) & 0xFF
        row[offset + i] = byte - 256 if byte > 127 else byte


@njit(cache=True, inline="always")
def flip_bit(row, bit):
    byte = (np.int64(row[bit >> 3]) & 0xFF) ^ (1 << (bit & 7))
    row[bit >> 3] = byte - 256 if byte > 127 else byte


@njit(cache=True, inline="always")
def is_dead(row):
    return (row[FLAGS] & FLAG_DEAD) != 0


@njit(cache=True, inline="always")
def mailbox_alive(row, threshold):
    """Whether some neighbour, as this cell last heard it, has alpha > threshold."""
    for k in range(SLOTS):
        if row[k * CHANNELS + ALPHA] > threshold:
            return True
    return False


@njit(cache=True, inline="always")
def begin_update(row, rng, wait):
    """What every update does first: count += 1, and the rng and wait words the
    clock drew (the scheduler drew them already, identically) land in RAM."""
    write_u32(row, COUNT, (read_u32(row, COUNT) + 1) & 0xFFFFFFFF)
    write_u32(row, RNG, rng)
    write_u32(row, CLOCK, wait)


def make_gather_perception(filters=GRADIENT_FILTERS, shift=GRADIENT_SHIFT, cache=False):
    """The perception kernel for these gradient taps and shift (cellsim.intspec.perceive):
    gather_perception(row, perception) writes each filter's gradient
    (S + rounding) >> shift, saturated to int8, into the RAM scratch at 144..175,
    and the 48 perception values [state | gx | gy] into `perception` as unsigned
    bytes, value + 128 (the products' input; GenomeTables.init1 takes the 128 off).
    The taps reach the kernel as constant tuples of (RAM offset, weight), zero taps
    left out, so LLVM unrolls the sums as if written by hand; a clamp is compiled
    only on a side the taps can cross (intspec.perceive.gradient_range). `cache`:
    numba's disk cache, for the spec's kernel (other taps would each add a file)."""
    taps, shift = check_filters(filters, shift)
    offsets = [k * CHANNELS for k in range(SLOTS)] + [STATE]  # layout.ram_order's slots
    terms = []
    for weights in layout.ram_order(taps):
        nonzero = [(offsets[k], int(w)) for k, w in enumerate(weights) if w] or [(STATE, 0)]
        terms.append((tuple(o for o, _ in nonzero), tuple(w for _, w in nonzero)))
    (x_offsets, x_weights), (y_offsets, y_weights) = terms
    low, high = gradient_range(taps, shift)
    clamp_low, clamp_high = low < -128, high > 127
    half = rounding(shift)

    @njit(cache=cache, inline="always")
    def gather_perception(row, perception):
        for c in range(CHANNELS):
            sx = np.int32(half)
            for t in range(len(x_offsets)):
                sx += x_weights[t] * np.int32(row[x_offsets[t] + c])
            sy = np.int32(half)
            for t in range(len(y_offsets)):
                sy += y_weights[t] * np.int32(row[y_offsets[t] + c])
            gx, gy = sx >> shift, sy >> shift
            if clamp_high:
                gx, gy = min(127, gx), min(127, gy)
            if clamp_low:
                gx, gy = max(-128, gx), max(-128, gy)
            row[GRAD_X + c] = gx
            row[GRAD_Y + c] = gy
            perception[c] = np.int32(row[STATE + c]) + 128
            perception[CHANNELS + c] = gx + 128
            perception[2 * CHANNELS + c] = gy + 128

    return gather_perception


gather_perception = make_gather_perception(cache=True)  # the spec's taps


@njit(cache=True, inline="always")
def requantize_hidden(dots, tables, g, hidden):
    """First-layer dot products (int32, a row of the padded width H') -> hidden -
    zero point (uint8, 0..top; the padding 0): the spec's clamp(((dot + b1) * m
    + rounding) >> s + zero point) - zero point. For genomes whose total shifts
    are all at least 33 (every trained one so far), from the high word of each
    product, eight lanes at a time (simd.requantize_high: 32 ns a 128-unit layer
    where int64 took 62, python /tmp/prof/rq6.py); otherwise in int64, exact
    for the genomes GenomeTables.batchable admits (|dot| < 2^20, m < 2^31,
    |b1| < 2^31), m read as int32 so that the product is one 32 x 32 -> 64-bit
    multiply a lane."""
    top = tables.top1[g]
    if tables.high1[g]:
        requantize_high(dots, tables.b1p, tables.m1p, tables.rshift1, g, top, hidden)
        return
    for o in range(tables.m1.shape[1]):
        v = (np.int64(dots[o]) * np.int64(tables.m1[g, o]) + tables.bias1[g, o]) >> \
            tables.shift1[g, o]
        hidden[o] = np.uint8(min(max(v, 0), top))


@njit(cache=True, inline="always")
def residual_words(row, acc2, tables, g):
    """Second-layer accumulators (int64, bias included) -> RAM scratch at 176 (int32,
    wrapping like the spec's astype), and the saturated state + saturated delta
    returned as the state's two RAM words (low: channels 0-7). Kept in registers
    to the end: reading back single channels of a state just stored as a vector
    stalled the CPU until the store was done (perf: a third of finish_updates)."""
    low = high = ZERO_WORD
    for c in range(CHANNELS):
        write_u32(row, ACC + 4 * c, acc2[c] & 0xFFFFFFFF)
        delta = min(127, max(-128, (acc2[c] * tables.m2[g, c] + tables.rounding2[g, c])
                             >> tables.shift2[g, c]))
        byte = np.uint64(min(127, max(-128, np.int64(row[STATE + c]) + delta)) & 0xFF)
        if c < 8:
            low |= byte << np.uint64(8 * c)
        else:
            high |= byte << np.uint64(8 * (c - 8))
    return low, high


@njit(cache=True, inline="always")
def state_channel(low, high, c):
    """Channel c (int8 value) of a state held as its two RAM words."""
    word = low if c < 8 else high
    value = np.int64((word >> np.uint64(8 * (c % 8))) & np.uint64(0xFF))
    return value - 256 if value > 127 else value


@njit(cache=True, inline="always")
def commit_state(row, words, cell, low, high, threshold):
    """The after-update alive test of an asynchronous update (the caller has seen
    a live neighbourhood before it): the new state (two words, residual_words),
    or zeros, into the cell's RAM (words = RAM as uint64); returns what it wrote."""
    if not (state_channel(low, high, ALPHA) > threshold or mailbox_alive(row, threshold)):
        low = high = ZERO_WORD
    words[cell, STATE_WORD], words[cell, STATE_WORD + 1] = low, high
    return low, high


@njit(cache=True, _nrt=False)
def integer_network(w1, b1, m1, rounding1, shift1, zero_point, w2, b2, perception, acc2):
    """Both layers in int64, for genomes outside the packed products' bounds."""
    for c in range(CHANNELS):
        acc2[c] = b2[c]
    for o in range(w1.shape[0]):
        acc = b1[o]
        for d in range(w1.shape[1]):
            acc += np.int64(w1[o, d]) * (np.int64(perception[d]) - 128)
        h = min(127, max(zero_point, ((acc * m1[o] + rounding1[o]) >> shift1[o]) + zero_point))
        for c in range(CHANNELS):
            acc2[c] += np.int64(w2[c, o]) * (h - zero_point)


@njit(cache=True, inline="always")
def route_to(neighbours, cell, k, routes, route_base):
    """(receiver, route) of the cell's message to neighbour k: ROUTE_LOST when
    there is none or the link lost it, ROUTE_IMMEDIATE, or an in-flight message id."""
    receiver = neighbours[cell, k]
    if receiver < 0:
        return receiver, ROUTE_LOST
    return receiver, ROUTE_IMMEDIATE if route_base < 0 else routes[route_base + k]


@njit(cache=True, inline="always")
def send_state(words, dead, cell, low, high, neighbours, routes, route_base, inflight):
    """The cell's state, as its two RAM words low and high, to its 8 neighbours:
    neighbour k receives in slot 7 - k, unless the link lost the message or
    holds it in flight. Dead cells hear nothing (`dead` mirrors the flag bytes,
    sparing a cache line per receiver). words and inflight are the RAM and the
    in-flight messages as uint64 (a state is 2 words: copies of 8 bytes)."""
    for k in range(SLOTS):
        receiver, route = route_to(neighbours, cell, k, routes, route_base)
        if route == ROUTE_LOST:
            continue
        if route >= 0:
            inflight[route, 0], inflight[route, 1] = low, high
        elif not dead[receiver]:
            slot = 2 * (SLOTS - 1 - k)
            words[receiver, slot], words[receiver, slot + 1] = low, high


@njit(cache=True, inline="always")
def deliver(words, dead, cell, slot, inflight, message):
    """An in-flight message into mailbox `slot` (uint64 views, as send_state)."""
    if not dead[cell]:
        words[cell, 2 * slot] = inflight[message, 0]
        words[cell, 2 * slot + 1] = inflight[message, 1]


@njit(cache=True, inline="always")
def reboot(row, rng, wait):
    """RAM cleared, then the fresh rng and start delay the scheduler drew."""
    row[:] = 0
    write_u32(row, RNG, rng)
    write_u32(row, CLOCK, wait)


PAIR = 2  # updates of one genome the layers take at a time (simd's _pair kernels)


class Scratch(NamedTuple):
    """One worker's scratch for a batch of up to `capacity` updates (hidden units
    padded); each stage runs over the whole batch, a tight loop the CPU keeps
    full, where one update after another would keep stalling."""
    events: np.ndarray       # int64 (cap,) event of each update
    cells: np.ndarray        # int64 (cap,) its cell
    genomes: np.ndarray      # int64 (cap,) its genome
    perception: np.ndarray   # uint8 (cap, 48) perception + 128
    dots1: np.ndarray        # int32 (cap, H')
    hidden: np.ndarray       # uint8 (cap, H') hidden - zero point; the padding stays 0
    dots2: np.ndarray        # int32 (cap, C)
    acc2: np.ndarray         # int64 (cap, C) second-layer accumulators, bias included

    @classmethod
    def allocate(cls, workers: int, capacity: int, padded_hidden: int) -> "Scratch":
        """Every field with a leading axis of one slice per worker."""
        w, cap = workers, max(1, capacity)
        return cls(np.zeros((w, cap), np.int64), np.zeros((w, cap), np.int64),
                   np.zeros((w, cap), np.int64), np.zeros((w, cap, 3 * CHANNELS), np.uint8),
                   np.zeros((w, PAIR, padded_hidden), np.int32),
                   np.zeros((w, PAIR, padded_hidden), np.uint8),
                   np.zeros((w, PAIR, CHANNELS), np.int32), np.zeros((w, cap, CHANNELS), np.int64))


@njit(cache=True, inline="always")
def worker_scratch(scratch, w):
    """Worker w's slice of a Scratch.allocate workspace."""
    return Scratch(scratch.events[w], scratch.cells[w], scratch.genomes[w],
                   scratch.perception[w], scratch.dots1[w], scratch.hidden[w], scratch.dots2[w],
                   scratch.acc2[w])


@njit(cache=True, inline="always")
def queue_update(row, cell, genome, event, s, j):
    """Queue the network of a live update as entry j of the batch: its cell,
    genome and event, and its perception, gathered now, while the engine has
    just touched the cell's RAM row (gathered when the batch runs, the row was
    often out of cache again: 20 ns an update in cache, 60-100 in a run). The
    batch's updates are pairwise independent (no two are neighbours), so no
    update of the batch changes another's inputs before the batch runs."""
    s.events[j], s.cells[j], s.genomes[j] = event, cell, genome
    gather_perception(row, s.perception[j])


@njit(cache=True, _nrt=False)  # no reference counting (engine.run_in_order says why)
def batch_network(count, tables, s):
    """s.acc2[:count] for the queued updates s[:count] (queue_update)."""
    j = 0
    while j < count:  # two cells of one genome at a time where they come so
        g = s.genomes[j]
        cells = 2 if j + 1 < count and s.genomes[j + 1] == g else 1
        if not tables.exact[g]:
            for i in range(j, j + cells):
                integer_network(tables.w1[g], tables.b1[g], tables.m1[g], tables.rounding1[g],
                                tables.shift1[g], tables.zero_point[g], tables.w2[g],
                                tables.b2[g], s.perception[i], s.acc2[i])
            j += cells
            continue
        # The layers' intermediates of this pair go to rows 0 and 1 of the
        # scratch, whatever j: rows per update (half a kilobyte each) pushed
        # a batch's working set past the L1 cache.
        if cells == 2:
            first_layer_pair(s.perception, j, tables.w1k, tables.init1, g, s.dots1, 0)
        else:
            first_layer(s.perception, j, tables.w1k, tables.init1, g, s.dots1, 0)
        for i in range(cells):
            requantize_hidden(s.dots1[i], tables, g, s.hidden[i])
        if cells == 2:
            second_layer_pair(s.hidden, 0, tables.w2k, tables.init2, g, s.dots2, 0)
        else:
            second_layer(s.hidden, 0, tables.w2k, tables.init2, g, s.dots2, 0)
        for i in range(cells):
            for c in range(CHANNELS):
                s.acc2[j + i, c] = np.int64(s.dots2[i, c]) + tables.b2[g, c]
        j += cells
