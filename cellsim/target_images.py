"""Target patterns: the paper's emoji (shipped as PNGs rendered from Noto Color
Emoji, so users need no font) or any user image, as premultiplied RGBA arrays."""
from pathlib import Path

import numpy as np

from .errors import TargetError

EMOJI = {  # the official set of the paper's notebook
    "lizard": "\U0001F98E",
    "grinning": "\U0001F600",
    "boom": "\U0001F4A5",
    "eye": "\U0001F441",
    "fish": "\U0001F420",
    "butterfly": "\U0001F98B",
    "ladybug": "\U0001F41E",
    "web": "\U0001F578",
    "pretzel": "\U0001F968",
    "tree": "\U0001F384",
}
EMOJI_DIR = Path(__file__).parent / "data" / "emoji"
TARGET_SIZE, TARGET_PADDING, MIN_IMAGE_SIDE = 40, 16, 8


def emoji_path(name: str) -> Path:
    if name not in EMOJI:
        raise TargetError(f"unknown emoji {name!r}; choose one of {', '.join(EMOJI)} or give a PNG path")
    return EMOJI_DIR / f"{name}.png"


def load_target(spec: str, size: int = TARGET_SIZE, padding: int = TARGET_PADDING) -> np.ndarray:
    """Emoji name or image path -> float32 array (4, size+2*padding, size+2*padding),
    RGB premultiplied by alpha, values in [0, 1], as the official notebook makes it."""
    from PIL import Image, UnidentifiedImageError

    if size < MIN_IMAGE_SIDE or padding < 0:
        raise TargetError(f"target size must be >= {MIN_IMAGE_SIDE} and padding >= 0")
    path = emoji_path(spec) if spec in EMOJI or "." not in Path(spec).name and "/" not in spec else Path(spec)
    try:
        with Image.open(path) as img:
            img.load()
            rgba = img.convert("RGBA")
    except FileNotFoundError:
        raise TargetError(f"target image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise TargetError(f"target {path} is not a readable image ({exc.__class__.__name__})") from None
    if min(rgba.size) < MIN_IMAGE_SIDE:
        raise TargetError(f"target image {path} is {rgba.size[0]}x{rgba.size[1]}; "
                          f"at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels are needed")
    rgba.thumbnail((size, size), Image.LANCZOS)
    arr = np.asarray(rgba, dtype=np.float32) / 255.0
    arr[..., :3] *= arr[..., 3:4]
    if arr[..., 3].max() <= 0.1:
        raise TargetError(f"target image {path} is (nearly) fully transparent: nothing to grow")
    grid = np.zeros((4, size + 2 * padding, size + 2 * padding), np.float32)
    h, w = arr.shape[:2]
    top, left = padding + (size - h) // 2, padding + (size - w) // 2
    grid[:, top:top + h, left:left + w] = arr.transpose(2, 0, 1)
    return grid


def rgba_loss(rgba, target) -> float:
    """The paper's training loss: the mean squared error of RGBA against the
    target, (..., 4, H, W) against (4, H, W); over a batch of equal samples,
    the batch mean of the per-sample losses."""
    return float(np.mean((np.asarray(rgba) - target) ** 2))


def to_rgb(state: np.ndarray) -> np.ndarray:
    """(C>=4, H, W) premultiplied state -> (H, W, 3) uint8 shown on white."""
    rgb, alpha = state[:3], np.clip(state[3:4], 0.0, 1.0)
    img = np.clip(1.0 - alpha + rgb, 0.0, 1.0)
    return (img.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)
