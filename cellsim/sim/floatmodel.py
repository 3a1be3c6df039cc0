"""The float32 model on the simulated grid, to compare int8 cells with the
trained float behaviour. Same clocks, events, faults (except bit flips) and
messages as the int8 grid, but states and mailboxes are float32 arrays beside a
control RAM (rng, clock, count, flags): it need not fit in 256 bytes.

FloatParams.load reads interface 3, the .npz of `cellsim export --npz`."""
import math
import zipfile
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import CheckpointError, ConfigError
from ..intspec import layout
from ..intspec.alive import ALIVE_ALPHA as ALIVE_THRESHOLD
from ..intspec.perceive import float_filters
from . import clocks
from .engine import FastEngine
from .events import CLOCK, DELIVER, EV_ARG0, EV_ARG1, EV_ARG2, EV_ROUTE, FIRE, KILL, REBOOT, SYNC
from .kernels import ROUTE_LOST, begin_update, is_dead, read_u32, reboot, route_to, \
    write_u32
from .rng import reboot_seed
from .schedule import key_cell, key_kind, key_sub
from .state import Pending

CHANNELS, SLOTS, ALPHA = layout.CHANNELS, layout.MAILBOX_SLOTS, layout.ALPHA


@dataclass(frozen=True, eq=False)
class FloatParams:
    w1: np.ndarray      # float32 (hidden, 3C), interleaved perception order 3 * c + filter
    b1: np.ndarray      # float32 (hidden,)
    w2: np.ndarray      # float32 (C, hidden)
    b2: np.ndarray      # float32 (C,)
    angle: float = 0.0
    fire_rate: float = 0.5
    torus: bool = False

    def __post_init__(self):
        for name in ("w1", "b1", "w2", "b2"):
            value = np.ascontiguousarray(getattr(self, name), np.float32)
            if not np.isfinite(value).all():
                raise CheckpointError(f"float weights: {name} is not finite")
            object.__setattr__(self, name, value)
        hidden = self.w1.shape[0]
        expect = {"w1": (hidden, 3 * CHANNELS), "b1": (hidden,), "w2": (CHANNELS, hidden),
                  "b2": (CHANNELS,)}
        for name, shape in expect.items():
            if getattr(self, name).shape != shape:
                raise CheckpointError(f"float weights: {name} has shape "
                                      f"{getattr(self, name).shape}, expected {shape} "
                                      f"({CHANNELS} channels)")
        if not math.isfinite(self.angle):
            raise CheckpointError("float weights: angle is not finite")
        if not 0.0 < self.fire_rate <= 1.0:
            raise CheckpointError(f"float weights: fire rate {self.fire_rate} is outside (0, 1]")

    @property
    def hidden(self) -> int:
        return self.w1.shape[0]

    @classmethod
    def load(cls, path) -> "FloatParams":
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in ("w1", "b1", "w2", "b2", "angle", "fire_rate", "torus")
                           if k not in data]
                if missing:
                    raise CheckpointError(f"{path} lacks {', '.join(missing)}: not float weights "
                                          "from `cellsim export --npz`")
                arrays = {k: data[k] for k in ("w1", "b1", "w2", "b2")}
                meta = {k: data[k] for k in ("angle", "fire_rate", "torus")}
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"cannot read float weights {path}: {exc}") from None
        for k, v in meta.items():
            if v.shape != ():
                raise CheckpointError(f"{path}: {k} must be a single value")
        return cls(**arrays, angle=float(meta["angle"]), fire_rate=float(meta["fire_rate"]),
                   torus=bool(meta["torus"]))

    def kernels(self) -> np.ndarray:
        """(2, 3, 3) float32: the rotated gradient filters / 8, Kx, Ky (training/model.py)."""
        return float_filters(self.angle)[1:].astype(np.float32)

    def seed_state(self) -> np.ndarray:
        x = np.zeros(CHANNELS, np.float32)
        x[ALPHA:] = 1.0
        return x


# -- one cell ------------------------------------------------------------------

@njit(cache=True)
def float_update(state, mailbox, kernels, w1, b1, w2, b2, perception, hidden):
    """One asynchronous float update of a cell from its mailbox: new state in place.
    No live neighbour: zero (the shortcut the int8 cells take as well)."""
    alive = state[ALPHA] > ALIVE_THRESHOLD
    for k in range(SLOTS):
        alive = alive or mailbox[k, ALPHA] > ALIVE_THRESHOLD
    if not alive:
        state[:] = 0.0
        return
    for c in range(CHANNELS):
        gx = np.float32(0.0)
        gy = np.float32(0.0)
        slot = 0
        for dy in range(3):
            for dx in range(3):
                if dy == 1 and dx == 1:
                    v = state[c]
                else:
                    v = mailbox[slot, c]
                    slot += 1
                gx += kernels[0, dy, dx] * v
                gy += kernels[1, dy, dx] * v
        perception[3 * c] = state[c]
        perception[3 * c + 1] = gx
        perception[3 * c + 2] = gy
    for o in range(w1.shape[0]):
        acc = b1[o]
        for d in range(w1.shape[1]):
            acc += w1[o, d] * perception[d]
        hidden[o] = max(acc, np.float32(0.0))
    for c in range(CHANNELS):
        acc = b2[c]
        for o in range(w2.shape[1]):
            acc += w2[c, o] * hidden[o]
        perception[c] = state[c] + acc  # reuse as the new state
    live = perception[ALPHA] > ALIVE_THRESHOLD
    for k in range(SLOTS):
        live = live or mailbox[k, ALPHA] > ALIVE_THRESHOLD
    for c in range(CHANNELS):
        state[c] = perception[c] if live else 0.0


@njit(cache=True)
def float_send(states, mailboxes, ram, cell, neighbours, routes, route_base, inflight):
    for k in range(SLOTS):
        receiver, route = route_to(neighbours, cell, k, routes, route_base)
        if route == ROUTE_LOST:
            continue
        if route >= 0:
            inflight[route, :] = states[cell]
        elif not is_dead(ram[receiver]):
            mailboxes[receiver, SLOTS - 1 - k, :] = states[cell]


@njit(cache=True)
def run_float_events(order, keys, ev, ram, states, mailboxes, neighbours, routes, inflight,
                     kernels, w1, b1, w2, b2):
    """The planned events one at a time, in key order."""
    args0, args1, args2, route = ev[:, EV_ARG0], ev[:, EV_ARG1], ev[:, EV_ARG2], ev[:, EV_ROUTE]
    perception = np.empty(3 * CHANNELS, np.float32)
    hidden = np.empty(w1.shape[0], np.float32)
    for i in range(order.shape[0]):
        e = order[i]
        kind, cell = key_kind(keys[e]), key_cell(keys[e])
        row = ram[cell]
        if kind == FIRE:
            begin_update(row, args1[e], args2[e])
            float_update(states[cell], mailboxes[cell], kernels, w1, b1, w2, b2, perception, hidden)
            float_send(states, mailboxes, ram, cell, neighbours, routes, route[e], inflight)
        elif kind == DELIVER:
            if not is_dead(row):
                mailboxes[cell, key_sub(keys[e]), :] = inflight[args0[e]]
        elif kind == KILL:
            row[layout.FLAGS] |= layout.FLAG_DEAD
        elif kind == REBOOT:
            reboot(row, args1[e], args2[e])
            states[cell, :] = 0.0
            mailboxes[cell, :, :] = 0.0
            float_send(states, mailboxes, ram, cell, neighbours, routes, route[e], inflight)


# -- the whole grid, synchronously ---------------------------------------------

@njit(cache=True)
def draw_sync_coins(ram, rate, clock, fired):
    """Each live cell's coin for one step (its rng word), counted in RAM when it fires."""
    for c in range(ram.shape[0]):
        row = ram[c]
        fired[c] = False
        if is_dead(row) or rate[c] <= 0.0:
            continue
        rng, coin = clocks.sync_fires(clock, read_u32(row, layout.RNG))
        write_u32(row, layout.RNG, rng)
        if coin:
            fired[c] = True
            write_u32(row, layout.COUNT, (read_u32(row, layout.COUNT) + 1) & 0xFFFFFFFF)


def float_sync_step(params: FloatParams, states, mailboxes, dead, neighbours, fired):
    """The training step (training/model.py CAModel.forward with this fire mask) on
    mailboxes: x + update(x) * fired, then the before-and-after alive mask."""
    n = states.shape[0]
    hood = np.empty((n, 3, 3, CHANNELS), np.float32)
    box = iter(range(SLOTS))
    for dy in range(3):
        for dx in range(3):
            hood[:, dy, dx] = states if (dy, dx) == (1, 1) else mailboxes[:, next(box)]
    kernels = params.kernels()
    gx = np.einsum("nabc,ab->nc", hood, kernels[0])
    gy = np.einsum("nabc,ab->nc", hood, kernels[1])
    perception = np.stack([states, gx, gy], axis=-1).reshape(n, 3 * CHANNELS)
    delta = np.maximum(perception @ params.w1.T + params.b1, 0) @ params.w2.T + params.b2
    heard = np.concatenate([hood[:, :, :, ALPHA].reshape(n, 9)], axis=1)
    pre = (heard > ALIVE_THRESHOLD).any(axis=1)
    new = np.where((fired & ~dead)[:, None], states + delta, states).astype(np.float32)
    _exchange(new, mailboxes, dead, neighbours)
    post = (new[:, ALPHA] > ALIVE_THRESHOLD) | (mailboxes[:, :, ALPHA] > ALIVE_THRESHOLD).any(1)
    states[~dead] = np.where((pre & post)[:, None], new, 0.0)[~dead]
    _exchange(states, mailboxes, dead, neighbours)


def _exchange(values, mailboxes, dead, neighbours):
    """Every live cell tells its live neighbours values[cell]."""
    for k in range(SLOTS):
        receiver = neighbours[:, k]
        ok = (receiver >= 0) & ~dead
        ok[ok] &= ~dead[receiver[ok]]
        mailboxes[receiver[ok], SLOTS - 1 - k] = values[ok]


class FloatEngine(FastEngine):
    """The fast engine's planning with float32 cells, events one at a time. Its
    cells keep their states in float32 arrays, not in the RAM (cells.RamCells)."""
    refused_faults = ("ramflip", "romflip")  # float cells have no bits to flip
    plans_ahead = False  # its events run one at a time, a window per run (_execute)

    def __init__(self, state, schedule, neighbours, params: FloatParams):
        super().__init__(state, schedule, neighbours, workers=1)
        state.pending = Pending(payload=np.zeros((0, CHANNELS), np.float32))
        self.params = params
        self.states = np.zeros((state.cells, CHANNELS), np.float32)
        self.mailboxes = np.zeros((state.cells, SLOTS, CHANNELS), np.float32)

    def own_states(self) -> np.ndarray:
        return self.states

    def heard_states(self) -> np.ndarray:
        return self.mailboxes

    def seed_state(self, cell: int) -> np.ndarray:
        return self.params.seed_state()

    def stored(self, flat: np.ndarray) -> np.ndarray:
        if not np.isfinite(flat).all():
            raise ConfigError("states must be finite")
        return flat.astype(np.float32)

    def real_states(self, channels=None) -> np.ndarray:
        return self.states[:, :channels or CHANNELS].copy()

    def saved_cells(self):
        return self.states.copy(), self.mailboxes.copy()

    def restore_cells(self, saved) -> None:
        self.states[:], self.mailboxes[:] = saved

    def tables(self):
        return None

    def _execute(self, plan):
        st = self.state
        p = self.params
        run_float_events(self._key_order(plan), plan["keys"], plan["ev"], st.ram.view(np.int8),
                         self.states, self.mailboxes, self.neighbours, plan["routes"],
                         plan["inflight"], p.kernels(), p.w1, p.b1, p.w2, p.b2)
        self._commit(plan)

    def _run_sync(self, bound, left) -> int:
        st = self.state
        faults, _, _ = self._fault_events(bound)
        keys = self._sync_keys(faults, bound)
        fired = np.zeros(st.cells, bool)
        ram = st.ram.view(np.int8)
        done = 0
        for key, j in keys:
            if j < 0:
                draw_sync_coins(ram, st.rate, self.vector, fired)
                dead = (st.ram[:, layout.FLAGS] & layout.FLAG_DEAD) != 0
                float_sync_step(self.params, self.states, self.mailboxes, dead, self.neighbours,
                                fired)
                done += int(fired.sum())
                st.counts[SYNC] += 1
            else:
                kind, cell = int(faults.kind[j]), int(faults.cell[j])
                if kind == CLOCK:
                    st.rate[cell] *= faults.factor[j]
                elif not is_dead(ram[cell]) and kind == KILL:
                    ram[cell, layout.FLAGS] |= layout.FLAG_DEAD
                elif not is_dead(ram[cell]) and kind == REBOOT:
                    reboot(ram[cell], reboot_seed(np.uint64(st.seed), cell, int(faults.time[j])), 0)
                    self.states[cell] = 0.0
                    self.mailboxes[cell] = 0.0
                    dead = (st.ram[:, layout.FLAGS] & layout.FLAG_DEAD) != 0
                    for k in range(SLOTS):
                        receiver = self.neighbours[cell, k]
                        if receiver >= 0 and not dead[receiver]:
                            self.mailboxes[receiver, SLOTS - 1 - k] = 0.0
                st.counts[kind] += 1
            st.cursor = key
            if left is not None and j < 0 and done >= left:
                break
        else:
            st.cursor = bound
        st.counts[FIRE] += done
        return done
