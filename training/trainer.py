"""The training loop of the official recipe: sample pool, reseeding of the worst
sample, circle damage of the best, Adam with per-variable gradient normalisation,
and atomic checkpoints from which a killed run resumes bit-identically.

All randomness comes from two generators saved in every checkpoint: `control`
(pool sampling, step counts, damage; always on the CPU) and `noise` (fire masks,
on the training device)."""
import sys
import time
from pathlib import Path

import numpy as np
import torch

from cellsim.atomic import prepare_output_dir
from cellsim.errors import CheckpointError, ConfigError
from cellsim.target_images import load_target

from . import fast, report
from .loss import per_sample_loss as rgba_per_sample_loss
from .checkpoint import (CHECKPOINT_NAME, load_checkpoint, load_pool, model_from_checkpoint,
                         POOL_GLOB, pool_file_name, save_checkpoint, save_pool)
from .config import TrainConfig
from .model import CAModel, make_seed

GRADIENT_EPSILON = 1e-8
# Settings a resumed run may change. A damage change is a fine-tuning step, so
# the checkpoint keeps a log of it (recipe_changes) for the model's metadata.
RESUMABLE_CHANGES = ("iterations", "checkpoint_every", "damage")


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but PyTorch sees no CUDA device")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def per_sample_loss(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared RGBA error of each channels-last sample: (B, H, W, C) -> (B,)."""
    return rgba_per_sample_loss(x[..., :4], target)


def circle_damage(count: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """(count, H, W, 1) masks, 0 inside a random circle and 1 elsewhere: centre
    uniform in [-0.5, 0.5]^2, radius in [0.1, 0.4], on linspace(-1, 1) axes."""
    centre = torch.rand(2, count, 1, 1, generator=generator) - 0.5
    radius = torch.rand(count, 1, 1, generator=generator) * 0.3 + 0.1
    inside = report.inside_disc(height, width, centre[0], centre[1], radius)
    return (~inside).to(torch.float32)[..., None]


def half_damage(count: int, height: int, width: int, generator: torch.Generator) -> torch.Tensor:
    """(count, H, W, 1) masks, 0 on one half of the grid (left, right, top or
    bottom, drawn uniformly) and 1 on the other."""
    side = torch.randint(4, (count, 1, 1), generator=generator)
    ys = torch.arange(height)[:, None]
    xs = torch.arange(width)[None, :]
    erased = torch.where(side == 0, xs < width // 2,
                         torch.where(side == 1, xs >= width // 2,
                                     torch.where(side == 2, ys < height // 2, ys >= height // 2)))
    return (~erased).to(torch.float32)[..., None]


def damage_masks(kind: str, count: int, height: int, width: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Masks for the `count` damaged samples of a batch: all discs for "circle";
    for "circle+half" the last sample loses a half and the others a disc."""
    masks = circle_damage(count, height, width, generator)
    if kind == "circle+half":
        masks[-1:] = half_damage(1, height, width, generator)
    return masks


def normalise_gradients(model: torch.nn.Module) -> None:
    """Per-variable L2 normalisation g / (||g|| + 1e-8), as the official notebook."""
    for p in model.parameters():
        if p.grad is not None:
            p.grad.div_(p.grad.norm() + GRADIENT_EPSILON)


class Trainer:
    """One training run writing into `out`. Construct it (all checks happen
    here, before any file is written), then call run()."""

    def __init__(self, config: TrainConfig, out, device: str, ckpt: dict | None = None):
        """Use start() or resume(); `ckpt` is the checkpoint being continued."""
        self.config, self.out = config, Path(out)
        self.checkpoint_path = self.out / CHECKPOINT_NAME
        self.device = pick_device(device)
        target = ckpt["target"] if ckpt else load_target(config.target, config.target_size, config.padding)
        self.target_chw = target
        self.target = torch.from_numpy(np.ascontiguousarray(target.transpose(1, 2, 0))).to(self.device)
        prepare_output_dir(self.out)
        self._build(ckpt)

    @classmethod
    def start(cls, config: TrainConfig, out, device: str = "auto") -> "Trainer":
        """A fresh run; refuses an `out` that already holds a checkpoint."""
        if (Path(out) / CHECKPOINT_NAME).exists():
            raise ConfigError(f"{out} already holds a checkpoint; pass --resume to continue it "
                              "or choose another --out")
        return cls(config.validate(), out, device)

    @classmethod
    def resume(cls, out, device: str = "auto", changes: dict | None = None,
               fresh_pool: bool = False) -> "Trainer":
        """Continue the run in `out` with its stored settings. `changes` may set
        iterations, checkpoint_every and damage; any other entry must equal the
        stored value. `fresh_pool` refills the sample pool with seeds instead of
        loading the pool file (for a checkpoint shipped without its pool, such as
        a pretrained model): weights, optimiser, generators and schedule go on,
        and the checkpoint logs the new pool in recipe_changes."""
        path = Path(out) / CHECKPOINT_NAME
        ckpt = load_checkpoint(path)
        stored = TrainConfig.from_dict(ckpt["config"]).to_dict()
        changes = dict(changes or {})
        mutable = {k: changes.pop(k) for k in RESUMABLE_CHANGES if changes.get(k) is not None}
        merged = {**stored, "model": {**stored["model"]}}
        for key, value in changes.items():
            place = merged["model"] if key in merged["model"] else merged
            if key not in place:
                raise ConfigError(f"unknown training option {key!r}")
            if value is not None and value != place[key]:
                raise ConfigError(f"--resume keeps the checkpoint's settings: {key} is "
                                  f"{place[key]!r} in {path}, not {value!r}")
        config = TrainConfig.from_dict({**merged, **mutable}).validate()
        if ckpt["iteration"] > config.iterations:
            raise ConfigError(f"the checkpoint is already at iteration {ckpt['iteration']}, "
                              f"beyond --iterations {config.iterations}")
        if config.damage != stored["damage"]:
            ckpt = {**ckpt, "recipe_changes": [*ckpt.get("recipe_changes", []), {
                "iteration": int(ckpt["iteration"]), "damage": [stored["damage"], config.damage]}]}
        if fresh_pool:
            if not config.uses_pool:
                raise ConfigError(f"--fresh-pool: the {config.experiment} experiment has no sample pool")
            ckpt = {**ckpt, "pool_file": None, "recipe_changes": [*ckpt.get("recipe_changes", []), {
                "iteration": int(ckpt["iteration"]), "pool": "refilled with seeds"}]}
        return cls(config, out, device, ckpt)

    def _build(self, ckpt: dict | None) -> None:
        cfg, size = self.config, self.config.grid_size
        if ckpt is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(cfg.seed)
                self.model = CAModel(**vars(cfg.model))
        else:
            self.model = model_from_checkpoint(ckpt)
        self.model.to(self.device).train()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.control = torch.Generator().manual_seed(cfg.seed)
        self.noise = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        self.seed_state = fast.to_channels_last(make_seed(1, size, size, cfg.model.channels))[0].to(self.device)
        self.pool = self.seed_state.expand(cfg.pool_size, -1, -1, -1).clone() if cfg.uses_pool else None
        self.iteration, self.elapsed, self.metrics = 0, 0.0, []
        self.recipe_changes = list(ckpt.get("recipe_changes", [])) if ckpt else []
        self.last_batch = None
        if ckpt is not None:
            self._restore(ckpt)

    def _restore(self, ckpt: dict) -> None:
        try:
            self.optimizer.load_state_dict(ckpt["optimizer"])
            self.control.set_state(ckpt["rng"]["control"])
            if self.device.type == ckpt["rng"].get("device"):
                self.noise.set_state(ckpt["rng"]["noise"])
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"checkpoint {self.checkpoint_path} has a bad optimiser or RNG state "
                                  f"({exc.__class__.__name__})") from None
        self.iteration, self.elapsed = int(ckpt["iteration"]), float(ckpt["elapsed"])
        self.metrics = [tuple(row) for row in ckpt["metrics"]][:self.iteration]
        if self.pool is not None and ckpt["pool_file"] is not None:
            self.pool = load_pool(self.out / str(ckpt["pool_file"]), self.iteration,
                                  tuple(self.pool.shape)).to(self.device)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Starting states for one iteration and their pool indices."""
        cfg = self.config
        if self.pool is None:
            return self.seed_state.expand(cfg.batch, -1, -1, -1).clone(), None
        index = torch.randperm(cfg.pool_size, generator=self.control)[:cfg.batch].to(self.device)
        x0 = self.pool[index]
        with torch.no_grad():
            worst_first = torch.argsort(per_sample_loss(x0, self.target), descending=True, stable=True)
        x0, index = x0[worst_first], index[worst_first]
        x0[0] = self.seed_state
        if cfg.damaged_per_batch:
            k = cfg.damaged_per_batch
            x0[-k:] *= damage_masks(cfg.damage, k, cfg.grid_size, cfg.grid_size, self.control).to(self.device)
        return x0, index

    def train_iteration(self) -> tuple[float, float]:
        """One optimiser update; returns (loss, learning rate)."""
        cfg = self.config
        x0, index = self._batch()
        steps = int(torch.randint(cfg.min_steps, cfg.max_steps, (), generator=self.control))
        lr = cfg.learning_rate(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = fast.run(self.model, x0, steps, self.noise)
        loss = per_sample_loss(x, self.target).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        normalise_gradients(self.model)
        self.optimizer.step()
        x = x.detach()
        if index is not None:
            self.pool[index] = x
        self.last_batch = x
        self.iteration += 1
        return float(loss.detach()), lr

    def run(self, progress: bool = True) -> None:
        """Train up to config.iterations, checkpointing every checkpoint_every
        iterations, at the end and when interrupted. Progress goes to stderr: a
        bar with loss and ETA on a terminal, one line per checkpoint otherwise."""
        from tqdm import tqdm

        if self.device.type == "cpu":
            fast.tune_cpu_allocator()
        cfg = self.config
        on_terminal = progress and sys.stderr.isatty()
        bar = tqdm(total=cfg.iterations, initial=self.iteration, unit="it", disable=not on_terminal,
                   dynamic_ncols=True, desc="train")
        session_start, session_first = time.perf_counter(), self.iteration
        start = session_start - self.elapsed
        saved_at = self.iteration
        try:
            while self.iteration < cfg.iterations:
                loss, lr = self.train_iteration()
                self.elapsed = time.perf_counter() - start
                self.metrics.append((self.iteration, loss, lr, self.elapsed))
                bar.set_postfix(loss=f"{loss:.5f}", lr=f"{lr:g}", refresh=False)
                bar.update(1)
                if self.iteration % cfg.checkpoint_every == 0 or self.iteration == cfg.iterations:
                    self.save()
                    saved_at = self.iteration
                    if progress and not on_terminal:
                        per_iteration = (time.perf_counter() - session_start) / (self.iteration - session_first)
                        print(f"iteration {self.iteration}/{cfg.iterations}  loss {loss:.5f}  "
                              f"{self.elapsed:.0f} s, about {per_iteration * (cfg.iterations - self.iteration):.0f} s "
                              "to go", file=sys.stderr, flush=True)
        except KeyboardInterrupt:
            if self.iteration > saved_at:
                self.save()
            raise
        finally:
            bar.close()
        report.write_growth_gif(self.out / "growth.gif", self.model, cfg.grid_size, cfg.seed)

    def state(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "target": self.target_chw,
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "iteration": self.iteration,
            "optimizer": self.optimizer.state_dict(),
            "rng": {"control": self.control.get_state(), "noise": self.noise.get_state(),
                    "device": self.device.type},
            "metrics": [list(row) for row in self.metrics],
            "elapsed": self.elapsed,
            "pool_file": pool_file_name(self.iteration) if self.pool is not None else None,
            "recipe_changes": self.recipe_changes,
        }

    def save(self) -> None:
        """Pool first, then the checkpoint naming it, then the older pools: a kill
        at any moment leaves a checkpoint whose pool file exists."""
        state = self.state()
        if self.pool is not None:
            save_pool(self.out / state["pool_file"], self.pool, self.iteration)
        save_checkpoint(self.checkpoint_path, state)
        for old in self.out.glob(POOL_GLOB):
            if old.name != state["pool_file"]:
                old.unlink(missing_ok=True)
        report.write_metrics(self.out / "metrics.csv", self.metrics)
        report.write_loss_plot(self.out / "loss.png", self.metrics)
        shown = self.pool if self.pool is not None else self.last_batch
        if shown is not None:
            report.write_pool_image(self.out / "pool.png", shown)
