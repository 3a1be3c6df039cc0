"""The simulator's front door: a Grid of cell computers built from a genome.

    grid = Grid(genome, size=72, clock="poisson", seed=1)
    grid.plant_seed()
    grid.add_faults([parse_damage("half@150")])
    grid.run(until=300)              # or grid.run(updates=10_000)
    grid.states(), grid.float_states(), grid.snapshot(), grid.frames(...)
"""
import math

import numpy as np

from ..errors import ConfigError
from ..intspec import IntParams, layout
from . import clocks
from .engine import FastEngine
from .events import FIRE, KIND_NAMES, MAX_CELLS, neighbour_table
from .faults import Fault, FaultSchedule, ticks
from .reference import ReferenceEngine
from .rom import rom_bits
from .state import LAST_REST, power_up

ENGINES = ("fast", "reference")
MAX_SIDE = 4096


def _int_params(genome) -> IntParams:
    params = getattr(genome, "params", genome)
    if not isinstance(params, IntParams):
        raise ConfigError(f"expected a Genome or IntParams, got {type(genome).__name__}")
    return params


def _grid_shape(size, default: int) -> tuple:
    size = default if size is None else size
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    for side in (h, w):
        if isinstance(side, bool) or not isinstance(side, (int, np.integer)) or \
                not 1 <= side <= MAX_SIDE:
            raise ConfigError(f"grid size {size!r}: each side must be an integer in [1, {MAX_SIDE}]")
    if h * w > MAX_CELLS:
        raise ConfigError(f"a {w}x{h} grid has more than {MAX_CELLS} cells")
    return int(h), int(w)


class Grid:
    """A grid of cells, each with 256 bytes of RAM and a genome in ROM.

    genome: a cellsim.genome.Genome or IntParams (all cells), or use
    `genomes` + `genome_index` (H, W) for a mixed grid. Defaults (size, fire
    rate, torus) come from the Genome when it has them."""

    def __init__(self, genome=None, size=None, *, clock="poisson", torus=None, seed: int = 0,
                 engine: str = "fast", workers=None, blas: bool = True, genomes=None,
                 genome_index=None):
        if genomes is None:
            genomes = [genome]
        params = [_int_params(g) for g in genomes]
        first = genomes[0]
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
        index = np.zeros((self.height, self.width), np.int64) if genome_index is None \
            else np.asarray(genome_index)
        if index.shape != (self.height, self.width) or not np.issubdtype(index.dtype, np.integer) \
                or index.min() < 0 or index.max() >= len(params):
            raise ConfigError(f"genome_index must be ({self.height}, {self.width}) integers "
                              f"in [0, {len(params)})")
        self.genome = first
        self.clock, self.seed, self.engine_name = clock, int(seed), engine
        self.neighbours = neighbour_table(self.height, self.width, self.torus)
        self.state = power_up(self.height, self.width, self.torus, self.seed, clock, params, index)
        from .rom import GenomeTables
        GenomeTables.build(params)  # validates channel and hidden counts now
        self.faults: list = []
        self._schedule()
        self.now = 0  # ticks: the grid has run every event before this tick
        self.engine = FastEngine(self.state, self.schedule, self.neighbours, workers, blas) \
            if engine == "fast" else ReferenceEngine(self.state, self.schedule, self.neighbours)

    # -- configuration ---------------------------------------------------------
    def _schedule(self):
        self.schedule = FaultSchedule(self.faults, self.height, self.width, self.seed,
                                      rom_bits(self.state.genomes[0]))

    def add_faults(self, faults) -> None:
        """Add faults (Fault objects); times before now are refused."""
        faults = list(faults)
        for f in faults:
            if not isinstance(f, Fault):
                raise ConfigError(f"expected a Fault, got {f!r}")
            if ticks(f.start) <= self.state.cursor[0]:
                raise ConfigError(f"fault {f} starts at {f.start:g}, but the grid is already at "
                                  f"{self.time:g}")
            if self.clock.synchronous and f.kind in ("loss", "delay", "drift"):
                raise ConfigError(f"{f.kind} needs an asynchronous clock (the sync clock is the "
                                  "training step: no wires to delay, no oscillators to drift)")
        old = self.faults
        self.faults = old + faults
        try:
            self._schedule()
        except ConfigError:
            self.faults = old
            raise
        self.engine.schedule = self.schedule

    # -- seeding and states ----------------------------------------------------
    def _params_at(self, cell):
        return self.state.genomes[self.state.genome_of[cell]]

    def plant_seed(self, x=None, y=None) -> None:
        """The paper's seed at (x, y) (default: the centre), told to its neighbours."""
        x = self.width // 2 if x is None else x
        y = self.height // 2 if y is None else y
        if not (0 <= x < self.width and 0 <= y < self.height):
            raise ConfigError(f"seed position ({x}, {y}) is outside the {self.width}x{self.height} grid")
        states = self.states()
        states[y, x] = self._params_at(y * self.width + x).seed_state()
        self.set_states(states)

    def set_states(self, states) -> None:
        """Write int8 states (H, W, 16) and make every mailbox agree with them, as
        if all cells had just told their neighbours (dead cells hear nothing)."""
        states = np.asarray(states)
        if states.shape != (self.height, self.width, layout.CHANNELS):
            raise ConfigError(f"states must have shape ({self.height}, {self.width}, "
                              f"{layout.CHANNELS}), got {states.shape}")
        ram = self.state.ram
        layout.state(ram)[:] = states.reshape(-1, layout.CHANNELS).astype(np.int8)
        dead = self.dead().ravel()
        box = layout.mailbox(ram)
        for k in range(layout.MAILBOX_SLOTS):
            sender = self.neighbours[:, k]
            ok = (sender >= 0) & ~dead
            box[ok, k] = layout.state(ram)[sender[ok]]

    def states(self) -> np.ndarray:
        """(H, W, 16) int8 copy of every cell's state (dead cells: their frozen state)."""
        return layout.state(self.state.ram).reshape(self.height, self.width, -1).copy()

    def float_states(self) -> np.ndarray:
        """(H, W, 16) float32 real values of the states (each cell's genome scales)."""
        scales = np.stack([p.state_scale for p in self.state.genomes])[self.state.genome_of]
        return (self.states().reshape(-1, layout.CHANNELS) * scales).reshape(
            self.height, self.width, -1).astype(np.float32)

    def dead(self) -> np.ndarray:
        """(H, W) bool: cells whose dead flag is set."""
        return ((self.state.ram[:, layout.FLAGS] & layout.FLAG_DEAD) != 0).reshape(
            self.height, self.width)

    @property
    def ram(self) -> np.ndarray:
        """(H, W, 256) uint8 view of all RAM."""
        return self.state.ram.reshape(self.height, self.width, layout.RAM_BYTES)

    @property
    def time(self) -> float:
        return self.now / clocks.TICKS_PER_UNIT

    @property
    def updates(self) -> int:
        return self.state.updates

    def counts(self) -> dict:
        return {name: int(n) for name, n in zip(KIND_NAMES, self.state.counts)}

    # -- running ---------------------------------------------------------------
    def run(self, until=None, updates=None) -> None:
        """Run to time `until` (every event before it) or for `updates` more cell
        updates (sync clock: until the step that reaches them), whichever is first."""
        if until is None and updates is None:
            raise ConfigError("give run() a time (until=) or a number of updates (updates=)")
        if updates is not None and (isinstance(updates, bool) or not isinstance(
                updates, (int, np.integer)) or updates < 0):
            raise ConfigError(f"updates must be a non-negative integer, got {updates!r}")
        if until is not None:
            if not (isinstance(until, (int, float, np.integer, np.floating)) and math.isfinite(until)):
                raise ConfigError(f"until must be a finite time, got {until!r}")
            if ticks(until) < self.now:
                raise ConfigError(f"cannot run back to {until:g}: the grid is at {self.time:g}")
            bound = (ticks(until) - 1, LAST_REST)
        else:
            bound = (clocks.NEVER, LAST_REST)
        if updates == 0:
            return
        before = self.updates
        self.engine.run(bound, updates)
        if updates is not None and self.updates - before >= updates:
            self.now = max(self.now, self.state.cursor[0])
        else:
            self.now = bound[0] + 1
