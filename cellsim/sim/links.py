"""The wires between cells: which messages a faulty link loses or delays.

A link keeps its messages in order (a UART is FIFO): a message arrives no
earlier than the one sent before it on the same link, plus one tick, or plus
its whole time on the wire under a `latency` fault (a link rate, which
`cellsim.hardware` derives from a baud rate). Loss and
delay are drawn from a hash of (seed, link, send tick, fault), never from a
cell's RNG: the cells cannot see their wires."""
from numba import njit
import numpy as np

from .rng import MASK32, TAG_MESSAGE, hash_words

LOST = -1


@njit(cache=True)
def message_arrival(seed, sender, k, tick, fault_bits, start, end, loss, delay, last_arrival):
    """Arrival tick of the message `sender` sends at `tick` to its neighbour k, or LOST.

    fault_bits: the sender's mask over the message faults (start/end ticks,
    loss threshold out of 2^32, delay in ticks: > 0 the longest random delay,
    < 0 minus the fixed time a message takes on the wire, a link rate: then
    the next message on the link also waits for this one to finish)."""
    extra = 0
    wire = 1  # ticks between two arrivals on one link
    for i in range(start.shape[0]):
        if (fault_bits >> i) & 1 and start[i] <= tick < end[i]:
            h = hash_words(seed, TAG_MESSAGE, sender * 8 + k, tick, i)
            if np.int64(h & np.uint64(MASK32)) < loss[i]:
                return LOST
            if delay[i] > 0:
                extra = max(extra, (np.int64(h >> np.uint64(32)) * (delay[i] + 1)) >> 32)
            elif delay[i] < 0:
                extra = max(extra, -delay[i])
                wire = max(wire, -delay[i])
    return max(tick + extra, last_arrival + wire)
