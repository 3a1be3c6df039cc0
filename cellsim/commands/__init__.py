"""One module per `cellsim` sub-command (cellsim/cli.py), and what several share."""


def compile_first(jobs) -> None:
    """On a cold numba cache, compile the jobs (cellsim.sim.precompile) in
    parallel processes before the run, saying so on stderr: on two cores about
    half the wall time of compiling them in the run."""
    import sys

    from ..sim.precompile import ensure_compiled

    ensure_compiled(jobs, note=lambda text: print(f"cellsim: {text}", file=sys.stderr,
                                                  flush=True))
