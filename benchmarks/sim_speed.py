"""Cell updates per second of the exact asynchronous int8 engine (cellsim.sim,
Poisson clocks, every event in exact order, both cores) against ONNX Runtime
running synchronous batched steps of the same model, fp32 and int8 (QDQ S8S8),
on one 72x72 grid where every cell is alive; the same engine run in short
pieces (as the demo, `cellsim simulate` and a Python loop step it), with the
CLI's per-frame work; large grids (speed per core, peak memory, per-frame
work); numba's cold compile (a 12x12 probe of each clock, and the first short
`cellsim demo`, the target). Each figure is printed beside its target (issue
15) and whether it was met; --check exits 1 when one was not.

    python benchmarks/sim_speed.py [--genome G] [--size 72] [--units 40] [--repeats 5]
                                   [--sizes 72,144,...] [--skip-sizes] [--skip-compile]
                                   [--json runs/sim_speed.json] [--check]

"grown" runs start from random live states over the whole grid, so every
update runs the network (the dead-cell shortcut cannot flatter the number);
"growth" starts from the seed, where most updates take the shortcut, and is
reported separately. Every engine of the 72x72 comparison runs in a process
of its own (ONNX Runtime, once loaded, left the simulator 15-25% slower in
the same process), and the engines take turns: every engine runs once per
round, --repeats rounds, and the best and the median of its rounds are
reported, with the load average (the machine is shared). The large grids run
one after another, each in a fresh process that reports its own peak resident
memory (getrusage).
Ratios the targets ask of one process (short runs against whole runs, 1024x1024
against 72x72 per core) are taken between neighbours in time, episode by
episode, and judged by their median: on this VM rates wander by up to a third
within seconds, and the best of noisy ratios flatters."""
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
# Targets (issue 15), all ratios of rates measured side by side in one run:
TARGET_RATIO = 1.5          # exact async / ONNX Runtime fp32 (best batch, best rounds)
TARGET_INT8_RATIO = 1.0     # exact async / ONNX Runtime int8 QDQ (best batch, best rounds)
TARGET_SHORT = 0.8          # 0.5-unit runs / 40-unit runs
TARGET_FRAMES = 0.9         # demo, simulate and API stepping (2-unit frames) / 40-unit runs
TARGET_LARGE = 0.8          # 1024x1024 updates/s per core / 72x72's
TARGET_MEMORY = (1.5, 300)  # peak resident memory <= 1.5 x cell RAM + 300 MB
TARGET_FRAME_WORK = 0.1     # the CLI's per-frame work / a frame's run, at 1024x1024
TARGET_COMPILE_S = 10.0     # compilation of the first `cellsim demo` after the README's install
PIECES = (0.5, 1.0, 2.0, 20.0)  # run lengths of the short-window rows (time units)
HORIZON_PIECES = (0.5, 2.0)     # ... and of the stepping with a horizon (Grid.frames)
FRAME_UNITS = 2.0           # the demo's and simulate's default frame interval
SIZES = (72, 144, 288, 576, 1024, 2048)


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
    """(size, size, 16) int8 random states, every cell alive. Drawn 64 rows at a
    time (the same numbers as one draw): one int64 draw of a 2048x2048 grid is
    512 MB, which the large-grid rows would count as the engine's memory."""
    rng = np.random.default_rng(seed)
    states = np.empty((size, size, CHANNELS), np.int8)
    for top in range(0, size, 64):
        rows = min(64, size - top)
        states[top:top + rows] = rng.integers(-128, 128, (rows, size, CHANNELS))
    for top in range(0, size, 64):  # every cell alive
        rows = min(64, size - top)
        states[top:top + rows, :, 3] = rng.integers(20, 128, (rows, size))
    return states


def frame_work(kind: str, size: int):
    """What the CLI does at every frame (None: nothing, as a Python loop that
    only steps): "demo" the demo's picture and loss, "simulate" simulate's
    picture, loss, living and dead fractions, and the GIF frame's encoding,
    "render" the same without the GIF."""
    if kind in (None, "api"):
        return None
    from cellsim.sim import render

    target = render.target_for("lizard", size, size)
    scale = 3 if kind == "demo" else render.default_scale(size, size)

    def work(grid):
        if kind == "demo":
            dead = grid.dead()
            rgba = render.shown_rgba(grid, dead)
            render.frame_rgb(grid, scale, rgba, dead)
            if target is not None:  # (grids under 40 cells a side have none)
                render.loss(grid, target, rgba)
        else:
            seen = render.observe(grid, scale, target)
            if kind == "simulate":
                render.gif_bytes([seen["frame"]])
        return seen["frame"] if kind != "demo" else None
    return work


def async_runner(params, size, units, workers, clock="poisson", grown=True, min_seconds=0.5,
                 piece=None, frames=None):
    """A function that runs a grid from the same start for `units` time units,
    again and again for at least `min_seconds` after one untimed run, and
    returns its cell updates per second. Like onnx_runner's session, the grid
    (its compiled kernels, genome tables and buffers) is made once; each run
    restores its starting snapshot first, untimed. On this VM a single 9 ms
    run straight after an idle spell ran at half the speed of the runs after
    it, hence the warm-up and the half second. `piece`: the run goes in calls
    of this many units (grid.run(until=t + piece)), each followed by the
    per-frame work `frames` (frame_work)."""
    from cellsim.sim import Grid

    grid = Grid(params, size, clock=clock, seed=3, workers=workers)
    if grown:
        grid.set_states(live_states(size))
    else:
        grid.plant_seed()
    start = grid.snapshot()
    work = frame_work(frames, size)

    def one_run():
        if piece is None:
            grid.run(until=units)
            return
        steps = int(round(units / piece))
        for i in range(1, steps + 1):
            grid.run(until=i * piece)
            if work is not None:
                work(grid)

    def once():
        grid.restore(start)
        one_run()
        updates, seconds = 0, 0.0
        while seconds < min_seconds:
            grid.restore(start)
            began = time.perf_counter()
            one_run()
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


def onnx_int8_runner(params, size, batch, threads=2, min_seconds=0.5):
    """onnx_runner for ONNX Runtime's own int8 graph of the genome: the QDQ
    S8S8 update graph (perception + MLP on every cell) that `cellsim export
    --int8` and `cellsim bench speed` make (training/export_onnx.py),
    calibrated on the benchmark's grid."""
    from training import export_onnx

    grid = live_states(size).astype(np.float32) * np.asarray(params.state_scale, np.float32)
    x0 = np.ascontiguousarray(np.broadcast_to(grid.transpose(2, 0, 1)[None],
                                              (batch, CHANNELS, size, size)), np.float32)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "update_int8.onnx"
        export_onnx.int8_update_model(params, False, x0[:1], path)
        model = path.read_bytes()

    def once():
        session = export_onnx.session(model_proto(model), threads)
        for _ in range(3):
            export_onnx.run_update(session, x0)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            export_onnx.run_update(session, x0)
            steps += 1
        rate = steps * batch * size * size / (time.perf_counter() - start)
        del session
        return rate
    return once


def model_proto(data: bytes):
    import onnx

    return onnx.load_from_string(data)


def make_runner(spec):
    """The round function of one engine (a spec of interleaved_rounds), built
    and warmed up in this process."""
    if spec[0] == "onnx":
        _, size, batch, min_seconds = spec
        return onnx_runner(size, batch, min_seconds=min_seconds)
    if spec[0] == "onnx-int8":
        _, genome, size, batch, min_seconds = spec
        return onnx_int8_runner(genome_params(genome), size, batch, min_seconds=min_seconds)
    if spec[0] == "stepping":
        _, genome, size, units, workers, min_seconds = spec
        return stepping_runner(genome_params(genome), size, units, workers, min_seconds)
    _, genome, size, units, workers, clock, grown, min_seconds, *more = spec
    piece, frames = (more + [None, None])[:2]
    return async_runner(genome_params(genome), size, units, workers, clock=clock, grown=grown,
                        min_seconds=min_seconds, piece=piece, frames=frames)


def stepping_runner(params, size, units, workers, min_seconds=0.5):
    """A round function for the short runs' ratios to whole runs, all of one
    grid in this one process. The cases: `units`-unit runs (whole), a loop of
    runs in pieces of each of PIECES units (grid.run(until=...), no horizon),
    and stepping to a horizon in pieces of each of HORIZON_PIECES (Grid.frames,
    as the demo, simulate and a study step). Every run starts from the same
    restored snapshot (so a loop without a horizon plans its second window
    past the run's end).
    This VM's rates wander by up to a third within seconds, even in one
    process (docs/speed-2026-12-07.md, "Noise"), so a round is episodes of
    every case once, in an order rotated from episode to episode, and a case's
    figure is the median over episodes of its rate over the same episode's
    whole run: neighbours in time share the machine's mood. The round returns
    (median whole rate, that times each case's median ratio, ...)."""
    from cellsim.sim import Grid

    grid = Grid(params, size, seed=3, workers=workers)
    grid.set_states(live_states(size))
    start = grid.snapshot()
    steps_of = {piece: max(1, int(round(units / piece))) for piece in PIECES + HORIZON_PIECES}

    def rate(piece, horizon):
        grid.restore(start)
        began = time.perf_counter()
        if piece is None:
            grid.run(until=units)
        elif horizon:
            for _ in grid.frames(units, piece):
                pass
        else:
            for i in range(1, steps_of[piece] + 1):
                grid.run(until=i * piece)
        return grid.updates / (time.perf_counter() - began)

    cases = [(None, False)] + [(p, False) for p in PIECES] + [(p, True) for p in HORIZON_PIECES]
    for piece, horizon in cases:  # warm-up
        rate(piece, horizon)
    episodes = [0]

    def once():
        per_episode = []
        began = time.perf_counter()
        while time.perf_counter() - began < 4 * min_seconds or len(per_episode) < 3:
            first = episodes[0] % len(cases)
            episodes[0] += 1
            rates = {case: rate(*case) for case in cases[first:] + cases[:first]}
            per_episode.append([rates[case] for case in cases])
        per_episode = np.array(per_episode)
        whole = float(np.median(per_episode[:, 0]))
        ratios = np.median(per_episode[:, 1:] / per_episode[:, :1], axis=0)
        return (whole,) + tuple(float(r) * whole for r in ratios)
    return once


def genome_params(genome):
    """The genome file's integers, or the fixed random genome."""
    if genome:
        from cellsim.genome import load_genome
        return load_genome(genome).params
    return random_params()


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


def grid_probe(size: int, workers: int, min_seconds: float, genome=None) -> dict:
    """One grid size, in this (fresh) process: updates/s of continuing
    FRAME_UNITS runs on a grown grid (the CLI's stepping, without its frames),
    the CLI's per-frame work (simulate's picture, loss, living and dead
    fractions; the GIF encoding apart) against a frame's run, and the
    process's peak resident memory after the grid's first run (the engine's:
    the target) and after the frame work too, both before any snapshot."""
    import resource

    import numba

    from cellsim.sim import Grid

    params = genome_params(genome)
    warm = Grid(params, 12, seed=1, workers=workers)  # kernels loaded before timing
    warm.set_states(live_states(12))
    warm.run(until=2)
    began = time.perf_counter()
    grid = Grid(params, size, seed=3, workers=workers)
    grid.set_states(live_states(size))
    build_s = time.perf_counter() - began
    grid.run(until=FRAME_UNITS)
    engine_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from cellsim.sim import render

    work = frame_work("render", size)
    frame_s = gif_s = float("inf")
    for _ in range(3 if size <= 1024 else 1):
        began = time.perf_counter()
        frame = work(grid)
        frame_s = min(frame_s, time.perf_counter() - began)
        began = time.perf_counter()
        render.gif_bytes([frame, frame])  # (random live states: a noisy, slow picture)
        gif_s = min(gif_s, (time.perf_counter() - began) / 2)
    span = min(40.0, max(FRAME_UNITS, FRAME_UNITS * np.ceil(4e6 / size ** 2 / FRAME_UNITS)))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    snap = grid.snapshot() if size <= 576 else None  # big grids: one round, no copy
    updates = seconds = 0.0
    rounds = 0
    while rounds == 0 or (snap is not None and seconds < min_seconds):
        if snap is not None:
            grid.restore(snap)
        first, t0 = grid.updates, grid.time
        began = time.perf_counter()
        for i in range(1, int(span / FRAME_UNITS) + 1):
            grid.run(until=t0 + i * FRAME_UNITS)
        seconds += time.perf_counter() - began
        updates += grid.updates - first
        rounds += 1
    rate = updates / seconds
    frame_run_s = size * size * grid.clock.fire_rate * FRAME_UNITS / rate
    return {"size": size, "workers": workers, "threads": numba.get_num_threads(),
            "updates_per_s": rate, "updates_per_s_per_core": rate / workers,
            "span_units": span, "rounds": rounds, "build_s": build_s,
            "frame_work_s": frame_s, "gif_frame_s": gif_s, "frame_run_s": frame_run_s,
            "frame_work_fraction": frame_s / (frame_s + frame_run_s),
            "cell_ram_mb": size * size * 256 / 2 ** 20, "peak_rss_mb": engine_peak_mb,
            "peak_rss_with_frames_mb": peak_mb,
            "live_fraction_end": float((grid.float_states(4)[..., 3] > 0.1).mean())}


def grid_scaling(sizes, workers: int, min_seconds: float, genome=None) -> list:
    """grid_probe for each size, each in a fresh Python process, one after another."""
    root = str(Path(__file__).resolve().parent.parent)
    rows = []
    for size in sizes:
        code = (f"import sys, json; sys.path.insert(0, {root!r}); "
                f"from benchmarks.sim_speed import grid_probe; "
                f"print(json.dumps(grid_probe({size}, {workers}, {min_seconds}, {genome!r})))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": root})
        if done.returncode != 0:
            rows.append({"size": size, "error": done.stderr.strip().splitlines()[-1:]})
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


def paired_scaling(small: int, large: int, workers: int, episodes: int = 7,
                   genome=None) -> dict:
    """The large grid's rate over the small one's, both in this one process and
    stepped as the CLI steps (FRAME_UNITS runs, continuing): episodes of a
    large grid's step and about as long of the small grid's, each episode's
    ratio taken between neighbours in time (the VM's rates wander by up to a
    third within seconds; two processes, as grid_probe's rows, also land in
    different modes). Returns the rates, the per-episode ratios, their median
    (the figure the target is judged by) and the best rates' ratio."""
    from cellsim.sim import Grid

    params = genome_params(genome)
    grids = {}
    for size in (small, large):
        grids[size] = Grid(params, size, seed=3, workers=workers)
        grids[size].set_states(live_states(size))
        grids[size].run(until=FRAME_UNITS)  # (kernels loaded, buffers made)

    def step(grid, seconds):
        first, began = grid.updates, time.perf_counter()
        while True:
            grid.run(until=grid.time + FRAME_UNITS)
            took = time.perf_counter() - began
            if took >= seconds:
                return (grid.updates - first) / took

    rates = np.array([(step(grids[large], 0.0), step(grids[small], 0.3))
                      for _ in range(episodes)])
    ratios = rates[:, 0] / rates[:, 1]
    return {"small": small, "large": large, "workers": workers, "rates": rates.tolist(),
            "ratios": ratios.tolist(), "median": float(np.median(ratios)),
            "best": float(rates[:, 0].max() / rates[:, 1].max())}


def paired_scaling_process(small, large, workers, genome=None) -> dict:
    """paired_scaling in a fresh Python process (after the probes, alone)."""
    root = str(Path(__file__).resolve().parent.parent)
    code = (f"import sys, json; sys.path.insert(0, {root!r}); "
            f"from benchmarks.sim_speed import paired_scaling; "
            f"print(json.dumps(paired_scaling({small}, {large}, {workers}, genome={genome!r})))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": root}, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compile_seconds(clock: str) -> dict:
    """First use of the simulator in a fresh process, twice in one new numba
    cache directory: "cold" compiles every kernel the run needs, "warm" loads them."""
    root = str(Path(__file__).resolve().parent.parent)
    times = {}
    with tempfile.TemporaryDirectory() as cache:
        for state in ("cold", "warm"):
            code = COMPILE_PROBE.format(root=root, clock=clock)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env={**os.environ, "NUMBA_CACHE_DIR": cache},
                                 check=True).stdout.split()
            times[state] = {"import_s": float(out[0]), "first_run_s": float(out[1])}
    return times


def demo_seconds() -> dict:
    """Wall times of a short `cellsim demo` (its 72x72 grid, 4 units of growth and
    4 of regrowth after the damage) in fresh processes and new numba cache
    directories: "cold" on an empty cache, as on a fresh install that skipped
    `cellsim compile` (the demo then compiles its jobs in parallel processes
    itself); "warm" again with the cache it left; "ahead" in a second empty
    cache, `cellsim compile` first ("compile_all", its wall time, the README's
    install step) and then the demo. "compile_s": cold - warm, the first demo's
    compilation without the install step; "ahead_compile_s": ahead - warm, with
    it (the target row)."""
    root = str(Path(__file__).resolve().parent.parent)
    times = {}

    def timed(cache, *argv, out=None):
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cellsim", *argv]
                       + (["--grow", "4", "--regrow", "4", "--no-progress", "--out", out]
                          if out else []), cwd=root,
                       env={**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": root},
                       capture_output=True, check=True)
        return time.perf_counter() - began

    with tempfile.TemporaryDirectory() as cache:
        for state in ("cold", "warm"):
            times[state] = timed(cache, "demo", out=os.path.join(cache, state))
    with tempfile.TemporaryDirectory() as cache:
        times["compile_all"] = timed(cache, "compile")
        times["ahead"] = timed(cache, "demo", out=os.path.join(cache, "ahead"))
    times["compile_s"] = times["cold"] - times["warm"]
    times["ahead_compile_s"] = times["ahead"] - times["warm"]
    return times


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genome", help="genome file (default: a fixed random genome)")
    parser.add_argument("--size", type=int, default=72)
    parser.add_argument("--units", type=float, default=40.0, help="simulated time per run")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of every engine in turn")
    parser.add_argument("--min-seconds", type=float, default=0.5,
                        help="timed running per engine and round")
    parser.add_argument("--batches", default="1,4,16", help="ONNX Runtime batch sizes")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)),
                        help="grid sides of the large-grid rows")
    parser.add_argument("--skip-sizes", action="store_true", help="no large-grid rows")
    parser.add_argument("--skip-compile", action="store_true", help="no cold-cache compile probe")
    parser.add_argument("--json", default="runs/sim_speed.json", help="where to write the numbers")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a figure misses its target")
    args = parser.parse_args(argv)
    if args.size < 3 or args.units <= 0 or args.repeats < 1 or args.min_seconds <= 0:
        parser.error("--size needs at least 3, --units, --repeats and --min-seconds more than 0")
    try:
        batches = [int(b) for b in args.batches.split(",")]
        sizes = [int(b) for b in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--batches and --sizes take whole numbers separated by commas, not "
                     f"{args.batches!r} / {args.sizes!r}")
    if min(batches) < 1 or not all(3 <= side <= 4096 for side in sizes):
        parser.error("--batches must be at least 1, --sizes in [3, 4096]")
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
                                                  True, least)}
    pieces = {}  # (the first row's grid and workers, stepped in shorter runs)
    for piece in PIECES:
        pieces[piece] = f"  same as the first, runs of {piece:g} units"
        specs[pieces[piece]] = ("async", genome, size, units, cores, "poisson", True, least, piece)
    frames = {"api": pieces[FRAME_UNITS]}
    for kind in ("demo", "simulate"):
        frames[kind] = f"  same as the first, {FRAME_UNITS:g}-unit runs + {kind}'s frame work"
        specs[frames[kind]] = ("async", genome, size, units, cores, "poisson", True, least,
                               FRAME_UNITS, kind)
    specs["async int8, growth from the seed"] = ("async", genome, size, units, cores, "poisson",
                                                 False, least)
    for batch in batches:
        specs[f"onnxruntime fp32 sync, batch {batch}"] = ("onnx", size, batch, least)
    for batch in batches:
        specs[f"onnxruntime int8 QDQ, batch {batch}"] = ("onnx-int8", genome, size, batch, least)
    stepping_name = "stepping (one process)"
    specs[stepping_name] = ("stepping", genome, size, units, cores, least)
    rates = interleaved_rounds(specs, args.repeats)
    stepping = np.array(rates.pop(stepping_name))  # rounds x (whole, each piece)
    stepping_ratios = stepping[:, 1:] / stepping[:, :1]
    rows = {name: {"updates_per_s": max(r), "median_updates_per_s": float(np.median(r)),
                   "runs": r} for name, r in rates.items()}

    def best_of(prefix, key):
        return max(row[key] for name, row in rows.items() if name.startswith(prefix))

    exact = rows[exact_name]
    targets = []  # (what, figure, median figure or None, target text, met)

    def ratio_of(name, reference_best, reference_median, what, target=None):
        best = rows[name]["updates_per_s"] / reference_best
        median = rows[name]["median_updates_per_s"] / reference_median
        targets.append((what, best, median, None if target is None else f">= {target:g}",
                        target is None or best >= target))

    ratio_of(exact_name, best_of("onnxruntime fp32", "updates_per_s"),
             best_of("onnxruntime fp32", "median_updates_per_s"),
             "exact async / ONNX Runtime fp32 (best batch)", TARGET_RATIO)
    ratio_of(exact_name, best_of("onnxruntime int8", "updates_per_s"),
             best_of("onnxruntime int8", "median_updates_per_s"),
             "exact async / ONNX Runtime int8 QDQ (best batch)", TARGET_INT8_RATIO)
    for piece, name in pieces.items():  # (rates of separate processes: no target)
        ratio_of(name, exact["updates_per_s"], exact["median_updates_per_s"],
                 f"runs of {piece:g} units / of {units:g}, separate processes")
    # The targets: both rates from one process. A 0.5-unit loop without a
    # horizon is the per-window overhead target; 2-unit stepping, with a
    # horizon (the demo, simulate, a study, Grid.frames) or without (a plain
    # Python loop), the stepping target.
    stepped = [(piece, False) for piece in PIECES] + [(piece, True) for piece in HORIZON_PIECES]
    for i, (piece, horizon) in enumerate(stepped):
        target = {(min(PIECES), False): TARGET_SHORT, (FRAME_UNITS, False): TARGET_FRAMES,
                  (FRAME_UNITS, True): TARGET_FRAMES}.get((piece, horizon))
        what = (f"{piece:g}-unit steps to a horizon (demo, simulate)" if horizon
                else f"a loop of {piece:g}-unit runs (API, no horizon)" if piece == FRAME_UNITS
                else f"runs of {piece:g} units")
        best, median = float(stepping_ratios[:, i].max()), float(np.median(stepping_ratios[:, i]))
        targets.append((f"{what} / of {units:g}, one process", best, median,
                        None if target is None else f">= {target:g} (median)",
                        target is None or median >= target))
    # The frames themselves: a 216-288 pixel picture and the loss take about as
    # long as a 2-unit run of 72x72 cells, whatever the engine does; reported.
    for kind in ("demo", "simulate"):
        ratio_of(frames[kind], exact["updates_per_s"], exact["median_updates_per_s"],
                 f"{kind}: {FRAME_UNITS:g}-unit runs and its frames / {units:g}-unit runs")

    scaling = [] if args.skip_sizes else grid_scaling(sizes, cores, least, genome)
    by_size = {row["size"]: row for row in scaling if "error" not in row}
    paired = None
    if 72 in by_size and 1024 in by_size:
        per_core = by_size[1024]["updates_per_s_per_core"] / by_size[72]["updates_per_s_per_core"]
        targets.append(("1024x1024 / 72x72 per core, separate processes", per_core, None,
                        None, None))
        paired = paired_scaling_process(72, 1024, cores, genome)
        targets.append(("1024x1024 / 72x72 per core, one process, paired", paired["best"],
                        paired["median"], f">= {TARGET_LARGE:g} (median)",
                        paired["median"] >= TARGET_LARGE))
    for row in by_size.values():
        allowed = TARGET_MEMORY[0] * row["cell_ram_mb"] + TARGET_MEMORY[1]
        row["peak_rss_allowed_mb"] = allowed
        if row["size"] >= 1024:
            targets.append((f"{row['size']}x{row['size']} peak RSS (MB)", row["peak_rss_mb"],
                            None, f"<= {allowed:.0f}", row["peak_rss_mb"] <= allowed))
    if 1024 in by_size:
        fraction = by_size[1024]["frame_work_fraction"]
        targets.append(("1024x1024 CLI per-frame work / frame", fraction, None,
                        f"< {TARGET_FRAME_WORK:g}", fraction < TARGET_FRAME_WORK))
    compile_time = {} if args.skip_compile else {
        clock: compile_seconds(clock) for clock in ("poisson", "sync")}
    demo_time = None if args.skip_compile else demo_seconds()
    if compile_time:
        cold = compile_time["poisson"]["cold"]["first_run_s"]
        targets.append(("cold numba compile, asynchronous path probe (s)", cold, None, None, None))
        targets.append(("compilation of the first `cellsim demo`, cold cache (s)",
                        demo_time["compile_s"], None, None, None))
        targets.append(("`cellsim compile` on a cold cache, wall (s)", demo_time["compile_all"],
                        None, None, None))
        targets.append(("compilation of the first `cellsim demo` after it (s)",
                        demo_time["ahead_compile_s"], None, f"< {TARGET_COMPILE_S:g}",
                        demo_time["ahead_compile_s"] < TARGET_COMPILE_S))
    load_after = load_average()

    print(f"\n{args.size}x{args.size} grid, {args.units:g} time units per run, {args.repeats} "
          f"rounds; products: {simd.backend()}; numba threads {cores} "
          f"(the workers run on threads of their own, team.py)")
    print(f"{'engine':50s} {'M updates/s: best':>18s} {'median':>7s}")
    for name, row in rows.items():
        print(f"{name:50s} {row['updates_per_s'] / 1e6:18.2f} "
              f"{row['median_updates_per_s'] / 1e6:7.2f}")
    if scaling:
        print(f"\nlarge grids, {cores} workers, {FRAME_UNITS:g}-unit runs of a grown grid, one "
              "process each:")
        print(f"{'side':>6s} {'M upd/s':>8s} {'per core':>8s} {'cell RAM MB':>11s} "
              f"{'peak RSS MB':>11s} {'allowed':>8s} {'frame work s':>12s} {'frame run s':>11s} "
              f"{'GIF frame s':>11s} {'RSS w/ frames':>13s}")
        for row in scaling:
            if "error" in row:
                print(f"{row['size']:6d} failed: {row['error']}")
                continue
            print(f"{row['size']:6d} {row['updates_per_s'] / 1e6:8.2f} "
                  f"{row['updates_per_s_per_core'] / 1e6:8.2f} {row['cell_ram_mb']:11.1f} "
                  f"{row['peak_rss_mb']:11.0f} {row['peak_rss_allowed_mb']:8.0f} "
                  f"{row['frame_work_s']:12.3f} {row['frame_run_s']:11.3f} "
                  f"{row['gif_frame_s']:11.3f} {row['peak_rss_with_frames_mb']:13.0f}")
    for clock, t in compile_time.items():
        print(f"numba first use ({clock}, 12x12 probe): {t['cold']['first_run_s']:.1f} s compiling "
              f"with an empty cache, {t['warm']['first_run_s']:.1f} s loading the cache (import "
              f"{t['warm']['import_s']:.1f} s)")
    if demo_time:
        print(f"first `cellsim demo --grow 4 --regrow 4`: {demo_time['cold']:.1f} s with an empty "
              f"cache, {demo_time['warm']:.1f} s with the cache it left; `cellsim compile` "
              f"{demo_time['compile_all']:.1f} s on an empty cache, then the demo "
              f"{demo_time['ahead']:.1f} s")
    print("\ntargets (issue 15; best rounds, median rounds in brackets):")
    for what, figure, median, target, met in targets:
        shown = f"{figure:.2f}" + (f" ({median:.2f})" if median is not None else "")
        aim = f"target {target:>16s}: {verdict(met)}" if target else "(no target)"
        print(f"  {what:72s} {shown:>14s}  {aim}")
    print(f"load average before {load_before}, after {load_after} (shared machine)")

    from cellsim.atomic import write_text

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    checked = [t for t in targets if t[3] is not None]
    record = {"grid": args.size, "units": args.units, "repeats": args.repeats,
              "min_seconds": args.min_seconds,
              "genome": args.genome or "random (seed 0)", "products": simd.backend(),
              "numba_threads": cores, "rows": rows, "scaling": scaling,
              "stepping_one_process": {"pieces": list(PIECES),
                                       "horizon_pieces": list(HORIZON_PIECES),
                                       "rates_per_round": stepping.tolist()},
              "targets": [dict(what=w, figure=f, median=m, target=t, met=ok)
                          for w, f, m, t, ok in checked],
              "ratio_async_vs_onnx": checked[0][1], "target_ratio": TARGET_RATIO,
              "target_met": all(t[4] for t in checked),
              "large_vs_small_one_process": paired, "compile": compile_time, "demo_first_run": demo_time, "load_before": load_before,
              "load_after": load_after}
    write_text(out, json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 1 if args.check and not record["target_met"] else 0


if __name__ == "__main__":
    sys.exit(main())
