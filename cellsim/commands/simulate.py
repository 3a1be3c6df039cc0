"""`cellsim simulate GENOME --size 72 --until 300 --clock poisson --damage half@150
--out DIR`: run a genome on the asynchronous grid and write DIR/run.gif,
DIR/metrics.csv and DIR/final.png. A float-weights .npz (`cellsim export --npz`)
in place of the genome runs the float32 model on the same grid.
Everything is checked before the run; the files are written only at the end."""
import math
import sys

from ..errors import ConfigError
from .mcu_options import add_hardware_arguments, hardware_clock

CLOCKS = ("poisson", "periodic", "sync")


def size_default_text() -> str:
    """What --size defaults to, read from the shipped default genome, not typed in."""
    from ..errors import CellsimError
    from ..pretrained import DEFAULT_MODEL, get_model

    try:
        example = f", e.g. {get_model().load_genome().grid_size} for the shipped {DEFAULT_MODEL}"
    except CellsimError:
        example = ""
    return f"the grid the genome was trained on, as `cellsim genome info` shows{example}"


def add_arguments(parser) -> None:
    parser.add_argument("genome", metavar="GENOME",
                        help="genome file (cellsim quantize), float weights .npz, or the "
                             "name of a shipped model (cellsim demo --list)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--size", type=int, help=f"grid side (default: {size_default_text()})")
    parser.add_argument("--until", type=float, default=300.0,
                        help="time to run to, in training steps at fire rate 0.5 (default 300)")
    parser.add_argument("--clock", choices=CLOCKS, default="poisson",
                        help="poisson (default), periodic or sync (the training step)")
    parser.add_argument("--fire-rate", type=float,
                        help="mean updates per cell per time unit (default: the genome's)")
    parser.add_argument("--skew", type=float, default=0.0,
                        help="oscillator rates uniform in [1-skew, 1+skew] (default 0)")
    parser.add_argument("--jitter", type=float, default=0.0,
                        help="periodic clock: each wait +- jitter * period (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of clocks and faults (default 0)")
    torus = parser.add_mutually_exclusive_group()
    torus.add_argument("--torus", dest="torus", action="store_true", default=None,
                       help="wrap the edges (default: as the genome was trained)")
    torus.add_argument("--no-torus", dest="torus", action="store_false")
    parser.add_argument("--damage", action="append", default=[], metavar="SHAPE@T",
                        help="erase a shape at time T: half[:left|right|top|bottom], "
                             "circle:X,Y,R, rect:X0,Y0,X1,Y1, cell:X,Y, random:P, all "
                             "(repeatable)")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="KIND[=VALUE][:SHAPE][@START[-END]]: erase, kill, reboot, stuck, "
                             "drift=F, ramflip=RATE, romflip=RATE, loss=P, delay=UNITS "
                             "(repeatable)")
    parser.add_argument("--faults", metavar="FILE", help="fault plan, .toml or .json")
    parser.add_argument("--frames", type=int, default=150,
                        help="GIF frames (and metric rows) over the run (default 150)")
    parser.add_argument("--scale", type=int, help="pixels per cell in the images "
                                                  "(default: about 288 pixels wide)")
    parser.add_argument("--target", help="emoji name or image for the loss column (default: "
                                          "the training target recorded beside the genome, "
                                          "else the emoji the genome names; needed for float "
                                          "weights)")
    parser.add_argument("--engine", choices=("fast", "reference"), default="fast",
                        help="fast (default) or the slow one-event-at-a-time reference")
    parser.add_argument("--workers", type=int, help="threads (default: numba's, all cores)")
    add_hardware_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_options(args) -> None:
    if not (math.isfinite(args.until) and 0 < args.until <= 1e6):
        raise ConfigError(f"--until must lie in (0, 1e6], got {args.until}")
    if not 1 <= args.frames <= 10000:
        raise ConfigError(f"--frames must lie in [1, 10000], got {args.frames}")
    if args.size is not None and not 3 <= args.size <= 4096:
        raise ConfigError(f"--size must lie in [3, 4096], got {args.size}")
    if args.scale is not None and not 1 <= args.scale <= 64:
        raise ConfigError(f"--scale must lie in [1, 64], got {args.scale}")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")


def model_path(name_or_path: str) -> str:
    """The file a GENOME argument names: the path itself, or, when no such file
    exists and it is a shipped model's name (`lizard`), that model's genome."""
    from pathlib import Path

    from ..pretrained import list_models

    if Path(name_or_path).exists():
        return name_or_path
    shipped = {m.name: m for m in list_models()}
    return str(shipped[name_or_path].genome_path) if name_or_path in shipped else name_or_path


def load_model(path):
    """A genome file, or float weights if the file is an .npz."""
    from pathlib import Path

    if Path(path).suffix.lower() == ".npz":
        from ..sim.floatmodel import FloatParams
        return FloatParams.load(path)
    from ..genome import load_genome
    return load_genome(path)


def build_grid(args, model, mcu=None):
    from ..sim import ClockSpec, Grid, load_fault_plan, parse_damage, parse_fault

    faults = [parse_damage(d) for d in args.damage] + [parse_fault(f) for f in args.fault]
    if args.faults:
        faults += list(load_fault_plan(args.faults))
    fire_rate = args.fire_rate if args.fire_rate is not None else model.fire_rate
    clock = ClockSpec(args.clock, fire_rate, args.skew, args.jitter)
    grid = Grid(model, args.size, clock=clock, torus=args.torus, seed=args.seed,
                engine=args.engine, workers=args.workers)
    grid.plant_seed()
    if mcu is not None:
        faults += mcu.link_faults(clock.fire_rate)
    grid.add_faults(faults)
    too_late = [f for f in faults if f.start >= args.until]
    if too_late:
        raise ConfigError(f"fault {too_late[0]} starts at or after --until {args.until:g}")
    return grid


def run(args) -> int:
    check_options(args)
    from pathlib import Path

    from .. import atomic
    from ..hardware import format_seconds
    from ..sim import render

    mcu = hardware_clock(args)
    args.genome = model_path(args.genome)
    model = load_model(args.genome)
    grid = build_grid(args, model, mcu)
    target, target_source = render.scoring_target(args.target, args.genome, model, grid.height,
                                                  grid.width)
    if target is None:
        print(f"cellsim simulate: {target_source}; the loss column of metrics.csv stays empty",
              file=sys.stderr)
    out = atomic.prepare_output_dir(args.out)
    from ..sim.precompile import jobs_for
    from . import compile_first

    compile_first(jobs_for(args.clock, grid.float_mode, args.engine))
    scale = args.scale or render.default_scale(grid.height, grid.width)
    every = args.until / args.frames

    from tqdm import tqdm

    frames, rows, times, losses = [], [], [], []
    fire_rate = grid.clock.fire_rate
    bar = tqdm(total=args.frames + 1, unit="frame", disable=args.no_progress, mininterval=0.5,
               desc=f"simulate {grid.width}x{grid.height} {args.clock}")
    for g in grid.frames(args.until, every):
        seen = render.observe(g, scale, target)
        frames.append(seen["frame"])
        loss = f"{seen['loss']:.6f}" if target is not None else ""
        times.append(g.time)
        losses.append(seen["loss"] if target is not None else None)
        rows.append(f"{g.time:.4f},{loss},{seen['alive']:.6f},{seen['dead']:.6f},{g.updates}"
                    + (f",{mcu.seconds(g.time, fire_rate):.9g}" if mcu is not None else ""))
        bar.set_postfix(t=f"{g.time:.1f}", updates=f"{g.updates:,}")
        bar.update(1)
    bar.close()
    csv = ("time,loss,alive,dead,updates" + (",seconds" if mcu is not None else "") + "\n"
           + "\n".join(rows) + "\n")
    gif, png = render.gif_bytes(frames), render.png_bytes(frames[-1])
    atomic.write_bytes(Path(out) / "run.gif", gif)
    atomic.write_text(Path(out) / "metrics.csv", csv)
    atomic.write_bytes(Path(out) / "final.png", png)
    counts = grid.counts()
    print(f"wrote {out}/run.gif, metrics.csv, final.png: {grid.updates:,} cell updates to "
          f"t = {grid.time:g}, {sum(counts.values()) - counts['fire']:,} other events"
          + (f", final loss {render.loss(grid, target):.4f}" if target is not None else ""))
    regrowth = regrowth_line(args, model, times, losses)
    if regrowth:
        print(regrowth[0])
    if mcu is not None:
        print(f"hardware time: {mcu.describe(fire_rate)}; t = {grid.time:g} is "
              f"{format_seconds(mcu.seconds(grid.time, fire_rate))}")
        if regrowth and regrowth[1] is not None:
            print(f"the {model_name(args, model)} regrows in "
                  f"{format_seconds(mcu.seconds(regrowth[1], fire_rate))} on a grid of "
                  f"{mcu.label}")
    return 0


def model_name(args, model) -> str:
    from pathlib import Path

    return getattr(model, "name", "") or Path(args.genome).stem


def regrowth_line(args, model, times, losses):
    """(text, units or None) about the regrowth after the first --damage, or None
    without damage or a loss to measure it by."""
    from ..demo import REGROWN_FACTOR, regrowth_time
    from ..sim import parse_damage

    if not args.damage or losses[0] is None:
        return None
    at = min(parse_damage(d).start for d in args.damage)
    before = [loss for t, loss in zip(times, losses) if t <= at][-1]
    if max(loss for t, loss in zip(times, losses) if t > at) <= REGROWN_FACTOR * before:
        return (f"regrowth: not scored: the damage at t = {at:g} never raised the loss above "
                f"{REGROWN_FACTOR}x its value before", None)
    units = regrowth_time(times, losses, at)
    if units is None:
        return (f"regrowth: the loss is not back within {REGROWN_FACTOR}x of its value at the "
                f"damage (t = {at:g}) by t = {times[-1]:g}", None)
    return (f"regrowth: the loss is back within {REGROWN_FACTOR}x of its value at the damage "
            f"(t = {at:g}) {units:g} time units after it", units)
