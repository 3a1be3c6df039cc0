"""The pixels of each view mode, one RGBA pixel per cell, and the binary frame the
server streams: a 24-byte little-endian header (magic, width, height, frame
number, simulated time, mode) followed by width * height * 4 bytes of RGBA, rows
top to bottom. The page draws it as it is; all colouring happens here."""
import struct

import numpy as np

from ..intspec import layout
from ..intspec.alive import ALIVE_ALPHA
from ..sim.render import DEAD_RGB
from ..target_images import to_rgb

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


def real_channels(grid, first: int, count: int = 1) -> np.ndarray:
    """(H, W, count) float32 real values of channels first.. (each cell at its own
    genome's scales): the frame's share of Grid.float_states, without the rest."""
    state = grid.state
    own = layout.state(state.ram)[:, first:first + count]
    scales = np.stack([g.state_scale[first:first + count] for g in state.genomes])
    scale = scales[0] if len(scales) == 1 else scales[state.genome_of]
    return (own * scale).astype(np.float32).reshape(grid.height, grid.width, count)


def colour(grid, dead) -> np.ndarray:
    """RGBA over white as the paper shows it (1 - alpha + rgb); dead cells grey."""
    rgba = np.where(dead[..., None], np.float32(0), real_channels(grid, 0, layout.ALPHA + 1))
    return _rgba(to_rgb(rgba.transpose(2, 0, 1)), dead)


def alive(grid, dead) -> np.ndarray:
    """Black where a cell is inside the living pattern (some alpha > 0.1 in its
    3x3, as render.alive_mask), white elsewhere; dead cells grey."""
    alpha = (real_channels(grid, layout.ALPHA)[..., 0] > ALIVE_ALPHA) & ~dead
    padded = np.pad(alpha, 1, mode="wrap" if grid.torus else "constant")
    h, w = alpha.shape
    near = np.zeros_like(alpha)
    for dy in range(3):
        for dx in range(3):
            near |= padded[dy:dy + h, dx:dx + w]
    rgb = np.where(near[..., None], np.uint8(0), np.uint8(255))
    return _rgba(np.broadcast_to(rgb, (h, w, 3)), dead)


def heat(values: np.ndarray, low: float, high: float, table, dead) -> np.ndarray:
    """values mapped linearly from [low, high] onto a colour table."""
    span = max(high - low, 1e-12)
    index = np.clip((values - low) * (255 / span) + 0.5, 0, 255).astype(np.uint8)
    return _rgba(table[index], dead)


def channel(grid, dead, k: int):
    """Channel k's real value, blue-white-red, symmetric about zero. -> (rgba, (lo, hi))."""
    values = real_channels(grid, k)[..., 0]
    top = float(np.abs(values).max()) or 1.0
    return heat(values, -top, top, DIVERGING, dead), (-top, top)


def updates(grid, dead):
    """Each cell's update count (RAM word 248), 0 to the largest. -> (rgba, (0, max))."""
    counts = layout.u32(grid.ram, layout.COUNT)[..., 0].astype(np.float64)
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
