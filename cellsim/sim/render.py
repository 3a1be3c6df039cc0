"""Pictures and numbers of a running grid: RGB frames as the paper renders
them (rgb on white, 1 - alpha + rgb), upscaled; the loss against a target and
the living fraction; GIF and PNG bytes ready for an atomic write."""
import io

import numpy as np

from ..intspec.alive import ALIVE_ALPHA as ALIVE_THRESHOLD
from ..intspec.layout import ALPHA
from ..target_images import (MIN_IMAGE_SIDE, TARGET_SIZE, centred, load_target,
                             read_recorded_target, recorded_target_path, rgba_loss)
from .frame_kernels import rgb_on_white

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
    rgb = rgb_on_white(rgba, dead, DEAD_RGB)  # to_rgb in one pass
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


# Grids under the paper's 40-cell target draw it smaller, padded by a sixth of
# the side each way, as the quick preset trains it (24 + 2 x 6 = 36 cells).
SMALL_GRID_PADDING_SHARE = 6
MIN_SCORED_SIDE = next(side for side in range(1, TARGET_SIZE)
                       if side - 2 * (side // SMALL_GRID_PADDING_SHARE) >= MIN_IMAGE_SIDE)


def target_for(name: str, height: int, width: int):
    """The emoji (or image) target (4, H, W): placed as the paper does on 72x72
    (40 pixels plus 16 of padding) and centred on other grid sizes; on grids under
    40 cells drawn as the quick preset does (a sixth of the side as padding).
    None if there is no name or the grid is under MIN_SCORED_SIDE cells."""
    side = min(height, width)
    if not name or side < MIN_SCORED_SIDE:
        return None
    if side >= TARGET_SIZE:
        return centred(load_target(name), height, width)
    padding = side // SMALL_GRID_PADDING_SHARE
    return centred(load_target(name, side - 2 * padding, padding), height, width)


def scoring_target(spec, model_path, model, height: int, width: int):
    """(target or None, where it came from or why there is none) for a run of the
    model stored at `model_path`: `spec` (an emoji name or image path) if given,
    else the training target recorded beside the model (X.target.png, exact
    pixels, centred), else the emoji name the genome holds."""
    from pathlib import Path

    if spec:
        target = target_for(spec, height, width)
        return target, (f"target {spec}" if target is not None else
                        f"no loss: a {width}x{height} grid is under the {MIN_SCORED_SIDE} "
                        "cells a side the target needs")
    recorded = recorded_target_path(model_path) if model_path else None
    if recorded is not None and recorded.is_file():
        return (centred(read_recorded_target(recorded), height, width),
                f"training target recorded in {recorded.name}")
    name = getattr(model, "target", "")
    if name:
        target = target_for(name, height, width)
        return target, (f"target {name} (named in the genome)" if target is not None else
                        f"no loss: a {width}x{height} grid is under the {MIN_SCORED_SIDE} "
                        "cells a side the target needs")
    return None, (f"no loss: {Path(model_path).name if model_path else 'the model'} names no "
                  f"target and has no {recorded.name if recorded else 'recorded target'} beside "
                  "it (an image-trained genome from an older cellsim); give --target EMOJI|PNG")


def loss(grid, target, rgba=None) -> float:
    """The paper's loss of what the grid shows against the target (dead cells empty)."""
    rgba = shown_rgba(grid) if rgba is None else rgba
    return rgba_loss(rgba.transpose(2, 0, 1), target)


def alive_fraction(grid, rgba=None) -> float:
    """Fraction of cells inside the living pattern: some alpha > 0.1 in their 3x3."""
    return float(alive_mask(grid, rgba).mean())


def alive_mask(grid, rgba=None) -> np.ndarray:
    """(H, W) bool: the cells inside the living pattern (some alpha > 0.1 in their 3x3).
    rgba: shown_rgba(grid), when the caller has it."""
    rgba = shown_rgba(grid) if rgba is None else rgba
    alpha = rgba[..., ALPHA] > ALIVE_THRESHOLD
    padded = np.pad(alpha, 1, mode="wrap" if grid.torus else "constant")
    h, w = alpha.shape
    near = np.zeros_like(alpha)
    for dy in range(3):
        for dx in range(3):
            near |= padded[dy:dy + h, dx:dx + w]
    return near


def paletted(frame):
    """An RGB frame as a Pillow palette image: its own colours when it has at
    most 256 (a grown lizard: exact), else Pillow's fast octree, undithered.
    Saving RGB frames as GIF quantises by median cut, which took 300 ms a
    frame for a grid of random states at 288x288 (longer than its run); the
    octree takes 3 ms."""
    from PIL import Image

    rgb = np.ascontiguousarray(frame[..., :3], np.uint8)
    image = Image.fromarray(rgb)
    if image.getcolors(256) is None:  # more than 256 colours (Pillow counts in C)
        return image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    colours, index = np.unique(packed, return_inverse=True)
    image = Image.fromarray(index.reshape(packed.shape).astype(np.uint8), mode="P")
    palette = np.stack([colours >> 16, (colours >> 8) & 0xFF, colours & 0xFF], axis=1)
    image.putpalette(palette.astype(np.uint8).ravel().tolist())
    return image


def gif_bytes(frames, seconds_per_frame: float = 0.08) -> bytes:
    """An animated GIF of RGB frames, each with a palette of its own (paletted)."""
    images = [paletted(f) for f in frames]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, int(seconds_per_frame * 1000)), loop=0)
    return out.getvalue()


def png_bytes(frame) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(frame).save(out, format="PNG")
    return out.getvalue()
