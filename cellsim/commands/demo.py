"""`cellsim demo [--out DIR]`: grow the shipped lizard genome from one seed on the
asynchronous int8 grid, erase half of it, let it regrow, and write DIR/demo.gif,
DIR/filmstrip.png, DIR/summary.json and DIR/summary.txt. `--list` shows the models."""
from ..errors import ConfigError


def add_arguments(parser) -> None:
    from ..pretrained import DEFAULT_MODEL

    parser.add_argument("--out", default="cellsim-demo", metavar="DIR",
                        help="output directory (default: ./cellsim-demo)")
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME",
                        help=f"shipped model to run (default {DEFAULT_MODEL}; see --list)")
    parser.add_argument("--list", action="store_true", help="list the shipped models and exit")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cells' clocks (default 0)")
    parser.add_argument("--grow", type=float, default=200.0, metavar="T",
                        help="time to grow before the damage (default 200)")
    parser.add_argument("--regrow", type=float, default=200.0, metavar="T",
                        help="time to regrow after it (default 200)")
    parser.add_argument("--damage", default="half:right", metavar="SHAPE",
                        help="what to erase: half[:left|right|top|bottom], circle:X,Y,R, "
                             "rect:X0,Y0,X1,Y1 (default half:right)")
    from .mcu_options import add_hardware_arguments

    add_hardware_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..pretrained import get_model, list_models

    if args.list:
        models = list_models()
        for model in models:
            print(model.summary)
        if not models:
            print("no shipped models in this installation")
        return 0
    if not 0 <= args.seed < 2 ** 63:
        raise ConfigError(f"--seed must lie in [0, 2^63), got {args.seed}")
    for flag, value in (("--grow", args.grow), ("--regrow", args.regrow)):
        if not 2 <= value <= 100_000:
            raise ConfigError(f"{flag} must lie in [2, 100000], got {value}")
    from ..demo import DemoPlan, run_demo, text_summary, write_outputs

    plan = DemoPlan(grow_until=args.grow, regrow_for=args.regrow, damage=args.damage,
                    seed=args.seed)
    model = get_model(args.model)
    from .. import atomic
    from ..sim.precompile import jobs_for
    from . import compile_first
    from .mcu_options import hardware_clock

    mcu = hardware_clock(args)
    atomic.prepare_output_dir(args.out)  # fail before the run, not after it
    compile_first(jobs_for())
    result = run_demo(model, plan, progress=not args.no_progress, mcu=mcu)
    paths = write_outputs(result, args.out)
    print(text_summary(result.summary))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0

