"""Fixed-point requantisation: int32 accumulator * real ratio M -> integer.

M is stored as a 31-bit multiplier m in [2^30, 2^31) and an exponent `shift`
(M = m * 2^(shift-31)), as TFLM's QuantizeMultiplier does. The product is applied
with a single rounding, TFLM's TFLITE_SINGLE_ROUNDING variant:
    (acc * m + 2^(30-shift)) >> (31-shift)
in 64-bit arithmetic, where >> is an arithmetic (flooring) shift, so ties round
towards +infinity."""
import math

import numpy as np

MAX_SHIFT = 30  # total right shift 31 - shift stays >= 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Split a positive real ratio into (multiplier, shift) with M = m * 2^(shift-31)."""
    if not real > 0.0 or not math.isfinite(real):
        raise ValueError(f"requantisation ratio must be positive and finite, got {real}")
    q, shift = math.frexp(real)  # real = q * 2^shift, q in [0.5, 1)
    m = int(round(q * (1 << 31)))
    if m == 1 << 31:  # q rounded up to 1.0
        m //= 2
        shift += 1
    if shift < -31:  # too small to matter: the product is always 0 after rounding
        return 0, 0
    if shift > MAX_SHIFT:
        raise ValueError(f"requantisation ratio {real} is too large (its exponent exceeds {MAX_SHIFT})")
    return m, shift


def requantize(acc, multiplier, shift):
    """Elementwise round(acc * M) with the single-rounding rule; returns int64."""
    acc = np.asarray(acc, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    total_shift = 31 - np.asarray(shift, dtype=np.int64)
    rounding = np.left_shift(np.int64(1), total_shift - 1)
    return np.right_shift(acc * multiplier + rounding, total_shift)


def saturate(values, lo: int = -128, hi: int = 127) -> np.ndarray:
    """Clamp to [lo, hi] and narrow to int8."""
    return np.clip(values, lo, hi).astype(np.int8)
