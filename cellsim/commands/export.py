"""`cellsim export CKPT --onnx FILE [--int8 FILE] [--npz FILE]`: the update rule as
a float ONNX graph, the genome as an int8 QDQ ONNX graph, and the float weights
for the simulator's float32 mode. Each output is checked and measured.
torch and onnx are imported only inside run()."""
from ..errors import ConfigError

# Modules of an extra that run() imports; `cellsim` checks them before running.
REQUIRES = ("torch", "onnx", "onnxruntime")


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="checkpoint.pt written by `cellsim train`")
    parser.add_argument("--onnx", help="float ONNX model of the update dx (dynamic batch and grid)")
    parser.add_argument("--int8", help="int8 QDQ ONNX model of the genome's update")
    parser.add_argument("--npz", help="float weights (w1, b1, w2, b2, angle, fire_rate, torus)")
    parser.add_argument("--genome", help="genome to export as --int8 (default: post-training "
                        "quantisation of the checkpoint, as `cellsim quantize` without QAT)")
    parser.add_argument("--seed", type=int, default=0, help="seed of calibration trajectories (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default 1)")
    parser.add_argument("--no-progress", action="store_true",
                        help="no stage lines (each says what runs next and when)")


def check_options(args) -> None:
    if not (args.onnx or args.int8 or args.npz):
        raise ConfigError("nothing to export: give --onnx, --int8 and/or --npz")
    if args.genome and not args.int8:
        raise ConfigError("--genome is only used with --int8")
    if args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    if not 0 <= args.seed < 2 ** 63:
        raise ConfigError(f"--seed must lie in [0, 2^63), got {args.seed}")
    outputs = [p for p in (args.onnx, args.int8, args.npz) if p]
    if len(set(outputs)) != len(outputs):
        raise ConfigError("--onnx, --int8 and --npz must name different files")


def stage_printer(enabled: bool):
    """stage(text): one line on stdout, with the seconds since the start, as each
    slow step begins (an export runs for tens of seconds). stdout, beside the
    results: stderr holds only the one line of an error."""
    import time

    started = time.perf_counter()

    def stage(text: str) -> None:
        if enabled:
            print(f"[{time.perf_counter() - started:6.1f} s] {text}...", flush=True)
    return stage


def run(args) -> int:
    check_options(args)
    stage = stage_printer(not args.no_progress)
    from ..atomic import check_writable_file

    for path in (args.onnx, args.int8, args.npz):
        if path:
            check_writable_file(path)
    stage("loading torch and onnx")
    import numpy as np
    import torch

    from training import export_onnx
    from training.checkpoint import load_model

    torch.set_num_threads(args.threads)
    stage(f"loading {args.checkpoint}")
    model, ckpt = load_model(args.checkpoint)
    genome = None
    if args.genome:
        from ..genome import load_genome_made_from

        genome = load_genome_made_from(args.genome, args.checkpoint)
    target = ckpt["target"]
    _, height, width = target.shape
    if args.npz:
        export_onnx.save_float_weights(model, args.npz)
        print(f"wrote {args.npz}: float weights for the simulator's float32 mode")
    if not (args.onnx or args.int8):
        return 0

    from training.quantize.calibrate import calibrate
    from training.quantize.pipeline import TRAINING_HORIZON, Plans, choose_percentiles
    from training.quantize.ptq import quantize_model

    horizon = int(ckpt["config"].get("max_steps", TRAINING_HORIZON))
    plans = Plans.for_horizon(horizon, seed=args.seed)
    stage(f"calibrating: float trajectories of up to {horizon} steps on the {height}x{width} grid")
    calibration = calibrate(model, height, width, plans.calibration)
    if args.onnx:
        stage("writing the float ONNX graph and checking it against the model")
        graph = export_onnx.float_update_model(model)
        export_onnx.save_onnx(graph, args.onnx)
        sess = export_onnx.session(args.onnx, args.threads)
        with torch.no_grad():
            expected = model.update(torch.as_tensor(calibration.grids)).numpy()
        error = float(np.abs(export_onnx.run_update(sess, calibration.grids) - expected).max())
        print(f"wrote {args.onnx}: float update, opset {export_onnx.OPSET}; max |dx - model.update| = "
              f"{error:.2e} on {len(calibration.grids)} trajectory grids")
    if args.int8:
        if genome is not None:
            params = genome.params
            source = f"genome {args.genome}"
        else:
            stage("post-training quantisation: choosing the clipping percentiles")
            percentiles, _ = choose_percentiles(model, calibration, target, plans.selection,
                                                log=lambda line: None)
            params = quantize_model(model, calibration.scales(*percentiles))
            source = "post-training quantisation"
        stage("writing the int8 QDQ ONNX graph")
        export_onnx.int8_update_model(params, bool(model.torus), calibration.grids, args.int8)
        print(f"wrote {args.int8}: int8 QDQ (S8S8, per-channel) of the {source}")
        stage("checking it against the integer reference on 16 int8 trajectories")
        grids = export_onnx.int8_trajectory_grids(params, height, width, model.fire_rate, bool(model.torus),
                                                  steps=2 * horizon, count=16, seed=args.seed)
        print(f"  deltas against the integer reference on {len(grids)} grids of the genome's own "
              "trajectories (all cells / cells with a live neighbour):")
        for high_precision, label in ((False, "onnxruntime default"),
                                      (True, "session.x64quantprecision=1")):
            sess = export_onnx.session(args.int8, args.threads, high_precision)
            a = export_onnx.int8_agreement(sess, params, grids, bool(model.torus))
            print(f"  {label:<28} within one step {100 * a['within_one_step']:.2f}% / "
                  f"{100 * a['live_within_one_step']:.2f}%, exact {100 * a['exact']:.2f}% / "
                  f"{100 * a['live_exact']:.2f}%, worst {a['max_steps']:.0f} steps")
    return 0
