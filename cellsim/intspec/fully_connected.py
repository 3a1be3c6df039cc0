"""Fully connected layer with int8 weights, CMSIS-NN arm_fully_connected_s8 style:
acc[o] = bias[o] + sum_d w[o][d] * (x[d] + input_offset)   (exact int32)
out[o] = clamp(requantize(acc[o], m[o], shift[o]) + output_offset, act_min, act_max)
ReLU is the clamp at the output zero point."""
import numpy as np

from .requantize import requantize, saturate


def accumulate(x, weights, bias, input_offset: int) -> np.ndarray:
    """(..., in) int8, (out, in) int8, (out,) int32 -> (..., out) int64 (exact)."""
    xs = np.asarray(x, dtype=np.int64) + input_offset
    return xs @ np.asarray(weights, dtype=np.int64).T + np.asarray(bias, dtype=np.int64)


def fully_connected(x, weights, bias, input_offset, multiplier, shift,
                    output_offset, act_min=-128, act_max=127) -> np.ndarray:
    acc = accumulate(x, weights, bias, input_offset)
    return saturate(requantize(acc, multiplier, shift) + output_offset, act_min, act_max)
