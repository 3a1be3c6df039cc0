"""The pixels of each view mode, one RGBA pixel per cell, and the binary frame the
server streams: a 24-byte little-endian header (magic, width, height, frame
number, simulated time, mode) followed by width * height * 4 bytes of RGBA, rows
top to bottom. The page draws it as it is; all colouring happens here."""
import struct

import numpy as np

from ..intspec import layout
from ..sim.render import DEAD_RGB, alive_mask, frame_rgb, shown_rgba

MAGIC = b"CSV1"
HEADER = struct.Struct("<4sHHIdI")  # magic, width, height, frame number, time, mode index
OPAQUE = 255


def _ramp(stops) -> np.ndarray:
    """(256, 3) uint8 colour table through evenly spaced RGB stops."""
    stops = np.asarray(stops, np.float64)
    at = np.linspace(0, len(stops) - 1, 256)
    low = np.minimum(at.astype(int), len(stops) - 2)
    frac = (at - low)[:, None]
    return (stops[low] * (1 - frac) + stops[low + 1] * frac + 0.5).astype(np.uint8)


# Magnitudes (counts, ages): dark blue through green to yellow. Signed channel
# values: blue below zero, white at zero, red above.
SEQUENTIAL = _ramp([(13, 8, 135), (84, 2, 163), (139, 10, 165), (185, 50, 137),
                    (219, 92, 104), (244, 136, 73), (254, 188, 43), (240, 249, 33)])
DIVERGING = _ramp([(5, 48, 97), (67, 147, 195), (247, 247, 247), (214, 96, 77), (103, 0, 31)])


def _rgba(rgb: np.ndarray, dead: np.ndarray) -> np.ndarray:
    out = np.empty(rgb.shape[:2] + (4,), np.uint8)
    out[..., :3] = rgb
    out[..., 3] = OPAQUE
    out[dead, :3] = DEAD_RGB
    return out


def colour(grid, dead) -> np.ndarray:
    """RGBA over white as the paper shows it (1 - alpha + rgb); dead cells grey."""
    return _rgba(frame_rgb(grid, 1, shown_rgba(grid, dead), dead), dead)


def alive(grid, dead) -> np.ndarray:
    """Black where a cell is inside the living pattern (render.alive_mask), white
    elsewhere; dead cells grey."""
    near = alive_mask(grid, shown_rgba(grid, dead))
    rgb = np.where(near[..., None], np.uint8(0), np.uint8(255))
    return _rgba(np.broadcast_to(rgb, near.shape + (3,)), dead)


def heat(values: np.ndarray, low: float, high: float, table, dead) -> np.ndarray:
    """values mapped linearly from [low, high] onto a colour table."""
    span = max(high - low, 1e-12)
    index = np.clip((values - low) * (255 / span) + 0.5, 0, 255).astype(np.uint8)
    return _rgba(table[index], dead)


def channel(grid, dead, k: int):
    """Channel k's real value, blue-white-red, symmetric about zero. -> (rgba, (lo, hi))."""
    values = grid.float_states(k + 1)[..., k]
    top = float(np.abs(values).max()) or 1.0
    return heat(values, -top, top, DIVERGING, dead), (-top, top)


def updates(grid, dead):
    """Each cell's update count (RAM word 248), 0 to the largest. -> (rgba, (0, max))."""
    counts = layout.u32(grid.read_ram(), layout.COUNT)[..., 0].astype(np.float64)
    top = float(counts.max()) or 1.0
    return heat(counts, 0.0, top, SEQUENTIAL, dead), (0.0, top)


def age(grid, dead, last_update: np.ndarray):
    """Time since each cell last updated (or was rebooted; never: since the
    start), bright for recent, dark for old. -> (rgba, (0, oldest))."""
    ages = grid.time - last_update
    top = float(ages.max()) or 1.0
    return heat(ages, 0.0, top, SEQUENTIAL[::-1], dead), (0.0, top)


def encode(rgba: np.ndarray, number: int, time: float, mode: int) -> bytes:
    height, width = rgba.shape[:2]
    header = HEADER.pack(MAGIC, width, height, number & 0xFFFFFFFF, time, mode)
    return header + np.ascontiguousarray(rgba, np.uint8).tobytes()


def decode(data: bytes):
    """-> (header dict, (H, W, 4) uint8): the page's reading of a frame, for tests."""
    magic, width, height, number, time, mode = HEADER.unpack_from(data)
    if magic != MAGIC or len(data) != HEADER.size + width * height * 4:
        raise ValueError("not a cellsim view frame")
    pixels = np.frombuffer(data, np.uint8, offset=HEADER.size).reshape(height, width, 4)
    return {"width": width, "height": height, "number": number, "time": time,
            "mode": mode}, pixels
