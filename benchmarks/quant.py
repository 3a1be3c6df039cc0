"""`cellsim bench quant`: a trained float model against its int8 genomes (PTQ and
QAT) on the same seeded rollouts: loss over a long run from the seed, regrowth
after three kinds of damage, synchronous against asynchronous clocks on the grid
simulator, and the per-channel divergence of the int8 trajectories from float.

    cellsim bench quant --checkpoint CKPT [--genome-ptq G] [--genome-qat G] --out DIR [--quick]

Writes DIR/quant.json, quant.md, quant_loss.png, quant_divergence.png,
quant_growth.png and quant_regrowth.png (filmstrips), and the genomes it had to
make (ptq.genome, qat.genome). All rollouts of one section share their fire
masks and damage, so float and int8 differ only by their arithmetic."""
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cellsim.errors import ConfigError

from .cli import run_main

DAMAGE_KINDS = ("half", "circle", "cell-deaths")
RECOVERED_SHARE = 0.9   # regrown once 90% of the loss the damage added is gone
SURVIVAL_FACTOR = 2.0   # survives: final loss <= this x the float model's grown loss


@dataclass(frozen=True)
class QuantPlan:
    batch: int              # rollouts per model (same seeds for all)
    long_factor: int        # the long run lasts this many training horizons
    damage_factor: int      # damage after this many horizons of growth
    regrow_factor: int      # then this many horizons to regrow
    death_share: float      # cell deaths: each cell loses its state with this probability
    sim_factor: int         # simulator runs last this many horizons
    sim_seeds: int          # simulator runs per genome and clock
    qat_iterations: int     # when the QAT genome has to be made here
    frames: int             # filmstrip columns


FULL = QuantPlan(batch=8, long_factor=10, damage_factor=2, regrow_factor=3, death_share=0.3,
                 sim_factor=10, sim_seeds=2, qat_iterations=100, frames=8)
QUICK = QuantPlan(batch=2, long_factor=10, damage_factor=2, regrow_factor=2, death_share=0.3,
                  sim_factor=3, sim_seeds=1, qat_iterations=2, frames=6)


# ---- the three models as steppers on (B, C, H, W) tensors -----------------------------

class FloatModel:
    name, precision = "float", "fp32"

    def __init__(self, model):
        from training.quantize.fold import dense_perception_weight

        self.model = model
        self.weight = dense_perception_weight(model.channels, model.angle)

    def seed(self, batch, h, w):
        from training.model import make_seed

        return make_seed(batch, h, w, self.model.channels)

    def step(self, x, mask):
        from training.quantize.calibrate import float_step

        return float_step(self.model, x, mask, self.weight)

    def real(self, x):
        return x


class IntModel:
    precision = "int8"

    def __init__(self, name, params, torus):
        import torch

        from training.quantize import intsim

        self.name, self.params, self.torus = name, params, torus
        self.torch_params = intsim.TorchIntParams.from_int_params(params)
        self.scale = torch.as_tensor(params.state_scale[None, :, None, None], dtype=torch.float32)

    def seed(self, batch, h, w):
        from training.quantize import intsim

        return intsim.seed_states(self.params, batch, h, w, self.torch_params.dtype)

    def step(self, x, mask):
        from training.quantize import intsim

        return intsim.step(self.torch_params, x, mask, self.torus)

    def real(self, x):
        return x.float() * self.scale


def loss_of(real_states, target) -> float:
    """The training loss: per sample the mean squared RGBA error, batch mean."""
    from training.loss import per_sample_loss

    return float(per_sample_loss(real_states[:, :4], target).mean())


def regrowth_time(times, damaged, control):
    """First time at which the damaged run's loss is back within
    (1 - RECOVERED_SHARE) of the jump the damage caused, above the undamaged
    control run (same start, same fire masks or clocks) at that time. 0 if the
    damage added no loss; None if it does not happen within the run."""
    jump = damaged[0] - control[0]
    if jump <= 0:
        return 0
    for t, hit, ref in zip(times, damaged, control):
        if hit <= ref + (1 - RECOVERED_SHARE) * jump:
            return t
    return None


# ---- damage masks (the same for every model) ------------------------------------------

def damage_masks(kind: str, batch: int, h: int, w: int, generator, death_share: float):
    """(B, 1, H, W) float keep-masks: 0 where the damage erases the state."""
    import torch

    from training.quantize.calibrate import circle_damage, half_cut

    ones = torch.ones(batch, 1, h, w)
    if kind == "half":
        return half_cut(ones, generator)
    if kind == "circle":
        return circle_damage(ones, generator)
    return (torch.rand(batch, 1, h, w, generator=generator) >= death_share).float()


# ---- the sections ----------------------------------------------------------------------

def rollout_steps(models, xs, target, steps, every, keep, plan, generator, fire_rate, times, losses, frames):
    """Advance every model's states in `xs` (replaced in place) by `steps` steps,
    all models with the same fire mask each step. Every `every` steps and at the
    last, appends the step to `times` and each model's loss to `losses`; at the
    steps in `keep`, stores each model's first rollout in `frames`. Yields
    (step, whether it was sampled) after each step for the caller's own records;
    the caller holds torch.no_grad()."""
    from training.quantize.calibrate import fire_mask

    _, h, w = target.shape
    for t in range(1, steps + 1):
        mask = fire_mask(generator, plan.batch, h, w, fire_rate)
        for m in models:
            xs[m.name] = m.step(xs[m.name], mask)
        sampled = t % every == 0 or t == steps
        if sampled:
            times.append(t)
            for m in models:
                losses[m.name].append(loss_of(m.real(xs[m.name]), target))
        if t in keep:
            for m in models:
                frames[m.name][t] = m.real(xs[m.name])[0].numpy()
        yield t, sampled


def long_run(models, target, steps, horizon, every, plan, seed, fire_rate):
    """Every model from the seed for `steps` steps with the same fire masks.
    Returns losses, per-channel divergence from float, filmstrip frames, and
    the states at the damage step (plan.damage_factor training horizons)."""
    import torch

    _, h, w = target.shape
    damage_step = min(plan.damage_factor * horizon, steps)
    wanted = [0, horizon // 4, horizon // 2, horizon, 2 * horizon, 5 * horizon, steps // 2, steps]
    keep = sorted({t for t in wanted if 0 <= t <= steps})
    generator = torch.Generator().manual_seed(seed)
    xs = {m.name: m.seed(plan.batch, h, w) for m in models}
    recorded = [0]
    losses = {m.name: [loss_of(m.real(xs[m.name]), target)] for m in models}
    divergence = {m.name: {"rms": [], "relative": []} for m in models if m.name != "float"}
    frames = {m.name: {0: m.real(xs[m.name])[0].numpy()} for m in models}
    at_damage = {}

    def diverge(t):
        f = xs["float"]
        for m in models:
            if m.name == "float":
                continue
            diff = (m.real(xs[m.name]) - f).square().mean(dim=(0, 2, 3)).sqrt()
            norm = f.square().mean(dim=(0, 2, 3)).sqrt()
            divergence[m.name]["rms"].append(diff.tolist())
            divergence[m.name]["relative"].append(
                torch.where(norm > 0, diff / norm.clamp_min(1e-12), torch.zeros_like(diff)).tolist())

    diverge(0)
    with torch.no_grad():
        for t, sampled in rollout_steps(models, xs, target, steps, every, keep, plan, generator, fire_rate,
                                        recorded, losses, frames):
            if sampled:
                diverge(t)
            if t == damage_step:
                at_damage = {name: x.clone() for name, x in xs.items()}
    return {"steps": recorded, "loss": losses, "divergence": divergence, "frames": frames,
            "damage_step": damage_step, "at_damage": at_damage}


def regrowth(models, target, start_states, steps, every, plan, seed, fire_rate):
    """Each damage kind applied to the grown states (the same masks for every
    model), then `steps` steps; an undamaged control run from the same states.
    Every run (control and damage kinds) sees the same fire masks."""
    import torch

    _, h, w = target.shape
    film_at = set(np.linspace(0, steps, plan.frames - 1).round().astype(int).tolist())

    def rollout(keep):
        generator = torch.Generator().manual_seed(seed + 100)
        xs = {m.name: start_states[m.name] * keep.to(start_states[m.name].dtype) for m in models}
        times = [0]
        curves = {m.name: [loss_of(m.real(xs[m.name]), target)] for m in models}
        film = {m.name: {-1: m.real(start_states[m.name])[0].numpy(), 0: m.real(xs[m.name])[0].numpy()}
                for m in models}
        with torch.no_grad():
            for _ in rollout_steps(models, xs, target, steps, every, film_at, plan, generator, fire_rate,
                                   times, curves, film):
                pass
        return times, curves, film

    times, control, _ = rollout(torch.ones(plan.batch, 1, h, w))
    results, frames = {}, {}
    for k, kind in enumerate(DAMAGE_KINDS):
        damage_generator = torch.Generator().manual_seed(seed + 200 + k)
        _, curves, frames[kind] = rollout(damage_masks(kind, plan.batch, h, w, damage_generator,
                                                       plan.death_share))
        results[kind] = {m.name: {
            "loss_before": control[m.name][0], "loss_damaged": curves[m.name][0],
            "loss_final": curves[m.name][-1], "loss_final_undamaged": control[m.name][-1],
            "regrowth_steps": regrowth_time(times, curves[m.name], control[m.name]),
            "curve_steps": times, "curve_loss": curves[m.name],
            "curve_loss_undamaged": control[m.name]} for m in models}
    return results, frames


def sim_curve(rule, size, clock, seed, times, target_hw, damage=None):
    """Loss of the real-valued states of one simulated grid at `times`. With
    `damage` (an erase Fault at one of `times`), also the loss just after it:
    run(until=t) stops before the events at t, so the states read at the
    damage time are the undamaged ones."""
    from cellsim.sim import Grid

    grid = Grid(rule, size=size, clock=clock, seed=seed)
    grid.plant_seed()
    if damage is not None:
        grid.add_faults([damage])
        kept = ~damage.shape.mask(*size)[..., None]
    curve, damaged = [], None
    for t in times:
        if t > 0:
            grid.run(until=t)
        states = grid.float_states()
        curve.append(float(((states[..., :4] - target_hw) ** 2).mean()))
        if damage is not None and t == damage.start:
            damaged = float(((states[..., :4] * kept - target_hw) ** 2).mean())
    return curve, damaged, grid.updates


def clocks(rules, target, units, damage_at, every, plan, seed):
    """The float model and each int8 genome on cellsim.sim's grid with the
    synchronous and the Poisson (asynchronous) clock: grown from the seed, the
    right half erased at `damage_at`, run to `units` time units (one unit = one
    training step at fire rate 0.5), next to an undamaged control run with the
    same seed (a cell's clock does not depend on its state, so both fire at the
    same times). Mean over plan.sim_seeds grids."""
    from cellsim.sim import Fault, Shape

    _, h, w = target.shape
    target_hw = np.asarray(target).transpose(1, 2, 0)
    damage = Fault("erase", Shape("half", ("right",)), start=float(damage_at))
    times = sorted(set(np.arange(0, units + 1e-9, every).tolist()) | {float(damage_at), float(units)})
    at = times.index(float(damage_at))
    out = {}
    for name, rule in rules.items():
        out[name] = {}
        for clock in ("sync", "poisson"):
            hit, calm, jumps, updates = [], [], [], 0
            for s in range(plan.sim_seeds):
                curve, damaged, n = sim_curve(rule, (h, w), clock, seed + 1 + s, times, target_hw, damage)
                hit.append(curve)
                jumps.append(damaged)
                updates += n
                calm.append(sim_curve(rule, (h, w), clock, seed + 1 + s, times, target_hw)[0])
            hit, calm, damaged = np.mean(hit, axis=0), np.mean(calm, axis=0), float(np.mean(jumps))
            after = range(at + 1, len(times))
            out[name][clock] = {
                "time": [float(t) for t in times], "loss": hit.tolist(), "loss_undamaged": calm.tolist(),
                "loss_before_damage": float(calm[at]), "loss_damaged": damaged,
                "regrowth_time": regrowth_time([0.0] + [times[i] - damage_at for i in after],
                                               [damaged] + [float(hit[i]) for i in after],
                                               [float(calm[at])] + [float(calm[i]) for i in after]),
                "loss_final": float(hit[-1]), "loss_final_undamaged": float(calm[-1]),
                "updates": int(updates), "grids": plan.sim_seeds, "damage_time": float(damage_at)}
    return out


# ---- genomes ---------------------------------------------------------------------------

def make_genomes(args, model, ckpt, plan, horizon, source, log):
    """{"ptq": Genome, "qat": Genome (unless --qat-iterations 0)} and how each was got."""
    from cellsim.genome import Genome, genome_name, load_genome_made_from
    from cellsim.target_images import EMOJI

    genomes, origin = {}, {}
    if args.genome_ptq:
        genomes["ptq"] = load_genome_made_from(args.genome_ptq, args.checkpoint, source)
        origin["ptq"] = f"given: {args.genome_ptq}"
    if args.genome_qat:
        genomes["qat"] = load_genome_made_from(args.genome_qat, args.checkpoint, source)
        origin["qat"] = f"given: {args.genome_qat}"
    iterations = plan.qat_iterations if args.qat_iterations is None else args.qat_iterations
    want_qat = "qat" not in genomes and iterations > 0
    if "ptq" in genomes and not want_qat:
        return genomes, origin, {}
    from training.quantize.pipeline import Plans, quantize_checkpoint
    from training.quantize.qat import QATConfig

    config = ckpt["config"]
    qat_config = QATConfig.from_checkpoint_config(config, iterations, seed=args.seed) if want_qat else None
    log(f"making genomes with the quantiser (PTQ{f', QAT {iterations} iterations' if want_qat else ''})")
    result = quantize_checkpoint(model, ckpt["target"], qat_config=qat_config,
                                 plans=Plans.for_horizon(horizon, seed=args.seed, eval_batch=max(2, plan.batch)),
                                 progress=False, log=lambda line: log("  " + line))
    target_spec = str(config.get("target", ""))
    made = {}
    for kind, params in (("ptq", result.ptq), ("qat", result.qat)):
        if kind in genomes or params is None:
            continue
        genomes[kind] = Genome(params=params, name=genome_name(None, target_spec),
                               target=target_spec if target_spec in EMOJI else "",
                               grid_size=int(ckpt["target"].shape[1]), fire_rate=model.fire_rate,
                               angle=model.angle, torus=bool(model.torus), source_sha256=source)
        origin[kind] = (f"made here: PTQ, clipping percentiles state p{result.percentiles[0]:g}, hidden "
                        f"p{result.percentiles[1]:g}" + (f"; QAT {iterations} iterations" if kind == "qat" else ""))
        made[kind] = genomes[kind]
    return genomes, origin, made


# ---- the command -------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint.pt of a trained model")
    parser.add_argument("--genome-ptq", help="its post-training-quantised genome (default: made here)")
    parser.add_argument("--genome-qat", help="its quantisation-aware genome (default: made here)")
    parser.add_argument("--out", required=True, help="directory for quant.json, quant.md and the plots")
    parser.add_argument("--quick", action="store_true",
                        help="2 rollouts, short simulator runs, 2 QAT iterations: for tests and CI")
    parser.add_argument("--steps", type=int,
                        help="length of the long run (default: 10x the training horizon)")
    parser.add_argument("--qat-iterations", type=int,
                        help=f"QAT iterations when the QAT genome is made here (default {FULL.qat_iterations}, "
                             f"--quick {QUICK.qat_iterations}; 0: no QAT genome)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every rollout (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-sim", action="store_true",
                        help="leave out the simulator (sync against async clocks) section")


def check_options(args) -> None:
    for flag, path in (("--checkpoint", args.checkpoint), ("--genome-ptq", args.genome_ptq),
                       ("--genome-qat", args.genome_qat)):
        if path and not Path(path).is_file():
            raise ConfigError(f"{flag} {path} does not exist")
    if args.steps is not None and args.steps < 2:
        raise ConfigError(f"--steps must be at least 2, got {args.steps}")
    if args.qat_iterations is not None and args.qat_iterations < 0:
        raise ConfigError(f"--qat-iterations must be >= 0, got {args.qat_iterations}")
    if args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    if not 0 <= args.seed < 2 ** 62:
        raise ConfigError(f"--seed must lie in [0, 2^62), got {args.seed}")


def run(args) -> int:
    check_options(args)
    from . import check_output_dir

    out = check_output_dir(args.out)
    plan = QUICK if args.quick else FULL
    import torch

    from cellsim.genome import save_genome, sha256_file
    from training.checkpoint import load_model
    from training.quantize.pipeline import TRAINING_HORIZON

    from cellsim import machine
    from .report import pyplot
    from .report import filmstrip, quant_markdown, quant_plots

    torch.set_num_threads(args.threads)
    record = machine.machine_record()
    model, ckpt = load_model(args.checkpoint)
    source = sha256_file(args.checkpoint)
    config = ckpt["config"]
    horizon = int(config.get("max_steps", TRAINING_HORIZON))
    steps = args.steps or plan.long_factor * horizon
    target = torch.as_tensor(ckpt["target"])
    _, h, w = target.shape
    started = time.perf_counter()

    def log(line):
        print(f"[{time.perf_counter() - started:5.0f} s] {line}", flush=True)

    log(f"checkpoint {args.checkpoint}: target {config.get('target')}, {w}x{h} grid, "
        f"training horizon {horizon} steps; long run {steps} steps, {plan.batch} rollouts")
    genomes, origin, made = make_genomes(args, model, ckpt, plan, horizon, source, log)
    models = [FloatModel(model)] + [IntModel(k, genomes[k].params, bool(model.torus))
                                    for k in ("ptq", "qat") if k in genomes]
    every = max(1, horizon // 24)

    log("long run from the seed")
    long = long_run(models, target, steps, horizon, every, plan, args.seed, model.fire_rate)
    regrow_steps = plan.regrow_factor * horizon
    log(f"regrowth: {', '.join(DAMAGE_KINDS)} at step {long['damage_step']}, then {regrow_steps} steps")
    regrown, regrow_frames = regrowth(models, target, long["at_damage"], regrow_steps, every, plan,
                                      args.seed, model.fire_rate)
    sim = None
    if not args.no_sim:
        units = plan.sim_factor * horizon
        damage_at = min(plan.damage_factor * horizon, units // 2)
        from .speed import float_params

        rules = {"float": float_params(model), **genomes}
        log(f"clocks: {', '.join(rules)} on the simulator, sync and Poisson, "
            f"{units} time units, half erased at {damage_at}, {plan.sim_seeds} grid(s) each")
        sim = clocks(rules, ckpt["target"], units, damage_at, max(1, units // 48), plan, args.seed)

    summary = summarise(long, regrown, sim, horizon, ckpt["target"])
    result = {
        "checkpoint": str(args.checkpoint), "checkpoint_sha256": source.hex(),
        "target": config.get("target"), "grid": [h, w], "training_horizon": horizon,
        "fire_rate": float(model.fire_rate), "seed": args.seed, "plan": asdict(plan),
        "quick": bool(args.quick), "genomes": origin,
        "definitions": {
            "loss": "per rollout the mean over RGBA, H and W of the squared error against the target; "
                    "mean over rollouts (int8 states dequantised first)",
            "survives": f"loss at the end of the long run <= {SURVIVAL_FACTOR:g} x the float model's loss "
                        "at the training horizon",
            "regrowth_steps": f"steps after the damage until the damaged run's loss is within "
                              f"{1 - RECOVERED_SHARE:.0%} of the damage's loss jump of an undamaged control run "
                              "from the same state with the same fire masks (null: not within the window)",
            "divergence": "per channel, RMS over rollouts and cells of (int8 state dequantised - float "
                          "state) on the same fire masks; relative: divided by the float state's RMS",
            "cell-deaths": f"each cell loses its state with probability {plan.death_share:g}",
            "time_unit": "simulator: one unit = one training step at fire rate 0.5",
            "clocks": "sync: every cell steps at once, as in training (fire rate per step); poisson: "
                      "each cell fires after exponential waits, reading its neighbours' latest states",
        },
        "empty_grid_loss": float((target ** 2).mean()),
        "summary": summary,
        "long_run": {"steps": long["steps"], "loss": long["loss"]},
        "regrowth": {"damage_step": long["damage_step"], "steps": regrow_steps, "results": regrown},
        "divergence": {"steps": long["steps"], **long["divergence"]},
        "clocks": sim,
        "machine": machine.finish_record(record),
    }
    write_outputs(out, result, long, regrow_frames, made, ckpt["target"], pyplot, filmstrip,
                  quant_markdown, quant_plots, save_genome)
    return 0


def summarise(long, regrown, sim, horizon, target) -> dict:
    """One row per model: the README's summary table."""
    steps = long["steps"]
    at_horizon = min(range(len(steps)), key=lambda i: abs(steps[i] - horizon))
    float_grown = long["loss"]["float"][at_horizon]
    rows = {}
    for name, curve in long["loss"].items():
        final = curve[-1]
        row = {"loss_at_horizon": curve[at_horizon], "loss_final": final,
               "survives": bool(final <= SURVIVAL_FACTOR * float_grown),
               "regrowth_steps": {kind: regrown[kind][name]["regrowth_steps"] for kind in regrown},
               "loss_after_regrowth": {kind: regrown[kind][name]["loss_final"] for kind in regrown}}
        if name in long["divergence"]:
            rel = np.asarray(long["divergence"][name]["relative"])
            row["divergence_final_mean"] = float(rel[-1].mean())
            row["divergence_final_alpha"] = float(rel[-1][3])
        if sim and name in sim:
            row["async_loss_final"] = sim[name]["poisson"]["loss_final"]
            row["sync_loss_final"] = sim[name]["sync"]["loss_final"]
            row["async_regrowth_time"] = sim[name]["poisson"]["regrowth_time"]
            row["sync_regrowth_time"] = sim[name]["sync"]["regrowth_time"]
        rows[name] = row
    return rows


def write_outputs(out, result, long, regrow_frames, made, target, pyplot, filmstrip, quant_markdown,
                  quant_plots, save_genome) -> None:
    import json

    from cellsim.atomic import prepare_output_dir, write_text

    prepare_output_dir(out)
    for kind, genome in made.items():
        save_genome(genome, out / f"{kind}.genome")
    filmstrip(long["frames"], target, out / "quant_growth.png", "growth from the seed (first rollout), step:")
    filmstrip(regrow_frames["half"], target, out / "quant_regrowth.png",
              f"regrowth after a half cut (first rollout): -1 = grown, step {long['damage_step']}; 0 = cut; "
              "then steps after the cut:")
    plt = pyplot()
    plots = quant_plots(plt, result, out) if plt is not None else []
    result["files"] = ["quant.json", "quant.md", "quant_growth.png", "quant_regrowth.png", *plots,
                       *[f"{k}.genome" for k in made]]
    write_text(out / "quant.md", quant_markdown(result))
    write_text(out / "quant.json", json.dumps(result, indent=2) + "\n")
    print(f"wrote {', '.join(str(out / f) for f in result['files'])}")


def main(argv=None) -> int:
    return run_main("quant", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
