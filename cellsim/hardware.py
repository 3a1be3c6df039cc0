"""Hardware time: the simulator's time unit in seconds on a grid of real
microcontrollers, from the measured cost of one cell update on that target
(cellsim/data/mcu_timing.json, written by `python -m benchmarks.mcu_timing`),
and a link rate turned into the time a 16-byte state message spends on the
wire. docs/simulator.md ("Hardware time") states the model and its assumptions."""
import functools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import HardwareError
from .intspec.layout import CHANNELS

TIMING_PATH = Path(__file__).parent / "data" / "mcu_timing.json"
MESSAGE_BYTES = CHANNELS        # a message is the sender's int8 state
UART_BITS_PER_BYTE = 10         # 8N1 framing: start bit, 8 data bits, stop bit
# A cell's timer period is at least this many times a message's time on the wire,
# so each link is busy at most half the time: the FIFO of a UART fed by Poisson
# clocks then stays short (an M/D/1 queue at load 0.5 waits half a message on average).
MAX_LINK_LOAD = 0.5
FREQUENCY_RANGE = (1e3, 1e10)   # Hz
BAUD_RANGE = (50.0, 1e9)        # bits per second
PREFIXES = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_QUANTITY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)(?:e([+-]?\d+))?\s*([kmg]?)\s*(hz|bd|baud)?\s*$",
                       re.IGNORECASE)


def _quantity(text, what: str, units: tuple) -> float:
    match = _QUANTITY.match(str(text))
    if not match or (match.group(4) or "").lower() not in ("", *units):
        raise HardwareError(f"{what} {text!r} is not a number such as 80MHz, 80e6 or 80000000")
    mantissa, exponent, prefix = match.group(1), match.group(2), match.group(3).lower()
    return float(mantissa) * 10.0 ** int(exponent or 0) * PREFIXES[prefix]


def parse_frequency(text) -> float:
    """'80MHz', '80 MHz', '80M', '8e7', '80000000', '32.768kHz' -> Hz (k, M, G
    in any case: nobody clocks a cell in millihertz)."""
    hz = _quantity(text, "clock frequency", ("hz",))
    lo, hi = FREQUENCY_RANGE
    if not lo <= hz <= hi:
        raise HardwareError(f"clock frequency {text!r} is outside [{format_frequency(lo)}, "
                            f"{format_frequency(hi)}]")
    return hz


def parse_baud(text) -> float:
    """'115200', '115.2k', '1M', '2e6' (bits per second) -> float."""
    baud = _quantity(text, "link rate", ("bd", "baud"))
    lo, hi = BAUD_RANGE
    if not lo <= baud <= hi:
        raise HardwareError(f"link rate {text!r} is outside [{lo:g}, {hi:g}] baud")
    return baud


def format_frequency(hz: float) -> str:
    for prefix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if hz >= scale:
            return f"{hz / scale:.6g} {prefix}Hz"
    return f"{hz:.6g} Hz"


def format_baud(baud: float) -> str:
    return f"{baud:,.0f} baud" if baud == int(baud) else f"{baud:,.6g} baud"


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


@functools.cache
def _load(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        targets = data["targets"]
        for name, row in targets.items():
            for key in ("label", "count", "cycles_per_count", "live_update", "dead_update"):
                row[key]  # noqa: B018 (a KeyError names the missing field)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HardwareError(f"MCU timing data {path} is unreadable ({exc!r}); rerun "
                            "python -m benchmarks.mcu_timing") from None
    return data


def timing_data(path=None) -> dict:
    """The measured timing table: {"targets": {name: row}, "command": ..., ...}."""
    return _load(str(TIMING_PATH if path is None else path))


def targets(path=None) -> list:
    return sorted(timing_data(path)["targets"])


@dataclass(frozen=True)
class McuClock:
    """A grid of `target` cells clocked at `frequency_hz`. Each cell's timer
    period is the longest update divided by `duty` (1: back-to-back, a cell
    computes all the time; 0.25: it computes a quarter of the time), and with
    `link_baud` at least a message's time on its UART / MAX_LINK_LOAD."""
    target: str
    frequency_hz: float
    duty: float = 1.0
    link_baud: float | None = None
    timing_path: Path | None = None   # None: the package's TIMING_PATH
    row: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        table = timing_data(self.timing_path)["targets"]
        name = str(self.target).strip().lower()
        if name not in table:
            raise HardwareError(f"unknown MCU target {self.target!r}; measured targets: "
                                f"{', '.join(sorted(table))}")
        object.__setattr__(self, "target", name)
        object.__setattr__(self, "row", table[name])
        lo, hi = FREQUENCY_RANGE
        if isinstance(self.frequency_hz, bool) or not isinstance(self.frequency_hz, (int, float)) \
                or not lo <= self.frequency_hz <= hi:
            raise HardwareError(f"clock frequency {self.frequency_hz!r} Hz is outside "
                                f"[{lo:g}, {hi:g}]")
        if isinstance(self.duty, bool) or not isinstance(self.duty, (int, float)) or \
                not 0 < self.duty <= 1:
            raise HardwareError(f"duty {self.duty!r} must lie in (0, 1]: the share of its time "
                                "a cell spends computing")
        if self.link_baud is not None:
            lo, hi = BAUD_RANGE
            if isinstance(self.link_baud, bool) or not isinstance(self.link_baud, (int, float)) \
                    or not lo <= self.link_baud <= hi:
                raise HardwareError(f"link rate {self.link_baud!r} baud is outside "
                                    f"[{lo:g}, {hi:g}]")

    @classmethod
    def parse(cls, text: str, duty: float = 1.0, link=None, timing_path=None):
        """'TARGET@FREQ' (e.g. 'cortex-m4@80MHz'), link as a number or text ('115200')."""
        target, at, frequency = str(text).partition("@")
        if not at or not target.strip():
            raise HardwareError(f"--mcu {text!r} is not TARGET@FREQ, e.g. cortex-m4@80MHz")
        baud = None if link is None else parse_baud(link) if isinstance(link, str) else link
        return cls(target.strip(), parse_frequency(frequency), duty, baud, timing_path)

    @property
    def label(self) -> str:
        return f"{self.row['label']} at {format_frequency(self.frequency_hz)}"

    @property
    def update_cycles(self) -> float:
        """Cycles of the longest update (every hidden unit active)."""
        return self.row["live_update"] * self.row["cycles_per_count"]

    @property
    def update_seconds(self) -> float:
        return self.update_cycles / self.frequency_hz

    @property
    def message_seconds(self) -> float:
        """A 16-byte state message on a UART: 16 x 10 bits / baud (0 without a link)."""
        if self.link_baud is None:
            return 0.0
        return MESSAGE_BYTES * UART_BITS_PER_BYTE / self.link_baud

    @property
    def period_seconds(self) -> float:
        """Mean time between two firings of a cell's timer."""
        return max(self.update_seconds / self.duty, self.message_seconds / MAX_LINK_LOAD)

    @property
    def link_bound(self) -> bool:
        return self.message_seconds / MAX_LINK_LOAD > self.update_seconds / self.duty

    def seconds_per_unit(self, fire_rate: float) -> float:
        """A time unit in seconds: `fire_rate` expected updates per cell per unit,
        one timer period apart."""
        if not 0 < fire_rate <= 1:
            raise HardwareError(f"fire rate {fire_rate!r} must lie in (0, 1]")
        return fire_rate * self.period_seconds

    def seconds(self, units: float, fire_rate: float) -> float:
        return units * self.seconds_per_unit(fire_rate)

    def link_latency_units(self, fire_rate: float) -> float:
        """A message's time on the wire, in time units (0 without a link)."""
        return self.message_seconds / self.seconds_per_unit(fire_rate)

    def link_faults(self, fire_rate: float, start: float = 0.0) -> list:
        """The simulator's `latency` fault for every link, from `start` on ([] without a link)."""
        if self.link_baud is None:
            return []
        from .sim.clocks import TICKS_PER_UNIT
        from .sim.faults import Fault, Shape

        latency = max(self.link_latency_units(fire_rate), 1.0 / TICKS_PER_UNIT)
        return [Fault("latency", Shape(), start, math.inf, latency)]

    def describe(self, fire_rate: float) -> str:
        """How a time unit became seconds, in one sentence."""
        r = self.row
        cost = (f"{r['live_update']:,} {r['count']} a live update with every hidden unit active"
                + ("" if r["count"] == "cycles" else
                   f", at {r['cycles_per_count']:g} cycle{'s' if r['cycles_per_count'] != 1 else ''}"
                   " per instruction"))
        if self.link_bound:
            pace = (f"the timer paced by the link: {MESSAGE_BYTES} bytes x {UART_BITS_PER_BYTE} "
                    f"bits at {format_baud(self.link_baud)} = {format_seconds(self.message_seconds)} a "
                    f"message, links busy {MAX_LINK_LOAD:.0%} of the time")
        else:
            pace = ("updating back-to-back" if self.duty == 1 else
                    f"computing {self.duty:.0%} of the time")
            if self.link_baud is not None:
                pace += (f"; {format_seconds(self.message_seconds)} a message on each link at "
                         f"{format_baud(self.link_baud)}")
        return (f"1 time unit = {format_seconds(self.seconds_per_unit(fire_rate))} on a grid of "
                f"{self.label} ({cost}; {fire_rate:g} updates per cell per unit, {pace})")
