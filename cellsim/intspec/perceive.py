"""Integer perception: identity and Sobel gradients of the 3x3 neighbourhood.

The integer Sobel sum of int8 states lies in [-512, 508]; dividing by 4 with
round-half-up, (s + 2) >> 2, maps it exactly onto [-128, 127], an int8 whose
real value is s_c/2 per unit (the float model's Sobel/8 has half the state's
range). Rotation (experiment 4) is folded into the first layer's weights, so the
integer kernels never change."""
import numpy as np

SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.int32)
SOBEL_Y = SOBEL_X.T.copy()
GRADIENT_SHIFT = 2  # Sobel sum >> 2: int8 with scale state_scale / 2


def perceive(neighbourhood) -> np.ndarray:
    """(..., 3, 3, C) int8 neighbourhood, centre at [1, 1] -> (..., 3*C) int8.

    Output order is [state (C) | gradient x (C) | gradient y (C)], the order of
    the first layer's input columns in a genome and of the cell's RAM."""
    n = np.asarray(neighbourhood, dtype=np.int32)
    centre = n[..., 1, 1, :]
    gx = np.einsum("...abc,ab->...c", n, SOBEL_X)
    gy = np.einsum("...abc,ab->...c", n, SOBEL_Y)
    rounding = 1 << (GRADIENT_SHIFT - 1)
    gx = np.right_shift(gx + rounding, GRADIENT_SHIFT)
    gy = np.right_shift(gy + rounding, GRADIENT_SHIFT)
    return np.concatenate([centre, gx, gy], axis=-1).astype(np.int8)
