"""Quantisation-aware fine-tuning: the training recipe of the official notebook (docs/training.md)
(sample pool, reseeding the worst sample, circle damage for the regenerating
experiment, Adam, per-variable gradient normalisation, 64-95 steps) with the
genome's integer step as the forward pass.

Each iteration quantises the current float weights with the fixed calibrated
scales (ptq.quantize_weights), runs intsim.step (bit-equal to cellsim.intspec)
and lets straight-through estimators carry the gradient of every rounding back
to the float weights. The pool holds int8 states; the loss is that of the
dequantised RGBA, as in evaluate.py."""
import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.checkpoint import checkpoint

from cellsim.errors import ConfigError
from training.trainer import circle_damage, normalise_gradients

from training.loss import per_sample_loss as rgba_per_sample_loss

from . import intsim
from .ptq import Scales, float_weights, quantize_weights

DAMAGED_PER_BATCH = {"growing": 0, "persistent": 0, "regenerating": 3}


@dataclass(frozen=True)
class QATConfig:
    iterations: int
    lr: float = 1e-4           # a tenth of the recipe's late rate: weights start trained
    batch: int = 8
    pool_size: int = 1024
    min_steps: int = 64        # steps per iteration: uniform integer in [min_steps, max_steps)
    max_steps: int = 96
    experiment: str = "regenerating"
    seed: int = 0

    def validate(self) -> "QATConfig":
        if self.iterations < 0:
            raise ConfigError(f"QAT iterations must be >= 0, got {self.iterations}")
        if not (self.lr > 0 and np.isfinite(self.lr)):
            raise ConfigError(f"QAT learning rate must be positive, got {self.lr}")
        if self.experiment not in DAMAGED_PER_BATCH:
            raise ConfigError(f"unknown experiment {self.experiment!r}")
        if not 1 <= self.min_steps < self.max_steps:
            raise ConfigError(f"QAT steps must satisfy 1 <= min < max, got [{self.min_steps}, {self.max_steps})")
        if self.batch <= DAMAGED_PER_BATCH[self.experiment] or self.pool_size < self.batch:
            raise ConfigError(f"QAT batch {self.batch} / pool {self.pool_size} too small for {self.experiment}")
        return self

    @classmethod
    def from_checkpoint_config(cls, config: dict, iterations: int, **overrides) -> "QATConfig":
        """The recipe the checkpoint was trained with (batch, pool, steps, experiment)."""
        keys = ("batch", "pool_size", "min_steps", "max_steps", "experiment")
        taken = {k: config[k] for k in keys if k in config}
        return cls(iterations=iterations, **{**taken, **overrides}).validate()


def dequantised_rgba(states: torch.Tensor, scales: Scales) -> torch.Tensor:
    return states[:, :4] * torch.as_tensor(scales.state[:4, None, None]).to(states)


def per_sample_loss(states: torch.Tensor, target: torch.Tensor, scales: Scales) -> torch.Tensor:
    """(B, C, H, W) int8-valued states -> (B,) mean squared RGBA error."""
    return rgba_per_sample_loss(dequantised_rgba(states, scales), target)


class QuantisationAwareTrainer:
    """Fine-tunes a copy of a float model so that its genome (with `scales`) does well."""

    def __init__(self, model, scales: Scales, target: np.ndarray, config: QATConfig):
        self.config = config.validate()
        self.model = copy.deepcopy(model).train()
        for p in self.model.parameters():
            p.requires_grad_(True)
        self.scales = scales
        self.target = torch.as_tensor(np.asarray(target, np.float32))
        _, self.height, self.width = self.target.shape
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.control = torch.Generator().manual_seed(config.seed)
        self.noise = torch.Generator().manual_seed(config.seed + 1)
        params, _ = self.quantize()
        self.seed_state = intsim.seed_states(params, 1, self.height, self.width)[0]
        uses_pool = config.experiment != "growing"
        self.pool = self.seed_state.expand(config.pool_size, -1, -1, -1).clone() if uses_pool else None
        self.losses: list[float] = []

    def quantize(self):
        return quantize_weights(float_weights(self.model), self.model.angle, self.scales,
                                dtype=torch.float32)

    def _batch(self):
        cfg = self.config
        if self.pool is None:
            return self.seed_state.expand(cfg.batch, -1, -1, -1).clone(), None
        index = torch.randperm(cfg.pool_size, generator=self.control)[:cfg.batch]
        x0 = self.pool[index]
        worst_first = torch.argsort(per_sample_loss(x0, self.target, self.scales), descending=True, stable=True)
        x0, index = x0[worst_first], index[worst_first]
        x0[0] = self.seed_state
        k = DAMAGED_PER_BATCH[cfg.experiment]
        if k:
            keep = circle_damage(k, self.height, self.width, self.control)  # (k, H, W, 1)
            x0[-k:] *= keep.permute(0, 3, 1, 2)
        return x0, index

    def iteration(self) -> float:
        """One optimiser update; returns the batch loss of the int8 rollout."""
        cfg = self.config
        x, index = self._batch()
        steps = int(torch.randint(cfg.min_steps, cfg.max_steps, (), generator=self.control))
        _, torch_params = self.quantize()
        fire_rate = self.model.fire_rate
        for _ in range(steps):
            mask = torch.rand(x.shape[0], 1, self.height, self.width, generator=self.noise) <= fire_rate
            # Recomputing each step in the backward pass keeps memory at one
            # state per step instead of every activation of the rollout.
            x = checkpoint(intsim.step, torch_params, x, mask, self.model.torus, use_reentrant=False)
        loss = per_sample_loss(x, self.target, self.scales).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        normalise_gradients(self.model)
        self.optimizer.step()
        if index is not None:
            self.pool[index] = x.detach()
        self.losses.append(float(loss.detach()))
        return self.losses[-1]

    def run(self, progress: bool = True):
        """All iterations; returns the fine-tuned float model (its genome is
        ptq.quantize_model(model, scales))."""
        from tqdm import tqdm

        with tqdm(total=self.config.iterations, unit="it", desc="QAT", disable=not progress,
                  dynamic_ncols=True) as bar:
            for _ in range(self.config.iterations):
                loss = self.iteration()
                bar.set_postfix(loss=f"{loss:.5f}", refresh=False)
                bar.update(1)
        return self.model.eval()
