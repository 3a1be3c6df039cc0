"""The synchronous masked step on a whole int8 grid: the training step's
semantics (the paper's training step) with the integer cell update of cell_update.py."""
import numpy as np

from . import layout
from .alive import is_alive
from .cell_update import hidden_activations, output_accumulators, residual
from .perceive import perceive


def neighbourhoods(grid, torus: bool) -> np.ndarray:
    """(H, W, C) -> (H, W, 3, 3, C); outside the grid is zero unless `torus`."""
    padded = np.pad(grid, ((1, 1), (1, 1), (0, 0)), mode="wrap" if torus else "constant")
    h, w = grid.shape[:2]
    return np.stack([np.stack([padded[dy:dy + h, dx:dx + w] for dx in range(3)], axis=2)
                     for dy in range(3)], axis=2)


def live_cells(p, grid, torus: bool) -> np.ndarray:
    alphas = neighbourhoods(grid[..., layout.ALPHA:layout.ALPHA + 1], torus)[..., 0]
    return is_alive(alphas.reshape(grid.shape[:2] + (9,)), p.alive_threshold)


def step_grid_sync(p, grid, fire_mask, torus: bool = False) -> np.ndarray:
    """All cells read the old grid; fired cells add their delta; then every cell
    without a live neighbour before and after is zeroed."""
    grid = np.asarray(grid, np.int8)
    acc2 = output_accumulators(p, hidden_activations(p, perceive(neighbourhoods(grid, torus))))
    new = np.where(np.asarray(fire_mask, bool)[..., None], residual(p, grid, acc2), grid)
    live = live_cells(p, grid, torus) & live_cells(p, new, torus)
    return np.where(live[..., None], new, np.int8(0)).astype(np.int8)
