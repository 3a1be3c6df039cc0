"""Integer perception: identity and Sobel gradients of the 3x3 neighbourhood.

The integer Sobel sum S of int8 states lies in [-1020, 1020] (four weights of
magnitude 1+2+1 on each side). The float model uses S/8, so the gradient is
kept as g = (S + 4) >> 3 (round half up), which lies in [-127, 128], saturated
to int8: only +128 clips. Its real step is the state's own s_c (GRADIENT_STEP).
Rotation (experiment 4) is folded into the first layer's weights, so the
integer kernels never change."""
import numpy as np

IDENTITY = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.int32)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.int32)
SOBEL_Y = SOBEL_X.T.copy()
SOBEL_DIVISOR = 8  # the float model perceives Sobel / 8 (the official notebook)
GRADIENT_SHIFT = 3  # g = S >> 3 with rounding: the float model's Sobel / 8
assert 1 << GRADIENT_SHIFT == SOBEL_DIVISOR
GRADIENT_STEP = (1 << GRADIENT_SHIFT) / SOBEL_DIVISOR  # real value of one unit of g, in units of s_c


def float_filters(angle: float = 0.0) -> np.ndarray:
    """The float model's three perception filters, (3, 3, 3) float64: identity,
    and Sobel-x/8, Sobel-y/8 rotated by `angle` radians (experiment 4). Every float
    engine (training/model.py, the simulator's float engine, the benchmarks) builds
    its filters here."""
    c, s = np.cos(angle), np.sin(angle)
    sobel_x, sobel_y = SOBEL_X / SOBEL_DIVISOR, SOBEL_Y / SOBEL_DIVISOR
    return np.stack([IDENTITY.astype(np.float64), c * sobel_x - s * sobel_y, s * sobel_x + c * sobel_y])


def sobel_sums(neighbourhood) -> tuple[np.ndarray, np.ndarray]:
    """(..., 3, 3, C) int8 -> exact integer Sobel sums (Sx, Sy), each (..., C) int32."""
    n = np.asarray(neighbourhood, dtype=np.int32)
    return (np.einsum("...abc,ab->...c", n, SOBEL_X),
            np.einsum("...abc,ab->...c", n, SOBEL_Y))


def gradient(sobel_sum) -> np.ndarray:
    """Sobel sum -> int8 gradient: (S + 4) >> 3, an arithmetic (flooring) shift, then
    saturation to [-128, 127]."""
    rounding = 1 << (GRADIENT_SHIFT - 1)
    return np.clip(np.right_shift(np.asarray(sobel_sum, np.int32) + rounding, GRADIENT_SHIFT),
                   -128, 127).astype(np.int8)


def perceive(neighbourhood) -> np.ndarray:
    """(..., 3, 3, C) int8 neighbourhood, centre at [1, 1] -> (..., 3*C) int8.

    Output order is [state (C) | gradient x (C) | gradient y (C)], the order of
    the first layer's input columns in a genome and of the cell's RAM."""
    n = np.asarray(neighbourhood, dtype=np.int8)
    sx, sy = sobel_sums(n)
    return np.concatenate([n[..., 1, 1, :], gradient(sx), gradient(sy)], axis=-1)
