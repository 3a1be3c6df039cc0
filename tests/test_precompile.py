"""`cellsim compile` fills numba's cache ahead of time. What it compiles must be
what a run uses, type for type (else the run compiles again), its jobs must
wait for the jobs whose kernels they call, and the command must say what it did
and refuse bad input in one line."""
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cellsim.errors import CellsimError, ConfigError
from cellsim.sim import Grid, engine, parse_damage, precompile, team
from tests.cli_helpers import fails_cleanly
from tests.strategies import random_genome

WATCHED = ("run_segment", "serve_segments", "run_band", "next_fires", "plan_band")


@pytest.fixture
def kernel_calls(monkeypatch):
    """The argument types of every call of a WATCHED kernel (by name)."""
    seen = {name: set() for name in WATCHED}

    def types_of(kernel, args):
        return tuple(kernel.typeof_pyval(a) for a in args)

    compiled, run_team = team.compiled, team.run_team

    def compiled_recorded(kernel, *args):
        if kernel.py_func.__name__ in seen:
            seen[kernel.py_func.__name__].add(types_of(kernel, (0, 1) + args))
        return compiled(kernel, *args)

    def run_team_recorded(kernel, workers, *args):
        if kernel.py_func.__name__ in seen:
            seen[kernel.py_func.__name__].add(types_of(kernel, (0, workers) + args))
        return run_team(kernel, workers, *args)

    original_next_fires = engine.next_fires

    def next_fires_recorded(*args):
        seen["next_fires"].add(types_of(original_next_fires, args))
        return original_next_fires(*args)

    monkeypatch.setattr(team, "compiled", compiled_recorded)
    monkeypatch.setattr(team, "run_team", run_team_recorded)
    monkeypatch.setattr(engine, "next_fires", next_fires_recorded)
    return seen


def test_the_compiled_kernels_are_the_ones_a_run_calls(kernel_calls):
    """compile_kernels and compile_planner (an empty window, no plan) give the
    argument types a real run of the demo's kind gives: short pieces (the
    window kernels, and the crew's with two workers), a restore mid-window
    (next_fires) and a fault (the general path)."""
    workers = team.team_size(2)
    genome = random_genome(3)
    warm = Grid(genome, 12, seed=1, workers=2)
    warm.engine.compile_kernels()
    warm.engine.compile_planner()
    ahead = {name: set(types) for name, types in kernel_calls.items()}
    for types in kernel_calls.values():
        types.clear()

    grid = Grid(genome, 14, seed=5, workers=2)
    grid.plant_seed()
    for t in (0.5, 1.0, 1.5):
        grid.run(until=t)
    grid.snapshot()  # (settles the cut: next_fires)
    grid.add_faults([parse_damage("half@2.2")])
    grid.run(until=3)
    used = ["run_segment", "next_fires", "run_band", "plan_band"] + \
        (["serve_segments"] if workers == 2 else [])
    for name in used:
        assert kernel_calls[name], f"the run never called {name}: the test lost its point"
        assert kernel_calls[name] <= ahead[name], name
    assert ahead["serve_segments"], "compile_kernels compiles the crew's kernel on any machine"


def test_a_job_waits_for_the_jobs_whose_kernels_it_calls():
    """run_jobs submits a job only once its prerequisites among the jobs are done."""
    log, lock = [], threading.Lock()

    def job(name, seconds):
        with lock:
            log.append(("start", name))
        time.sleep(seconds)
        with lock:
            log.append(("end", name))
        return name, seconds

    lengths = {"chain": 0.2, "planner": 0.05, "frames": 0.01, "crew": 0.01, "band": 0.01}
    prerequisites = {"chain": (), "planner": (), "frames": (), "crew": ("chain",),
                     "band": ("chain",)}
    done = []
    with ThreadPoolExecutor(2) as pool:
        seconds = precompile.run_jobs(list(lengths), prerequisites,
                                      lambda name: pool.submit(job, name, lengths[name]),
                                      lambda name, s: done.append(name))
    assert set(seconds) == set(lengths) == set(done)
    assert log.index(("start", "crew")) > log.index(("end", "chain"))
    assert log.index(("start", "band")) > log.index(("end", "chain"))
    assert log.index(("start", "planner")) < log.index(("end", "chain"))  # meanwhile
    # A prerequisite that is not among the jobs is not waited for.
    with ThreadPoolExecutor(1) as pool:
        assert set(precompile.run_jobs(["crew"], prerequisites,
                                       lambda name: pool.submit(job, name, 0.0),
                                       lambda *_: None)) == {"crew"}


def test_a_failing_job_is_named():
    def fail():
        raise RuntimeError("no such model")

    with ThreadPoolExecutor(1) as pool, pytest.raises(CellsimError, match="'planner' failed: "
                                                                          "RuntimeError"):
        precompile.run_jobs(["planner"], {"planner": ()}, lambda name: pool.submit(fail),
                            lambda *_: None)


def test_unknown_jobs_and_process_counts_are_refused():
    with pytest.raises(ConfigError, match="unknown compile job 'kernels'"):
        precompile.missing(["kernels"])
    for processes in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="processes must be a positive integer"):
            precompile.compile_all(["frames"], processes)


def _cellsim(cache_dir, *argv):
    return subprocess.run([sys.executable, "-m", "cellsim", *argv], capture_output=True,
                          text=True, env={**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)})


def test_compile_fills_a_cold_cache_once(tmp_path):
    """In a cache of its own: the job runs, leaves its marker and the kernels,
    and the next call finds it done; --force runs it again."""
    first = _cellsim(tmp_path, "compile", "--job", "frames")
    assert first.returncode == 0, first.stderr
    assert "compiled 1 job in" in first.stdout and "frames:" in first.stderr
    markers = [n for _, _, names in os.walk(tmp_path) for n in names
               if n.startswith("cellsim-compiled-")]
    assert len(markers) == 1 and markers[0].endswith("-frames")
    cached = [n for _, _, names in os.walk(tmp_path) for n in names if n.endswith(".nbc")]
    assert any(n.startswith("frame_kernels.dequantised") for n in cached), cached
    again = _cellsim(tmp_path, "compile", "--job", "frames")
    assert again.returncode == 0 and "up to date" in again.stdout, again.stderr
    forced = _cellsim(tmp_path, "compile", "--job", "frames", "--force")
    assert forced.returncode == 0 and "compiled 1 job in" in forced.stdout, forced.stderr


def test_the_marker_belongs_to_these_sources_and_this_numba():
    path = precompile.marker_path("window kernels")
    assert os.path.basename(path).startswith("cellsim-compiled-")
    assert path.endswith("-window-kernels")
    assert os.path.dirname(path) == engine.run_segment._cache._cache_path
    assert precompile.marker_path("planner") != path


def test_bad_compile_options_fail_cleanly(capsys):
    fails_cleanly(capsys, ["compile", "--processes", "0"], "--processes must be at least 1")
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices
        from cellsim.cli import main
        main(["compile", "--job", "everything"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'everything'" in capsys.readouterr().err


def test_the_cli_asks_for_the_jobs_its_run_needs():
    assert set(precompile.jobs_for()) == set(precompile.ASYNC_JOBS)
    assert "synchronous" in precompile.jobs_for("sync")
    assert "float model" in precompile.jobs_for(float_model=True)
    assert "window kernels" not in precompile.jobs_for(float_model=True)
    assert precompile.jobs_for(engine="reference") == ()
    assert set(precompile.JOBS) >= set(precompile.jobs_for("sync")) | set(
        precompile.jobs_for(float_model=True))


def test_a_script_without_a_main_guard_can_compile(tmp_path):
    """The jobs run in `python -c` processes, not multiprocessing's spawn, which
    imports the caller's main module again: a script calling the CLI at its top
    level would have run twice and failed."""
    script = tmp_path / "unguarded.py"
    script.write_text("from cellsim.cli import main\n"
                      "print('exit', main(['compile', '--job', 'frames']))\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("exit 0") == 1 and "compiled 1 job in" in done.stdout


def test_a_job_failing_in_its_process_is_named_and_does_not_stop_a_run(monkeypatch):
    with pytest.raises(RuntimeError, match="KeyError"):
        precompile._in_a_process("no such job")
    notes = []

    def failing(jobs, processes):
        raise CellsimError("compile job 'planner' failed: RuntimeError: boom")

    monkeypatch.setattr(precompile, "missing", lambda jobs: list(jobs))
    monkeypatch.setattr(precompile, "compile_all", failing)
    assert precompile.ensure_compiled(("planner",), note=notes.append) is None
    assert len(notes) == 2 and "boom; the run compiles what it needs itself" in notes[1]
