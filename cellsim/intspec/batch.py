"""The expected effect of one update on many cell RAMs at once.

cellsim.intspec.update_ram handles one 256-byte RAM; checking the firmware on
thousands of them wants the same arithmetic over a batch. update_rams composes
the very intspec functions update_ram uses, over a leading batch axis, and the
tests check it equals update_ram RAM by RAM."""
import numpy as np

from . import layout
from .alive import is_alive
from .cell_update import hidden_activations, output_accumulators, update_cell
from .perceive import perceive


def update_rams(params, rams) -> np.ndarray:
    """(N, 256) uint8 RAMs -> (N, 256) uint8 after one update of each cell."""
    out = np.array(rams, dtype=np.uint8, copy=True)
    if out.ndim != 2 or out.shape[1] != layout.RAM_BYTES:
        raise ValueError(f"expected (N, {layout.RAM_BYTES}) RAMs, got shape {out.shape}")
    count = out[:, layout.COUNT:layout.COUNT + 4].view("<u4")
    count += np.uint32(1)  # uint32 arithmetic wraps, as update_ram's & 0xFFFFFFFF
    n = layout.neighbourhood(out)
    live = is_alive(n[..., layout.ALPHA].reshape(-1, 9), params.alive_threshold)
    layout.state(out)[~live] = 0
    if live.any():
        nl = n[live]
        perception = perceive(nl)
        acc2 = output_accumulators(params, hidden_activations(params, perception))
        out[live, layout.PERCEPTION:layout.PERCEPTION + perception.shape[1]] = \
            perception.view(np.uint8)
        out[live, layout.ACC:layout.ACC + 4 * acc2.shape[1]] = \
            acc2.astype("<i4").view(np.uint8)
        out[live, layout.STATE:layout.STATE + layout.CHANNELS] = \
            update_cell(params, nl).view(np.uint8)
    return out


def rams_from_grid(grid, torus: bool = False, rng=None) -> np.ndarray:
    """(H, W, 16) int8 grid -> (H*W, 256) RAMs whose mailboxes hold each cell's
    current neighbours (zero outside the grid unless `torus`), as after every
    cell has heard from all of its neighbours. The other bytes (scratch, rng,
    clock, count) are random when `rng` is given, else zero."""
    from .sync_step import neighbourhoods
    grid = np.asarray(grid, np.int8)
    n = neighbourhoods(grid, torus).reshape(-1, 3, 3, layout.CHANNELS)
    rams = (np.zeros((n.shape[0], layout.RAM_BYTES), np.uint8) if rng is None else
            np.random.default_rng(rng).integers(0, 256, (n.shape[0], layout.RAM_BYTES),
                                                dtype=np.uint8))
    layout.state(rams)[:] = n[:, 1, 1]
    box = layout.mailbox(rams)
    for k, (dy, dx) in enumerate(layout.NEIGHBOUR_OFFSETS):
        box[:, k] = n[:, dy + 1, dx + 1]
    return rams
