"""Pictures and numbers of a running grid: RGB frames as the paper renders
them (rgb on white, 1 - alpha + rgb), upscaled; the loss against a target and
the living fraction; GIF and PNG bytes ready for an atomic write."""
import io

import numpy as np

from ..intspec.alive import ALIVE_ALPHA as ALIVE_THRESHOLD
from ..intspec.layout import ALPHA
from ..target_images import TARGET_PADDING, TARGET_SIZE, load_target, rgba_loss, to_rgb

DEAD_RGB = np.array([150, 150, 150], np.uint8)  # failed hardware shows as grey


def shown_rgba(grid, dead=None) -> np.ndarray:
    """(H, W, 4) float32: the RGBA channels the grid shows (dead cells blank),
    what a frame, the loss and the living fraction all read. dead: grid.dead(),
    when the caller has it already."""
    dead = grid.dead() if dead is None else dead
    rgba = grid.float_states(4)  # a fresh array
    rgba[dead] = 0
    return rgba


def frame_rgb(grid, scale: int = 1, rgba=None, dead=None) -> np.ndarray:
    """(H*scale, W*scale, 3) uint8 of what the grid shows; dead cells grey.
    rgba, dead: shown_rgba(grid) and grid.dead(), when the caller has them."""
    dead = grid.dead() if dead is None else dead
    rgba = shown_rgba(grid, dead) if rgba is None else rgba
    rgb = to_rgb(rgba.transpose(2, 0, 1))
    rgb[dead] = DEAD_RGB
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1) if scale > 1 else rgb


def observe(grid, scale: int, target=None) -> dict:
    """One frame of a run and its metrics (the CLI's per-frame work), from one
    read of the dead flags and the shown RGBA: frame, loss (None without a
    target), alive fraction, dead fraction."""
    dead = grid.dead()
    rgba = shown_rgba(grid, dead)
    return {"frame": frame_rgb(grid, scale, rgba, dead),
            "loss": None if target is None else loss(grid, target, rgba),
            "alive": alive_fraction(grid, rgba), "dead": float(dead.mean())}


def default_scale(height: int, width: int) -> int:
    """Upscale small grids to about 288 pixels, nearest neighbour."""
    return max(1, -(-288 // max(height, width)))


def target_for(name: str, height: int, width: int):
    """The emoji target (4, H, W) placed as the paper does on 72x72 (40 pixels plus
    16 of padding), centred on other grid sizes; None if the grid is too small."""
    if not name or min(height, width) < TARGET_SIZE:
        return None
    side = TARGET_SIZE + 2 * TARGET_PADDING
    image = load_target(name)
    canvas = np.zeros((4, max(height, side), max(width, side)), np.float32)
    top, left = (canvas.shape[1] - side) // 2, (canvas.shape[2] - side) // 2
    canvas[:, top:top + side, left:left + side] = image
    top, left = (canvas.shape[1] - height) // 2, (canvas.shape[2] - width) // 2
    return canvas[:, top:top + height, left:left + width]


def loss(grid, target, rgba=None) -> float:
    """The paper's loss of what the grid shows against the target (dead cells empty)."""
    rgba = shown_rgba(grid) if rgba is None else rgba
    return rgba_loss(rgba.transpose(2, 0, 1), target)


def alive_fraction(grid, rgba=None) -> float:
    """Fraction of cells inside the living pattern: some alpha > 0.1 in their 3x3."""
    rgba = shown_rgba(grid) if rgba is None else rgba
    alpha = rgba[..., ALPHA] > ALIVE_THRESHOLD
    padded = np.pad(alpha, 1, mode="wrap" if grid.torus else "constant")
    h, w = alpha.shape
    near = np.zeros_like(alpha)
    for dy in range(3):
        for dx in range(3):
            near |= padded[dy:dy + h, dx:dx + w]
    return float(near.mean())


def gif_bytes(frames, seconds_per_frame: float = 0.08) -> bytes:
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, int(seconds_per_frame * 1000)), loop=0)
    return out.getvalue()


def png_bytes(frame) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="PNG")
    return out.getvalue()
