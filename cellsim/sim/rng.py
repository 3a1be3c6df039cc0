"""Integer random numbers of the simulated hardware, shared by every engine.

Each cell owns a xorshift32 generator in its RAM (byte 240) for clock waits and
fire decisions. What the cells cannot see (clock skew, reboot entropy, which
messages a faulty link loses) comes from counter-based hashes of the grid seed,
so results never depend on the order in which an engine processes events."""
import numpy as np
from numba import njit

MASK32 = 0xFFFFFFFF
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)

# Hash domains: one constant per kind of physical randomness.
TAG_CELL_SEED = 1
TAG_REBOOT = 2
TAG_SKEW = 3
TAG_MESSAGE = 4

# The small functions are inlined into their callers (inline="always"): each
# function numba compiles on its own adds a fraction of a second to a cold start.


@njit(cache=True, inline="always")
def xorshift32(x):
    """One step of Marsaglia's xorshift32 (13, 17, 5); x in [1, 2^32) stays there."""
    x ^= (x << 13) & MASK32
    x ^= x >> 17
    x ^= (x << 5) & MASK32
    return x


@njit(cache=True, inline="always")
def mix64(x):
    """splitmix64's finaliser: a bijective scramble of a uint64."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


@njit(cache=True, inline="always")
def hash_words(seed, tag, a, b, c):
    """A uint64 hash of the grid seed, a domain tag and three non-negative ints."""
    h = mix64(np.uint64(seed) + _GOLDEN * np.uint64(tag))
    h = mix64(h ^ (np.uint64(a) + _GOLDEN))
    h = mix64(h ^ (np.uint64(b) + _GOLDEN))
    return mix64(h ^ (np.uint64(c) + _GOLDEN))


@njit(cache=True, inline="always")
def nonzero32(h):
    """Low 32 bits of a hash as a xorshift32 state (which must not be 0)."""
    x = np.int64(h & np.uint64(MASK32))
    return x if x != 0 else 0x6D2B79F5


@njit(cache=True, inline="always")
def cell_seed(seed, cell):
    """The rng word a cell starts with (its factory-programmed serial, in effect)."""
    return nonzero32(hash_words(seed, TAG_CELL_SEED, cell, 0, 0))


@njit(cache=True, inline="always")
def reboot_seed(seed, cell, tick):
    """The rng word after a reboot at `tick`: fresh entropy, as from a noisy ADC pin."""
    return nonzero32(hash_words(seed, TAG_REBOOT, cell, tick, 0))


@njit(cache=True, inline="always")
def unit_interval(h):
    """A uint64 hash -> float64 uniform in [0, 1) (top 53 bits)."""
    return np.float64(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True)
def log2_q16(u):
    """log2(u) for u in [1, 2^32) in unsigned Q16.16, by repeated squaring.

    Integer-only (firmware-friendly) and exact by definition: every engine gets
    the same bits. The fraction is truncated, so the error is below 2^-16."""
    integer = 0
    for step in (16, 8, 4, 2, 1):  # floor(log2 u) by binary search
        if u >> (integer + step):
            integer += step
    x = np.uint64(u) << np.uint64(31 - integer)  # u / 2^integer in Q31, in [1, 2)
    fraction = 0
    for bit in range(15, -1, -1):
        x = (x * x) >> np.uint64(31)
        top = x >> np.uint64(32)  # 1 when the square reached [2, 4): the next bit is 1
        x >>= top                 # (branch-free: these bits are random)
        fraction |= np.int64(top) << bit
    return (integer << 16) | fraction


@njit(cache=True)
def exponential_ticks(u, mean_ln2_q8):
    """An exponential wait from a uniform u in [1, 2^32): -ln(u / 2^32) * mean, as
    (32 - log2 u) * (mean * ln 2) in integers, mean * ln 2 given in Q8 (so a mean
    below 2^26 ticks keeps the product inside int64); at least 1 tick."""
    wait = (((32 << 16) - log2_q16(u)) * mean_ln2_q8) >> 24
    return max(wait, 1)
