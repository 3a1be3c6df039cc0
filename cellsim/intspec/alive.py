"""The alive test as an integer comparison: a cell lives while some cell of its
3x3 neighbourhood has alpha > 0.1, i.e. q_alpha > floor(0.1 / alpha_scale)."""
import math

import numpy as np

# The paper's life rule: a cell lives while some alpha of its 3x3 neighbourhood
# exceeds this. Every engine, float or int8, reads it from here.
ALIVE_ALPHA = 0.1


def alive_threshold(alpha_scale: float, threshold: float = ALIVE_ALPHA) -> int:
    """The int8 t with (q > t) <=> (q * alpha_scale > threshold) for integer q."""
    return int(min(127, math.floor(threshold / alpha_scale)))


def is_alive(alphas, threshold: int) -> np.ndarray:
    """(..., k) int8 alphas of a neighbourhood -> whether any exceeds `threshold`."""
    return (np.asarray(alphas, dtype=np.int32) > threshold).any(axis=-1)
