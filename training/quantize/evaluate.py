"""The loss against the target of the float model and of a genome's integers on
the same seeded rollouts: the same seeds, fire masks and damage for both.

A rollout grows from the seed, is scored after `grown_step` steps (the end of a
training episode) and after `persist_step` steps (holding the pattern), is then
damaged by a circle and scored again `regrow_steps` later. Loss as in training
(the paper's training loss): per sample the mean over RGBA, H and W of the squared error,
averaged over the batch; an int8 state is dequantised (q * s_c) first."""
from dataclasses import dataclass

import numpy as np
import torch

from cellsim.intspec import IntParams
from training.model import make_seed

from training.loss import per_sample_loss as rgba_per_sample_loss

from . import intsim
from .calibrate import circle_damage, fire_mask, float_step
from .fold import dense_perception_weight


@dataclass(frozen=True)
class EvalPlan:
    batch: int = 8
    grown_step: int = 96
    persist_step: int = 288
    regrow_steps: int = 96   # 0: no damage phase
    seed: int = 1

    def __post_init__(self):
        if self.batch < 1 or not 1 <= self.grown_step <= self.persist_step or self.regrow_steps < 0:
            raise ValueError(f"bad evaluation plan {self}")

    @property
    def labels(self) -> list[str]:
        labels = [f"grown@{self.grown_step}", f"persist@{self.persist_step}"]
        if self.regrow_steps:
            labels.append(f"regrown@+{self.regrow_steps}")
        return labels


def rgba_loss(rgba: torch.Tensor, target: torch.Tensor) -> float:
    """Batch mean of the per-sample mean squared error over (4, H, W)."""
    return float(rgba_per_sample_loss(rgba, target).mean())


def _rollout(step, to_rgba, start, target, plan: EvalPlan, fire_rate: float) -> dict:
    """Drive `step(x, mask)` from `start`; score with `to_rgba(x)`."""
    generator = torch.Generator().manual_seed(plan.seed)
    _, _, h, w = start.shape
    x, losses = start, {}
    scored = {plan.grown_step: plan.labels[0], plan.persist_step: plan.labels[1]}
    for t in range(1, plan.persist_step + 1):
        x = step(x, fire_mask(generator, plan.batch, h, w, fire_rate))
        if t in scored:
            losses[scored[t]] = rgba_loss(to_rgba(x), target)
    if plan.regrow_steps:
        x = circle_damage(x, generator)
        for _ in range(plan.regrow_steps):
            x = step(x, fire_mask(generator, plan.batch, h, w, fire_rate))
        losses[plan.labels[2]] = rgba_loss(to_rgba(x), target)
    return losses


def float_losses(model, target, plan: EvalPlan = EvalPlan()) -> dict:
    """Losses of the float model; target (4, H, W) array or tensor."""
    target = torch.as_tensor(np.asarray(target, np.float32))
    _, h, w = target.shape
    weight = dense_perception_weight(model.channels, model.angle)
    with torch.no_grad():
        return _rollout(lambda x, m: float_step(model, x, m, weight), lambda x: x[:, :4],
                        make_seed(plan.batch, h, w, model.channels), target, plan, model.fire_rate)


def int_losses(params: IntParams, target, fire_rate: float, torus: bool,
               plan: EvalPlan = EvalPlan()) -> dict:
    """Losses of a genome's integer update (intsim, bit-equal to cellsim.intspec)."""
    target = torch.as_tensor(np.asarray(target, np.float32))
    _, h, w = target.shape
    torch_params = intsim.TorchIntParams.from_int_params(params)
    scale = torch.as_tensor(params.state_scale[:4, None, None], dtype=torch.float32)
    start = intsim.seed_states(params, plan.batch, h, w, torch_params.dtype)
    with torch.no_grad():
        return _rollout(lambda x, m: intsim.step(torch_params, x, m, torus),
                        lambda x: x[:, :4].float() * scale, start, target, plan, fire_rate)
