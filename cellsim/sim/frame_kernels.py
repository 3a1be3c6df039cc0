"""numba loops behind a frame of a large grid: the shown channels of every cell
dequantised, and the picture on white, each in one pass over the cells. numpy's
chains of float64 and float32 temporaries took 110 ms of a 1024x1024 frame, a
seventh of a 2-unit run. The arithmetic is numpy's, operation for operation."""
import numpy as np
from numba import njit


@njit(cache=True)
def dequantised(ram, first, channels, scales):
    """(cells, channels) float32: the int8 bytes ram[:, first:first + channels]
    times their float32 scales, in float32 (numpy's int8 array * float32 scales)."""
    out = np.empty((ram.shape[0], channels), np.float32)
    for i in range(ram.shape[0]):
        for c in range(channels):
            out[i, c] = np.float32(ram[i, first + c]) * scales[c]
    return out


@njit(cache=True)
def rgb_on_white(rgba, dead, dead_rgb):
    """(H, W, 3) uint8 of (H, W, >=4) float32 premultiplied RGBA shown on white,
    target_images.to_rgb's clip(1 - clip(alpha, 0, 1) + rgb, 0, 1) * 255 + 0.5
    in float32; cells where `dead` is set get dead_rgb."""
    height, width = rgba.shape[0], rgba.shape[1]
    out = np.empty((height, width, 3), np.uint8)
    zero, one, full, half = np.float32(0.0), np.float32(1.0), np.float32(255.0), np.float32(0.5)
    for y in range(height):
        for x in range(width):
            if dead[y, x]:
                for c in range(3):
                    out[y, x, c] = dead_rgb[c]
                continue
            alpha = min(max(rgba[y, x, 3], zero), one)
            for c in range(3):
                shown = min(max(one - alpha + rgba[y, x, c], zero), one)
                out[y, x, c] = np.uint8(shown * full + half)
    return out
