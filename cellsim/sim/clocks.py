"""Cell clocks: when each cell fires, drawn from its own xorshift32 in RAM.

Time is counted in ticks, TICKS_PER_UNIT per time unit; one unit is one
training step at fire rate 0.5. A clock draws waits in its cell's local ticks;
the cell's oscillator (rate 1 +- skew, or changed by a clock fault) turns them
into global ticks. docs/simulator.md spells out every draw."""
import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import ConfigError
from .rng import TAG_SKEW, exponential_ticks, hash_words, unit_interval, xorshift32

TICKS_PER_UNIT = 1 << 16
NEVER = 1 << 62  # the next-fire time of a cell that will not fire again
MIN_FIRE_RATE = 1.0 / 1024  # keeps every wait inside the uint32 clock word
MAX_SKEW = 0.9
# The draws are inlined into their callers, as in rng.py: fewer functions to compile cold.

SYNC, POISSON, PERIODIC = 0, 1, 2
KINDS = {"sync": SYNC, "poisson": POISSON, "periodic": PERIODIC}

# Layout of the int64 parameter vector the kernels read.
P_KIND, P_MEAN_LN2_Q8, P_PERIOD, P_JITTER, P_FIRE_THRESHOLD = range(5)


@dataclass(frozen=True)
class ClockSpec:
    """kind: "poisson" (exponential waits, mean 1 / fire_rate units), "periodic"
    (period 1 / fire_rate units, each wait +- jitter * period, uniform) or "sync"
    (a global step every unit; each cell fires with probability fire_rate).
    skew: each cell's oscillator runs at a fixed rate uniform in [1 - skew, 1 + skew]."""
    kind: str = "poisson"
    fire_rate: float = 0.5
    skew: float = 0.0
    jitter: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown clock {self.kind!r}; choose one of {', '.join(KINDS)}")
        rate = float(self.fire_rate)
        if not (math.isfinite(rate) and MIN_FIRE_RATE <= rate <= 1.0):
            raise ConfigError(f"fire rate {self.fire_rate} is outside [{MIN_FIRE_RATE}, 1]")
        if not (math.isfinite(self.skew) and 0.0 <= self.skew <= MAX_SKEW):
            raise ConfigError(f"clock skew {self.skew} is outside [0, {MAX_SKEW}]")
        if not (math.isfinite(self.jitter) and 0.0 <= self.jitter < 1.0):
            raise ConfigError(f"clock jitter {self.jitter} is outside [0, 1)")
        if self.kind == "sync" and (self.skew or self.jitter):
            raise ConfigError("the sync clock has no skew or jitter")
        if self.kind == "poisson" and self.jitter:
            raise ConfigError("jitter applies to the periodic clock only")
        object.__setattr__(self, "fire_rate", rate)

    @property
    def synchronous(self) -> bool:
        return self.kind == "sync"

    def vector(self) -> np.ndarray:
        """The int64 parameters the numba draws read (layout P_*)."""
        mean_ticks = TICKS_PER_UNIT / self.fire_rate
        period = max(1, round(mean_ticks))
        return np.array([KINDS[self.kind], round(mean_ticks * math.log(2) * 256), period,
                         math.floor(self.jitter * period),
                         min(1 << 32, round(self.fire_rate * (1 << 32)))], np.int64)

    def oscillator_rates(self, seed: int, cells: int) -> np.ndarray:
        """Each cell's oscillator rate (local ticks per global tick)."""
        return oscillator_rates(np.uint64(seed), cells, float(self.skew))


@njit(cache=True)
def oscillator_rates(seed, cells, skew):
    rates = np.ones(cells, np.float64)
    if skew > 0.0:
        for c in range(cells):
            rates[c] = 1.0 + skew * (2.0 * unit_interval(hash_words(seed, TAG_SKEW, c, 0, 0)) - 1.0)
    return rates


@njit(cache=True, inline="always")
def first_wait(clock, rng):
    """The start delay after power-up or reboot -> (new rng, wait in local ticks)."""
    rng = xorshift32(rng)
    if clock[P_KIND] == PERIODIC:  # a random phase in (0, period]
        return rng, 1 + ((rng * clock[P_PERIOD]) >> 32)
    return rng, exponential_ticks(rng, clock[P_MEAN_LN2_Q8])


@njit(cache=True, inline="always")
def next_wait(clock, rng):
    """The wait drawn when a cell fires -> (new rng, wait in local ticks)."""
    rng = xorshift32(rng)
    if clock[P_KIND] == PERIODIC:
        jitter = clock[P_JITTER]
        return rng, max(1, clock[P_PERIOD] - jitter + ((rng * (2 * jitter + 1)) >> 32))
    return rng, exponential_ticks(rng, clock[P_MEAN_LN2_Q8])


@njit(cache=True, inline="always")
def sync_fires(clock, rng):
    """The sync clock's per-step coin -> (new rng, fired): P(fired) = fire_rate."""
    rng = xorshift32(rng)
    return rng, rng < clock[P_FIRE_THRESHOLD]


@njit(cache=True, inline="always")
def to_global(local_ticks, rate):
    """Local ticks of an oscillator running at `rate` -> global ticks (>= 1), or NEVER."""
    if rate <= 0.0:
        return NEVER
    return max(1, np.int64(local_ticks / rate + 0.5))


@njit(cache=True, inline="always")
def rescaled_fire_time(now, pending, old_rate, new_rate):
    """A pending fire after the oscillator changes rate at `now`: the rest of the
    countdown runs at the new rate. A stopped oscillator never fires."""
    if pending >= NEVER or new_rate <= 0.0 or old_rate <= 0.0:
        return NEVER
    return now + np.int64((pending - now) * (old_rate / new_rate) + 0.5)
