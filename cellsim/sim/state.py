"""Everything a simulated grid is at one moment, shared by all engines: the
cells' RAM and ROM pointers, plus the physics outside the cells (oscillator
rates, each cell's next firing, messages on the wires, the event cursor)."""
import copy
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from ..intspec.layout import CHANNELS, CLOCK, MAILBOX_SLOTS, RAM_BYTES, RNG
from . import clocks
from .events import FIRE, KIND_NAMES, KEY_CELL_BITS, KEY_KIND_BITS, KEY_SUB_BITS, MAX_SUB
from .memory import aligned_copy
from .rng import cell_seed

REST_BITS = KEY_KIND_BITS + KEY_CELL_BITS + KEY_SUB_BITS


def rest_key(kind, cell, sub):
    """The part of an event's key after its time: (kind, cell, sub) packed
    (Python ints, or numpy arrays of them)."""
    capped = min(sub, MAX_SUB) if isinstance(sub, int) else np.minimum(sub, MAX_SUB)
    return (kind << (KEY_CELL_BITS + KEY_SUB_BITS)) | (cell << KEY_SUB_BITS) | capped


FIRST_REST = -1                    # (t, FIRST_REST) precedes every event at tick t
LAST_REST = (1 << REST_BITS) - 1   # (t, LAST_REST) follows every event at tick t


@dataclass
class Pending:
    """Messages on the wires: arrival tick, receiving cell and slot, payload."""
    time: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cell: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    slot: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    payload: np.ndarray = field(default_factory=lambda: np.zeros((0, CHANNELS), np.int8))

    def __len__(self) -> int:
        return len(self.time)


@dataclass
class GridState:
    height: int
    width: int
    torus: bool
    seed: int
    clock: clocks.ClockSpec
    genomes: list                 # IntParams; cells index it through genome_of
    ram: np.ndarray               # (N, 256) uint8
    genome_of: np.ndarray         # (N,) int64
    next_fire: np.ndarray         # (N,) int64 global tick, or clocks.NEVER
    rate: np.ndarray              # (N,) float64 oscillator rate
    link_last: np.ndarray         # (N, 8) int64 last arrival on each incoming link
    pending: Pending
    cursor: tuple = (-1, LAST_REST)   # every event with key <= cursor has happened
    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(KIND_NAMES), np.int64))

    @property
    def cells(self) -> int:
        return self.height * self.width

    @property
    def updates(self) -> int:
        return int(self.counts[FIRE])

    def copy(self, ram=None) -> "GridState":
        """A deep copy that shares the genomes (never changed in place: a ROM flip
        makes a new one, so the engine's tables of them stay valid), with its RAM
        on cache lines, or copied into `ram` (an array of the same shape) when
        given: restoring a snapshot keeps the grid's own RAM."""
        if ram is None:
            ram = aligned_copy(self.ram)
        else:
            np.copyto(ram, self.ram)
        memo = {id(genome): genome for genome in self.genomes}
        memo[id(self.ram)] = ram
        return copy.deepcopy(self, memo)


def power_up(height, width, torus, seed, clock, genomes, genome_of) -> GridState:
    """A grid just switched on: RAM zero but each cell's rng word; async clocks
    have drawn their start delay (counted from tick 0)."""
    n = height * width
    ram = aligned_copy(np.zeros((n, RAM_BYTES), np.uint8))  # rows on cache lines
    rate = clock.oscillator_rates(seed, n)
    next_fire = np.full(n, clocks.NEVER, np.int64)
    words = ram.view("<u4")
    rng_words, clock_words = words[:, RNG // 4].copy(), words[:, CLOCK // 4].copy()
    _start_clocks(np.uint64(seed), clock.vector(), clock.synchronous, rate, rng_words,
                  clock_words, next_fire)
    words[:, RNG // 4], words[:, CLOCK // 4] = rng_words, clock_words
    # No message has crossed a link yet: one -1 seen N x 8 times (read-only; the
    # engines copy it when links make them write it), not 64 bytes a cell.
    no_arrivals = np.broadcast_to(np.int64(-1), (n, MAILBOX_SLOTS))
    return GridState(height, width, torus, seed, clock, list(genomes), ram,
                     np.asarray(genome_of, np.int64).ravel().copy(), next_fire, rate,
                     no_arrivals, Pending())


@njit(cache=True)
def _start_clocks(seed, clock, synchronous, rate, rng_words, clock_words, next_fire):
    for c in range(rate.shape[0]):
        rng = cell_seed(seed, c)
        if not synchronous:
            rng, wait = clocks.first_wait(clock, rng)
            clock_words[c] = wait
            next_fire[c] = clocks.to_global(wait, rate[c])
        rng_words[c] = rng
