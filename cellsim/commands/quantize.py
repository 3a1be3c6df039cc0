"""`cellsim quantize CKPT --out FILE`: turn a float checkpoint into an int8 genome
(calibrated PTQ, optionally quantisation-aware fine-tuning) and print the float,
PTQ and QAT losses against the target on the same seeded rollouts.
torch is imported only inside run()."""
import math
import os

from ..errors import ConfigError

# Modules of an extra that run() imports; `cellsim` checks them before running.
REQUIRES = ("torch",)


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", help="checkpoint.pt written by `cellsim train`")
    parser.add_argument("--out", required=True, help="genome file to write (e.g. lizard.genome)")
    parser.add_argument("--qat-iterations", type=int, default=0,
                        help="quantisation-aware fine-tuning iterations (default 0: PTQ only; "
                             "a few hundred close most of the gap)")
    parser.add_argument("--qat-lr", type=float, default=1e-4, help="QAT learning rate (default 1e-4)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of calibration, evaluation rollouts and QAT (default 0)")
    parser.add_argument("--name", help="name stored in the genome (default: the target's name)")
    parser.add_argument("--eval-batch", type=int, default=8,
                        help="seeded rollouts the losses are averaged over (default 8)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: fastest when the cores are shared)")
    parser.add_argument("--report", metavar="FILE",
                        help="also write the losses, scales and choices as JSON to FILE")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def check_options(args) -> None:
    if args.qat_iterations < 0:
        raise ConfigError(f"--qat-iterations must be >= 0, got {args.qat_iterations}")
    if not (math.isfinite(args.qat_lr) and args.qat_lr > 0):
        raise ConfigError(f"--qat-lr must be a positive number, got {args.qat_lr}")
    if args.eval_batch < 2:
        raise ConfigError(f"--eval-batch must be at least 2, got {args.eval_batch}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    if not 0 <= args.seed < 2 ** 63:
        raise ConfigError(f"--seed must lie in [0, 2^63), got {args.seed}")


def run(args) -> int:
    check_options(args)
    from ..atomic import check_writable_file

    check_writable_file(args.out)
    if args.report:
        check_writable_file(args.report)
    import time

    import torch

    from training.checkpoint import load_model
    from training.quantize.pipeline import Plans, TRAINING_HORIZON, loss_table, quantize_checkpoint
    from training.quantize.qat import QATConfig

    from ..genome import MAX_GENOME_BYTES, Genome, save_genome, sha256_file
    from ..target_images import EMOJI

    torch.set_num_threads(args.threads)
    model, ckpt = load_model(args.checkpoint)
    config = ckpt["config"]
    target_spec = str(config.get("target", ""))
    from ..genome import genome_name

    name = genome_name(args.name, target_spec)
    horizon = int(config.get("max_steps", TRAINING_HORIZON))
    plans = Plans.for_horizon(horizon, seed=args.seed, eval_batch=args.eval_batch)
    qat_config = QATConfig.from_checkpoint_config(config, args.qat_iterations, lr=args.qat_lr,
                                                  seed=args.seed)
    target = ckpt["target"]
    print(f"quantising {args.checkpoint}: {model.channels} channels, {model.w1.out_channels} hidden, "
          f"{target.shape[1]}x{target.shape[2]} grid, target {target_spec or '?'}")
    started = time.perf_counter()
    result = quantize_checkpoint(model, target, qat_config=qat_config, plans=plans,
                                 progress=not args.no_progress)
    s = result.scales
    print(f"scales: state from the p{result.percentiles[0]:g} of |x| "
          f"(alpha step {s.state[3]:.5f}, alive threshold q > {result.ptq.alive_threshold}), "
          f"hidden from the p{result.percentiles[1]:g} (step {s.hidden:.5f})")
    print(loss_table(result, args.qat_iterations))
    genome = Genome(params=result.params, name=name, target=target_spec if target_spec in EMOJI else "",
                    grid_size=int(target.shape[1]), fire_rate=model.fire_rate, angle=model.angle,
                    torus=bool(model.torus), source_sha256=sha256_file(args.checkpoint))
    from .. import atomic
    from ..target_images import recorded_target_path, recorded_target_png

    # The training target's pixels, beside the genome (its 10 KB have no room for
    # them): `cellsim simulate` scores any genome against what it was trained on.
    recorded = recorded_target_path(args.out)
    atomic.check_writable_file(recorded)
    size = save_genome(genome, args.out)
    atomic.write_bytes(recorded, recorded_target_png(target))
    note = "" if size <= MAX_GENOME_BYTES else f" (over the {MAX_GENOME_BYTES}-byte ROM budget)"
    if args.report:
        write_report(args.report, result, args, genome, size, time.perf_counter() - started)
    print(f"wrote {os.fspath(args.out)}: {result.chosen.upper()} genome, {size} bytes{note}, "
          f"{genome.parameter_count} parameters; its training target in {recorded}")
    return 0


def write_report(path, result, args, genome, size: int, seconds: float) -> None:
    """The numbers `cellsim quantize` prints, as JSON (scripts/package-pretrained reads it)."""
    import json

    from ..atomic import write_text

    report = {
        "checkpoint": os.fspath(args.checkpoint),
        "genome": os.fspath(args.out),
        "genome_bytes": size,
        "name": genome.name,
        "chosen": result.chosen,
        "qat_iterations": args.qat_iterations,
        "qat_lr": args.qat_lr,
        "seed": args.seed,
        "eval_batch": args.eval_batch,
        "percentiles": {"state": result.percentiles[0], "hidden": result.percentiles[1]},
        "alive_threshold": int(result.params.alive_threshold),
        "losses": result.losses,
        "wall_time_s": seconds,
    }
    write_text(path, json.dumps(report, indent=2) + "\n")
