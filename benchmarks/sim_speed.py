"""Cell updates per second of the exact asynchronous int8 engine (cellsim.sim,
Poisson clocks, every event in exact order, both cores) against ONNX Runtime
fp32 running synchronous batched steps of the same model (SPEC.md section 4
measured 6.3-6.7 M/s on the project's first machine), on one 72x72 grid where
every cell is alive.

    python benchmarks/sim_speed.py [--genome G] [--size 72] [--units 40] [--repeats 5]
                                   [--json runs/sim_speed.json]

"grown" runs start from random live states over the whole grid, so every
update runs the network (the dead-cell shortcut cannot flatter the number);
"growth" starts from the seed, where most updates take the shortcut, and is
reported separately. numba's compile time is measured in a fresh process with
an empty cache. The machine is shared: the load average is printed with the
numbers; every engine runs once per round, --repeats rounds, and the best and
the median of its rounds are reported."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HIDDEN, CHANNELS = 128, 16


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


def async_runner(params, size, units, workers, clock="poisson", grown=True):
    """A function that runs one fresh grid for `units` time units and returns
    its cell updates per second (the kernels compiled or loaded beforehand)."""
    from cellsim.sim import Grid

    def make():
        grid = Grid(params, size, clock=clock, seed=3, workers=workers)
        if grown:
            grid.set_states(live_states(size))
        else:
            grid.plant_seed()
        return grid

    make().run(until=1)  # compile or load the kernels
    make().run(until=units)

    def once():
        grid = make()
        start = time.perf_counter()
        grid.run(until=grid.time + units)
        return grid.updates / (time.perf_counter() - start)
    return once


def onnx_model(w1, b1, w2, b2, angle=0.0):
    """The float step as ONNX: depthwise 3x3 perception (identity, Sobel x / 8,
    Sobel y / 8, interleaved), 1x1 conv 48->128, ReLU, 1x1 conv 128->16, the
    masked residual and the before/after alive masks (max-pool of alpha > 0.1)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c, s = np.cos(angle), np.sin(angle)
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32) / 8
    identity = np.zeros((3, 3), np.float32)
    identity[1, 1] = 1
    filters = np.stack([identity, c * sobel - s * sobel.T, s * sobel + c * sobel.T])
    perception = np.tile(filters, (CHANNELS, 1, 1))[:, None].astype(np.float32)  # (48, 1, 3, 3)
    inits = [numpy_helper.from_array(a, n) for a, n in (
        (perception, "perception"), (w1[:, :, None, None], "w1"), (b1, "b1"),
        (w2[:, :, None, None], "w2"), (b2, "b2"), (np.array(0.1, np.float32), "threshold"),
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
    parser.add_argument("--batches", default="1,4,16", help="ONNX Runtime batch sizes")
    parser.add_argument("--skip-compile", action="store_true", help="no cold-cache compile probe")
    parser.add_argument("--json", default="runs/sim_speed.json", help="where to write the numbers")
    args = parser.parse_args(argv)

    import numba

    from cellsim.sim import simd

    if args.genome:
        from cellsim.genome import load_genome
        params = load_genome(args.genome).params
    else:
        params = random_params()
    load_before = load_average()
    cores = numba.get_num_threads()
    exact_name = "async int8, grown, %d workers" % cores
    runners = {
        exact_name: async_runner(params, args.size, args.units, cores),
        "async int8, grown, 1 worker": async_runner(params, args.size, args.units, 1),
        "sync int8, grown, %d workers" % cores: async_runner(params, args.size, args.units, cores,
                                                              clock="sync"),
        "async int8, growth from the seed": async_runner(params, args.size, args.units, cores,
                                                         grown=False)}
    for batch in [int(b) for b in args.batches.split(",")]:
        runners[f"onnxruntime fp32 sync, batch {batch}"] = onnx_runner(args.size, batch)
    # Rounds of every engine in turn: a neighbour's load on a shared machine
    # then falls on all rows alike, and the medians say how much it moved them.
    rates = {name: [] for name in runners}
    for _ in range(args.repeats):
        for name, once in runners.items():
            rates[name].append(once())
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
    print(f"{'ratio exact async / ONNX Runtime (best batch)':45s} "
          f"{exact['updates_per_s'] / onnx_best:18.2f} "
          f"{exact['median_updates_per_s'] / onnx_median:7.2f}")
    for clock, t in compile_time.items():
        print(f"numba first use ({clock}): {t['cold']['first_run_s']:.1f} s compiling with an "
              f"empty cache, {t['warm']['first_run_s']:.1f} s loading the cache (import "
              f"{t['warm']['import_s']:.1f} s)")
    print(f"load average before {load_before}, after {load_after} (shared machine)")

    from cellsim.atomic import write_text

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {"grid": args.size, "units": args.units, "repeats": args.repeats,
              "genome": args.genome or "random (seed 0)", "products": simd.backend(),
              "numba_threads": cores, "rows": rows,
              "ratio_async_vs_onnx": exact["updates_per_s"] / onnx_best,
              "ratio_async_vs_onnx_median": exact["median_updates_per_s"] / onnx_median,
              "compile": compile_time, "load_before": load_before, "load_after": load_after}
    write_text(out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
