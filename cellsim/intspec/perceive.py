"""Integer perception: the identity and the gradient filters of the 3x3 neighbourhood.

The filters are data: GRADIENT_FILTERS (the Sobel pair) and GRADIENT_SHIFT are the
one definition every kernel builds its taps from (the numba kernel, the C firmware
through the generated nca_cell_layout.h, the training engines); each spec function
takes other taps and shift as optional arguments, so a new filter is an edit here.

For a filter K the integer sum S = sum K[y][x] n[y][x] of int8 states lies in
[-(128 P + 127 N), 127 P + 128 N], P and N the sums of its positive and negative
taps, so |S| <= 128 sum|K|: for Sobel P = N = 4, S in [-1020, 1020]. The float
model reads S / 8, so the gradient is g = (S + 4) >> 3 (round half up), saturated
to int8 on both sides: for Sobel g lies in [-127, 128] and only +128 clips. Its
real step is the state's own s_c (GRADIENT_STEP). Rotation (experiment 4) is
folded into the first layer's weights, so the integer kernels never change."""
import numpy as np

IDENTITY = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=np.int32)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.int32)
SOBEL_Y = SOBEL_X.T.copy()
# The gradient filters, [filter][dy + 1][dx + 1], in perception order (gradient x,
# gradient y): the genome's first layer has one block of input columns per filter,
# and the cell's RAM one 16-byte scratch field (intspec/layout.py), so their count
# is fixed at two.
GRADIENT_FILTERS = np.stack([SOBEL_X, SOBEL_Y])
GRADIENT_SHIFT = 3  # g = S >> 3 with rounding: the float model's filter / 8
FLOAT_DIVISOR = 8  # the float model perceives filter / 8 (the official notebook)
assert 1 << GRADIENT_SHIFT == FLOAT_DIVISOR
GRADIENT_STEP = (1 << GRADIENT_SHIFT) / FLOAT_DIVISOR  # real value of one unit of g, in units of s_c
INT8_MIN, INT8_MAX = -128, 127


def check_filters(filters=GRADIENT_FILTERS, shift: int = GRADIENT_SHIFT) -> tuple[np.ndarray, int]:
    """Validated (filters as (2, 3, 3) int64, shift): integer taps, a shift in
    [0, 30], and every sum and its rounding within int32 (the kernels' accumulator).
    ValueError otherwise."""
    taps = np.asarray(filters)
    if taps.shape != GRADIENT_FILTERS.shape:
        raise ValueError(f"gradient filters must have shape {GRADIENT_FILTERS.shape} "
                         f"(the RAM has room for two), got {taps.shape}")
    if not np.issubdtype(taps.dtype, np.integer):
        raise ValueError(f"gradient taps must be integers, got {taps.dtype}")
    shift = int(shift)
    if not 0 <= shift <= 30:
        raise ValueError(f"gradient shift must lie in [0, 30], got {shift}")
    taps = taps.astype(np.int64)
    largest = int(np.abs(taps).sum(axis=(1, 2)).max()) * 128 + rounding(shift)
    if largest > np.iinfo(np.int32).max:
        raise ValueError(f"gradient sums reach {largest}, beyond int32")
    return taps, shift


def rounding(shift: int = GRADIENT_SHIFT) -> int:
    """What (S + rounding) >> shift adds for round half up: half of 2^shift (0 for shift 0)."""
    return (1 << shift) >> 1


_SPEC_TAPS = check_filters()[0].astype(np.int32)


def sum_range(filters=GRADIENT_FILTERS) -> np.ndarray:
    """(2, 2) int64: [filter] -> (lowest, highest) sum S over int8 states."""
    taps = np.asarray(filters, np.int64).reshape(len(filters), -1)
    positive = np.where(taps > 0, taps, 0).sum(axis=1)
    negative = np.where(taps < 0, -taps, 0).sum(axis=1)
    return np.stack([INT8_MIN * positive - INT8_MAX * negative,
                     INT8_MAX * positive - INT8_MIN * negative], axis=1)


def gradient_range(filters=GRADIENT_FILTERS, shift: int = GRADIENT_SHIFT) -> tuple[int, int]:
    """(lowest, highest) gradient of any filter before saturation: a kernel needs
    the clamp at -128 only when lowest < -128, at 127 only when highest > 127."""
    filters, shift = check_filters(filters, shift)
    sums = sum_range(filters)
    return (int((sums[:, 0].min() + rounding(shift)) >> shift),
            int((sums[:, 1].max() + rounding(shift)) >> shift))


def float_filters(angle: float = 0.0, filters=GRADIENT_FILTERS,
                  divisor: float = FLOAT_DIVISOR) -> np.ndarray:
    """The float model's three perception filters, (3, 3, 3) float64: identity,
    and the gradient filters / divisor rotated by `angle` radians (experiment 4).
    Every float engine (training/model.py, the simulator's float engine, the
    benchmarks) builds its filters here."""
    c, s = np.cos(angle), np.sin(angle)
    k_x, k_y = np.asarray(filters) / divisor
    return np.stack([IDENTITY.astype(np.float64), c * k_x - s * k_y, s * k_x + c * k_y])


def _taps(filters) -> np.ndarray:
    """The filters as int32 taps, validated unless they are the spec's own."""
    return _SPEC_TAPS if filters is GRADIENT_FILTERS else check_filters(filters)[0].astype(np.int32)


def gradient_sums(neighbourhood, filters=GRADIENT_FILTERS) -> tuple[np.ndarray, ...]:
    """(..., 3, 3, C) int8 -> the exact integer sums S of each gradient filter,
    each (..., C) int32."""
    n = np.asarray(neighbourhood, dtype=np.int32)
    return tuple(np.einsum("...abc,ab->...c", n, k) for k in _taps(filters))


def gradient(gradient_sum, shift: int = GRADIENT_SHIFT) -> np.ndarray:
    """Gradient sum -> int8 gradient: (S + 2^(shift-1)) >> shift, an arithmetic
    (flooring) shift, then saturation to [-128, 127]."""
    s = np.asarray(gradient_sum, np.int64) + rounding(shift)
    return np.clip(np.right_shift(s, shift), INT8_MIN, INT8_MAX).astype(np.int8)


def perceive(neighbourhood, filters=GRADIENT_FILTERS, shift: int = GRADIENT_SHIFT) -> np.ndarray:
    """(..., 3, 3, C) int8 neighbourhood, centre at [1, 1] -> (..., 3*C) int8.

    Output order is [state (C) | gradient x (C) | gradient y (C)], the order of
    the first layer's input columns in a genome and of the cell's RAM."""
    if shift != GRADIENT_SHIFT:
        check_filters(filters, shift)
    n = np.asarray(neighbourhood, dtype=np.int8)
    return np.concatenate([n[..., 1, 1, :], *(gradient(s, shift) for s in gradient_sums(n, filters))],
                          axis=-1)
