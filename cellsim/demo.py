"""The one-command demo: a shipped genome grows from a single seed on the
asynchronous int8 grid, half of the pattern is erased, and it regrows. The run
gives GIF frames, a labelled filmstrip and the losses before and after damage."""
import json
import math
import threading
import time
from dataclasses import dataclass

import sys

import numpy as np

from . import __version__
from .errors import ConfigError
from .pretrained import ShippedModel
from .sim import TICKS_PER_UNIT, Grid, Shape, render

REGROWN_FACTOR = 1.5   # regrown: loss back within this factor of the pre-damage loss
COMPILE_NOTICE_AFTER = 1.0  # seconds: a warm-up slower than this is numba compiling
COMPILE_NOTICE = "compiling kernels (first run only)"
GROWTH_STILLS = (0.1, 0.35, 0.7)  # of the way from the seed's loss to the grown one, log scale


@dataclass(frozen=True)
class DemoPlan:
    grow_until: float = 200.0    # time units (training steps at fire rate 0.5)
    regrow_for: float = 200.0
    damage: str = "half:right"
    frame_every: float = 2.0
    scale: int = 3               # pixels per cell
    seed: int = 0

    def __post_init__(self):
        if not (self.grow_until > 0 and self.regrow_for > 0 and 0 < self.frame_every <= self.grow_until):
            raise ConfigError(f"demo times must be positive, frames no sparser than growth: {self}")
        Shape.parse(self.damage)

    @property
    def until(self) -> float:
        return self.grow_until + self.regrow_for


@dataclass
class DemoResult:
    frames: list        # (H*scale, W*scale, 3) uint8, one per frame time
    times: list
    losses: list
    stills: list        # (label, frame) for the filmstrip
    summary: dict


def run_demo(model: ShippedModel, plan: DemoPlan = DemoPlan(), progress: bool = True,
             workers=None, mcu=None) -> DemoResult:
    """Grow, erase, regrow; every number in the summary is measured on this run.
    `mcu` (a cellsim.hardware.McuClock) adds the times in seconds on that
    hardware, and its link's message latency to the grid."""
    from tqdm import tqdm

    started = time.perf_counter()
    genome = model.load_genome()
    grid = Grid(genome, clock="poisson", seed=plan.seed, workers=workers)
    grid.plant_seed()
    if mcu is not None:
        grid.add_faults(mcu.link_faults(genome.fire_rate))
    target = render.target_for(genome.target or model.metadata["training"]["target"],
                               grid.height, grid.width)
    if target is None:
        raise ConfigError(f"shipped model {model.name} has no emoji target to measure against")
    frames, times, losses, stills = [], [], [], []
    grow_frames = int(round(plan.grow_until / plan.frame_every))
    regrow_frames = int(round(plan.regrow_for / plan.frame_every))
    stills_at = {grow_frames + regrow_frames * k // 2 for k in (1, 2)}

    def capture(index):
        dead = grid.dead()  # one read of the grid for the frame and its loss
        rgba = render.shown_rgba(grid, dead)
        frames.append(render.frame_rgb(grid, plan.scale, rgba, dead))
        times.append(grid.time)
        losses.append(render.loss(grid, target, rgba))
        if index in stills_at:
            stills.append((f"t = {grid.time:g}", frames[-1]))
        bar.update(1)
        bar.set_postfix(t=f"{grid.time:.0f}", loss=f"{losses[-1]:.4f}")

    warm_up(grid, plan, say=(lambda line: print(line, file=sys.stderr, flush=True))
            if progress else (lambda line: None))
    bar = tqdm(total=grow_frames + regrow_frames + 1, unit="frame", disable=not progress,
               mininterval=0.5, desc=f"demo {model.name}")
    capture(0)
    for i in range(1, grow_frames + 1):
        grid.run(until=plan.grow_until * i / grow_frames, horizon=plan.grow_until)
        capture(i)
    stills[:0] = [(f"t = {times[i]:g}", frames[i]) for i in growth_stills(losses)]
    before = losses[-1]
    grid.erase(plan.damage)
    grid.run(until=grid.time + 2 / TICKS_PER_UNIT)  # just past the erase event
    after_damage = render.loss(grid, target)
    stills.append((f"erased {plan.damage}", render.frame_rgb(grid, plan.scale)))
    for i in range(1, regrow_frames + 1):
        grid.run(until=plan.grow_until + plan.regrow_for * i / regrow_frames, horizon=plan.until)
        capture(grow_frames + i)
    bar.close()
    after = losses[-1]
    regrown_after = regrowth_time(times, losses, plan.grow_until)
    counts = grid.counts()
    regrowth_note = regrowth_meaning(model, plan.damage, before, after_damage)
    summary = {
        "model": model.name,
        "experiment": model.experiment,
        "trained_for": model.purpose,
        "genome": model.genome_path.name,
        "grid": [grid.height, grid.width],
        "clock": "poisson",
        "fire_rate": float(genome.fire_rate),
        "seed": plan.seed,
        "damage": {"shape": plan.damage, "at": plan.grow_until},
        "until": plan.until,
        "loss": {"before_damage": before, "after_damage": after_damage, "after_regrowth": after},
        "regrowth_ratio": after / before if before > 0 else None,
        "regrown": bool(after <= REGROWN_FACTOR * before),
        "regrowth_time": regrown_after,
        "regrowth_scored": regrowth_note == "",
        "regrowth_note": regrowth_note,
        "events": {"cell_updates": grid.updates, **{k: v for k, v in counts.items() if k != "fire"}},
        "wall_time_s": time.perf_counter() - started,
        "cellsim_version": __version__,
        "loss_curve": [[round(t, 4), l] for t, l in zip(times, losses)],
    }
    if mcu is not None:
        summary["hardware"] = hardware_summary(mcu, float(genome.fire_rate), plan, regrown_after)
    return DemoResult(frames, times, losses, stills, summary)


def hardware_summary(mcu, fire_rate: float, plan: DemoPlan, regrown_after) -> dict:
    """The demo's times in seconds on a grid of `mcu` (cellsim.hardware)."""
    return {
        "mcu": mcu.target, "label": mcu.label, "frequency_hz": mcu.frequency_hz,
        "duty": mcu.duty, "link_baud": mcu.link_baud,
        "seconds_per_unit": mcu.seconds_per_unit(fire_rate),
        "link_latency_units": mcu.link_latency_units(fire_rate),
        "grow_seconds": mcu.seconds(plan.grow_until, fire_rate),
        "regrowth_seconds": (mcu.seconds(regrown_after, fire_rate)
                             if regrown_after is not None else None),
        "model": mcu.describe(fire_rate),
    }


def regrowth_time(times, losses, damage_at: float, factor: float = REGROWN_FACTOR):
    """Time from the damage until the loss is first back within `factor` of its
    value at the damage (the last sample at or before it); None if it never is."""
    before = [loss for t, loss in zip(times, losses) if t <= damage_at][-1]
    return next((t - damage_at for t, loss in zip(times, losses)
                 if t > damage_at and loss <= factor * before), None)


def warm_up(grid, plan: DemoPlan, say) -> None:
    """Run the first frame and the damage on a snapshot, then restore it: numba
    compiles (or loads from its cache) every kernel of the demo before the
    progress bar starts, whose rate and ETA then mean something. If that takes
    longer than COMPILE_NOTICE_AFTER, `say` tells why while it runs."""
    timer = threading.Timer(COMPILE_NOTICE_AFTER, say, (f"demo: {COMPILE_NOTICE}...",))
    timer.daemon = True
    timer.start()
    try:
        snap = grid.snapshot()
        grid.run(until=plan.frame_every)
        grid.erase(plan.damage)
        grid.run(until=grid.time + 2 / TICKS_PER_UNIT)
        grid.restore(snap)
    finally:
        timer.cancel()


def growth_stills(losses) -> list:
    """Indexes of the frames where the loss has come GROWTH_STILLS of the way (in
    log scale) from the seed's to the grown pattern's, then the grown frame: the
    filmstrip shows the pattern growing, not only grown."""
    start, end = (math.log(max(v, 1e-12)) for v in (losses[0], losses[-1]))
    last = len(losses) - 1
    if end >= start:  # nothing grew: evenly spaced frames
        return sorted({round(last * share) for share in GROWTH_STILLS} | {last})
    picks = [next(i for i, v in enumerate(losses) if math.log(max(v, 1e-12)) <=
                  start + share * (end - start)) for share in GROWTH_STILLS]
    return sorted(set(picks) | {last})


def regrowth_meaning(model: ShippedModel, damage: str, before: float, after_damage: float) -> str:
    """'' when the regrowth figure measures what the model was trained for, else why not."""
    if not model.trained_to_regrow:
        return (f"{model.name} was not trained to regrow ({model.experiment} experiment); "
                "the losses after the cut are for comparison only")
    if after_damage <= REGROWN_FACTOR * before:
        return (f"erasing {damage} did not raise the loss above {REGROWN_FACTOR}x its "
                "grown value: there was nothing to regrow")
    return ""


def filmstrip(stills, gap: int = 6) -> np.ndarray:
    """Frames side by side on white, each with its label above it."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    label_height = 16
    h, w, _ = stills[0][1].shape
    strip = Image.new("RGB", (len(stills) * (w + gap) + gap, h + label_height + 2 * gap), "white")
    draw = ImageDraw.Draw(strip)
    for i, (label, frame) in enumerate(stills):
        x = gap + i * (w + gap)
        draw.text((x + 2, gap), label, fill="black", font=font)
        strip.paste(Image.fromarray(frame), (x, gap + label_height))
    return np.asarray(strip)


def text_summary(summary: dict) -> str:
    loss = summary["loss"]
    regrowth = (f"not scored: {summary['regrowth_note']}" if not summary["regrowth_scored"] else
                f"back within {REGROWN_FACTOR}x of the pre-damage loss after "
                f"{summary['regrowth_time']:g} time units" if summary["regrowth_time"] is not None
                else f"not back within {REGROWN_FACTOR}x of the pre-damage loss")
    h, w = summary["grid"]
    return "\n".join([
        f"{summary['model']} ({summary['experiment']}) on a {w}x{h} asynchronous int8 grid, "
        f"Poisson clocks, seed {summary['seed']}; {summary['trained_for']}",
        f"loss vs target: {loss['before_damage']:.3g} grown (t = {summary['damage']['at']:g}), "
        f"{loss['after_damage']:.3g} after erasing {summary['damage']['shape']}, "
        f"{loss['after_regrowth']:.3g} at t = {summary['until']:g} "
        f"({summary['regrowth_ratio']:.2f}x the pre-damage loss)",
        f"regrowth: {regrowth}",
        f"{summary['events']['cell_updates']:,} cell updates in {summary['wall_time_s']:.1f} s "
        f"(including numba compilation when its cache is cold)",
        *hardware_lines(summary),
    ])


def hardware_lines(summary: dict) -> list:
    from .hardware import format_seconds

    hw = summary.get("hardware")
    if hw is None:
        return []
    regrows = ("" if not summary["regrowth_scored"] or hw["regrowth_seconds"] is None else
               f"the {summary['model']} regrows in {format_seconds(hw['regrowth_seconds'])} "
               f"on a grid of {hw['label']}; ")
    return [f"hardware time: {regrows}it grows for {format_seconds(hw['grow_seconds'])} before "
            f"the cut; {hw['model']}"]


def write_outputs(result: DemoResult, out) -> list:
    """demo.gif, filmstrip.png, summary.json, summary.txt in `out`, each atomic."""
    from pathlib import Path

    from . import atomic

    out = atomic.prepare_output_dir(out)
    files = {
        "demo.gif": render.gif_bytes(result.frames, seconds_per_frame=0.05),
        "filmstrip.png": render.png_bytes(filmstrip(result.stills)),
        "summary.json": (json.dumps(result.summary, indent=2) + "\n").encode(),
        "summary.txt": (text_summary(result.summary) + "\n").encode(),
    }
    for name, data in files.items():
        atomic.write_bytes(Path(out) / name, data)
    return [Path(out) / name for name in files]
