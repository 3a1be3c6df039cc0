"""A study spec (TOML): the dimensions of a sweep and their values. Its product,
plus any explicit extra runs, expands into `Run`s: plain, JSON-ready records
that a worker anywhere can execute. Everything is validated here, before a
single run starts: a bad spec is one ConfigError naming the key at fault."""
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..demo import REGROWN_FACTOR
from ..errors import ConfigError
from ..sim import ClockSpec, parse_fault
from ..sim.faults import KINDS as FAULT_KINDS
from ..sim.faults import ONE_SHOT
from ..target_images import TARGET_SIZE

PRECISIONS = ("int8", "float")
MAX_SIDE = 1024
MAX_TIME = 1e5
MAX_SAMPLES = 2000
MAX_SEEDS = 100_000
# Fault kinds the float model cannot have: it has no bytes to flip.
INT8_ONLY = ("ramflip", "romflip")
# Kinds that need asynchronous clocks (simulator: no wires or oscillators in the sync step).
ASYNC_ONLY = ("loss", "delay", "latency", "drift")

TOP_KEYS = {"name", "models", "precisions", "sizes", "clocks", "seeds", "damage_at", "run_for",
            "sample_every", "recover_factor", "target", "torus", "faults", "runs", "report",
            "mcu", "duty", "link"}
# Hardware time (cellsim.hardware): Run fields left out of a run's record when
# unset, so the keys of the studies run before they existed stay the same.
HARDWARE_FIELDS = ("mcu", "duty", "link")
FAULT_KEYS = {"name", "kind", "shape", "values", "duration", "also"}
RUN_KEYS = {"model", "precision", "size", "clock", "seed", "damage_at", "run_for", "fault"}
REPORT_KEYS = {"heatmap"}
# Columns a heatmap may be drawn over (the swept dimensions of a run).
DIMENSIONS = ("model", "precision", "size", "clock", "damage_at", "run_for", "fault",
              "fault_value", "condition", "seed")


@dataclass(frozen=True)
class FaultFamily:
    """One swept fault: `kind` at each of `values`. A value fills `{value}` in the
    shape if the shape has it, else it is the fault's own value (loss probability,
    flip rate, delay, drift factor). `{cx}`, `{cy}`, `{w}`, `{h}` in a shape are
    the grid's centre and sides. `also`: faults added to every run of the family."""
    name: str
    kind: str                 # a simulator fault kind, or "none" for undamaged controls
    shape: str = "all"
    values: tuple = (None,)
    duration: float = math.inf  # rate and message faults: how long after the damage time
    also: tuple = ()

    @property
    def shape_takes_value(self) -> bool:
        return "{value}" in self.shape

    def plan(self, value, height: int, width: int, at: float, end: float) -> tuple:
        """The fault strings of one run, in the simulator's flag grammar."""
        if self.kind == "none":
            return ()
        fill = {"cx": width // 2, "cy": height // 2, "w": width, "h": height, "value": value}
        shape = self.shape.format(**fill)
        own = "" if self.shape_takes_value or value is None else f"={_exact(value)}"
        return tuple(_timed(text, at, min(end, at + self.duration))
                     for text in (f"{self.kind}{own}:{shape}",
                                  *(extra.format(**fill) for extra in self.also)))


def _exact(x) -> str:
    """Shortest text that reads back as the same number ('200', '0.05', '1e-07')."""
    short = f"{x:g}"
    return short if float(short) == x else repr(float(x))


def _timed(text: str, at: float, end: float) -> str:
    kind = text.partition(":")[0].partition("=")[0]
    if kind in ONE_SHOT:
        return f"{text}@{_exact(at)}"
    return f"{text}@{_exact(at)}-{_exact(end)}"


@dataclass(frozen=True)
class Run:
    """One run of a study: every parameter that decides its result."""
    model: str
    precision: str
    size: int
    clock: str
    skew: float
    jitter: float
    seed: int
    damage_at: float
    run_for: float
    fault: str
    fault_kind: str
    fault_value: object        # number, string, or None
    faults: tuple              # flag-grammar strings, absolute times
    sample_every: float
    recover_factor: float
    target: str
    torus: object              # None: as the model was trained
    mcu: str = ""              # TARGET@FREQ: times in seconds on that hardware ('' none)
    duty: float = 1.0
    link: object = None        # baud rate of every link (None: messages take no time)

    def hardware(self):
        """The run's cellsim.hardware.McuClock, or None."""
        if not self.mcu:
            return None
        from ..hardware import McuClock

        return McuClock.parse(self.mcu, duty=self.duty, link=self.link)

    @property
    def until(self) -> float:
        return self.damage_at + self.run_for

    @property
    def condition(self) -> str:
        return self.fault if self.fault_value is None else f"{self.fault}={_fmt(self.fault_value)}"

    def sample_times(self) -> list:
        """0, every, 2 * every, ... up to the end, plus the damage time itself."""
        n = int(math.floor(self.until / self.sample_every + 1e-9))
        times = {round(k * self.sample_every, 9) for k in range(n + 1)}
        return sorted(times | {self.damage_at, self.until})

    def record(self) -> dict:
        record = {**asdict(self), "faults": list(self.faults)}
        if not self.mcu:
            for name in HARDWARE_FIELDS:
                del record[name]
        return record

    def key(self, genome_sha256: str, sim_version: str) -> str:
        """What a finished result is filed under: the parameters, the genome's bytes
        and the simulator's version; any change of one of them runs it again."""
        blob = json.dumps([self.record(), genome_sha256, sim_version], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _fmt(value) -> str:
    return _exact(value) if isinstance(value, (int, float)) else str(value)


@dataclass(frozen=True)
class StudySpec:
    name: str
    models: tuple
    precisions: tuple
    sizes: tuple
    clocks: tuple              # ClockSpec-like dicts {kind, skew, jitter}
    seeds: tuple
    damage_at: tuple
    run_for: tuple
    sample_every: float
    recover_factor: float
    target: str
    torus: object
    faults: tuple              # FaultFamily
    extra_runs: tuple = ()     # dicts, validated
    heatmap: tuple = ("condition", "precision")
    source: dict = field(default_factory=dict, compare=False)
    mcu: str = ""
    duty: float = 1.0
    link: object = None


def _where(ctx: str, key: str) -> str:
    return f"{ctx}: {key}" if ctx else key


def _number(value, key, lo, hi, integer=False, open_lo=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (integer and not isinstance(value, int)):
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{key} must be {kind}, got {value!r}")
    if not math.isfinite(value) or value > hi or value < lo or (open_lo and value == lo):
        bracket = "(" if open_lo else "["
        raise ConfigError(f"{key} = {value!r} is outside {bracket}{lo:g}, {hi:g}]")
    return value


def _list(value, key, allow_scalar=True) -> list:
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{key} is empty: a dimension needs at least one value")
        return value
    if allow_scalar:
        return [value]
    raise ConfigError(f"{key} must be a list, got {value!r}")


def _unique(values, key):
    seen = []
    for v in values:
        if v in seen:
            raise ConfigError(f"{key} lists {v!r} twice")
        seen.append(v)
    return tuple(values)


def _clock(value, key) -> dict:
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: a clock is a name or a table {{kind, skew, jitter}}, "
                          f"got {value!r}")
    unknown = set(value) - {"kind", "skew", "jitter"}
    if unknown:
        raise ConfigError(f"{key}: unknown key {sorted(unknown)[0]!r} (kind, skew, jitter)")
    kind = value.get("kind")
    if not isinstance(kind, str):
        raise ConfigError(f"{key}: clock kind must be poisson, periodic or sync")
    skew = _number(value.get("skew", 0.0), f"{key}.skew", 0.0, 0.9)
    jitter = _number(value.get("jitter", 0.0), f"{key}.jitter", 0.0, 0.999)
    try:
        ClockSpec(kind, 0.5, float(skew), float(jitter))
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return {"kind": kind, "skew": float(skew), "jitter": float(jitter)}


def clock_label(clock: dict) -> str:
    if clock["kind"] == "poisson" and not clock["skew"]:
        return "poisson"
    parts = [f"skew={clock['skew']:g}"] if clock["skew"] else []
    parts += [f"jitter={clock['jitter']:g}"] if clock["jitter"] else []
    return clock["kind"] + (f"({','.join(parts)})" if parts else "")


def _fault_family(entry, index) -> FaultFamily:
    ctx = f"faults[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{ctx} must be a table")
    unknown = set(entry) - FAULT_KEYS
    if unknown:
        raise ConfigError(f"{ctx}: unknown key {sorted(unknown)[0]!r} "
                          f"(expected {', '.join(sorted(FAULT_KEYS))})")
    kind = entry.get("kind")
    if kind != "none" and kind not in FAULT_KINDS:
        raise ConfigError(f"{ctx}: unknown fault kind {kind!r}; choose none or "
                          f"{', '.join(FAULT_KINDS)}")
    name = entry.get("name", kind)
    if not isinstance(name, str) or not name.strip() or any(c in name for c in "=,\n"):
        raise ConfigError(f"{ctx}: name must be a non-empty string without '=' or ','")
    shape = entry.get("shape", "all")
    if not isinstance(shape, str):
        raise ConfigError(f"{ctx}: shape must be a string such as 'circle:{{cx}},{{cy}},{{value}}'")
    takes_value = "{value}" in shape
    needs_value = kind != "none" and FAULT_KINDS[kind][0]
    if kind == "none":
        if "values" in entry or "shape" in entry or "also" in entry:
            raise ConfigError(f"{ctx}: kind none (undamaged controls) takes no shape, values "
                              "or also")
        values = (None,)
    elif takes_value or needs_value:
        values = _list(entry.get("values"), f"{ctx}.values", allow_scalar=False) \
            if "values" in entry else None
        if values is None:
            raise ConfigError(f"{ctx}: {kind} needs values (the swept sizes or rates)")
        if takes_value and needs_value:
            raise ConfigError(f"{ctx}: {kind} sweeps its own value; its shape cannot also "
                              "take {value}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float, str)) or \
                    (not takes_value and not isinstance(v, (int, float))):
                raise ConfigError(f"{ctx}.values: {v!r} is not a "
                                  + ("number or string" if takes_value else "number"))
        values = _unique(values, f"{ctx}.values")
    else:
        if "values" in entry:
            raise ConfigError(f"{ctx}: {kind} takes no value; put {{value}} in its shape to "
                              "sweep a size")
        values = (None,)
    duration = entry.get("duration", math.inf)
    if duration != math.inf:
        if kind in ONE_SHOT or kind == "none":
            raise ConfigError(f"{ctx}: {kind} happens at one time; it has no duration")
        _number(duration, f"{ctx}.duration", 0.0, MAX_TIME, open_lo=True)
    also = entry.get("also", [])
    if not isinstance(also, list) or not all(isinstance(a, str) for a in also):
        raise ConfigError(f"{ctx}.also must be a list of faults such as 'erase:half:left'")
    for text in also:
        if "@" in text:
            raise ConfigError(f"{ctx}.also: {text!r}: no times here; every fault of a run "
                              "starts at its damage time")
    for text in (shape, *also):
        try:
            text.format(cx=0, cy=0, w=1, h=1, value=0)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ConfigError(f"{ctx}: {text!r} has a bad placeholder ({exc}); use {{value}}, "
                              "{cx}, {cy}, {w}, {h}") from None
    return FaultFamily(name.strip(), kind, shape, tuple(values), float(duration), tuple(also))


def parse_spec(data: dict, source: str = "study spec") -> StudySpec:
    """A mapping (parsed TOML) -> StudySpec; ConfigError on the first problem."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table of keys")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ConfigError(f"{source}: unknown key {sorted(unknown)[0]!r}; `cellsim study "
                          "--example` prints every key")
    name = data.get("name", "study")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("name must be a non-empty string")
    if "models" not in data:
        raise ConfigError("models is missing: name shipped models, .genome, .npz or .pt files")
    models = _list(data["models"], "models")
    for m in models:
        if not isinstance(m, str) or not m.strip():
            raise ConfigError(f"models: {m!r} is not a model name or file path")
    precisions = _list(data.get("precisions", ["int8"]), "precisions")
    for p in precisions:
        if p not in PRECISIONS:
            raise ConfigError(f"precisions: {p!r} is not one of {', '.join(PRECISIONS)}")
    sizes = [_number(s, "sizes", TARGET_SIZE, MAX_SIDE, integer=True)
             for s in _list(data.get("sizes", [72]), "sizes")]
    clocks = [_clock(c, f"clocks[{i}]") for i, c in enumerate(_list(data.get("clocks",
                                                                             ["poisson"]),
                                                                    "clocks"))]
    seeds = data.get("seeds", 1)
    if isinstance(seeds, list):
        seeds = [_number(s, "seeds", 0, 2 ** 63 - 1, integer=True) for s in _list(seeds, "seeds")]
    else:
        seeds = list(range(_number(seeds, "seeds", 1, MAX_SEEDS, integer=True)))
    damage_at = [_number(t, "damage_at", 0.0, MAX_TIME, open_lo=True)
                 for t in _list(data.get("damage_at", [200.0]), "damage_at")]
    run_for = [_number(t, "run_for", 0.0, MAX_TIME, open_lo=True)
               for t in _list(data.get("run_for", [200.0]), "run_for")]
    sample_every = _number(data.get("sample_every", 10.0), "sample_every", 0.0, MAX_TIME,
                           open_lo=True)
    longest = max(damage_at) + max(run_for)
    if longest / sample_every > MAX_SAMPLES:
        raise ConfigError(f"sample_every = {sample_every:g} gives more than {MAX_SAMPLES} "
                          f"samples over {longest:g} time units")
    recover_factor = _number(data.get("recover_factor", REGROWN_FACTOR), "recover_factor", 1.0,
                             1e6)
    target = data.get("target", "")
    if not isinstance(target, str):
        raise ConfigError("target must be an emoji name (or '' for each model's own)")
    if target:
        from ..target_images import load_target
        load_target(target)  # TargetError (a ConfigError's sibling) if unknown
    torus = data.get("torus")
    if torus is not None and not isinstance(torus, bool):
        raise ConfigError("torus must be true or false (leave it out: as each model was trained)")
    entries = data.get("faults", [{"kind": "none", "name": "control"}])
    if not isinstance(entries, list) or not entries:
        raise ConfigError("faults must be a non-empty list of [[faults]] tables")
    families = [_fault_family(e, i) for i, e in enumerate(entries)]
    _unique([f.name for f in families], "faults (names)")
    report = data.get("report", {})
    if not isinstance(report, dict) or set(report) - REPORT_KEYS:
        raise ConfigError(f"report must be a table with {', '.join(sorted(REPORT_KEYS))}")
    heatmap = report.get("heatmap", ["condition", "precision"])
    if not (isinstance(heatmap, list) and len(heatmap) == 2 and all(h in DIMENSIONS
                                                                  for h in heatmap)
            and heatmap[0] != heatmap[1]):
        raise ConfigError(f"report.heatmap must name two different dimensions of "
                          f"{', '.join(DIMENSIONS)}")
    mcu, duty, link = _hardware(data)
    runs = data.get("runs", [])
    if not isinstance(runs, list) or not all(isinstance(r, dict) for r in runs):
        raise ConfigError("runs must be a list of [[runs]] tables")
    for i, r in enumerate(runs):
        unknown = set(r) - RUN_KEYS
        if unknown:
            raise ConfigError(f"runs[{i}]: unknown key {sorted(unknown)[0]!r} "
                              f"(expected {', '.join(sorted(RUN_KEYS))})")
    spec = StudySpec(name.strip(), _unique(models, "models"), _unique(precisions, "precisions"),
                     _unique(sizes, "sizes"), tuple(clocks), _unique(seeds, "seeds"),
                     _unique(damage_at, "damage_at"), _unique(run_for, "run_for"),
                     float(sample_every), float(recover_factor), target, torus,
                     tuple(families), tuple(runs), tuple(heatmap), data, mcu=mcu, duty=duty,
                     link=link)
    for i, r in enumerate(runs):
        _extra_run(spec, r, f"runs[{i}]")  # validated now, expanded later
    return spec


def _hardware(data: dict) -> tuple:
    """(mcu, duty, link) of the spec, checked against the measured targets."""
    mcu = data.get("mcu", "")
    if not isinstance(mcu, str):
        raise ConfigError("mcu must be TARGET@FREQ, e.g. 'cortex-m4@80MHz'")
    duty, link = data.get("duty", 1.0), data.get("link")
    if not mcu:
        if "duty" in data or link is not None:
            raise ConfigError("duty and link go with mcu = 'TARGET@FREQ'")
        return "", 1.0, None
    _number(duty, "duty", 0.0, 1.0, open_lo=True)
    if link is not None and (isinstance(link, bool) or not isinstance(link, (int, float, str))):
        raise ConfigError(f"link must be a baud rate such as 115200, got {link!r}")
    from ..hardware import McuClock

    clock = McuClock.parse(mcu, duty=float(duty), link=link)  # HardwareError names the problem
    return mcu.strip(), float(duty), clock.link_baud


def load_spec(path) -> StudySpec:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read study spec {p}: {getattr(exc, 'strerror', None) or exc}") \
            from None
    return parse_spec_text(text, str(p))


def parse_spec_text(text: str, source: str = "study spec") -> StudySpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {str(exc).splitlines()[0]}") from None
    return parse_spec(data, source)


def _family_value(family: FaultFamily, value, ctx: str):
    if family.values == (None,):
        if value is not None:
            raise ConfigError(f"{ctx}: fault {family.name!r} takes no value")
        return None
    if value is None:
        raise ConfigError(f"{ctx}: fault {family.name!r} needs a value")
    return value


def _extra_run(spec: StudySpec, r: dict, ctx: str) -> dict:
    """One [[runs]] table with the study's first value for each key it leaves out."""
    model = r.get("model", spec.models[0])
    if not isinstance(model, str) or not model.strip():
        raise ConfigError(f"{ctx}.model must be a model name or path")
    precision = r.get("precision", spec.precisions[0])
    if precision not in PRECISIONS:
        raise ConfigError(f"{ctx}.precision must be one of {', '.join(PRECISIONS)}")
    size = _number(r.get("size", spec.sizes[0]), f"{ctx}.size", TARGET_SIZE, MAX_SIDE,
                   integer=True)
    clock = _clock(r["clock"], f"{ctx}.clock") if "clock" in r else spec.clocks[0]
    seed = _number(r.get("seed", spec.seeds[0]), f"{ctx}.seed", 0, 2 ** 63 - 1, integer=True)
    damage_at = _number(r.get("damage_at", spec.damage_at[0]), f"{ctx}.damage_at", 0.0,
                        MAX_TIME, open_lo=True)
    run_for = _number(r.get("run_for", spec.run_for[0]), f"{ctx}.run_for", 0.0, MAX_TIME,
                      open_lo=True)
    fault = r.get("fault", spec.faults[0].name)
    if isinstance(fault, str):
        fault = [fault]
    if not (isinstance(fault, list) and 1 <= len(fault) <= 2 and isinstance(fault[0], str)):
        raise ConfigError(f"{ctx}.fault must be a fault name or [name, value]")
    family = next((f for f in spec.faults if f.name == fault[0]), None)
    if family is None:
        raise ConfigError(f"{ctx}.fault: no [[faults]] named {fault[0]!r}")
    value = _family_value(family, fault[1] if len(fault) > 1 else None, f"{ctx}.fault")
    return {"model": model, "precision": precision, "size": size, "clock": clock, "seed": seed,
            "damage_at": float(damage_at), "run_for": float(run_for), "family": family,
            "value": value}


def _make_run(spec: StudySpec, sources, model, precision, size, clock, seed, damage_at,
              run_for, family, value) -> Run:
    until = damage_at + run_for
    plan = family.plan(value, size, size, damage_at, until)
    return Run(model=model, precision=precision, size=size, clock=clock["kind"],
               skew=clock["skew"], jitter=clock["jitter"], seed=seed, damage_at=damage_at,
               run_for=run_for, fault=family.name, fault_kind=family.kind, fault_value=value,
               faults=plan, sample_every=spec.sample_every,
               recover_factor=spec.recover_factor, target=spec.target or sources[model].target,
               torus=spec.torus, mcu=spec.mcu, duty=spec.duty, link=spec.link)


def inapplicable(run: Run, precision_available: bool = True) -> str:
    """Why a combination of the product cannot run, or ''."""
    if not precision_available:
        return f"{run.model} has no {run.precision} model"
    kinds = {text.partition(":")[0].partition("=")[0].partition("@")[0] for text in run.faults}
    if run.precision == "float" and kinds & set(INT8_ONLY):
        return f"float x {'/'.join(sorted(kinds & set(INT8_ONLY)))} (no bits to flip)"
    if run.clock == "sync" and run.link is not None:
        return "sync x link (needs asynchronous clocks)"
    if run.clock == "sync" and kinds & set(ASYNC_ONLY):
        return f"sync x {'/'.join(sorted(kinds & set(ASYNC_ONLY)))} (needs asynchronous clocks)"
    return ""


def check_plan(run: Run) -> None:
    """Parse the run's faults and draw their shapes on its grid (ConfigError if
    one selects no cell)."""
    for text in run.faults:
        try:
            fault = parse_fault(text)
            fault.shape.mask(run.size, run.size)
        except ConfigError as exc:
            raise ConfigError(f"fault {run.fault!r} on a {run.size}x{run.size} grid: {exc}") \
                from None


def expand(spec: StudySpec, sources: dict) -> tuple:
    """The runs of a study in a fixed order, and the skipped combinations.

    sources maps each model of the spec to its ModelSource (study.models).
    Returns (runs, skipped) where skipped maps a reason to its count."""

    def available(model, precision):
        return sources[model].payload(precision) is not None

    runs, skipped, seen, checked = [], {}, set(), set()

    def add(run: Run, ok: bool):
        reason = inapplicable(run, ok)
        if reason:
            skipped[reason] = skipped.get(reason, 0) + 1
            return
        if (run.faults, run.size) not in checked:
            check_plan(run)
            checked.add((run.faults, run.size))
        ident = json.dumps(run.record(), sort_keys=True)
        if ident not in seen:
            seen.add(ident)
            runs.append(run)

    product = itertools.product(spec.models, spec.precisions, spec.sizes, spec.clocks,
                                spec.damage_at, spec.run_for,
                                [(f, v) for f in spec.faults for v in f.values], spec.seeds)
    for model, precision, size, clock, at, length, (family, value), seed in product:
        add(_make_run(spec, sources, model, precision, size, clock, seed, float(at),
                      float(length), family, value), available(model, precision))
    for i, r in enumerate(spec.extra_runs):
        e = _extra_run(spec, r, f"runs[{i}]")
        if e["model"] not in sources:
            raise ConfigError(f"runs[{i}]: model {e['model']!r} is not in models")
        run = _make_run(spec, sources, e["model"], e["precision"], e["size"], e["clock"], e["seed"],
                        e["damage_at"], e["run_for"], e["family"], e["value"])
        if not available(run.model, run.precision):
            raise ConfigError(f"runs[{i}]: {run.model} has no {run.precision} model")
        reason = inapplicable(run)
        if reason:
            raise ConfigError(f"runs[{i}]: {reason}")
        add(run, True)
    return runs, skipped
