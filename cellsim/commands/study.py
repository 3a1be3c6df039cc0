"""`cellsim study SPEC.toml --out DIR [--scheduler ADDRESS] [--workers N]`: many
runs of the asynchronous grid on Dask (a local cluster by default), one row per
run in DIR/results.csv, with study.json, plots and report.md. Rerunning the
command on the same DIR skips the runs already done. docs/studies.md."""
import sys

from ..errors import ConfigError


def add_arguments(parser) -> None:
    parser.add_argument("spec", metavar="SPEC.toml", nargs="?",
                        help="study spec (`cellsim study --example` prints a commented one)")
    parser.add_argument("--out", metavar="DIR", help="output directory (results, plots, report)")
    parser.add_argument("--example", action="store_true",
                        help="print a commented example spec and exit")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="submit to a running Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                             "(default: start a local cluster)")
    parser.add_argument("--workers", type=int,
                        help="local cluster: worker processes, one thread each (default: cores)")
    parser.add_argument("--max-runs", type=int, default=None,
                        help="refuse specs with more runs than this unless --yes "
                             "(default 5000)")
    parser.add_argument("--yes", action="store_true", help="run however many runs the spec makes")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the spec, print the runs it makes and exit")
    parser.add_argument("--no-plots", action="store_true", help="table and study.json only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_options(args) -> None:
    if args.example:
        return
    if not args.spec:
        raise ConfigError("give a spec file (SPEC.toml), or --example to print one")
    if not args.out and not args.dry_run:
        raise ConfigError("--out DIR is required")
    if args.workers is not None and not 1 <= args.workers <= 1024:
        raise ConfigError(f"--workers must lie in [1, 1024], got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise ConfigError("--workers sizes the local cluster; a scheduler has its own workers")
    if args.max_runs is not None and args.max_runs < 1:
        raise ConfigError(f"--max-runs must be at least 1, got {args.max_runs}")
    if args.scheduler is not None and "://" not in args.scheduler and ":" not in args.scheduler:
        raise ConfigError(f"--scheduler {args.scheduler!r} is not an address such as "
                          "tcp://HOST:8786")


def run(args) -> int:
    if args.example:
        from importlib.resources import files

        sys.stdout.write(files("cellsim.study").joinpath("example.toml").read_text())
        return 0
    check_options(args)
    from ..study import driver
    from ..study.spec import load_spec

    spec = load_spec(args.spec)
    limit = None if args.yes else (args.max_runs or driver.DEFAULT_MAX_RUNS)
    plan = driver.plan_study(spec, max_runs=limit)
    if args.dry_run:
        for run, _, params in plan.jobs:
            print(f"{params['key']}  {run.model} {run.precision} {run.size} {run.clock} "
                  f"seed {run.seed} {run.condition}: {'; '.join(run.faults) or 'no faults'}")
        print(f"{len(plan.jobs)} runs")
        return 0
    from ..extras import require

    require("distributed", *(() if args.no_plots else ("matplotlib",)))  # before any run
    if args.scheduler is None:  # (local workers share this machine's numba cache)
        from ..sim.precompile import jobs_for
        from . import compile_first

        compile_first(sorted({job for run, _, _ in plan.jobs
                              for job in jobs_for(run.clock, run.precision == "float")}))
    outcome = driver.run_study(plan, args.out, scheduler=args.scheduler, workers=args.workers,
                               progress=not args.no_progress, plots=not args.no_plots,
                               log=lambda line: print(line, file=sys.stderr))
    ok = len(outcome.records) - len(outcome.failures)
    print(f"wrote {outcome.out}/results.csv ({ok} of {len(outcome.records)} runs ok; "
          f"{outcome.ran} ran now, {outcome.skipped} already done), study.json"
          + ("" if args.no_plots else ", survival.png, heatmap.png, recovery.png, report.md")
          + f" in {outcome.wall_time_s:.1f} s")
    if outcome.failures:
        print(f"cellsim study: {len(outcome.failures)} run(s) failed:", file=sys.stderr)
        for r in outcome.failures[:10]:
            print(f"  {r['model']} {r['precision']} {r['condition']} seed {r['seed']}: "
                  f"{r.get('error') or r.get('status')}", file=sys.stderr)
        if len(outcome.failures) > 10:
            print(f"  ... and {len(outcome.failures) - 10} more (see report.md)", file=sys.stderr)
        return 1
    return 0
