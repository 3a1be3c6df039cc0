"""Fault plans: what goes wrong, where and when. Parsed from a TOML or JSON file
or from command-line flags, validated (ConfigError names the problem), then
expanded into per-cell fault events for a time window, reproducibly from the seed.

Flag grammar: KIND[=VALUE][:SHAPE][@START[-END]], e.g. erase:half@150,
kill:circle:36,36,10@200, loss=0.2@100-200, ramflip=1e-6. docs/simulator.md
describes what each fault does to the hardware."""
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from . import events as ev
from .clocks import NEVER, TICKS_PER_UNIT

# kind -> (needs a value, value range (lo, hi), what the value means)
KINDS = {
    "erase": (False, None, ""),
    "kill": (False, None, ""),
    "reboot": (False, None, ""),
    "stuck": (False, None, ""),
    "drift": (True, (1e-3, 1e3), "oscillator rate factor"),
    "ramflip": (True, (0.0, 1e-3), "flips per RAM bit per time unit"),
    "romflip": (True, (0.0, 1e-3), "flips per ROM bit per time unit"),
    "loss": (True, (0.0, 1.0), "probability that a message is lost"),
    "delay": (True, (0.0, 1000.0), "longest extra message delay in time units"),
    "latency": (True, (1.0 / TICKS_PER_UNIT, 1000.0), "time a message takes on the wire, in "
                                                        "time units"),
}
ONE_SHOT = ("erase", "kill", "reboot", "stuck", "drift")   # happen at one time
RATE = ("ramflip", "romflip")                               # random events over a window
LINK = ("loss", "delay", "latency")                         # conditions on messages sent
HALVES = ("left", "right", "top", "bottom")
SHAPE_ARITY = {"all": 0, "half": None, "circle": 3, "rect": 4, "cell": 2, "random": 1}
RAM_BITS = 256 * 8
MAX_LINK_FAULTS = 64  # one bit each in a per-cell mask
MAX_TIME = 1e7


@dataclass(frozen=True)
class Shape:
    """A set of cells: all; half[:left|right|top|bottom] (default right);
    circle:X,Y,R (cells with (x-X)^2 + (y-Y)^2 <= R^2); rect:X0,Y0,X1,Y1
    (X0 <= x < X1, Y0 <= y < Y1); cell:X,Y; random:P (each cell with probability
    P, drawn from the grid seed and the fault's place in the plan: scattered
    failures, e.g. kill:random:0.1). x is the column, y the row."""
    kind: str = "all"
    args: tuple = ()

    def __post_init__(self):
        if self.kind not in SHAPE_ARITY:
            raise ConfigError(f"unknown shape {self.kind!r}; use {', '.join(SHAPE_ARITY)}")
        args = tuple(self.args)
        if self.kind == "half":
            args = args or ("right",)
            if len(args) != 1 or args[0] not in HALVES:
                raise ConfigError(f"half: the side must be one of {', '.join(HALVES)}")
        elif len(args) != SHAPE_ARITY[self.kind]:
            raise ConfigError(f"shape {self.kind} takes {SHAPE_ARITY[self.kind]} numbers")
        object.__setattr__(self, "args", args)

    @classmethod
    def parse(cls, text: str) -> "Shape":
        name, _, rest = str(text).strip().partition(":")
        if name not in SHAPE_ARITY:
            raise ConfigError(f"unknown shape {text!r}; use all, half[:side], circle:X,Y,R, "
                              "rect:X0,Y0,X1,Y1, cell:X,Y or random:P")
        if name == "half":
            side = rest or "right"
            if side not in HALVES:
                raise ConfigError(f"half:{side}: the side must be one of {', '.join(HALVES)}")
            return cls("half", (side,))
        arity = SHAPE_ARITY[name]
        parts = [p for p in rest.split(",")] if rest else []
        if len(parts) != arity:
            raise ConfigError(f"shape {text!r}: {name} takes {arity} numbers")
        try:
            numbers = tuple(float(p) for p in parts)
        except ValueError:
            raise ConfigError(f"shape {text!r}: {rest!r} are not numbers") from None
        if not all(math.isfinite(n) for n in numbers):
            raise ConfigError(f"shape {text!r} has a non-finite number")
        if name == "circle" and numbers[2] < 0:
            raise ConfigError(f"shape {text!r}: the radius is negative")
        if name == "rect" and (numbers[2] <= numbers[0] or numbers[3] <= numbers[1]):
            raise ConfigError(f"shape {text!r}: need X0 < X1 and Y0 < Y1")
        if name == "random" and not 0 < numbers[0] <= 1:
            raise ConfigError(f"shape {text!r}: the probability must lie in (0, 1]")
        return cls(name, numbers)

    def __str__(self) -> str:
        if not self.args:
            return self.kind
        return f"{self.kind}:" + ",".join(a if isinstance(a, str) else f"{a:g}" for a in self.args)

    def mask(self, height: int, width: int, seed=0) -> np.ndarray:
        """(H, W) bool; ConfigError if the shape selects no cell of this grid.
        `seed` (an int or a sequence of ints) draws the cells of a random shape,
        which may select none: a scattered failure can miss a small grid."""
        y, x = np.mgrid[0:height, 0:width]
        if self.kind == "all":
            m = np.ones((height, width), bool)
        elif self.kind == "half":
            m = {"left": x < width // 2, "right": x >= width // 2,
                 "top": y < height // 2, "bottom": y >= height // 2}[self.args[0]]
        elif self.kind == "circle":
            cx, cy, r = self.args
            m = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
        elif self.kind == "rect":
            x0, y0, x1, y1 = self.args
            m = (x >= x0) & (x < x1) & (y >= y0) & (y < y1)
        elif self.kind == "random":
            return np.random.default_rng(seed).random((height, width)) < self.args[0]
        else:
            m = (x == self.args[0]) & (y == self.args[1])
        if not m.any():
            raise ConfigError(f"shape {self} selects no cell of the {width}x{height} grid")
        return m


@dataclass(frozen=True)
class Fault:
    """One fault. One-shot kinds happen at `start`; rate and link kinds act on
    [start, end). `value` is the drift factor, the flip rate, the loss
    probability or the longest delay (KINDS)."""
    kind: str
    shape: Shape = field(default_factory=Shape)
    start: float = 0.0
    end: float = math.inf
    value: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown fault {self.kind!r}; choose one of {', '.join(KINDS)}")
        needs_value, bounds, meaning = KINDS[self.kind]
        value = float(self.value)
        if needs_value:
            lo, hi = bounds
            if not (math.isfinite(value) and lo <= value <= hi):
                raise ConfigError(f"{self.kind}: the value ({meaning}) {self.value} is outside "
                                  f"[{lo:g}, {hi:g}]")
        elif value:
            raise ConfigError(f"{self.kind} takes no value")
        if not (math.isfinite(self.start) and 0 <= self.start <= MAX_TIME):
            raise ConfigError(f"{self.kind}: start time {self.start} is outside [0, {MAX_TIME:g}]")
        if self.kind in ONE_SHOT and self.end != math.inf:
            raise ConfigError(f"{self.kind} happens at one time; it has no end")
        if not self.end > self.start:
            raise ConfigError(f"{self.kind}: end time {self.end} is not after start {self.start}")
        if self.kind == "drift" and value == 1.0:
            raise ConfigError("drift=1 changes nothing")
        object.__setattr__(self, "value", value)

    def __str__(self) -> str:
        value = f"={self.value:g}" if KINDS[self.kind][0] else ""
        when = f"@{self.start:g}" + (f"-{self.end:g}" if self.end != math.inf else "")
        return f"{self.kind}{value}:{self.shape}{when}"


def parse_fault(text: str) -> Fault:
    """KIND[=VALUE][:SHAPE][@START[-END]] -> Fault."""
    spec = str(text).strip()
    head, at, when = spec.rpartition("@") if "@" in spec else (spec, "", "")
    kind_value, _, shape = head.partition(":")
    kind, eq, value = kind_value.partition("=")
    start, end = 0.0, math.inf
    if at:
        first, dash, last = when.partition("-")
        try:
            start = float(first)
            end = float(last) if dash else math.inf
        except ValueError:
            raise ConfigError(f"fault {spec!r}: time {when!r} is not START or START-END") from None
    elif kind in ONE_SHOT:
        raise ConfigError(f"fault {spec!r}: {kind} needs a time, e.g. {kind}:half@150")
    if eq:
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"fault {spec!r}: value {value!r} is not a number") from None
    elif kind in KINDS and KINDS[kind][0]:
        raise ConfigError(f"fault {spec!r}: {kind} needs a value, e.g. {kind}=VALUE")
    else:
        number = 0.0
    return Fault(kind, Shape.parse(shape) if shape else Shape(), start, end, number)


def parse_damage(text: str) -> Fault:
    """SHAPE@TIME -> an erase fault (the --damage flag)."""
    return parse_fault(f"erase:{text}")


def plan_from_mapping(data, source: str = "fault plan") -> tuple:
    """{"fault": [{kind, shape, at | from, until, value}, ...]} -> tuple of Faults."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table with a 'fault' list")
    unknown = set(data) - {"fault", "faults"}
    if unknown:
        raise ConfigError(f"{source}: unknown key {sorted(unknown)[0]!r} (expected 'fault')")
    entries = data.get("fault", data.get("faults", []))
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: 'fault' must be a list of tables")
    faults = []
    for i, entry in enumerate(entries):
        where = f"{source}: fault {i + 1}"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} is not a table")
        unknown = set(entry) - {"kind", "shape", "at", "from", "until", "value"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        if "kind" not in entry:
            raise ConfigError(f"{where} has no 'kind'")
        if "at" in entry and "from" in entry:
            raise ConfigError(f"{where}: give 'at' or 'from', not both")
        kind = entry["kind"]
        if kind in ONE_SHOT and "at" not in entry:
            raise ConfigError(f"{where}: {kind} needs 'at'")
        try:
            start = float(entry.get("at", entry.get("from", 0.0)))
            end = float(entry.get("until", math.inf))
            value = float(entry.get("value", 0.0))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: times and value must be numbers") from None
        if kind in KINDS and KINDS[kind][0] and "value" not in entry:
            raise ConfigError(f"{where}: {kind} needs 'value'")
        shape = entry.get("shape", "all")
        if not isinstance(shape, str):
            raise ConfigError(f"{where}: shape must be a string such as 'circle:36,36,10'")
        try:
            faults.append(Fault(str(kind), Shape.parse(shape), start, end, value))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return tuple(faults)


def load_fault_plan(path) -> tuple:
    """Read a .toml or .json fault plan."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read fault plan {p}: {exc.strerror or exc}") from None
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(raw.decode("utf-8"))
        elif p.suffix.lower() == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            raise ConfigError(f"fault plan {p} must end in .toml or .json")
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"fault plan {p} is not valid {p.suffix[1:].upper()}: "
                          f"{str(exc).splitlines()[0]}") from None
    return plan_from_mapping(data, str(p))


def ticks(time_units: float) -> int:
    """Time units -> ticks; infinity -> NEVER."""
    return int(round(time_units * TICKS_PER_UNIT)) if math.isfinite(time_units) else NEVER


@dataclass
class FaultEvents:
    """Concrete fault events of one window, in processing order."""
    time: np.ndarray   # int64 ticks
    kind: np.ndarray   # int64 event kind (events.CLOCK ... events.REBOOT)
    cell: np.ndarray   # int64
    sub: np.ndarray    # int64 tie-break: the fault's index in the plan
    bit: np.ndarray    # int64 flipped bit (RAM: 0..2047, ROM: see rom_bits)
    factor: np.ndarray  # float64 oscillator rate factor of a clock fault

    def __len__(self) -> int:
        return len(self.time)


class FaultSchedule:
    """A validated plan on a grid: expands into events window by window."""

    def __init__(self, faults, height: int, width: int, seed: int, rom_bits: int,
                 known=None):
        """known: an earlier schedule of this grid whose plan this one extends;
        its faults' cells are taken as they are (adding a fault to a long plan,
        as `cellsim view` does at every click, costs one mask, not all)."""
        self.faults = tuple(faults)
        self.height, self.width, self.seed, self.rom_bits = height, width, seed, rom_bits
        reuse = 0
        if known is not None and (known.height, known.width, known.seed) == (height, width, seed) \
                and known.faults == self.faults[:len(known.faults)]:
            reuse = len(known.faults)
        # A random shape draws from (seed, 11, its index): the same cells in any replay.
        self.cells = known.cells[:reuse] if reuse else []
        self.cells += [np.flatnonzero(f.shape.mask(height, width, [seed, 11, i]))
                       for i, f in enumerate(self.faults[reuse:], reuse)]
        links = [i for i, f in enumerate(self.faults) if f.kind in LINK]
        if len(links) > MAX_LINK_FAULTS:
            raise ConfigError(f"{len(links)} message faults; at most {MAX_LINK_FAULTS} are "
                              "supported")
        # Message faults as arrays for the numba scheduler: each cell has a bit
        # mask of the faults acting on the messages it sends.
        self.link_index = np.array(links, np.int64)
        self.link_start = np.array([ticks(self.faults[i].start) for i in links], np.int64)
        self.link_end = np.array([ticks(self.faults[i].end) for i in links], np.int64)
        self.link_loss = np.array([min(1 << 32, round(self.faults[i].value * (1 << 32)))
                                   if self.faults[i].kind == "loss" else 0 for i in links],
                                  np.int64)
        # > 0: the longest random delay; < 0: a fixed time on the wire (links.py)
        self.link_delay = np.array([ticks(self.faults[i].value) if self.faults[i].kind == "delay"
                                    else -max(1, ticks(self.faults[i].value))
                                    if self.faults[i].kind == "latency" else 0 for i in links],
                                   np.int64)
        self.link_mask = np.zeros(height * width, np.int64)
        for bit, i in enumerate(links):
            self.link_mask[self.cells[i]] |= np.int64(1) << bit

    @property
    def has_links(self) -> bool:
        return len(self.link_index) > 0

    def horizon(self) -> int:
        """The tick after which no fault of the plan acts any more (NEVER if open-ended)."""
        last = 0
        for f in self.faults:
            last = max(last, ticks(f.start) + 1 if f.kind in ONE_SHOT else ticks(f.end))
        return last

    def events(self, t0: int, t1: int) -> FaultEvents:
        """Fault events with t0 <= time < t1 (ticks), sorted by (time, kind, cell, sub)."""
        parts = []
        for index, (fault, cells) in enumerate(zip(self.faults, self.cells)):
            if fault.kind in ONE_SHOT:
                tick = ticks(fault.start)
                if t0 <= tick < t1:
                    kind = {"erase": ev.REBOOT, "reboot": ev.REBOOT, "kill": ev.KILL,
                            "stuck": ev.CLOCK, "drift": ev.CLOCK}[fault.kind]
                    factor = fault.value if fault.kind == "drift" else 0.0
                    parts.append(self._part(np.full(len(cells), tick), kind, cells, index,
                                            np.zeros(len(cells), np.int64), factor))
            elif fault.kind in RATE:
                parts.extend(self._flips(index, fault, cells, t0, t1))
        if not parts:
            empty = np.zeros(0, np.int64)
            return FaultEvents(empty, empty, empty, empty, empty, np.zeros(0))
        cat = [np.concatenate([p[j] for p in parts]) for j in range(6)]
        order = np.lexsort((cat[3], cat[2], cat[1], cat[0]))  # stable: ties keep plan order
        cat = [a[order] for a in cat]
        # A cell cannot be killed or rebooted twice in the same tick: overlapping
        # shapes of one-shot faults act once.
        time, kind, cell = cat[0], cat[1], cat[2]
        repeat = np.zeros(len(time), bool)
        repeat[1:] = (time[1:] == time[:-1]) & (kind[1:] == kind[:-1]) & (cell[1:] == cell[:-1])
        repeat &= (kind == ev.KILL) | (kind == ev.REBOOT)
        return FaultEvents(*[a[~repeat] for a in cat])

    @staticmethod
    def _part(time, kind, cells, index, bits, factor):
        n = len(cells)
        return (np.asarray(time, np.int64), np.full(n, kind, np.int64), np.asarray(cells, np.int64),
                np.full(n, min(index, ev.MAX_SUB), np.int64), np.asarray(bits, np.int64),
                np.full(n, factor, np.float64))

    def _flips(self, index, fault, cells, t0, t1):
        """Bit flips as a Poisson process, drawn per time unit from (seed, fault, unit)
        so that any split of the run into windows gives the same flips."""
        bits_per_cell = RAM_BITS if fault.kind == "ramflip" else self.rom_bits
        lo = max(t0, ticks(fault.start))
        hi = min(t1, ticks(fault.end))
        if hi <= lo or fault.value == 0.0 or len(cells) == 0:
            return []
        kind = ev.RAMFLIP if fault.kind == "ramflip" else ev.ROMFLIP
        parts = []
        for unit in range(lo // TICKS_PER_UNIT, (hi - 1) // TICKS_PER_UNIT + 1):
            rng = np.random.default_rng([self.seed, 7, index, unit])
            n = rng.poisson(fault.value * bits_per_cell * len(cells))
            where = cells[rng.integers(0, len(cells), n)]
            bit = rng.integers(0, bits_per_cell, n)
            tick = unit * TICKS_PER_UNIT + rng.integers(0, TICKS_PER_UNIT, n)
            keep = (tick >= lo) & (tick < hi)
            if keep.any():
                parts.append(self._part(tick[keep], kind, where[keep], index, bit[keep], 0.0))
        return parts
