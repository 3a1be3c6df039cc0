"""What a training run leaves besides its checkpoint: metrics.csv, the loss
curve, a picture of the sample pool and a GIF of growth, damage and regrowth.
Every file is written atomically."""
import copy
import io

import numpy as np
import torch
from PIL import Image

from cellsim.atomic import atomic_path, write_text
from cellsim.target_images import to_rgb

from . import fast
from .model import CAModel, make_seed

GIF_SCALE = 4            # pixels per cell in the GIF and the pool picture
GROW_STEPS, REGROW_STEPS, FRAME_EVERY = 200, 200, 2
DAMAGE_CENTRE, DAMAGE_RADIUS = (0.25, 0.1), 0.3   # the GIF's cut, in linspace(-1, 1) units


def inside_disc(height: int, width: int, centre_x, centre_y, radius) -> torch.Tensor:
    """Cells inside discs drawn on axes linspace(-1, 1) (the notebook's damage
    coordinates); tensor arguments broadcast to (N, 1, 1) for N discs."""
    xs = torch.linspace(-1.0, 1.0, width)[None, :]
    ys = torch.linspace(-1.0, 1.0, height)[:, None]
    return ((xs - centre_x) / radius).square() + ((ys - centre_y) / radius).square() < 1.0


def write_metrics(path, rows) -> None:
    lines = ["iteration,loss,lr,seconds"]
    lines += [f"{int(i)},{loss:.8g},{lr:.6g},{seconds:.3f}" for i, loss, lr, seconds in rows]
    write_text(path, "\n".join(lines) + "\n")


def write_loss_plot(path, rows) -> None:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.6), dpi=100)
    ax = fig.add_subplot()
    if rows:
        iterations, losses = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        ax.plot(iterations, np.log10(np.maximum(losses, 1e-12)), ".", markersize=2, alpha=0.3)
        window = max(1, len(losses) // 50)
        smooth = np.convolve(np.log10(np.maximum(losses, 1e-12)), np.ones(window) / window, mode="valid")
        ax.plot(iterations[window - 1:], smooth, "-", linewidth=1.5)
    ax.set_xlabel("iteration")
    ax.set_ylabel("log10 loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)


def _frame(state_chw: np.ndarray) -> Image.Image:
    img = Image.fromarray(to_rgb(state_chw))
    return img.resize((img.width * GIF_SCALE, img.height * GIF_SCALE), Image.NEAREST)


def write_pool_image(path, states: torch.Tensor, columns: int = 8, rows: int = 4) -> None:
    """The first columns*rows channels-last states, as a grid of rendered cells."""
    shown = states[:columns * rows].detach().cpu().permute(0, 3, 1, 2).numpy()
    tiles = [_frame(s) for s in shown]
    w, h = tiles[0].size
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (min(columns, len(tiles)) * w, rows * h), "white")
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * w, (i // columns) * h))
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


@torch.no_grad()
def growth_frames(model: CAModel, grid_size: int, seed: int = 0) -> list[np.ndarray]:
    """States (C, H, W) from the seed through growth, one circular cut and regrowth."""
    generator = torch.Generator().manual_seed(seed)
    model = copy.deepcopy(model).to("cpu").eval()
    x = fast.to_channels_last(make_seed(1, grid_size, grid_size, model.channels))
    cut = inside_disc(grid_size, grid_size, *DAMAGE_CENTRE, DAMAGE_RADIUS)
    frames = [x[0]]
    for step in range(1, GROW_STEPS + REGROW_STEPS + 1):
        x = fast.run(model, x, 1, generator)
        if step == GROW_STEPS:
            frames.append(x[0])
            x = x * ~cut[None, :, :, None]
        if step % FRAME_EVERY == 0:
            frames.append(x[0])
    return [f.permute(2, 0, 1).numpy() for f in frames]


def write_growth_gif(path, model: CAModel, grid_size: int, seed: int = 0) -> None:
    frames = [_frame(f) for f in growth_frames(model, grid_size, seed)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:],
                   duration=40, loop=0, optimize=False)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
