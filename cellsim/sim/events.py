"""Event kinds, their total order, and the grid's neighbour table.

Every engine processes events in the order of the key (time, kind, cell, sub);
at equal times faults come first, then message deliveries, then firings, so
the order of simultaneous events is defined and engine-independent."""
import numpy as np

from ..intspec.layout import NEIGHBOUR_OFFSETS

# Kinds, in processing order at equal times.
CLOCK, ROMFLIP, RAMFLIP, KILL, REBOOT, DELIVER, FIRE, SYNC = range(8)
KIND_NAMES = ("clock", "romflip", "ramflip", "kill", "reboot", "deliver", "fire", "sync")

# A planned event is its sort key (below: time, kind, cell, sub) and one row of
# 4 int64 (half a cache line) of the fast engine's event table: these columns.
EV_ARG0, EV_ARG1, EV_ARG2, EV_ROUTE = range(4)
EVENT_FIELDS = 4

# Packed sort key of the fast engine (schedule.sort_events): bits of
# (time - window start, kind, cell, sub), most significant first, 63 in all
# (the key is a signed int64). The kind field has room for 32 kinds, 8 in use:
# a new event kind takes the next number and its place in the order at equal
# times, and the engines' key order stays the reference's. The time field
# bounds a window at 2^24 ticks (256 units; the engine plans 64 at most), the
# cell field a grid at 2^24 cells (4096 x 4096), the sub field is a mailbox
# slot or a fault's index in the plan (capped at MAX_SUB).
KEY_TIME_BITS, KEY_KIND_BITS, KEY_CELL_BITS, KEY_SUB_BITS = 24, 5, 24, 10
assert KEY_TIME_BITS + KEY_KIND_BITS + KEY_CELL_BITS + KEY_SUB_BITS <= 63
assert len(KIND_NAMES) <= 1 << KEY_KIND_BITS
MAX_KINDS = 1 << KEY_KIND_BITS
MAX_WINDOW_TICKS = 1 << KEY_TIME_BITS
MAX_CELLS = 1 << KEY_CELL_BITS
MAX_SUB = (1 << KEY_SUB_BITS) - 1


def neighbour_table(height: int, width: int, torus: bool) -> np.ndarray:
    """(H*W, 8) int32: the cell at mailbox offset k of each cell, -1 beyond the edge."""
    ys, xs = np.divmod(np.arange(height * width), width)
    table = np.empty((height * width, len(NEIGHBOUR_OFFSETS)), np.int32)
    for k, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
        ny, nx = ys + dy, xs + dx
        if torus:
            table[:, k] = (ny % height) * width + nx % width
        else:
            inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
            table[:, k] = np.where(inside, ny * width + nx, -1)
    return table
