"""One browser tab's playground: a Grid of cellsim's asynchronous int8 engine,
the page's tools applied to it (each fault also recorded as a line of a fault
plan that `cellsim simulate --faults` replays), running at the chosen speed, and
what the page asks to see: frames in a view mode, statistics, a cell's RAM.
SessionPool gives each tab its own session, up to a limit."""
import logging
import math
import time
from dataclasses import dataclass, replace

import numpy as np

from ..errors import CellsimError, ConfigError
from ..intspec import layout
from ..sim import ClockSpec, Fault, Grid, Shape, TICKS_PER_UNIT
from . import frames, protocol

log = logging.getLogger("cellsim.view")

FAULT_QUANTUM = TICKS_PER_UNIT // 64  # faults start on a 1/64 unit: exact in the plan's text
MAX_FAULTS = 1000                     # the engine walks the whole plan every window
FRAME_BUDGET_S = 0.020                # engine time per frame when running flat out
STATS_EVERY_S = 0.25
MAX_RUN_UNITS = 64.0                  # one frame's run at most, in time units
DEFAULT_SPEED = 20.0                  # time units per second
DEFAULT_VALUE = {"loss": 1.0, "ramflip": 2e-4}
DEFAULT_DURATION = 20.0
DEFAULT_RADIUS = 5
LOGGED_REJECTIONS = 20                # then one in a hundred, so a flood cannot fill the log
TOOL_FAULTS = {"erase": "erase", "kill": "kill", "reboot": "reboot", "stuck": "stuck",
               "loss": "loss", "ramflip": "ramflip"}


@dataclass(frozen=True)
class GridConfig:
    model: str
    size: int = 72
    clock: str = "poisson"
    skew: float = 0.0
    jitter: float = 0.0
    seed: int = 0

    def clock_spec(self, fire_rate: float) -> ClockSpec:
        # Options that do not apply to the chosen clock are dropped, not refused:
        # the page keeps its skew slider when the user switches to sync.
        skew = 0.0 if self.clock == "sync" else self.skew
        jitter = self.jitter if self.clock == "periodic" else 0.0
        return ClockSpec(self.clock, fire_rate, skew, jitter)


class Session:
    """A grid and everything the page did to it. Not thread-safe: the server
    calls tick() from one thread at a time."""

    def __init__(self, catalogue, config: GridConfig, sid: int = 0):
        self.catalogue, self.sid = catalogue, sid
        self.paused, self.speed = False, DEFAULT_SPEED
        self.mode, self.channel, self.inspected = "colour", 4, None
        self.frame_number, self.rejected = 0, 0
        self.heat_range = (0.0, 1.0)
        self._units_per_s = 200.0  # the engine's pace, learned as it runs
        self._last_units = 1 / 64
        self._rates: list = []    # (wall time, updates, frames) over the last second
        self._last_stats = -math.inf
        self.outbox: list = []
        self.build(config)

    # -- the grid --------------------------------------------------------------
    def build(self, config: GridConfig) -> None:
        """A new grid with the paper's seed at the centre, and an empty plan."""
        choice = self.catalogue[config.model]
        genome = choice.genome
        grid = Grid(genome, config.size, clock=config.clock_spec(genome.fire_rate),
                    seed=config.seed)
        grid.plant_seed()
        self.grid, self.config, self.model_path = grid, config, choice.path
        self.lines: list = []
        self.last_update = np.zeros((grid.height, grid.width))
        self._counts = self._count_words()
        if self.inspected and not (self.inspected[0] < grid.width and
                                   self.inspected[1] < grid.height):
            self.inspected = None
        self.outbox.append(self.plan_message())

    def _count_words(self) -> np.ndarray:
        return layout.u32(self.grid.read_ram(), layout.COUNT)[..., 0].copy()

    def _ran(self) -> None:
        """Note which cells updated since the last look (for the 'age' view)."""
        counts = self._count_words()
        self.last_update[counts != self._counts] = self.grid.time
        self._counts = counts

    def run_for(self, units: float) -> None:
        start = time.perf_counter()
        self.grid.run(until=self.grid.time + units)
        spent = time.perf_counter() - start
        if spent > 0:
            self._units_per_s = units / spent
        self._last_units = units
        self._ran()

    def advance(self, wall_seconds: float) -> None:
        """Run as much simulated time as `wall_seconds` at the chosen speed, at
        most what the engine does in FRAME_BUDGET_S."""
        if self.paused:
            return
        most = min(max(1 / 64, self._units_per_s * FRAME_BUDGET_S), MAX_RUN_UNITS)
        if self.speed is None:
            # Flat out, a run is at most twice the last one: a growing pattern
            # costs more per unit than the last run showed.
            units = min(most, 2 * self._last_units)
        else:
            units = min(self.speed * wall_seconds, most)
        if units > 0:
            self.run_for(units)

    # -- the tools -------------------------------------------------------------
    def _fault_start(self) -> int:
        """The first 1/64 unit at which a new fault can still act, in ticks."""
        soonest = max(self.grid.now, self.grid.state.cursor[0] + 1)
        return -(-soonest // FAULT_QUANTUM) * FAULT_QUANTUM

    def apply_tool(self, tool: str, x: int, y: int, radius: int = DEFAULT_RADIUS,
                   value=None, duration=None) -> None:
        if tool == "seed":
            self.grid.plant_seed(x, y)
            self._ran()
            self._record(f"# t = {self.grid.time:.6g}: seed planted at x={x}, y={y} "
                         "(not a fault: a replay plants only the centre seed)")
            return
        if len(self.grid.faults) >= MAX_FAULTS:
            raise ConfigError(f"the fault plan holds {MAX_FAULTS} faults; reset to start another")
        kind = TOOL_FAULTS[tool]
        start_ticks = self._fault_start()
        start = start_ticks / TICKS_PER_UNIT
        shape = Shape("circle", (float(x), float(y), float(radius)))
        if kind in ("loss", "ramflip"):
            value = DEFAULT_VALUE[kind] if value is None else value
            end = start + (DEFAULT_DURATION if duration is None else duration)
            fault = Fault(kind, shape, start, end, value)
        else:
            if value is not None:
                raise ConfigError(f"{tool} takes no value")
            fault = Fault(kind, shape, start)
        self.grid.add_faults([fault])
        self._record(plan_line(fault))
        # Act now, even when paused: the user sees what the tool did.
        self.grid.run(until=(start_ticks + 1) / TICKS_PER_UNIT)
        self._ran()

    def _record(self, line: str) -> None:
        self.lines.append(line)
        self.outbox.append({"kind": "fault", "line": line})

    # -- messages --------------------------------------------------------------
    def handle_text(self, text) -> None:
        """Validate and apply one message from the page. A rejected one is logged
        and answered with an error message; nothing else changes."""
        try:
            self.apply(protocol.parse(text, self.grid.width, self.grid.height))
        except CellsimError as exc:
            self.rejected += 1
            if self.rejected <= LOGGED_REJECTIONS or self.rejected % 100 == 0:
                log.warning("tab %d: rejected message (%d so far): %s", self.sid,
                            self.rejected, exc)
            self.outbox.append({"kind": "error", "message": str(exc)})

    def apply(self, m: dict) -> None:
        kind = m["kind"]
        if kind == "tool":
            self.apply_tool(m["tool"], m["x"], m["y"], m.get("radius", DEFAULT_RADIUS),
                            m.get("value"), m.get("duration"))
        elif kind == "pause":
            self.paused = m["paused"]
        elif kind == "speed":
            self.speed = m["units_per_s"]
        elif kind == "step":
            self.run_for(m.get("units", 1.0))
        elif kind == "reset":
            self.build(self.config)
        elif kind == "view":
            channel = m.get("channel", self.channel)
            if channel >= layout.CHANNELS:
                raise protocol.MessageError(f"view.channel must be below {layout.CHANNELS}")
            self.mode, self.channel = m["mode"], channel
        elif kind == "inspect":
            self.inspected = None if m["x"] is None else (m["x"], m["y"])
            if self.inspected:
                self.outbox.append(self.cell_info(*self.inspected))
        elif kind == "config":
            fields = {k: v for k, v in m.items() if k != "kind"}
            self.build(replace(self.config, **fields))
        self._last_stats = -math.inf  # answer with fresh numbers

    # -- what the page sees ----------------------------------------------------
    def pixels(self) -> np.ndarray:
        g = self.grid
        dead = g.dead()
        if self.mode == "colour":
            return frames.colour(g, dead)
        if self.mode == "alive":
            return frames.alive(g, dead)
        if self.mode == "channel":
            rgba, self.heat_range = frames.channel(g, dead, self.channel)
        elif self.mode == "updates":
            rgba, self.heat_range = frames.updates(g, dead)
        else:
            rgba, self.heat_range = frames.age(g, dead, self.last_update)
        return rgba

    def frame(self) -> bytes:
        self.frame_number += 1
        return frames.encode(self.pixels(), self.frame_number, self.grid.time,
                             protocol.MODES.index(self.mode))

    def cell_info(self, x: int, y: int) -> dict:
        """The cell's 256 bytes decoded field by field from the one layout table."""
        decoded = layout.decode(self.grid.read_ram()[y, x])
        fields = [{"name": name, "offset": offset, "type": c_type, "dims": list(dims),
                   "role": role, "value": decoded[name]}
                  for name, offset, c_type, dims, role in layout.FIELDS]
        return {"kind": "cell", "x": x, "y": y, "time": self.grid.time,
                "dead": bool(self.grid.dead()[y, x]), "fields": fields,
                "state_real": [round(float(v), 4) for v in self.grid.float_states()[y, x]]}

    def stats(self, now: float) -> dict:
        rates = self._rates
        span = rates[-1][0] - rates[0][0] if len(rates) > 1 else 0.0
        ups = (rates[-1][1] - rates[0][1]) / span if span > 0 else 0.0
        fps = (rates[-1][2] - rates[0][2]) / span if span > 0 else 0.0
        return {"kind": "stats", "time": self.grid.time, "updates": self.grid.updates,
                "updates_per_s": ups, "frames_per_s": fps, "paused": self.paused,
                "speed": self.speed, "mode": self.mode, "channel": self.channel,
                "range": list(self.heat_range), "faults": len(self.grid.faults),
                "dead": int(self.grid.dead().sum()), "width": self.grid.width,
                "height": self.grid.height, "config": vars(self.config).copy()}

    def plan_message(self) -> dict:
        return {"kind": "plan", "head": self.plan_head(), "lines": list(self.lines),
                "tail": PLAN_TAIL}

    def plan_head(self) -> str:
        c = self.config
        clock = f"--clock {c.clock}"
        if c.clock != "sync" and c.skew:
            clock += f" --skew {c.skew:g}"
        if c.clock == "periodic" and c.jitter:
            clock += f" --jitter {c.jitter:g}"
        return ("# Faults applied in `cellsim view` (model " + c.model + "). Replay:\n"
                f"#   cellsim simulate {self.model_path} --size {c.size} {clock} "
                f"--seed {c.seed} --faults plan.toml --until TIME --out replay/\n"
                "fault = [\n")

    def plan_text(self) -> str:
        return self.plan_head() + "".join(f"  {line}\n" for line in self.lines) + PLAN_TAIL

    def tick(self, texts, now: float):
        """One turn of the server's loop: apply the page's messages, run, draw.
        -> (JSON-able replies, frame bytes or None when nothing changed)."""
        last = self._rates[-1][0] if self._rates else now
        for text in texts:
            self.handle_text(text)
        self.advance(min(now - last, 0.25))
        # A paused grid that nothing touched looks the same: no frame to send.
        still = self.paused and not texts and self.frame_number > 0
        frame = None if still else self.frame()
        self._rates.append((now, self.grid.updates, self.frame_number))
        while len(self._rates) > 2 and now - self._rates[0][0] > 1.0:
            self._rates.pop(0)
        if now - self._last_stats >= STATS_EVERY_S:
            self._last_stats = now
            self.outbox.append(self.stats(now))
            if self.inspected:
                self.outbox.append(self.cell_info(*self.inspected))
        replies, self.outbox = self.outbox, []
        return replies, frame


PLAN_TAIL = "]\n"


def plan_line(fault: Fault) -> str:
    """A fault as one line of a TOML plan (an inline table of the `fault` array),
    with times written exactly."""
    parts = [f'kind = "{fault.kind}"', f'shape = "{fault.shape}"']
    if fault.end == math.inf:
        parts.append(f"at = {fault.start!r}")
    else:
        parts += [f"from = {fault.start!r}", f"until = {fault.end!r}"]
    if fault.value:
        parts.append(f"value = {fault.value!r}")
    return "{ " + ", ".join(parts) + " },"


class PoolFull(CellsimError):
    """Every session slot is taken."""


class SessionPool:
    """One session per open tab, at most `limit`; closing a tab frees its grid."""

    def __init__(self, catalogue, size: int | None = None, limit: int = 8):
        self.catalogue, self.limit = catalogue, limit
        genome = catalogue[catalogue.default].genome
        side = size if size is not None else genome.grid_size
        self.config = GridConfig(catalogue.default, side)
        self.sessions: dict = {}
        self._next = 1

    def open(self) -> Session:
        if len(self.sessions) >= self.limit:
            raise PoolFull(f"{self.limit} tabs are open; close one first")
        session = Session(self.catalogue, self.config, self._next)
        self.sessions[session.sid] = session
        self._next += 1
        return session

    def close(self, session: Session) -> None:
        self.sessions.pop(session.sid, None)
