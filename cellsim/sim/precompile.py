"""Compile the simulator's kernels into numba's cache ahead of time, in parallel
processes, so that a first run only loads them (`cellsim compile`; the demo,
simulate, study and view do it themselves on a cold cache).

numba compiles a caller's callees while it types the caller, one after
another, and holds one compiler lock per process: the engine's window kernels
alone take some twenty seconds. They do not depend on the planner's, the
clocks', the synchronous or the float engine's kernels, so those compile in a
second process meanwhile; every process writes numba's on-disk cache."""
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from ..errors import ConfigError

SIDE = 12  # the jobs' grids: kernels are compiled for types, not sizes


def _genome():
    from ..pretrained import get_model
    return get_model().load_genome()


def _grid(clock="poisson", model=None, workers=2):
    from .grid import Grid
    grid = Grid(model if model is not None else _genome(), SIDE, clock=clock, seed=1,
                workers=workers)
    grid.plant_seed()
    return grid


def window_kernels():
    """The kernel that runs a window in pieces, and the settling of a cut in one
    (next_fires): the longest job, which goes first."""
    _grid().engine.compile_kernels(("run_segment",))


def crew():
    """The second worker's kernel between pieces (team.Crew): it calls the above."""
    _grid().engine.compile_kernels(("serve_segments",))


def general_path():
    """The kernel of windows with faults, messages on wires or faulty links."""
    _grid().engine.compile_kernels(("run_band",))


def planner():
    """The planner and the clocks' start, Poisson and periodic."""
    from .faults import parse_damage
    for clock in ("poisson", "periodic"):
        grid = _grid(clock)
        grid.add_faults([parse_damage("half@0.5")])  # (fault events: the same kernels' types)
        grid.engine.compile_planner()


def synchronous():
    """The synchronous clock's grid steps and faults."""
    from .faults import parse_damage
    grid = _grid("sync")
    grid.add_faults([parse_damage("half@1")])
    grid.run(until=2)


def float_model():
    """The float32 model's engine on the shipped float weights, both kinds of clock."""
    from ..pretrained import get_model
    from .floatmodel import FloatParams
    path = get_model().float_path
    if path is None:
        return
    for clock in ("poisson", "sync"):
        _grid(clock, model=FloatParams.load(path)).run(until=1)


def frames():
    """The frames' dequantisation and drawing."""
    from . import render
    grid = _grid()
    render.observe(grid, 2, None)


# name: (job, the jobs it must wait for). A caller's compile compiles its
# callees, so a job waits for the one that caches the kernels it calls, rather
# than compiling them again beside it. Ready jobs go out in this order.
JOBS = {"window kernels": (window_kernels, ()), "planner": (planner, ()),
        "frames": (frames, ()), "synchronous": (synchronous, ()),
        "float model": (float_model, ()),
        "crew": (crew, ("window kernels",)), "general path": (general_path, ("window kernels",))}
# What a run of the asynchronous int8 grid needs (the demo, simulate, study, view).
ASYNC_JOBS = ("window kernels", "planner", "frames", "crew", "general path")


def jobs_for(clock="poisson", float_model=False, engine="fast") -> tuple:
    """The jobs a run of the CLI needs: of the fast engine (the reference
    engine compiles nothing), int8 or float, with this clock's name."""
    if engine != "fast":
        return ()
    if float_model:
        return ("planner", "frames", "float model")
    return ASYNC_JOBS + (("synchronous",) if clock == "sync" else ())


def _timed(name):
    began = time.perf_counter()
    JOBS[name][0]()
    return name, time.perf_counter() - began


def marker_path(job: str) -> str:
    """A file beside the window kernels' cache entries, named by the job, the
    sources' stamp (cache.py) and numba's version: present once the job has run
    for these sources."""
    import hashlib

    import numba

    from .cache import package_stamp
    from .engine import run_segment
    digest = hashlib.sha256(repr((package_stamp(), numba.__version__)).encode()).hexdigest()
    name = job.replace(" ", "-")
    return os.path.join(run_segment._cache._cache_path, f"cellsim-compiled-{digest[:16]}-{name}")


def _check(jobs) -> None:
    unknown = [job for job in jobs if job not in JOBS]
    if unknown:
        raise ConfigError(f"unknown compile job {unknown[0]!r}; the jobs: {', '.join(JOBS)}")


def missing(jobs=tuple(JOBS)) -> list:
    """The jobs not yet run for these sources."""
    _check(jobs)
    try:
        return [job for job in jobs if not os.path.exists(marker_path(job))]
    except (AttributeError, OSError):  # (a numba without these internals: assume all)
        return list(jobs)


def _mark(job: str, seconds: float) -> None:
    try:
        path = marker_path(job)
        with open(path + ".tmp", "w") as f:
            f.write(f"{seconds:.3f}\n")
        os.replace(path + ".tmp", path)
    except (AttributeError, OSError):
        pass  # (the kernels are cached all the same; only the check is lost)


def compile_all(jobs=tuple(JOBS), processes=None, on_done=None) -> dict:
    """Run the jobs (names from JOBS, in JOBS' order) in `processes` fresh
    processes (default: the cores, at most one a job); on_done(name, seconds)
    as each finishes. Returns {job: seconds, "wall": seconds}. Raises
    ConfigError for an unknown job or a bad process count."""
    _check(jobs)
    jobs = [job for job in JOBS if job in jobs]
    if processes is None:
        processes = min(os.cpu_count() or 1, max(len(jobs), 1))
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 1:
        raise ConfigError(f"processes must be a positive integer, got {processes!r}")
    began = time.perf_counter()
    seconds = {}
    if jobs:
        # Threads that each wait on a fresh `python -c` process: unlike
        # multiprocessing's spawn, it does not import the caller's main module
        # again (a script without a __main__ guard would run twice).
        with ThreadPoolExecutor(min(processes, len(jobs))) as pool:
            def done(job, took):
                _mark(job, took)
                if on_done is not None:
                    on_done(job, took)
            seconds = run_jobs(jobs, {job: JOBS[job][1] for job in jobs},
                               lambda job: pool.submit(_in_a_process, job), done)
    seconds["wall"] = time.perf_counter() - began
    return seconds


def _in_a_process(job):
    """(job, seconds): the job run in a fresh Python process."""
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)
    code = f"from cellsim.sim.precompile import _timed; print(_timed({job!r})[1])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path})
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise RuntimeError(last)
    return job, float(done.stdout.split()[-1])


def run_jobs(jobs, prerequisites, submit, on_done) -> dict:
    """Submit each job (submit(job) -> a Future of (job, seconds)) once the jobs
    it waits for (prerequisites[job], those among `jobs`) are done, in the
    order given; on_done(job, seconds) as each finishes. Returns {job: seconds}.
    A job that fails raises CellsimError naming it."""
    from ..errors import CellsimError

    seconds, waiting, running = {}, list(jobs), {}
    while waiting or running:
        for job in [j for j in waiting if all(before in seconds or before not in jobs
                                              for before in prerequisites[j])]:
            waiting.remove(job)
            running[submit(job)] = job
        if not running:
            raise CellsimError(f"compile jobs wait for each other: {', '.join(waiting)}")
        finished, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in finished:
            job = running.pop(future)
            try:
                _, took = future.result()
            except Exception as exc:  # (any failure of a child: named, in one line)
                raise CellsimError(f"compile job {job!r} failed: "
                                   f"{type(exc).__name__}: {exc}") from exc
            seconds[job] = took
            on_done(job, took)
    return seconds


def ensure_compiled(jobs=ASYNC_JOBS, note=None) -> dict | None:
    """compile_all() of the jobs not run before for these sources, if any;
    note(text) first. A job that fails leaves its kernels to be compiled in
    the run itself, as without this (note says so): the run does not fail."""
    import numba

    from ..errors import CellsimError

    todo = [] if numba.config.DISABLE_JIT else missing(jobs)  # (no JIT: nothing to compile)
    if not todo:
        return None
    processes = min(os.cpu_count() or 1, len(todo))
    say = note or (lambda text: None)
    say(f"compiling the simulator's kernels for this version once, in {processes} "
        f"process{'es' if processes > 1 else ''} (`cellsim compile` does it ahead of time)")
    try:
        return compile_all(todo, processes)
    except (CellsimError, OSError) as exc:
        say(f"{exc}; the run compiles what it needs itself")
        return None
