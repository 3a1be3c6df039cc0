"""The genome as the firmware's kernels read it (docs/firmware.md, "Kernel
layout"): the hidden units in blocks of four, each block one record that a
kernel streams through in order (biases, first-layer weights, requantisation,
second-layer weights), weights offset-binary (w + 128, so every core can load
them with an unsigned byte load) and interleaved so a block's four rows share
each input load, the offsets folded into the first-layer bias. The header
generator and the test harness's genome blob both use it; numpy only."""
import numpy as np

from cellsim.intspec import layout

BLOCK = 4              # hidden units per block (rows sharing one input load)
WEIGHT_OFFSET = 128    # stored weight = w + 128, in [1, 255] for w in [-127, 127]
INPUTS = 3 * layout.CHANNELS
GROUP = 4              # inputs per 32-bit word of a row

# nca_block_t of nca_cell.h, field by field (C type, shape, what it holds)
BLOCK_FIELDS = (
    ("b1", "int32_t", (BLOCK,), "first-layer biases minus 128 * the row's stored weights "
                                "(mod 2^32)"),
    ("w1", "uint8_t", (INPUTS // GROUP, BLOCK, GROUP), "first-layer weights w + 128, "
                                                       "[input group][row][input]"),
    ("m1", "int32_t", (BLOCK,), "first-layer multipliers, 0 or in [2^30, 2^31)"),
    ("shift1", "int8_t", (BLOCK,), "first-layer shifts: ratio = m1 * 2^(shift1 - 31)"),
    ("w2", "uint8_t", (layout.CHANNELS, BLOCK), "second-layer weights w + 128, "
                                                "[channel][unit]"),
)
_NUMPY = {"int32_t": "<i4", "uint8_t": "u1", "int8_t": "i1"}
BLOCK_DTYPE = np.dtype([(name, _NUMPY[ctype], shape) for name, ctype, shape, _ in BLOCK_FIELDS])
BLOCK_BYTES = BLOCK_DTYPE.itemsize  # 292, a multiple of 4: every record stays word-aligned


def padded_hidden(hidden: int) -> int:
    """Hidden units rounded up to whole blocks; a padding unit has m1 = 0, so its
    activation is 0 and it adds nothing."""
    return -(-hidden // BLOCK) * BLOCK


def _wrap_int32(values) -> np.ndarray:
    """int64 -> int32 modulo 2^32 (the kernels accumulate modulo 2^32)."""
    return np.asarray(values, np.int64).astype(np.uint32).view(np.int32)


def kernel_blocks(params) -> np.ndarray:
    """The genome's hidden layer as nca_block_t records (BLOCK_DTYPE). With
    inputs x' = x + 128 (also offset-binary) and u = w + 128,
        sum_d w x = sum_d u x' - 128 sum_d u - 128 sum_d x,
    so b1 holds b1 - 128 sum_d u and a kernel adds the update's -128 sum_d x
    and the unsigned products; the second layer subtracts 128 * sum of the
    activations once."""
    hidden, padded = params.hidden, padded_hidden(params.hidden)

    def pad(values, axis=0):
        values = np.asarray(values, np.int64)
        width = [(0, 0)] * values.ndim
        width[axis] = (0, padded - hidden)
        return np.pad(values, width)

    u1 = pad(params.w1) + WEIGHT_OFFSET
    u2 = pad(params.w2, axis=1) + WEIGHT_OFFSET
    blocks = np.zeros(padded // BLOCK, BLOCK_DTYPE)
    blocks["b1"] = _wrap_int32(pad(params.b1) - WEIGHT_OFFSET * u1.sum(axis=1)).reshape(-1, BLOCK)
    blocks["w1"] = u1.reshape(-1, BLOCK, INPUTS // GROUP, GROUP).transpose(0, 2, 1, 3)
    blocks["m1"] = pad(params.m1).reshape(-1, BLOCK)
    blocks["shift1"] = pad(params.shift1).reshape(-1, BLOCK)
    blocks["w2"] = u2.reshape(layout.CHANNELS, -1, BLOCK).transpose(1, 0, 2)
    return blocks


def unpack_blocks(blocks: np.ndarray, hidden: int) -> dict[str, np.ndarray]:
    """The genome's w1, b1, m1, shift1, w2 (int64) back from the records: the
    inverse of kernel_blocks, for tests."""
    u1 = blocks["w1"].astype(np.int64).transpose(0, 2, 1, 3).reshape(-1, INPUTS)
    b1 = blocks["b1"].astype(np.int64).ravel() + WEIGHT_OFFSET * u1.sum(axis=1)
    b1 = (b1 + (1 << 31)) % (1 << 32) - (1 << 31)
    u2 = blocks["w2"].astype(np.int64).transpose(1, 0, 2).reshape(layout.CHANNELS, -1)
    return {"w1": (u1 - WEIGHT_OFFSET)[:hidden], "b1": b1[:hidden],
            "m1": blocks["m1"].astype(np.int64).ravel()[:hidden],
            "shift1": blocks["shift1"].astype(np.int64).ravel()[:hidden],
            "w2": (u2 - WEIGHT_OFFSET)[:, :hidden]}
