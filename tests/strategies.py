"""Random valid integer parameters and genomes for everyone's tests.

`random_int_params(rng, ...)` builds IntParams from a numpy Generator, either
realistic (activations neither all saturated nor all zero) or extreme (every
field anywhere in its legal range); the hypothesis strategies wrap it. Import
with `from strategies import ...` (pytest puts tests/ on sys.path)."""
import math

import numpy as np
from hypothesis import strategies as st

from cellsim.genome import MAX_TEXT_BYTES, Genome
from cellsim.intspec import IntParams, quantize_multiplier
from cellsim.intspec.alive import alive_threshold
from cellsim.intspec.layout import ALPHA

INT32_MAX = (1 << 31) - 1


def _multipliers(rng, n: int, log2_lo: float, log2_hi: float):
    pairs = [quantize_multiplier(2.0 ** rng.uniform(log2_lo, log2_hi)) for _ in range(n)]
    return np.array([m for m, _ in pairs], np.int32), np.array([s for _, s in pairs], np.int32)


def _extreme_multipliers(rng, n: int):
    mult = rng.integers(1 << 30, 1 << 31, n, dtype=np.int64)
    mult[rng.random(n) < 0.1] = 0
    mult[rng.random(n) < 0.1] = (1 << 31) - 1
    shift = rng.integers(-31, 31, n)
    return mult.astype(np.int32), shift.astype(np.int32)


def _weights(rng, shape, extreme: bool):
    w = rng.integers(-127, 128, shape)
    if extreme:  # the edges of the legal range, and zeros, appear often
        w[rng.random(shape) < 0.2] = 127
        w[rng.random(shape) < 0.2] = -127
        w[rng.random(shape) < 0.1] = 0
    return w.astype(np.int8)


def _bias_within_int32(rng, w, reach: int, extreme: bool, typical: int):
    """Biases that keep the worst-case accumulator inside int32 (genome rule)."""
    room = INT32_MAX - np.abs(w.astype(np.int64)).sum(axis=1) * reach
    if extreme:
        b = rng.integers(-room, room + 1)
        b[rng.random(b.shape) < 0.1] = 0
        edge = rng.random(b.shape) < 0.2
        b[edge] = np.where(rng.random(edge.sum()) < 0.5, room[edge], -room[edge])
        return b.astype(np.int32)
    return rng.integers(-typical, typical + 1, w.shape[0]).astype(np.int32)


def random_int_params(rng, channels: int = 16, hidden: int = 128, extreme: bool = False,
                      zero_output: bool = False) -> IntParams:
    """Random valid IntParams.

    realistic (default): requantisation ratios chosen so hidden activations and
    deltas land mostly inside int8 without saturating, hidden zero point -128,
    alive threshold from a plausible alpha scale. extreme: multipliers, shifts,
    zero point, threshold and biases anywhere in their legal ranges.
    zero_output: w2 = 0 and b2 = 0, as a freshly initialised model."""
    rng = np.random.default_rng(rng)
    c, h = channels, hidden
    w1 = _weights(rng, (h, 3 * c), extreme)
    w2 = _weights(rng, (c, h), extreme)
    if extreme:
        zero_point = int(rng.integers(-128, 128))
        threshold = int(rng.integers(-128, 128))
        m1, shift1 = _extreme_multipliers(rng, h)
        m2, shift2 = _extreme_multipliers(rng, c)
        state_scale = 2.0 ** rng.uniform(-20, 20, c)
        hidden_scale = float(2.0 ** rng.uniform(-20, 20))
    else:
        zero_point = -128
        state_scale = rng.uniform(0.25, 2.0, c) / 127
        threshold = alive_threshold(float(np.float32(state_scale[ALPHA])))
        # layer 1: |acc| ~ sqrt(3c) * 64 * 64 -> a few tens of hidden steps
        m1, shift1 = _multipliers(rng, h, -12 - 0.5 * math.log2(3 * c / 48), -8)
        # layer 2: inputs 0..255 -> deltas of a few int8 steps
        m2, shift2 = _multipliers(rng, c, -16 - 0.5 * math.log2(h / 128), -12)
        hidden_scale = float(rng.uniform(0.01, 0.1))
    b1 = _bias_within_int32(rng, w1, 128, extreme, 20000)
    b2 = _bias_within_int32(rng, w2, 127 - zero_point, extreme, 5000)
    if zero_output:
        w2, b2 = np.zeros_like(w2), np.zeros_like(b2)
    return IntParams(w1=w1, b1=b1, m1=m1, shift1=shift1, w2=w2, b2=b2, m2=m2, shift2=shift2,
                     hidden_zero_point=zero_point, alive_threshold=threshold,
                     state_scale=state_scale.astype(np.float32), hidden_scale=hidden_scale)


def random_genome(rng, channels: int = 16, hidden: int = 128, extreme: bool = False,
                  name: str = "lizard", target: str = "lizard") -> Genome:
    rng = np.random.default_rng(rng)
    params = random_int_params(rng, channels, hidden, extreme)
    return Genome(params=params, name=name, target=target,
                  grid_size=int(rng.integers(3, 129)) if extreme else 72,
                  fire_rate=float(rng.uniform(0.01, 1.0)) if extreme else 0.5,
                  angle=float(rng.uniform(-7, 7)) if extreme else 0.0,
                  torus=bool(rng.integers(2)), source_sha256=rng.bytes(32))


seeds = st.integers(0, 2**32 - 1)


@st.composite
def int_params(draw, channels=st.integers(4, 8), hidden=st.integers(1, 24),
               extreme=st.booleans()):
    """IntParams with small dimensions (fast), realistic or extreme."""
    return random_int_params(draw(seeds), draw(channels), draw(hidden), draw(extreme))


def _fits(text: str) -> bool:
    return len(text.encode("utf-8")) <= MAX_TEXT_BYTES


genome_texts = st.one_of(
    # any printable text (at most 4 UTF-8 bytes per character: 16 always fit)
    st.text(st.characters(codec="utf-8", categories=("L", "M", "N", "P", "S"),
                          include_characters=" "), max_size=16),
    # ASCII up to the 64-byte limit
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=MAX_TEXT_BYTES),
).filter(_fits)


@st.composite
def genomes(draw, channels=st.integers(4, 8), hidden=st.integers(1, 24)):
    """Valid genomes: any legal parameters, names, flags and metadata."""
    return Genome(params=draw(int_params(channels, hidden)), name=draw(genome_texts),
                  target=draw(genome_texts), grid_size=draw(st.integers(3, 4096)),
                  fire_rate=draw(st.floats(1e-6, 1.0)),
                  angle=draw(st.floats(-1e6, 1e6, allow_nan=False)),
                  torus=draw(st.booleans()), source_sha256=draw(st.binary(min_size=32,
                                                                          max_size=32)))


def random_neighbourhood(rng, channels: int = 16, alive: bool = True) -> np.ndarray:
    """(3, 3, C) int8; alive=True forces the centre alpha to 127 so the cell is live."""
    rng = np.random.default_rng(rng)
    n = rng.integers(-128, 128, (3, 3, channels)).astype(np.int8)
    if alive:
        n[1, 1, ALPHA] = 127
    return n
