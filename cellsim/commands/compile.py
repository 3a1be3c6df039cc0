"""`cellsim compile`: compile the simulator's numba kernels into numba's cache
ahead of time, in parallel processes, so the first demo, simulate, study or view
only loads them. Jobs already done for this version of the sources are skipped."""
import sys

from ..errors import ConfigError


def add_arguments(parser) -> None:
    from ..sim.precompile import JOBS

    parser.add_argument("--job", action="append", choices=list(JOBS), metavar="JOB",
                        help=f"compile only this job (repeatable; default all: "
                             f"{', '.join(JOBS)})")
    parser.add_argument("--processes", type=int,
                        help="processes at once (default: the cores, at most one a job)")
    parser.add_argument("--force", action="store_true",
                        help="run the jobs even if done before for these sources")


def run(args) -> int:
    if args.processes is not None and args.processes < 1:
        raise ConfigError(f"--processes must be at least 1, got {args.processes}")
    from ..sim import precompile

    jobs = args.job or list(precompile.JOBS)
    todo = jobs if args.force else precompile.missing(jobs)
    if not todo:
        print(f"cellsim compile: up to date ({', '.join(jobs)} compiled for these sources)")
        return 0
    print(f"compiling {', '.join(todo)} into numba's cache "
          f"({args.processes or 'one process a core'}, at most one a job)", file=sys.stderr)

    def done(job, seconds):
        print(f"  {job}: {seconds:.1f} s", file=sys.stderr, flush=True)

    seconds = precompile.compile_all(todo, args.processes, on_done=done)
    print(f"compiled {len(todo)} job{'s' if len(todo) > 1 else ''} in {seconds['wall']:.1f} s "
          f"(wall); every command now loads them from the cache")
    return 0
