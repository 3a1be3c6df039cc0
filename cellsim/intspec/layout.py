"""The 256 bytes of RAM each cell owns, shared by the simulator and the C firmware.

  offset  size  field
     0    128   mailbox: int8[8][16], the last state received from each neighbour
   128     16   state: int8[16]                      } together the 48 inputs of
   144     16   gradient x: int8[16] (scratch)       } the first layer, in genome
   160     16   gradient y: int8[16] (scratch)       } column order
   176     64   second-layer accumulators: int32[16] little-endian (scratch)
   240      4   rng: uint32 xorshift32 state (clock jitter and Poisson waits)
   244      4   clock: uint32 the wait (local ticks) the clock model last drew: at
                the cell's last firing, or its start delay after power-up or reboot;
                0 under the sync clock. The countdown runs in the timer, not here
   248      4   update count: uint32, +1 per update, wraps
   252      1   flags: bit 0 = dead (permanent fault, never fires again)
   253      3   reserved, zero
The 128 hidden activations never exist at once: the firmware streams them, one
hidden unit at a time, into the 16 accumulators (exact int32, so any order gives
the same bytes)."""
import numpy as np

RAM_BYTES = 256
CHANNELS = 16
ALPHA = 3
MAILBOX, MAILBOX_SLOTS = 0, 8
STATE = 128
GRAD_X = 144
GRAD_Y = 160
PERCEPTION, PERCEPTION_SIZE = STATE, 3 * CHANNELS
ACC = 176
RNG = 240
CLOCK = 244
COUNT = 248
FLAGS = 252
FLAG_DEAD = 0x01
RESERVED = 253
assert STATE == MAILBOX + MAILBOX_SLOTS * CHANNELS  # ram_order: the state follows the mailbox

# The fields in order: name, offset, C element type, dimensions, role. The C
# firmware's struct is generated from this table (firmware_gen.layout_header ->
# firmware_gen/c/nca_cell_layout.h); a test checks that the fields tile the RAM.
FIELDS = (
    ("mailbox", MAILBOX, "int8_t", (MAILBOX_SLOTS, CHANNELS), "last state of each neighbour"),
    ("state", STATE, "int8_t", (CHANNELS,), "own state"),
    ("grad_x", GRAD_X, "int8_t", (CHANNELS,), "scratch, gradient filter x"),
    ("grad_y", GRAD_Y, "int8_t", (CHANNELS,), "scratch, gradient filter y"),
    ("acc", ACC, "int32_t", (CHANNELS,), "scratch, layer-2 accumulators"),
    ("rng", RNG, "uint32_t", (), "xorshift32 of the clock model"),
    ("clock", CLOCK, "uint32_t", (), "last wait drawn, in local ticks"),
    ("count", COUNT, "uint32_t", (), "updates so far, wraps"),
    ("flags", FLAGS, "uint8_t", (), "bit 0: dead"),
    ("reserved", RESERVED, "uint8_t", (RAM_BYTES - RESERVED,), "zero"),
)
C_TYPE_BYTES = {"int8_t": 1, "uint8_t": 1, "int32_t": 4, "uint32_t": 4}
NUMPY_TYPES = {"int8_t": "<i1", "uint8_t": "<u1", "int32_t": "<i4", "uint32_t": "<u4"}

# Mailbox slot k holds the neighbour at offset NEIGHBOUR_OFFSETS[k] (dy, dx):
# the 3x3 neighbourhood in row-major order without its centre. A cell that sends
# to its neighbour at offset k lands in that neighbour's slot 7 - k.
NEIGHBOUR_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def ram_order(values) -> np.ndarray:
    """(..., 3, 3) values over a neighbourhood, [dy + 1][dx + 1] -> (..., 9) in the
    order of the RAM: mailbox slots 0..7 by NEIGHBOUR_OFFSETS, then the own state
    (the centre), which follows the mailbox. The kernels map filter taps to RAM
    bytes with it."""
    v = np.asarray(values)
    return np.stack([v[..., dy + 1, dx + 1] for dy, dx in NEIGHBOUR_OFFSETS] + [v[..., 1, 1]], axis=-1)


def receiver_slot(sender_offset_index: int) -> int:
    return MAILBOX_SLOTS - 1 - sender_offset_index


def mailbox(ram: np.ndarray) -> np.ndarray:
    """View (..., 8, 16) int8 of the mailbox of one cell or a grid of cells."""
    return ram[..., MAILBOX:MAILBOX + MAILBOX_SLOTS * CHANNELS].view(np.int8).reshape(
        ram.shape[:-1] + (MAILBOX_SLOTS, CHANNELS))


def state(ram: np.ndarray) -> np.ndarray:
    """View (..., 16) int8 of the state."""
    return ram[..., STATE:STATE + CHANNELS].view(np.int8)


def u32(ram: np.ndarray, offset: int) -> np.ndarray:
    """View (..., 1) uint32 of a little-endian word (offset divisible by 4)."""
    return ram[..., offset:offset + 4].view("<u4")


def neighbourhood(ram: np.ndarray) -> np.ndarray:
    """(..., 256) RAM -> (..., 3, 3, 16) int8: the mailbox around the own state."""
    box, own = mailbox(ram), state(ram)
    out = np.empty(ram.shape[:-1] + (3, 3, CHANNELS), np.int8)
    out[..., 1, 1, :] = own
    for k, (dy, dx) in enumerate(NEIGHBOUR_OFFSETS):
        out[..., dy + 1, dx + 1, :] = box[..., k, :]
    return out


def decode(ram) -> dict:
    """One cell's 256 bytes -> {field name: value} by FIELDS: an int for a
    scalar field, nested lists for an array (the RAM inspector of `cellsim view`)."""
    raw = np.ascontiguousarray(ram, np.uint8).reshape(RAM_BYTES)
    fields = {}
    for name, offset, c_type, dims, _ in FIELDS:
        count = int(np.prod(dims, dtype=np.int64))
        values = np.frombuffer(raw, NUMPY_TYPES[c_type], count, offset).reshape(dims)
        fields[name] = values.tolist()
    return fields
