"""Cell updates per second of the exact asynchronous int8 engine (cellsim.sim,
Poisson clocks, every event in exact order, both cores) against ONNX Runtime
fp32 running synchronous batched steps of the same model (6.3-6.7 M/s on the
project's first machine), on one 72x72 grid where
every cell is alive.

    python benchmarks/sim_speed.py [--genome G] [--size 72] [--units 40] [--repeats 5]
                                   [--json runs/sim_speed.json] [--check]

"grown" runs start from random live states over the whole grid, so every
update runs the network (the dead-cell shortcut cannot flatter the number);
"growth" starts from the seed, where most updates take the shortcut, and is
reported separately. numba's compile time is measured in a fresh process with
an empty cache. Every engine runs in a process of its own (ONNX Runtime, once
loaded, left the simulator 15-25% slower in the same process on this machine),
and the engines take turns: every engine runs once per round, --repeats rounds,
and the best and the median of its rounds are reported, with the load average
(the machine is shared)."""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HIDDEN, CHANNELS = 128, 16
# The simulator's speed target (issue 4): the exact asynchronous int8 engine at
# least as fast as ONNX Runtime fp32, in cell updates per second.
TARGET_RATIO = 1.0


def load_average() -> list:
    return [round(x, 2) for x in os.getloadavg()]


def random_params(seed: int = 0):
    """A fixed random int8 genome with realistic requantisation (speed does not
    depend on training)."""
    from cellsim.intspec import IntParams, quantize_multiplier

    rng = np.random.default_rng(seed)
    pairs1 = [quantize_multiplier(2.0 ** rng.uniform(-12, -8)) for _ in range(HIDDEN)]
    pairs2 = [quantize_multiplier(2.0 ** rng.uniform(-16, -12)) for _ in range(CHANNELS)]
    return IntParams(w1=rng.integers(-127, 128, (HIDDEN, 3 * CHANNELS)),
                     b1=rng.integers(-20000, 20000, HIDDEN), m1=[m for m, _ in pairs1],
                     shift1=[s for _, s in pairs1], w2=rng.integers(-127, 128, (CHANNELS, HIDDEN)),
                     b2=rng.integers(-5000, 5000, CHANNELS), m2=[m for m, _ in pairs2],
                     shift2=[s for _, s in pairs2], hidden_zero_point=-128, alive_threshold=12,
                     state_scale=np.full(CHANNELS, 1 / 127), hidden_scale=0.05)


def live_states(size: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    states = rng.integers(-128, 128, (size, size, CHANNELS)).astype(np.int8)
    states[..., 3] = rng.integers(20, 128, (size, size))  # every cell alive
    return states


def async_runner(params, size, units, workers, clock="poisson", grown=True, min_seconds=0.5):
    """A function that runs a grid from the same start for `units` time units,
    again and again for at least `min_seconds` after one untimed run, and
    returns its cell updates per second. Like onnx_runner's session, the grid
    (its compiled kernels, genome tables and buffers) is made once; each run
    restores its starting snapshot first, untimed. On this VM a single 9 ms
    run straight after an idle spell ran at half the speed of the runs after
    it, hence the warm-up and the half second."""
    from cellsim.sim import Grid

    grid = Grid(params, size, clock=clock, seed=3, workers=workers)
    if grown:
        grid.set_states(live_states(size))
    else:
        grid.plant_seed()
    start = grid.snapshot()

    def once():
        grid.restore(start)
        grid.run(until=units)
        updates, seconds = 0, 0.0
        while seconds < min_seconds:
            grid.restore(start)
            began = time.perf_counter()
            grid.run(until=units)
            seconds += time.perf_counter() - began
            updates += grid.updates
        return updates / seconds
    return once


def onnx_model(w1, b1, w2, b2, angle=0.0):
    """The float step as ONNX: depthwise 3x3 perception (identity, Sobel x / 8,
    Sobel y / 8, interleaved), 1x1 conv 48->128, ReLU, 1x1 conv 128->16, the
    masked residual and the before/after alive masks (max-pool of alpha > 0.1)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from cellsim.intspec.alive import ALIVE_ALPHA

    from cellsim.intspec.perceive import float_filters

    filters = float_filters(angle)
    perception = np.tile(filters, (CHANNELS, 1, 1))[:, None].astype(np.float32)  # (48, 1, 3, 3)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (perception, "perception"), (w1[:, :, None, None], "w1"), (b1, "b1"),
        (w2[:, :, None, None], "w2"), (b2, "b2"), (np.array(ALIVE_ALPHA, np.float32), "threshold"),
        (np.array([0, 3, 0, 0], np.int64), "a0"),
        (np.array([1, 4, 1 << 30, 1 << 30], np.int64), "a1"))]
    nodes = [
        helper.make_node("Conv", ["x", "perception"], ["p"], group=CHANNELS, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p", "w1", "b1"], ["h0"]),
        helper.make_node("Relu", ["h0"], ["h"]),
        helper.make_node("Conv", ["h", "w2", "b2"], ["dx"]),
        helper.make_node("Mul", ["dx", "mask"], ["dxm"]),
        helper.make_node("Add", ["x", "dxm"], ["x1"]),
    ]
    for tag, src in (("pre", "x"), ("post", "x1")):
        nodes += [helper.make_node("Slice", [src, "a0", "a1"], [f"{tag}_a"]),
                  helper.make_node("MaxPool", [f"{tag}_a"], [f"{tag}_m"], kernel_shape=[3, 3],
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("Greater", [f"{tag}_m", "threshold"], [f"{tag}_alive"])]
    nodes += [helper.make_node("And", ["pre_alive", "post_alive"], ["alive"]),
              helper.make_node("Cast", ["alive"], ["alive_f"], to=TensorProto.FLOAT),
              helper.make_node("Mul", ["x1", "alive_f"], ["y"])]
    shape = ["batch", CHANNELS, "height", "width"]
    graph = helper.make_graph(
        nodes, "nca_step",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["batch", 1, "height", "width"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def onnx_runner(size, batch, threads=2, min_seconds=0.5):
    """A function that runs synchronous steps of a batch of grids for
    `min_seconds` and returns cell updates per second (every cell of every grid
    counts, fired or not, as the dense engine evaluates them all). Each call
    makes its own session and ends it: ONNX Runtime's threads keep spinning for
    a while after a run, and would take a core from the engine measured next."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((HIDDEN, 3 * CHANNELS)) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((CHANNELS, HIDDEN)) * 0.02).astype(np.float32)
    model = onnx_model(w1, np.zeros(HIDDEN, np.float32), w2,
                       np.zeros(CHANNELS, np.float32)).SerializeToString()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    x0 = rng.random((batch, CHANNELS, size, size)).astype(np.float32)
    mask = (rng.random((batch, 1, size, size)) < 0.5).astype(np.float32)

    def once():
        session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        x = x0
        for _ in range(3):
            x = session.run(None, {"x": x, "mask": mask})[0]
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            session.run(None, {"x": x, "mask": mask})
            steps += 1
        rate = steps * batch * size * size / (time.perf_counter() - start)
        del session
        return rate
    return once


def make_runner(spec):
    """The round function of one engine (a spec of interleaved_rounds), built
    and warmed up in this process."""
    if spec[0] == "onnx":
        _, size, batch, min_seconds = spec
        return onnx_runner(size, batch, min_seconds=min_seconds)
    _, genome, size, units, workers, clock, grown, min_seconds = spec
    if genome:
        from cellsim.genome import load_genome
        params = load_genome(genome).params
    else:
        params = random_params()
    return async_runner(params, size, units, workers, clock=clock, grown=grown,
                        min_seconds=min_seconds)


def serve_rounds(spec, connection) -> None:
    """An engine's process: build its runner, then run a round per request."""
    once = make_runner(spec)
    connection.send("ready")
    while connection.recv():
        connection.send(once())


def interleaved_rounds(specs: dict, repeats: int) -> dict:
    """{name: [updates/s of each round]}: one process per engine (spawned, so
    that no engine inherits another's threads or libraries), started one after
    another; then `repeats` rounds in which every engine runs once in turn, the
    others idle."""
    spawn = multiprocessing.get_context("spawn")
    workers = {}
    try:
        for name, spec in specs.items():
            ours, theirs = spawn.Pipe()
            process = spawn.Process(target=serve_rounds, args=(spec, theirs), daemon=True)
            process.start()
            ours.recv()  # built and warmed up before the next one starts
            workers[name] = (process, ours)
        rates = {name: [] for name in specs}
        for _ in range(repeats):
            for name, (_, connection) in workers.items():
                connection.send(True)
                rates[name].append(connection.recv())
        return rates
    finally:
        for process, connection in workers.values():
            try:
                connection.send(False)
            except OSError:
                pass
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()


COMPILE_PROBE = """
import sys, time
sys.path.insert(0, {root!r})
start = time.perf_counter()
import cellsim.sim
from benchmarks.sim_speed import random_params, live_states
imported = time.perf_counter()
grid = cellsim.sim.Grid(random_params(), 12, clock="{clock}", seed=1, workers=2)
grid.set_states(live_states(12))
grid.run(until=2)
print(imported - start, time.perf_counter() - imported)
"""


def compile_seconds(clock: str, cold: bool) -> dict:
    """First use of the simulator in a fresh process: with an empty numba cache
    (compilation) or with the cache this checkout already has (loading)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if cold:
            env["NUMBA_CACHE_DIR"] = cache
        code = COMPILE_PROBE.format(root=str(Path(__file__).resolve().parent.parent), clock=clock)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True).stdout.split()
    return {"import_s": float(out[0]), "first_run_s": float(out[1])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genome", help="genome file (default: a fixed random genome)")
    parser.add_argument("--size", type=int, default=72)
    parser.add_argument("--units", type=float, default=40.0, help="simulated time per run")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of every engine in turn")
    parser.add_argument("--min-seconds", type=float, default=0.5,
                        help="timed running per engine and round")
    parser.add_argument("--batches", default="1,4,16", help="ONNX Runtime batch sizes")
    parser.add_argument("--skip-compile", action="store_true", help="no cold-cache compile probe")
    parser.add_argument("--json", default="runs/sim_speed.json", help="where to write the numbers")
    parser.add_argument("--check", action="store_true",
                        help=f"exit 1 when the exact async engine is below {TARGET_RATIO:g}x "
                             "ONNX Runtime fp32 (best to best)")
    args = parser.parse_args(argv)
    if args.size < 3 or args.units <= 0 or args.repeats < 1 or args.min_seconds <= 0:
        parser.error("--size needs at least 3, --units, --repeats and --min-seconds more than 0")
    try:
        batches = [int(b) for b in args.batches.split(",")]
    except ValueError:
        parser.error(f"--batches takes whole numbers separated by commas, not {args.batches!r}")
    if min(batches) < 1:
        parser.error("--batches must be at least 1")
    if args.genome:
        from cellsim.errors import CellsimError
        from cellsim.genome import load_genome
        try:
            load_genome(args.genome)  # here, not in the engines' processes: a clear error
        except CellsimError as exc:
            parser.error(str(exc))

    import numba

    from cellsim.sim import simd

    load_before = load_average()
    cores = numba.get_num_threads()
    exact_name = "async int8, grown, %d workers" % cores
    genome, size, units, least = args.genome, args.size, args.units, args.min_seconds
    specs = {
        exact_name: ("async", genome, size, units, cores, "poisson", True, least),
        "async int8, grown, 1 worker": ("async", genome, size, units, 1, "poisson", True, least),
        "sync int8, grown, %d workers" % cores: ("async", genome, size, units, cores, "sync",
                                                  True, least),
        "async int8, growth from the seed": ("async", genome, size, units, cores, "poisson",
                                             False, least)}
    for batch in batches:
        specs[f"onnxruntime fp32 sync, batch {batch}"] = ("onnx", size, batch, least)
    rates = interleaved_rounds(specs, args.repeats)
    rows = {name: {"updates_per_s": max(r), "median_updates_per_s": float(np.median(r)),
                   "runs": r} for name, r in rates.items()}
    onnx = [name for name in rows if name.startswith("onnxruntime")]
    onnx_best = max(rows[name]["updates_per_s"] for name in onnx)
    onnx_median = max(rows[name]["median_updates_per_s"] for name in onnx)
    exact = rows[exact_name]
    compile_time = {} if args.skip_compile else {
        clock: {"cold": compile_seconds(clock, True), "warm": compile_seconds(clock, False)}
        for clock in ("poisson", "sync")}
    load_after = load_average()

    print(f"\n{args.size}x{args.size} grid, {args.units:g} time units per run, {args.repeats} "
          f"rounds; products: {simd.backend()}; numba threads {cores} "
          f"(the workers run on threads of their own, team.py)")
    print(f"{'engine':45s} {'M updates/s: best':>18s} {'median':>7s}")
    for name, row in rows.items():
        print(f"{name:45s} {row['updates_per_s'] / 1e6:18.2f} "
              f"{row['median_updates_per_s'] / 1e6:7.2f}")
    ratio = exact["updates_per_s"] / onnx_best
    met = ratio >= TARGET_RATIO
    print(f"{'ratio exact async / ONNX Runtime (best batch)':45s} {ratio:18.2f} "
          f"{exact['median_updates_per_s'] / onnx_median:7.2f}   target >= {TARGET_RATIO:g}: "
          f"{'met' if met else 'NOT met'}")
    for clock, t in compile_time.items():
        print(f"numba first use ({clock}): {t['cold']['first_run_s']:.1f} s compiling with an "
              f"empty cache, {t['warm']['first_run_s']:.1f} s loading the cache (import "
              f"{t['warm']['import_s']:.1f} s)")
    print(f"load average before {load_before}, after {load_after} (shared machine)")

    from cellsim.atomic import write_text

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"grid": args.size, "units": args.units, "repeats": args.repeats,
              "min_seconds": args.min_seconds,
              "genome": args.genome or "random (seed 0)", "products": simd.backend(),
              "numba_threads": cores, "rows": rows,
              "ratio_async_vs_onnx": ratio, "target_ratio": TARGET_RATIO, "target_met": met,
              "ratio_async_vs_onnx_median": exact["median_updates_per_s"] / onnx_median,
              "compile": compile_time, "load_before": load_before, "load_after": load_after}
    write_text(out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
