"""`cellsim train`: train a Growing NCA on an emoji or a PNG and write
checkpoint.pt, metrics.csv, loss.png, pool.png and growth.gif into --out.
torch is imported only inside run()."""
import math

from training.config import DAMAGE_KINDS, EXPERIMENTS, PRESETS  # plain data, no torch

from ..errors import ConfigError

# Modules of an extra that run() imports; `cellsim` checks them before running.
REQUIRES = ("torch", "matplotlib")


def add_arguments(parser) -> None:
    # Defaults are None so that --resume can tell what the user actually typed.
    parser.add_argument("--target", help="emoji name (lizard, grinning, boom, eye, fish, butterfly, "
                        "ladybug, web, pretzel, tree) or a PNG path; default lizard")
    parser.add_argument("--experiment", choices=list(EXPERIMENTS),
                        help="growing: always from the seed; persistent: sample pool; "
                             "regenerating: pool plus damage (default)")
    parser.add_argument("--preset", choices=list(PRESETS),
                        help="sizes: full = the paper's 72x72 grid, pool 1024, 8000 iterations (default); "
                             "quick = 36x36 grid, pool 256, 300 iterations")
    parser.add_argument("--iterations", type=int, help="total optimiser updates")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, help="seed of weights and all sampling (default 0)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its checkpoint, bit-identically")
    parser.add_argument("--fresh-pool", action="store_true",
                        help="with --resume: start the sample pool over from seeds instead of loading "
                             "the pool file (a checkpoint shipped without it, e.g. "
                             "cellsim/data/models/lizard/lizard.pt copied to OUT/checkpoint.pt)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument("--size", type=int, dest="target_size", help="target side in cells (paper: 40)")
    parser.add_argument("--padding", type=int, help="empty cells around the target (paper: 16)")
    parser.add_argument("--torus", action="store_const", const=True,
                        help="wrap around the grid edges instead of zero padding")
    parser.add_argument("--batch", type=int, help="samples per iteration (paper: 8)")
    parser.add_argument("--pool", type=int, dest="pool_size", help="sample pool size (paper: 1024)")
    parser.add_argument("--rotation", type=float, metavar="DEGREES",
                        help="rotate the perception kernels (experiment 4); default 0")
    parser.add_argument("--damage", choices=DAMAGE_KINDS,
                        help="damage of the regenerating experiment: circle = random discs, as the "
                             "paper (default); circle+half = one sample per batch loses half the grid "
                             "instead. May change on --resume (logged in the checkpoint)")
    parser.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints (default 100)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _options(args) -> dict:
    options = {name: getattr(args, name) for name in
               ("target", "experiment", "iterations", "seed", "target_size", "padding", "torus",
                "batch", "pool_size", "checkpoint_every", "damage")}
    if args.rotation is not None:
        if not math.isfinite(args.rotation):
            raise ConfigError("--rotation must be a finite number of degrees")
        options["angle"] = math.radians(args.rotation)
    return options


def run(args) -> int:
    # OpenMP threads that spin while waiting stall each other when another
    # process holds a core (a shared machine): measured 17-32 s instead of 2.6 s
    # per iteration. Only effective before torch first loads, hence here.
    from ..threads import passive_openmp_waits

    passive_openmp_waits()
    from training.config import make_config
    from training.trainer import Trainer

    options = _options(args)
    if args.resume:
        changes = dict(PRESETS[args.preset], **{k: v for k, v in options.items() if v is not None}) \
            if args.preset else options
        trainer = Trainer.resume(args.out, args.device, changes, fresh_pool=args.fresh_pool)
    else:
        if args.fresh_pool:
            raise ConfigError("--fresh-pool goes with --resume (a fresh run starts from seeds anyway)")
        trainer = Trainer.start(make_config(args.preset or "full", **options), args.out, args.device)
    cfg = trainer.config
    print(f"training {cfg.target} ({cfg.experiment}, {cfg.grid_size}x{cfg.grid_size} grid) on "
          f"{trainer.device.type} from iteration {trainer.iteration} to {cfg.iterations} -> {args.out}")
    trainer.run(progress=not args.no_progress)
    last = trainer.metrics[-1] if trainer.metrics else None
    summary = f"loss {last[1]:.5f} after {last[0]} iterations, {last[3]:.0f} s" if last else "no iterations"
    print(f"done: {summary}; wrote checkpoint.pt, metrics.csv, loss.png, pool.png, growth.gif")
    return 0
