"""One run of a study, start to finish, in the calling process: grow from the
seed, apply the run's faults at its damage time, sample the loss against the
target and the living cells at fixed times, and say whether (and when) the
pattern came back. Knows nothing of Dask; the same function runs anywhere."""
import functools
import hashlib
import math
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ConfigError
from .models import decode
from .spec import Run

PACKAGE = Path(__file__).resolve().parents[1]
# Everything a run's numbers depend on: the engines, the integer spec, the genome
# format, the targets and this file (sampling, the recovery rule).
VERSIONED = ("sim/*.py", "intspec/*.py", "genome.py", "target_images.py", "study/run.py",
             "hardware.py", "data/mcu_timing.json",
             "data/emoji/*.png")


@functools.cache
def sim_version() -> str:
    """cellsim's version and a hash of the sources that decide a run's result."""
    digest = hashlib.sha256()
    for pattern in VERSIONED:
        for path in sorted(PACKAGE.glob(pattern)):
            digest.update(path.relative_to(PACKAGE).as_posix().encode())
            digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def loss_column(t: float) -> str:
    return f"loss_t{t:g}"


def alive_column(t: float) -> str:
    return f"alive_t{t:g}"


@functools.lru_cache(maxsize=8)
def _model(payload: bytes, precision: str):
    return decode(payload, precision)


def recovery(times, losses, damage_at: float, factor: float):
    """(pre-damage loss, recovery time or None): the time after the damage from
    which every later sample stays within `factor` of the loss at the damage time.
    0 when no sample ever left the band; None when the last one is outside it."""
    times, losses = np.asarray(times, float), np.asarray(losses, float)
    at = int(np.flatnonzero(np.isclose(times, damage_at))[0])
    before = losses[at]
    inside = losses[at:] <= factor * before
    if not inside[-1]:
        return float(before), None
    outside = np.flatnonzero(~inside)
    first = at if len(outside) == 0 else at + int(outside[-1]) + 1
    return float(before), float(times[first] - damage_at)


def execute(run: Run, payload: bytes, workers: int = 1) -> dict:
    """Run it; return the result columns (no parameters: the caller has those)."""
    from ..sim import ClockSpec, Grid, parse_fault, render

    started = time.perf_counter()
    model = _model(payload, run.precision)
    target_name = run.target or getattr(model, "target", "")
    if not target_name:
        raise ConfigError("the model names no target to measure against; set target in the spec")
    fire_rate = model.fire_rate
    clock = ClockSpec(run.clock, fire_rate, run.skew, run.jitter)
    grid = Grid(model, run.size, clock=clock, torus=run.torus, seed=run.seed, workers=workers)
    target = render.target_for(target_name, grid.height, grid.width)
    grid.plant_seed()
    mcu = run.hardware()
    grid.add_faults([parse_fault(text) for text in run.faults]
                    + (mcu.link_faults(fire_rate) if mcu is not None else []))
    times = run.sample_times()
    losses, alive = [], []
    for t in times:
        grid.run(until=t, horizon=times[-1])
        losses.append(render.loss(grid, target))
        alive.append(int(round(render.alive_fraction(grid) * grid.height * grid.width)))
    before, recovered_after = recovery(times, losses, run.damage_at, run.recover_factor)
    after = [loss for t, loss in zip(times, losses) if t > run.damage_at]
    row = {
        "pre_damage_loss": before,
        "peak_loss": max(after) if after else before,
        "final_loss": losses[-1],
        "final_ratio": losses[-1] / before if before > 0 else math.inf,
        "recovered": recovered_after is not None,
        "recovery_time": recovered_after,
        "alive_final": alive[-1],
        "dead_final": int(grid.dead().sum()),
        "cell_updates": int(grid.updates),
    }
    if mcu is not None:
        row["seconds_per_unit"] = mcu.seconds_per_unit(fire_rate)
        row["recovery_seconds"] = (mcu.seconds(recovered_after, fire_rate)
                                   if recovered_after is not None else None)
    row.update({loss_column(t): v for t, v in zip(times, losses)})
    row.update({alive_column(t): v for t, v in zip(times, alive)})
    row["wall_time_s"] = time.perf_counter() - started
    return row
