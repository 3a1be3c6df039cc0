"""The messages the page may send, and their validation. Every message is one
JSON object with a "kind"; anything else (not JSON, too long, an unknown kind or
key, a wrong type, a coordinate off the grid, an absurd size) raises
MessageError naming the problem, and the server logs it and carries on.
docs/view.md lists the messages."""
import json
import math

from ..errors import ConfigError
from ..sim.clocks import MAX_SKEW
from ..sim.faults import KINDS as FAULT_KINDS

MAX_MESSAGE_CHARS = 2048
TOOLS = ("erase", "seed", "kill", "reboot", "stuck", "loss", "ramflip")
MODES = ("colour", "alive", "channel", "updates", "age")
CLOCKS = ("poisson", "periodic", "sync")
MIN_SIDE, MAX_SIDE = 8, 256       # grid sides the page may ask for
MAX_RADIUS = 64                   # brush radius, cells
MIN_SPEED, MAX_SPEED = 0.05, 1e4  # time units per second of wall time; None: as fast as it goes
MAX_DURATION = 1000.0             # time units a loss or flip region lasts
MAX_STEP = 100.0                  # time units of one press of "step"
MAX_SEED = 2 ** 31 - 1


class MessageError(ConfigError):
    """A message from the page that is rejected."""


def _int(lo, hi):
    def check(value, key):
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise MessageError(f"{key} must be an integer in [{lo}, {hi}], got {_show(value)}")
        return value
    return check


def _number(lo, hi, *, none_ok=False):
    def check(value, key):
        if value is None and none_ok:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or not lo <= value <= hi:
            raise MessageError(f"{key} must be a number in [{lo:g}, {hi:g}]"
                               f"{' or null' if none_ok else ''}, got {_show(value)}")
        return float(value)
    return check


def _choice(options):
    def check(value, key):
        if not isinstance(value, str) or value not in options:
            raise MessageError(f"{key} must be one of {', '.join(options)}, got {_show(value)}")
        return value
    return check


def _bool(value, key):
    if not isinstance(value, bool):
        raise MessageError(f"{key} must be true or false, got {_show(value)}")
    return value


def _name(value, key):
    if not isinstance(value, str) or not 0 < len(value) <= 200 or not value.isprintable():
        raise MessageError(f"{key} must be a model name, got {_show(value)}")
    return value


def _x(value, key, width, height):
    return _int(0, width - 1)(value, key)


def _y(value, key, width, height):
    return _int(0, height - 1)(value, key)


def _on_grid(check):
    """A check that needs the grid's size."""
    check.needs_grid = True
    return check


X, Y = _on_grid(_x), _on_grid(_y)


def _optional(check):
    def allow_null(value, key, *grid):
        return None if value is None else check(value, key, *grid)
    allow_null.needs_grid = getattr(check, "needs_grid", False)
    return allow_null


# kind -> {key: (check, required)}
MESSAGES = {
    "tool": {"tool": (_choice(TOOLS), True), "x": (X, True), "y": (Y, True),
             "radius": (_int(0, MAX_RADIUS), False),
             "value": (_number(0.0, 1.0), False),
             "duration": (_number(1 / 64, MAX_DURATION), False)},
    "pause": {"paused": (_bool, True)},
    "speed": {"units_per_s": (_number(MIN_SPEED, MAX_SPEED, none_ok=True), True)},
    "step": {"units": (_number(1 / 64, MAX_STEP), False)},
    "reset": {},
    "view": {"mode": (_choice(MODES), True), "channel": (_int(0, 255), False)},
    "inspect": {"x": (_optional(X), True), "y": (_optional(Y), True)},
    "config": {"model": (_name, False), "clock": (_choice(CLOCKS), False),
               "skew": (_number(0.0, MAX_SKEW), False), "jitter": (_number(0.0, 0.99), False),
               "seed": (_int(0, MAX_SEED), False), "size": (_int(MIN_SIDE, MAX_SIDE), False)},
}


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse(text, width: int, height: int) -> dict:
    """Validate one message from the page on a width x height grid -> a dict of
    its checked fields with "kind"; MessageError otherwise."""
    if not isinstance(text, str):
        raise MessageError("messages must be JSON text, not binary")
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageError(f"message of {len(text)} characters (at most {MAX_MESSAGE_CHARS})")
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):
        raise MessageError("message is not valid JSON") from None
    if not isinstance(message, dict):
        raise MessageError("message must be a JSON object")
    kind = message.get("kind")
    if not isinstance(kind, str) or kind not in MESSAGES:
        raise MessageError(f"unknown message kind {_show(kind)}")
    fields = MESSAGES[kind]
    unknown = sorted(set(message) - set(fields) - {"kind"})
    if unknown:
        raise MessageError(f"{kind}: unknown key {_show(unknown[0])}")
    checked = {"kind": kind}
    for key, (check, required) in fields.items():
        if key not in message:
            if required:
                raise MessageError(f"{kind}: missing {key!r}")
            continue
        grid = (width, height) if getattr(check, "needs_grid", False) else ()
        checked[key] = check(message[key], f"{kind}.{key}", *grid)
    if kind == "tool" and "value" in checked and checked["tool"] in FAULT_KINDS:
        needs_value, bounds, meaning = FAULT_KINDS[checked["tool"]]
        if not needs_value:
            raise MessageError(f"tool {checked['tool']} takes no value")
        if not bounds[0] <= checked["value"] <= bounds[1]:
            raise MessageError(f"tool {checked['tool']}: value ({meaning}) must lie in "
                               f"[{bounds[0]:g}, {bounds[1]:g}]")
    if kind == "inspect" and (checked["x"] is None) != (checked["y"] is None):
        raise MessageError("inspect: give both x and y, or both null")
    return checked
