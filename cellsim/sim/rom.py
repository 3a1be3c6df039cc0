"""The genomes a grid's cells run (their ROM): packed integer tables for
the numba kernels, and ROM bit flips, which give the hit cell its own copy.

ROM bits are numbered over [w1 | w2 | b1 (int32 LE) | b2 (int32 LE)], the
8,336 weights and biases (99% of the genome); a flip that would write the weight
-128, which the format forbids, is masked (the cell keeps its genome)."""
import dataclasses
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError
from ..intspec import IntParams
from ..intspec.layout import CHANNELS
from .simd import HIDDEN_STEP, pack

INT32_LIMIT = 1 << 31
HIGH_WORD_SHIFT = 33  # total shifts from here on need only a product's high word


def rom_bits(p: IntParams) -> int:
    return 8 * (p.w1.size + p.w2.size) + 32 * (p.b1.size + p.b2.size)


def flip_rom_bit(p: IntParams, bit: int):
    """The genome with one ROM bit flipped, or None if the flip is masked."""
    raw = np.concatenate([np.ascontiguousarray(getattr(p, k), "<i4" if k[0] == "b" else np.int8)
                          .view(np.uint8).ravel() for k in ("w1", "w2", "b1", "b2")])
    raw[bit >> 3] ^= np.uint8(1 << (bit & 7))
    n1, n2, nb1 = p.w1.size, p.w2.size, 4 * p.b1.size
    w1 = raw[:n1].view(np.int8).reshape(p.w1.shape)
    w2 = raw[n1:n1 + n2].view(np.int8).reshape(p.w2.shape)
    if (w1 == -128).any() or (w2 == -128).any():
        return None
    b1 = raw[n1 + n2:n1 + n2 + nb1].view("<i4").astype(np.int32)
    b2 = raw[n1 + n2 + nb1:].view("<i4").astype(np.int32)
    return dataclasses.replace(p, w1=w1.copy(), w2=w2.copy(), b1=b1, b2=b2)


def batchable(p: IntParams) -> bool:
    """Whether the packed products and the batched requantisation are exact for
    every input: both layers' sums inside int32, the first also with its bias
    (the genome file's own rule; a ROM flip can break it). Then |b1| < 2^31, so
    the requantisation's (dot * m + b1 * m + rounding) stays inside int64
    (kernels.requantize_hidden). Other genomes take the int64 path."""
    products1, products2 = p.products_reach()
    reach1 = products1 + np.abs(p.b1.astype(np.int64))
    return bool(reach1.max() < INT32_LIMIT and products2.max() < INT32_LIMIT)


class GenomeTables(NamedTuple):
    """All genomes of a grid, stacked; index g is genome g of Grid.genomes."""
    w1: np.ndarray          # int8 (G, H, 48)
    w2: np.ndarray          # int8 (G, C, H)
    w1k: np.ndarray         # (G, 48 * H') w1 in simd.pack order (int8 or int16), H' = padded H
    w2k: np.ndarray         # (G, H' * C)
    init1: np.ndarray       # int32 (G, H'): -128 * the row sums of w1 (the inputs' offset)
    init2: np.ndarray       # int32 (G, C): zeros (the hidden values carry no offset)
    b1: np.ndarray          # int64 (G, H)
    m1: np.ndarray          # int32 (G, H): a 32-bit multiplier (one multiply a lane)
    rounding1: np.ndarray   # 2^(total shift - 1)
    shift1: np.ndarray      # total right shift 31 - shift, in [1, 62]
    bias1: np.ndarray       # int64 (G, H): b1 * m + rounding (wraps where not batchable)
    top1: np.ndarray        # int64 (G,): 127 - zero point, the hidden values' top
    b2: np.ndarray          # int64 (G, C)
    m2: np.ndarray
    rounding2: np.ndarray
    shift2: np.ndarray
    zero_point: np.ndarray  # int64 (G,)
    threshold: np.ndarray   # int64 (G,)
    exact: np.ndarray       # bool (G,): the packed products may take this genome
    # simd.requantize_high's tables, padded to H' with zeros (which give 0):
    b1p: np.ndarray         # int32 (G, H') b1
    m1p: np.ndarray         # int32 (G, H') m1
    rshift1: np.ndarray     # int32 (G, H') total shift - 33
    high1: np.ndarray       # bool (G,): exact, and every total shift >= 33 (requantize_high)

    @classmethod
    def build(cls, genomes) -> "GenomeTables":
        """Stack a list of IntParams (all with 16 channels and equal hidden sizes)."""
        first = genomes[0]
        for p in genomes:
            if p.channels != CHANNELS:
                raise ConfigError(f"a genome has {p.channels} channels; the 256-byte cell RAM "
                                  f"holds {CHANNELS}")
            if p.hidden != first.hidden:
                raise ConfigError("all genomes of a grid need the same number of hidden units")

        def stack(name, dtype):
            return np.ascontiguousarray(np.stack([getattr(p, name) for p in genomes]), dtype=dtype)

        shift1 = 31 - stack("shift1", np.int64)
        shift2 = 31 - stack("shift2", np.int64)
        b1, m1 = stack("b1", np.int64), stack("m1", np.int32)
        rounding1 = np.left_shift(np.int64(1), shift1 - 1)
        with np.errstate(over="ignore"):
            bias1 = b1 * m1 + rounding1
        w1, w2 = stack("w1", np.int8), stack("w2", np.int8)
        padded = padded_hidden(first.hidden)
        pad = ((0, 0), (0, padded - first.hidden))
        exact = np.array([batchable(p) for p in genomes], bool)
        return cls(w1=w1, w2=w2,
                   w1k=np.stack([pack(p.w1, padded, 3 * CHANNELS) for p in genomes]),
                   w2k=np.stack([pack(p.w2, CHANNELS, padded) for p in genomes]),
                   init1=np.stack([np.pad(-128 * p.w1.astype(np.int32).sum(axis=1),
                                          (0, padded - p.hidden)) for p in genomes]).astype(np.int32),
                   init2=np.zeros((len(genomes), CHANNELS), np.int32),
                   b1=b1, m1=m1, rounding1=rounding1, shift1=shift1, bias1=bias1,
                   top1=np.array([127 - p.hidden_zero_point for p in genomes], np.int64),
                   b2=stack("b2", np.int64), m2=stack("m2", np.int64),
                   rounding2=np.left_shift(np.int64(1), shift2 - 1), shift2=shift2,
                   zero_point=np.array([p.hidden_zero_point for p in genomes], np.int64),
                   threshold=np.array([p.alive_threshold for p in genomes], np.int64),
                   exact=exact,
                   b1p=np.pad(b1, pad).astype(np.int32),  # (b1 is int32 in the format)
                   m1p=np.pad(m1, pad).astype(np.int32),
                   rshift1=np.pad(np.maximum(shift1 - HIGH_WORD_SHIFT, 0), pad).astype(np.int32),
                   high1=exact & (shift1 >= HIGH_WORD_SHIFT).all(axis=1))


def padded_hidden(hidden: int) -> int:
    return -(-hidden // HIDDEN_STEP) * HIDDEN_STEP
