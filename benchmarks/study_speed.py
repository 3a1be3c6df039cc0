"""Throughput of `cellsim study` on Dask: the same study of about one-second
runs (the shipped lizard, int8, 72x72, Poisson clocks) on a LocalCluster of 1
and of 2 worker processes, timed as a user meets it: the cluster's start, the
run phase (first submission to last result, each result filed on disk), and
the whole command. Targets (issue 13): 2 workers at least 1.8x the runs/s of
one; the scheduler's overhead per run (wall time per run x workers - the run's
own time) under 5% of a run.

    python benchmarks/study_speed.py [--runs 24] [--run-seconds 1.0] [--check]
                                     [--json runs/study_speed.json]"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

SPEEDUP_TARGET = 1.8
OVERHEAD_TARGET = 0.05

SPEC = """
name = "throughput"
models = ["lizard"]
precisions = ["int8"]
sizes = [72]
seeds = {runs}
damage_at = [200]
run_for = [{run_for}]
sample_every = 50
[[faults]]
name = "disc"
kind = "erase"
shape = "circle:{{cx}},{{cy}},12"
"""


def calibrate(run_seconds: float) -> float:
    """The run length (time units after the damage) that takes about run_seconds."""
    from cellsim.study import driver, parse_spec_text
    from cellsim.study.run import execute

    def seconds(run_for):
        plan = driver.plan_study(parse_spec_text(SPEC.format(runs=1, run_for=run_for)))
        run, payload, _ = plan.jobs[0]
        started = time.perf_counter()
        execute(run, payload)
        return time.perf_counter() - started

    seconds(50)  # compile or load the kernels
    base, longer = seconds(50), seconds(450)
    per_unit = max(1e-6, (longer - base) / 400)
    guess = max(10.0, 50 + (run_seconds - base) / per_unit)
    # A grown lizard costs more per unit than a growing one: correct once by measuring.
    guess *= run_seconds / seconds(guess)
    return float(max(10, round(guess, -1)))


def measure(workers: int, runs: int, run_for: float) -> dict:
    from cellsim.study import driver, parse_spec_text

    plan = driver.plan_study(parse_spec_text(SPEC.format(runs=runs, run_for=run_for)))
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        outcome = driver.run_study(plan, out, workers=workers, progress=False, plots=False,
                                   log=lambda line: None)
        command = time.perf_counter() - started
        sizes = [p.stat().st_size for p in (Path(out) / "runs").glob("*.json")]
        row_bytes = (Path(out) / "results.csv").stat().st_size / runs
    if outcome.failures:
        raise SystemExit(f"{len(outcome.failures)} runs failed: {outcome.failures[0]['error']}")
    run_times = [r["wall_time_s"] for r in outcome.records]
    mean_run = statistics.fmean(run_times)
    per_run_wall = outcome.run_phase_s * workers / runs
    return {"workers": workers, "runs": runs, "run_for": run_for,
            "cluster_start_s": outcome.cluster_start_s, "run_phase_s": outcome.run_phase_s,
            "command_s": command, "mean_run_s": mean_run,
            "runs_per_s": runs / outcome.run_phase_s, "runs_per_s_with_start": runs / command,
            "overhead_per_run_s": per_run_wall - mean_run,
            "overhead_fraction": (per_run_wall - mean_run) / mean_run,
            "result_file_bytes": statistics.fmean(sizes), "table_row_bytes": row_bytes,
            "cell_updates": sum(r["cell_updates"] for r in outcome.records)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=24, help="runs per study (default 24)")
    parser.add_argument("--run-seconds", type=float, default=1.0,
                        help="about how long one run takes (default 1.0)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a target is not met")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args(argv)
    if not 2 <= args.runs <= 10000:
        print("benchmarks.study_speed: error: --runs must lie in [2, 10000]", file=sys.stderr)
        return 2
    if not 0.05 <= args.run_seconds <= 600:
        print("benchmarks.study_speed: error: --run-seconds must lie in [0.05, 600]",
              file=sys.stderr)
        return 2
    import os

    load = [round(x, 2) for x in os.getloadavg()]
    run_for = calibrate(args.run_seconds)
    one, two = measure(1, args.runs, run_for), measure(2, args.runs, run_for)
    speedup = two["runs_per_s"] / one["runs_per_s"]
    speedup_cold = two["runs_per_s_with_start"] / one["runs_per_s_with_start"]
    print(f"study of {args.runs} runs of the lizard (int8, 72x72, t = 0..{200 + run_for:g}), "
          f"load average at start {load}")
    print(f"{'workers':>7} {'run s':>6} {'start s':>7} {'phase s':>7} {'command s':>9} "
          f"{'runs/s':>7} {'runs/s cold':>11} {'overhead/run':>12}")
    for r in (one, two):
        print(f"{r['workers']:>7} {r['mean_run_s']:>6.3f} {r['cluster_start_s']:>7.2f} "
              f"{r['run_phase_s']:>7.2f} {r['command_s']:>9.2f} {r['runs_per_s']:>7.3f} "
              f"{r['runs_per_s_with_start']:>11.3f} "
              f"{r['overhead_per_run_s'] * 1000:>7.1f} ms ({r['overhead_fraction']:+.1%})")
    worst = max(one["overhead_fraction"], two["overhead_fraction"])
    met_speedup, met_overhead = speedup >= SPEEDUP_TARGET, worst < OVERHEAD_TARGET
    print(f"2 workers / 1: {speedup:.2f}x in the run phase (target >= {SPEEDUP_TARGET}: "
          f"{'met' if met_speedup else 'NOT met'}), {speedup_cold:.2f}x with the cluster's start")
    print(f"scheduler overhead per run: {worst:+.1%} of a run at most (target < "
          f"{OVERHEAD_TARGET:.0%}: {'met' if met_overhead else 'NOT met'})")
    print(f"result volume: {two['result_file_bytes']:.0f} B per run file, "
          f"{two['table_row_bytes']:.0f} B per table row")
    if args.json:
        from cellsim import atomic

        atomic.write_text(args.json, json.dumps({"one": one, "two": two, "speedup": speedup,
                                                 "speedup_with_start": speedup_cold,
                                                 "load_average": load}, indent=2) + "\n")
    return 1 if args.check and not (met_speedup and met_overhead) else 0


if __name__ == "__main__":
    sys.exit(main())
