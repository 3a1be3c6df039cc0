"""`cellsim bench speed`: the same update rule on the same grid (72x72), timed in
every engine cellsim has (ONNX Runtime fp32/int8, PyTorch forward and training,
the numba grid simulator, the C firmware on the host), as cell updates and grid
steps per second, with a machine record. Writes DIR/speed.json, speed.md, speed.png.

    python -m benchmarks.speed --out runs/bench [--quick] [--checkpoint CKPT [--genome G]]

Every engine starts from the same state: a grid where every cell is alive (the
worst case for engines that skip dead cells). The int8 engines run the genome's
integers, the float engines the float model; without --checkpoint the model is
a fixed random one (seed 0) with a non-zero last layer, since speed does not
depend on training."""
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellsim.errors import ConfigError

from .cli import run_main

ENGINES = ("onnxruntime", "torch", "cellsim-sync", "cellsim-async", "c-host")


@dataclass(frozen=True)
class Plan:
    batches: tuple          # ONNX Runtime batch sizes
    repetitions: int        # timed repetitions per setting (after warm-up)
    warmup: int             # untimed calls first (numba compilation, allocator, caches)
    min_seconds: float      # each repetition repeats the call until it lasts this long
    train_batch: int        # PyTorch batch, as in training
    rollout: int            # PyTorch steps per timed rollout (forward and train)
    model_rollout: int      # the same for training/model.py's slow reference formulation
    sim_units: float        # simulated time units per simulator repetition
    c_steps: int            # grid steps per C firmware repetition


FULL = Plan(batches=(1, 2, 4, 8, 16, 32, 64), repetitions=7, warmup=2, min_seconds=1.0,
            train_batch=8, rollout=64, model_rollout=16, sim_units=16.0, c_steps=16)
QUICK = Plan(batches=(1, 8), repetitions=3, warmup=1, min_seconds=0.1,
             train_batch=8, rollout=4, model_rollout=2, sim_units=2.0, c_steps=2)


# ---- measurement -----------------------------------------------------------------

def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(call, plan: Plan, counter=None) -> tuple[list[float], int, list[float]]:
    """Seconds per call of each repetition, the calls per repetition, and (with
    `counter`, a function returning a running total of cell updates) the updates
    per call of each repetition.

    A repetition repeats `call` until it lasts plan.min_seconds (judged from one
    warm call), so short calls are not lost in timer resolution."""
    for _ in range(plan.warmup):
        call()
    once = _timed(call)
    calls = max(1, math.ceil(plan.min_seconds / max(once, 1e-9)))
    seconds, updates = [], []
    for _ in range(plan.repetitions):
        before = counter() if counter else 0
        seconds.append(_timed(lambda: [call() for _ in range(calls)]) / calls)
        if counter:
            updates.append((counter() - before) / calls)
    return seconds, calls, updates


def make_record(*, engine, variant, precision, device, threads, batch, grid, pass_, scope,
                seconds, calls, steps_per_call, updates_per_call, **extra) -> dict:
    """One row of speed.json. seconds: per call, one value per repetition;
    updates_per_call: a number or one value per repetition (engines that skip
    dead or unfired cells count what they ran)."""
    from .report import spread

    seconds = np.asarray(seconds, np.float64)
    updates = np.broadcast_to(np.asarray(updates_per_call, np.float64), seconds.shape)
    steps = spread(steps_per_call / seconds)
    cells = spread(updates / seconds)
    record = {
        "engine": engine, "variant": variant, "precision": precision, "device": device,
        "threads": int(threads), "batch": int(batch), "grid": [int(g) for g in grid], "pass": pass_,
        "cell_updates_per_s": cells["median"], "steps_per_s": steps["median"],
        "cell_updates_per_s_iqr": [cells["q1"], cells["q3"]],
        "cell_updates_per_s_range": [cells["min"], cells["max"]],
        "steps_per_s_iqr": [steps["q1"], steps["q3"]],
        "steps_per_s_range": [steps["min"], steps["max"]],
        "updates_per_step": float(updates.mean() / steps_per_call),
        "seconds_per_call": float(np.median(seconds)),
        "steps_per_call": steps_per_call,
        "calls_per_repetition": int(calls), "repetitions": int(len(seconds)),
        "scope": scope,
    }
    record.update(extra)
    return record


# ---- the model, its genome and the workload ---------------------------------------

def random_model(seed: int = 0):
    """The deterministic stand-in model: default initialisation, then a non-zero
    last layer (a fresh model's is zero: it would do nothing and quantise to
    nothing), small enough that an all-alive grid stays alive while timed."""
    import torch

    from training.model import CAModel

    torch.manual_seed(seed)
    model = CAModel()
    torch.nn.init.normal_(model.w2.weight, std=0.01)
    return model.eval()


def workload(batch: int, size: int) -> np.ndarray:
    """(batch, 16, size, size) float32, every cell alive: channels uniform in
    [0, 1), alpha in [0.5, 1.5) (benchmarks/train_speed.py's state)."""
    from benchmarks.train_speed import all_alive_state

    return all_alive_state(batch, size).numpy()


def workload_scales(model, states: np.ndarray):
    """PTQ scales of the stand-in model measured on the workload itself."""
    import torch

    from training.model import pad
    from training.quantize.fold import dense_perception_weight
    from training.quantize.ptq import HIDDEN_LEVELS, Scales

    x = torch.as_tensor(states)
    with torch.no_grad():
        perception = torch.nn.functional.conv2d(pad(x, model.torus),
                                                dense_perception_weight(model.channels, model.angle))
        hidden = torch.relu(model.w1(perception))
    state_max = np.abs(states).max(axis=(0, 2, 3))
    return Scales(state=np.where(state_max > 0, state_max, 1.0) / 127,
                  hidden=float(hidden.max()) / HIDDEN_LEVELS)


@dataclass
class Subject:
    """What every engine runs: the float model, its genome and the start state."""
    model: object
    genome: object            # cellsim.genome.Genome
    label: str
    float_state: np.ndarray   # (B, C, H, W) float32: the int8 state, dequantised
    int_state: np.ndarray     # (B, H, W, C) int8

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.float_state.shape[2:])


def make_subject(checkpoint, genome_path, size: int, batch: int) -> Subject:
    from cellsim.genome import Genome, load_genome_made_from, sha256_file

    if genome_path and not checkpoint:
        raise ConfigError("--genome needs the --checkpoint it was made from (the float rows run that model)")
    if checkpoint:
        from training.checkpoint import load_model

        model, ckpt = load_model(checkpoint)
        label = f"checkpoint {checkpoint}"
        source = sha256_file(checkpoint)
    else:
        model, ckpt = random_model(), None
        label = "random model (seed 0, last layer ~ N(0, 0.01))"
        source = bytes(32)
    if model.channels != 16:
        raise ConfigError(f"the benchmark needs a 16-channel model, the checkpoint has {model.channels}")
    states = workload(batch, size)
    if genome_path:
        genome = load_genome_made_from(genome_path, checkpoint, source)
        label += f", genome {genome_path}"
    else:
        from training.quantize.ptq import quantize_model

        if ckpt is not None:
            from training.quantize.calibrate import calibrate
            from training.quantize.pipeline import TRAINING_HORIZON, Plans

            horizon = int(ckpt["config"].get("max_steps", TRAINING_HORIZON))
            _, h, w = ckpt["target"].shape
            scales = calibrate(model, h, w, Plans.for_horizon(horizon).calibration).scales()
            label += ", genome by PTQ (max calibration)"
        else:
            scales = workload_scales(model, states)
            label += ", genome by PTQ on the workload"
        genome = Genome(params=quantize_model(model, scales), name="bench", target="",
                        grid_size=size, fire_rate=model.fire_rate, angle=model.angle,
                        torus=bool(model.torus), source_sha256=source)
    scale = genome.params.state_scale.astype(np.float32)[None, :, None, None]
    q = np.clip(np.round(states / scale), -127, 127).astype(np.int8)
    return Subject(model=model, genome=genome, label=label,
                   float_state=(q.astype(np.float32) * scale).astype(np.float32),
                   int_state=np.ascontiguousarray(q.transpose(0, 2, 3, 1)))


# ---- ONNX Runtime ------------------------------------------------------------------

def thread_counts() -> list[int]:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return sorted({1, cores})


def bench_onnxruntime(subject: Subject, plan: Plan, workdir: Path, log) -> list[dict]:
    import onnxruntime

    from training import export_onnx

    float_path, int8_path = workdir / "update_fp32.onnx", workdir / "update_int8.onnx"
    export_onnx.save_onnx(export_onnx.float_update_model(subject.model), float_path)
    export_onnx.int8_update_model(subject.genome.params, subject.genome.torus,
                                  subject.float_state[:4], int8_path)
    records = []
    for precision, path in (("fp32", float_path), ("int8", int8_path)):
        for threads in thread_counts():
            sess = export_onnx.session(path, threads)
            for batch in plan.batches:
                x = np.ascontiguousarray(subject.float_state[:batch])
                seconds, calls, _ = measure(lambda: export_onnx.run_update(sess, x), plan)
                records.append(make_record(
                    engine="onnxruntime", variant="QDQ S8S8" if precision == "int8" else "float graph",
                    precision=precision, device="cpu", threads=threads, batch=batch, grid=subject.grid,
                    pass_="forward", scope="update graph (perception + MLP) on every cell",
                    seconds=seconds, calls=calls, steps_per_call=batch,
                    updates_per_call=batch * math.prod(subject.grid),
                    onnxruntime_version=onnxruntime.__version__))
                log(records[-1])
    return records


# ---- PyTorch -------------------------------------------------------------------------

def torch_device():
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda"), f"cuda:{torch.cuda.get_device_name(0)}"
    return torch.device("cpu"), "cpu"


def bench_torch(subject: Subject, plan: Plan, log) -> list[dict]:
    """training/model.py (the plain formulation) and training/fast.py (what
    `cellsim train` runs), forward alone and forward + backward through a rollout."""
    import torch

    from benchmarks.train_speed import CountingOps
    from training import fast

    device, label = torch_device()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    fast.tune_cpu_allocator()
    model = subject.model.to(device)
    batch = plan.train_batch
    x0 = torch.as_tensor(subject.float_state[:batch]).to(device)
    x0_last = fast.to_channels_last(x0)
    target = torch.full((4,) + subject.grid, 0.5, device=device)
    generator = torch.Generator(device=device)
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    cells = batch * math.prod(subject.grid)
    counter = CountingOps(fast.ops_for(device))
    records = []

    def model_rollout(steps, train):
        generator.manual_seed(1)
        model.zero_grad()
        with torch.set_grad_enabled(train):
            x = x0
            for _ in range(steps):
                x = model(x, generator=generator)
            if train:
                (x[:, :4] - target).square().mean().backward()
        sync()

    def fast_rollout(steps, train):
        generator.manual_seed(1)
        model.zero_grad()
        with torch.set_grad_enabled(train):
            x = fast.run(model, x0_last, steps, generator, ops=counter)
            if train:
                (x[..., :4] - target.permute(1, 2, 0)).square().mean().backward()
        sync()

    variants = [("training/model.py", model_rollout, plan.model_rollout, None,
                 "CAModel.forward: grouped 3x3 perception conv, MLP on every cell, masks"),
                ("training/fast.py", fast_rollout, plan.rollout, lambda: counter.rows,
                 "training engine: MLP only on fired cells near life, hand-written backward")]
    for variant, rollout, steps, count, scope in variants:
        for pass_ in ("forward", "train"):
            seconds, calls, updates = measure(lambda: rollout(steps, pass_ == "train"), plan, count)
            records.append(make_record(
                engine="torch", variant=variant, precision="fp32", device=label, threads=threads,
                batch=batch, grid=subject.grid, pass_=pass_,
                scope=scope + ("; forward + backward through the rollout" if pass_ == "train" else ""),
                seconds=seconds, calls=calls, steps_per_call=batch * steps,
                updates_per_call=updates if count else cells * steps,
                rollout_steps=steps, torch_version=torch.__version__))
            log(records[-1])
    subject.model.cpu()
    return records


# ---- C firmware on the host -------------------------------------------------------



def build_c_driver(genome, workdir: Path) -> tuple[Path, list[str]]:
    """The firmware's grid driver with the genome's header, built with the strict
    host flags firmware_gen's tests use: (executable, flags)."""
    from firmware_gen import toolchain

    absent = toolchain.missing(*toolchain.HOST_TOOLS)
    if absent:
        raise toolchain.ToolchainError(f"missing {' '.join(absent)}")
    header, init = toolchain.write_genome_header(genome, workdir, "bench")
    return toolchain.build_grid_driver(workdir, header, init), list(toolchain.HOST_FLAGS)


def run_c_driver(exe: Path, int_grid: np.ndarray, masks: np.ndarray, torus: bool, reps: int,
                 workdir: Path) -> tuple[list[tuple[int, int]], np.ndarray]:
    from firmware_gen import toolchain

    return toolchain.run_grid_driver(exe, int_grid, masks, torus, reps, workdir)


def fire_masks(steps: int, grid, fire_rate: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((steps,) + tuple(grid)) < fire_rate


def bench_c_host(subject: Subject, plan: Plan, workdir: Path, log) -> list[dict]:
    cdir = workdir / "c-host"
    cdir.mkdir()
    exe, flags = build_c_driver(subject.genome, cdir)
    masks = fire_masks(plan.c_steps, subject.grid, subject.genome.fire_rate)
    # one untimed repetition per warm-up call; the driver reports each repetition
    timings, _ = run_c_driver(exe, subject.int_state[0], masks, subject.genome.torus,
                              plan.warmup + plan.repetitions, cdir)
    timings = timings[plan.warmup:]
    seconds = [ns / 1e9 for ns, _ in timings]
    updates = [u for _, u in timings]
    record = make_record(
        engine="c-host", variant="firmware_gen/c/nca_cell.c", precision="int8", device="cpu", threads=1,
        batch=1, grid=subject.grid, pass_="forward",
        scope="synchronous grid step: message exchange, nca_cell_update on fired cells, alive masks",
        seconds=seconds, calls=1, steps_per_call=len(masks), updates_per_call=updates,
        compiler="gcc " + " ".join(flags), fire_rate=float(subject.genome.fire_rate))
    log(record)
    return [record]


# ---- the grid simulator ------------------------------------------------------------

def float_params(model):
    """The float model as the simulator's FloatParams (interleaved perception
    order, as `cellsim export --npz` writes it)."""
    from cellsim.sim.floatmodel import FloatParams

    return FloatParams(w1=model.w1.weight.detach()[:, :, 0, 0].numpy(), b1=model.w1.bias.detach().numpy(),
                       w2=model.w2.weight.detach()[:, :, 0, 0].numpy(), b2=model.w2.bias.detach().numpy(),
                       angle=float(model.angle), fire_rate=float(model.fire_rate), torus=bool(model.torus))


def bench_simulator(engine: str, subject: Subject, plan: Plan, log) -> list[dict]:
    """cellsim.sim.Grid from the workload's state, int8 genome and float model:
    the synchronous clock ("cellsim-sync") or Poisson clocks with every event in
    exact order ("cellsim-async"). Each repetition builds a fresh grid (untimed)
    and runs plan.sim_units time units; one unit is one training step at fire
    rate 0.5."""
    import numba

    from cellsim.sim import Grid

    clock = "sync" if engine == "cellsim-sync" else "poisson"
    records = []
    rules = {"int8": (subject.genome, subject.int_state[0]),
             "fp32": (float_params(subject.model),
                      np.ascontiguousarray(subject.float_state[0].transpose(1, 2, 0)))}
    for precision, (rule, start) in rules.items():
        # Every core, whatever the load average says (Grid's default leaves
        # out the cores other processes keep busy, and the engines measured
        # just before leave the load average above 1).
        workers = numba.get_num_threads()

        def fresh():
            grid = Grid(rule, size=subject.grid, clock=clock, seed=1, workers=workers)
            grid.set_states(start)
            return grid

        for _ in range(plan.warmup):  # numba compilation (cached on disk after the first run)
            fresh().run(until=1.0)
        seconds, updates = [], []
        for _ in range(plan.repetitions):
            grid = fresh()
            seconds.append(_timed(lambda: grid.run(until=plan.sim_units)))
            updates.append(grid.updates)
        if precision == "int8":
            variant = "batched exact events" if clock == "poisson" else "batched grid steps"
        else:
            variant = "float model, events in order" if clock == "poisson" else "float model, grid steps"
        records.append(make_record(
            engine=engine, variant=variant, precision=precision, device="cpu",
            threads=grid.engine.workers, batch=1, grid=subject.grid, pass_="forward",
            scope=("Poisson clocks: every update and message in exact event order" if clock == "poisson"
                   else "synchronous clock: every cell reads the previous step's states"),
            seconds=seconds, calls=1, steps_per_call=plan.sim_units, updates_per_call=updates,
            clock=clock, live_fraction_end=float((grid.float_states()[..., 3] > 0.1).mean())))
        log(records[-1])
    return records


# ---- the command -------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--out", required=True, help="directory for speed.json, speed.md, speed.png")
    parser.add_argument("--quick", action="store_true",
                        help="two batch sizes, three repetitions, short rollouts: under a "
                             "minute; its simulator rows time 2-unit runs, where each run's "
                             "fixed cost weighs (the full bench: 16-unit runs)")
    parser.add_argument("--checkpoint", help="checkpoint.pt to time (default: a fixed random model)")
    parser.add_argument("--genome", help="genome made from --checkpoint for the int8 rows "
                        "(default: post-training quantisation of the model)")
    parser.add_argument("--grid", type=int, default=72, help="grid side (default 72, the paper's)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated subset of {','.join(ENGINES)} (default: all)")


def check_options(args) -> list[str]:
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        raise ConfigError(f"unknown engine(s) {', '.join(unknown) or '(none given)'}; "
                          f"choose from {', '.join(ENGINES)}")
    if not 8 <= args.grid <= 1024:
        raise ConfigError(f"--grid must lie in [8, 1024], got {args.grid}")
    for path in (args.checkpoint, args.genome):
        if path and not Path(path).is_file():
            raise ConfigError(f"{path} does not exist")
    return engines


def print_record(r: dict) -> None:
    from .report import si

    print(f"  {r['engine']:<13} {r['variant'][:22]:<22} {r['precision']:<4} {r['pass']:<7} "
          f"thr {r['threads']:<2} batch {r['batch']:<3} {si(r['cell_updates_per_s'])}cell updates/s "
          f"[{si(r['cell_updates_per_s_iqr'][0])}-{si(r['cell_updates_per_s_iqr'][1])}]  "
          f"{r['steps_per_s']:.4g} steps/s", flush=True)


def run(args) -> int:
    engines = check_options(args)
    from . import check_output_dir

    out = check_output_dir(args.out)
    plan = QUICK if args.quick else FULL
    from cellsim import machine
    from .report import pyplot

    record = machine.machine_record()
    print(f"machine: {record['cpu']['model']}, {record['cpu']['usable_cores']} cores, "
          f"load {record['load_average_start']}")
    batch = max(max(plan.batches), plan.train_batch)
    subject = make_subject(args.checkpoint, args.genome, args.grid, batch)
    print(f"model: {subject.label}; grid {args.grid}x{args.grid}, every cell alive at the start")
    # Each engine runs in a fresh process: thread pools outlive their runs
    # (OpenBLAS threads and ONNX Runtime's spin on after a call) and took a
    # core from the engines measured after them in one process (9.4 -> 5-6 M
    # updates/s for the asynchronous simulator).
    records = []
    spawn = multiprocessing.get_context("spawn")
    for engine in engines:
        print(f"{engine}:", flush=True)
        with ProcessPoolExecutor(1, mp_context=spawn) as child:
            records += child.submit(engine_records, engine, subject, plan).result()
    machine.finish_record(record)
    write_outputs(out, records, record, subject, plan, pyplot)
    return 0


def engine_records(engine: str, subject: Subject, plan: Plan) -> list[dict]:
    """The records of one engine (run() calls it in a process of its own)."""
    with tempfile.TemporaryDirectory(prefix="cellsim-bench-") as scratch:
        if engine == "onnxruntime":
            return bench_onnxruntime(subject, plan, Path(scratch), print_record)
        if engine == "torch":
            return bench_torch(subject, plan, print_record)
        if engine == "c-host":
            return bench_c_host(subject, plan, Path(scratch), print_record)
        return bench_simulator(engine, subject, plan, print_record)


def write_outputs(out: Path, records, machine_record, subject, plan, pyplot) -> None:
    import json

    from cellsim.atomic import prepare_output_dir, write_text

    prepare_output_dir(out)

    from .report import speed_chart, speed_markdown

    meta = {"model": subject.label, "plan": plan.__dict__, "workload": "every cell alive"}
    write_text(out / "machine.json", json.dumps({**machine_record, "benchmark": meta}, indent=2) + "\n")
    write_text(out / "speed.json", json.dumps(records, indent=2) + "\n")
    write_text(out / "speed.md", speed_markdown(records, machine_record, meta))
    plt = pyplot()
    if plt is not None:
        speed_chart(plt, records, out / "speed.png")
    print(f"wrote {out / 'speed.json'}, {out / 'speed.md'}"
          + (f", {out / 'speed.png'}" if plt is not None else "") + f", {out / 'machine.json'}")


def main(argv=None) -> int:
    return run_main("speed", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
