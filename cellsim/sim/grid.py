"""The simulator's front door: a Grid of cell computers built from a genome.

    grid = Grid(genome, size=72, clock="poisson", seed=1)
    grid.plant_seed()
    grid.add_faults([parse_damage("half@150")])
    grid.run(until=300)              # or grid.run(updates=10_000)
    grid.states(), grid.float_states(), grid.snapshot(), grid.frames(...)

A FloatParams instead of a genome gives the float32 model on the same grid."""
import math

import numpy as np

from ..errors import ConfigError
from ..intspec import IntParams, layout
from . import clocks
from .engine import FastEngine
from .events import KIND_NAMES, MAX_CELLS, neighbour_table
from .faults import Fault, FaultSchedule, Shape, ticks
from .floatmodel import FloatEngine, FloatParams
from .reference import ReferenceEngine
from .rom import GenomeTables, rom_bits
from .state import LAST_REST, power_up

ENGINES = ("fast", "reference")
MAX_SIDE = 4096
UPDATE_STRETCH = 256 * clocks.TICKS_PER_UNIT  # run(updates=) goes this far between checks
CHANNELS = layout.CHANNELS


def _int_params(genome) -> IntParams:
    params = getattr(genome, "params", genome)
    if not isinstance(params, IntParams):
        raise ConfigError(f"expected a Genome, IntParams or FloatParams, got "
                          f"{type(genome).__name__}")
    return params


def _grid_shape(size, default: int) -> tuple:
    size = default if size is None else size
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ConfigError(f"grid size {size!r} must be an integer or (height, width)") from None
    for side in (h, w):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or \
                not 1 <= side <= MAX_SIDE:
            raise ConfigError(f"grid size {size!r}: each side must be an integer in "
                              f"[1, {MAX_SIDE}]")
    if h * w > MAX_CELLS:
        raise ConfigError(f"a {w}x{h} grid has more than {MAX_CELLS} cells")
    return int(h), int(w)


class Grid:
    """A grid of cells, each with 256 bytes of RAM and a genome in ROM.

    genome: a cellsim.genome.Genome or IntParams for every cell (or `genomes`
    plus `genome_index` (H, W) for a mixed grid), or FloatParams for the float
    model. size: side or (height, width). clock: "poisson", "periodic", "sync" or
    a ClockSpec. Size, fire rate and torus default to the genome's."""

    def __init__(self, genome=None, size=None, *, clock="poisson", torus=None, seed: int = 0,
                 engine: str = "fast", workers=None, genomes=None,
                 genome_index=None):
        first = genome if genomes is None else genomes[0]
        self.float_mode = isinstance(first, FloatParams)
        params = [] if self.float_mode else [_int_params(g) for g in (genomes or [genome])]
        self.height, self.width = _grid_shape(size, getattr(first, "grid_size", 72))
        self.torus = bool(getattr(first, "torus", False) if torus is None else torus)
        if self.torus and min(self.height, self.width) < 3:
            raise ConfigError("a torus needs at least 3 cells on each side")
        if isinstance(clock, str):
            clock = clocks.ClockSpec(clock, getattr(first, "fire_rate", 0.5))
        if not isinstance(clock, clocks.ClockSpec):
            raise ConfigError(f"clock must be a name or a ClockSpec, got {clock!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or \
                not 0 <= seed < 2 ** 63:
            raise ConfigError(f"seed {seed!r} must be an integer in [0, 2^63)")
        if engine not in ENGINES:
            raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        if self.float_mode and engine != "fast":
            raise ConfigError("the float model has one engine (events in order, one at a time)")
        index = np.zeros((self.height, self.width), np.int64) if genome_index is None \
            else np.asarray(genome_index)
        if index.shape != (self.height, self.width) or not np.issubdtype(index.dtype, np.integer) \
                or index.min() < 0 or index.max() >= max(1, len(params)):
            raise ConfigError(f"genome_index must be ({self.height}, {self.width}) integers "
                              f"in [0, {max(1, len(params))})")
        if params:
            GenomeTables.build(params)  # refuses other channel counts or mixed hidden sizes
        self.genome = first
        self.clock, self.seed, self.engine_name = clock, int(seed), engine
        self.neighbours = neighbour_table(self.height, self.width, self.torus)
        self.state = power_up(self.height, self.width, self.torus, self.seed, clock, params, index)
        self.faults: list = []
        self._schedule()
        self.now = 0  # ticks: the grid has run every event before this tick
        # The engine also keeps the cells' states (cells.RamCells, or the float
        # engine's arrays); the grid reads and writes them through it.
        if self.float_mode:
            self.engine = FloatEngine(self.state, self.schedule, self.neighbours, first)
        elif engine == "fast":
            self.engine = FastEngine(self.state, self.schedule, self.neighbours, workers)
        else:
            self.engine = ReferenceEngine(self.state, self.schedule, self.neighbours)

    # -- faults ----------------------------------------------------------------
    def _schedule(self, extends=False):
        bits = rom_bits(self.state.genomes[0]) if self.state.genomes else 0
        self.schedule = FaultSchedule(self.faults, self.height, self.width, self.seed, bits,
                                      known=self.schedule if extends else None)

    def add_faults(self, faults) -> None:
        """Add Fault objects to the plan. A fault must start after the present."""
        faults = list(faults)
        for f in faults:
            if not isinstance(f, Fault):
                raise ConfigError(f"expected a Fault, got {f!r}")
            if ticks(f.start) <= self.state.cursor[0]:
                raise ConfigError(f"fault {f} starts at {f.start:g}, but the grid is already at "
                                  f"{self.time:g}")
            if self.clock.synchronous and f.kind in ("loss", "delay", "latency", "drift"):
                raise ConfigError(f"{f.kind} needs an asynchronous clock (the sync clock is the "
                                  "training step: no wires to delay, no oscillators to drift)")
            if f.kind in self.engine.refused_faults:
                raise ConfigError(f"{f.kind} flips bits of int8 cells; the float model has none")
        self.engine.settle(keep=False)  # a plan made without these faults
        old = self.faults
        self.faults = old + faults
        try:
            self._schedule(extends=True)
        except ConfigError:
            self.faults = old
            raise
        self.engine.schedule = self.schedule

    def _now_fault(self, kind: str, shape) -> None:
        shape = shape if isinstance(shape, Shape) else Shape.parse(shape)
        self.add_faults([Fault(kind, shape, (self.state.cursor[0] + 1) / clocks.TICKS_PER_UNIT)])

    def erase(self, shape="all") -> None:
        """Erase a shape at once (its cells reboot with cleared RAM, see docs)."""
        self._now_fault("erase", shape)

    def kill(self, shape) -> None:
        self._now_fault("kill", shape)

    def reboot(self, shape) -> None:
        self._now_fault("reboot", shape)

    # -- seeding and states ----------------------------------------------------
    def plant_seed(self, x=None, y=None) -> None:
        """The paper's seed at (x, y) (default: the centre), told to its neighbours."""
        x = self.width // 2 if x is None else x
        y = self.height // 2 if y is None else y
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise ConfigError(f"seed position ({x}, {y}) is outside the "
                              f"{self.width}x{self.height} grid")
        states = self.states()
        cell = y * self.width + x
        states[y, x] = self.engine.seed_state(cell)
        self.set_states(states)

    def set_states(self, states) -> None:
        """Write states (H, W, 16; int8, or float32 for the float model) and make
        every mailbox agree, as if each cell had just told its neighbours."""
        states = np.asarray(states)
        if states.shape != (self.height, self.width, CHANNELS):
            raise ConfigError(f"states must have shape ({self.height}, {self.width}, {CHANNELS}), "
                              f"got {states.shape}")
        own, box = self.engine.own_states(), self.engine.heard_states()
        own[:] = self.engine.stored(states.reshape(-1, CHANNELS))
        dead = self.dead().ravel()
        for k in range(layout.MAILBOX_SLOTS):
            sender = self.neighbours[:, k]
            ok = (sender >= 0) & ~dead
            box[ok, k] = own[sender[ok]]

    def states(self) -> np.ndarray:
        """(H, W, 16) copy of every state: int8, or float32 in the float model.
        A dead cell keeps the state it had; displayed_states() blanks it."""
        return self.engine.own_states().reshape(self.height, self.width, CHANNELS).copy()

    def float_states(self, channels=None) -> np.ndarray:
        """(H, W, 16) float32 real values (each cell's own genome scales); the
        first `channels` channels only when given (4: RGBA)."""
        return self.engine.real_states(channels).reshape(self.height, self.width, -1)

    def displayed_states(self, channels=None) -> np.ndarray:
        """float_states() with dead cells blank: what the grid shows."""
        return np.where(self.dead()[..., None], np.float32(0), self.float_states(channels))

    def dead(self) -> np.ndarray:
        """(H, W) bool: cells whose dead flag is set."""
        flags = self.engine.dead_flags()  # (a byte a cell, not a cache line a cell of RAM)
        if flags is None:
            flags = self.state.ram[:, layout.FLAGS] & layout.FLAG_DEAD
        return (flags != 0).reshape(self.height, self.width)

    @property
    def ram(self) -> np.ndarray:
        """(H, W, 256) uint8 view of all RAM (float model: only the control words).
        The caller may write it: the engine plans again from it."""
        self.engine.settle(keep=False)
        return self.state.ram.reshape(self.height, self.width, layout.RAM_BYTES)

    def read_ram(self) -> np.ndarray:
        """(H, W, 256) read-only view of all RAM as it is now. Unlike `ram`, it
        keeps the engine's planned window (nothing can be written through it),
        so looking at the RAM between short runs costs no re-planning."""
        self.engine.settle()
        view = self.state.ram.reshape(self.height, self.width, layout.RAM_BYTES).view()
        view.flags.writeable = False
        return view

    @property
    def time(self) -> float:
        return self.now / clocks.TICKS_PER_UNIT

    @property
    def updates(self) -> int:
        return self.state.updates

    def counts(self) -> dict:
        """Events so far by kind ('fire' = cell updates)."""
        return {name: int(n) for name, n in zip(KIND_NAMES, self.state.counts)}

    # -- snapshots -------------------------------------------------------------
    def snapshot(self) -> dict:
        """Everything needed to come back to this moment with restore()."""
        self.engine.settle()
        return {"state": self.state.copy(), "now": self.now, "faults": list(self.faults),
                "cells": self.engine.saved_cells()}

    def restore(self, snap: dict) -> None:
        saved = snap["state"]
        if (saved.height, saved.width) != (self.height, self.width):
            raise ConfigError("snapshot of a grid of another size")
        self.engine.forget()
        self.state.__dict__.update(saved.copy(ram=self.state.ram).__dict__)
        self.now, self.faults = snap["now"], list(snap["faults"])
        self._schedule()
        self.engine.schedule = self.schedule
        self.engine.restore_cells(snap["cells"])

    # -- running ---------------------------------------------------------------
    def run(self, until=None, updates=None, horizon=None) -> None:
        """Run to time `until` (every event before it) or for `updates` more cell
        updates (sync clock: to the end of the step that reaches them), whichever
        comes first. After an update-limited run, time is that of the last event.
        horizon: when this run is one of short steps to a known end, that end:
        the engine plans its events in windows ahead of the steps, and none past
        the horizon (or `until`, if later), whose planning would be wasted. It
        changes no result."""
        if until is None and updates is None:
            raise ConfigError("give run() a time (until=) or a number of updates (updates=)")
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(
                horizon, (int, float, np.integer, np.floating)) or not math.isfinite(horizon)):
            raise ConfigError(f"horizon must be a finite time, got {horizon!r}")
        if updates is not None and (isinstance(updates, bool) or not isinstance(
                updates, (int, np.integer)) or updates < 0):
            raise ConfigError(f"updates must be a non-negative integer, got {updates!r}")
        if until is not None:
            if isinstance(until, bool) or not isinstance(
                    until, (int, float, np.integer, np.floating)) or not math.isfinite(until):
                raise ConfigError(f"until must be a finite time, got {until!r}")
            if ticks(until) < self.now:
                raise ConfigError(f"cannot run back to {until:g}: the grid is at {self.time:g}")
        if updates == 0:
            return
        target = self.updates + updates if updates is not None else None
        while True:
            # Without a time limit, go a stretch at a time so that a grid where
            # nothing can happen any more stops instead of running forever.
            end = ticks(until) if until is not None else self.now + UPDATE_STRETCH
            left = None if target is None else target - self.updates
            self.engine.run((end - 1, LAST_REST), left,
                            None if horizon is None else max(ticks(horizon), end) - 1)
            if target is not None and self.updates >= target:
                self.now = max(self.now, self.state.cursor[0])
                return
            self.now = end
            if until is not None or self._quiet_forever():
                return

    def _quiet_forever(self) -> bool:
        """No cell will fire, no message is on a wire and no fault is still to come."""
        self.engine.settle()
        st = self.state
        if st.clock.synchronous:
            silent = (self.dead().ravel() | (st.rate <= 0)).all()
        else:
            silent = (st.next_fire >= clocks.NEVER).all() and len(st.pending) == 0
        return bool(silent) and self.schedule.horizon() <= self.now

    def frames(self, until, every=1.0):
        """Yield the grid at times now, now + every, ... up to `until` (inclusive)."""
        if not (isinstance(every, (int, float)) and every > 0 and math.isfinite(every)):
            raise ConfigError(f"frame interval {every!r} must be a positive time")
        t = self.time
        yield self
        while t + every <= until + 1e-9:
            t += every
            self.run(until=t, horizon=until)
            yield self
