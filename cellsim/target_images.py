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


# `cellsim quantize` writes the training target beside the genome, as PNG:
# X.genome -> X.target.png. The genome format has no room for pixels (10 KB ROM).
RECORDED_TARGET_SUFFIX = ".target.png"


def recorded_target_path(model_path) -> Path:
    """Where the training target of the model at `model_path` is recorded."""
    path = Path(model_path)
    return path.with_name(path.stem + RECORDED_TARGET_SUFFIX)


def recorded_target_png(target: np.ndarray) -> bytes:
    """A training target (4, H, W), RGB premultiplied, as RGBA PNG bytes. The
    straight 8-bit RGBA it stores is the image the target was made from, so
    read_recorded_target returns the training target's exact floats."""
    import io

    from PIL import Image

    target = np.asarray(target, np.float32)
    alpha = target[3]
    rgb = np.divide(target[:3], alpha, out=np.zeros_like(target[:3]), where=alpha > 0)
    rgba = np.concatenate([rgb, alpha[None]]).transpose(1, 2, 0)
    out = io.BytesIO()
    Image.fromarray(np.round(np.clip(rgba, 0, 1) * 255).astype(np.uint8), "RGBA").save(out, "PNG")
    return out.getvalue()


def read_recorded_target(path) -> np.ndarray:
    """A recorded training target (4, H, W) float32, premultiplied as load_target makes it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise TargetError(f"recorded target {path} is not a readable image "
                          f"({exc.__class__.__name__})") from None
    arr[..., :3] *= arr[..., 3:4]
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def centred(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(4, h, w) image centred on a (4, height, width) canvas: padded with
    zeros where the canvas is larger, cropped where it is smaller."""
    _, h, w = image.shape
    canvas = np.zeros((4, max(height, h), max(width, w)), np.float32)
    top, left = (canvas.shape[1] - h) // 2, (canvas.shape[2] - w) // 2
    canvas[:, top:top + h, left:left + w] = image
    top, left = (canvas.shape[1] - height) // 2, (canvas.shape[2] - width) // 2
    return canvas[:, top:top + height, left:left + width]


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
