"""Calibration on real trajectories of the float model: growth from the seed,
persistence over a long run, and regrowth after damage (a circle as in the
paper's regenerating experiment, or half of the pattern cut away). Collects the
statistics the scales come from and a few whole grids for ONNX calibration."""
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from training.model import alive_mask, make_seed, pad
from training.report import inside_disc

from .fold import dense_perception_weight, fast_update
from .ptq import HIDDEN_LEVELS, Scales

DEFAULT_PERCENTILES = (100.0, 99.99, 99.9)


@dataclass(frozen=True)
class CalibrationPlan:
    batch: int = 8
    growth_steps: int = 96      # every step recorded: early growth has the largest gradients
    persist_steps: int = 320    # total length of the undamaged run
    regrow_steps: int = 96      # after the damage at the end of the persistent run
    persist_every: int = 8      # a record every this many steps once grown
    cells_per_record: int = 4096  # living cells sampled per record for percentiles
    grids_kept: int = 24        # whole grids kept for ONNX calibration
    seed: int = 0


@dataclass
class Calibration:
    """state_samples (N, C) of living cells; hidden_samples (M,) positive ReLU
    outputs; exact maxima over every living cell; grids (K, C, H, W) snapshots."""
    state_samples: np.ndarray
    hidden_samples: np.ndarray
    state_absmax: np.ndarray
    hidden_max: float
    grids: np.ndarray

    def scales(self, state_percentile: float = 100.0, hidden_percentile: float = 100.0) -> Scales:
        """State step = percentile of |x_c| / 127 (max at 100); hidden step =
        percentile of the ReLU outputs / 255. Never-used channels get 1/127."""
        if state_percentile >= 100:
            state_range = self.state_absmax
        else:
            state_range = np.percentile(np.abs(self.state_samples), state_percentile, axis=0)
        if hidden_percentile >= 100 or self.hidden_samples.size == 0:
            hidden_range = self.hidden_max
        else:
            hidden_range = float(np.percentile(self.hidden_samples, hidden_percentile))
        state_range = np.where(state_range > 0, state_range, 1.0)
        return Scales(state=(state_range / 127).astype(np.float32),
                      hidden=(hidden_range if hidden_range > 0 else 1.0) / HIDDEN_LEVELS)


def circle_damage(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Zero a disc per sample: centre uniform in [-0.5, 0.5]^2, radius uniform in
    [0.1, 0.4], in coordinates linspace(-1, 1) over the grid (the paper's regenerating experiment)."""
    b, _, h, w = x.shape
    centre = torch.rand(b, 2, generator=generator) - 0.5
    radius = 0.1 + 0.3 * torch.rand(b, generator=generator)
    inside = inside_disc(h, w, centre[:, 0, None, None], centre[:, 1, None, None], radius[:, None, None])
    return x * (~inside)[:, None].to(x.dtype)


def half_cut(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Zero the top, bottom, left or right half of each sample (chosen at random)."""
    out = x.clone()
    h, w = x.shape[2:]
    sides = torch.randint(4, (x.shape[0],), generator=generator)
    for i, side in enumerate(sides.tolist()):
        region = [(slice(None, h // 2), slice(None)), (slice(h // 2, None), slice(None)),
                  (slice(None), slice(None, w // 2)), (slice(None), slice(w // 2, None))][side]
        out[i, :, region[0], region[1]] = 0
    return out


def damage(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """First half of the batch: circles; second half: half cuts."""
    half = math.ceil(x.shape[0] / 2)
    return torch.cat([circle_damage(x[:half], generator), half_cut(x[half:], generator)])


def float_step(model, x, fire_mask, perception_weight) -> torch.Tensor:
    """model.forward with the faster dense perception (fold.fast_update)."""
    pre = alive_mask(x, model.torus)
    x = x + fast_update(model, x, perception_weight) * fire_mask.to(x.dtype)
    return x * (pre & alive_mask(x, model.torus)).to(x.dtype)


def fire_mask(generator, batch, height, width, fire_rate) -> torch.Tensor:
    return torch.rand(batch, 1, height, width, generator=generator) <= fire_rate


def trajectory(model, height: int, width: int, plan: CalibrationPlan):
    """Yield (phase, states) along growth, persistence and regrowth; states are
    (B, C, H, W) float tensors, no gradient."""
    generator = torch.Generator().manual_seed(plan.seed)
    weight = dense_perception_weight(model.channels, model.angle)
    x = make_seed(plan.batch, height, width, model.channels)
    with torch.no_grad():
        yield "seed", x
        for step in range(1, plan.persist_steps + 1):
            x = float_step(model, x, fire_mask(generator, plan.batch, height, width, model.fire_rate), weight)
            if step <= plan.growth_steps:
                yield "growth", x
            elif step % plan.persist_every == 0:
                yield "persistence", x
        x = damage(x, generator)
        yield "damaged", x
        for _ in range(plan.regrow_steps):
            x = float_step(model, x, fire_mask(generator, plan.batch, height, width, model.fire_rate), weight)
            yield "regrowth", x


def record_count(plan: CalibrationPlan) -> int:
    """How many states trajectory() yields."""
    persisting = sum(1 for step in range(plan.growth_steps + 1, plan.persist_steps + 1)
                     if step % plan.persist_every == 0)
    return 1 + min(plan.growth_steps, plan.persist_steps) + persisting + 1 + plan.regrow_steps


def calibrate(model, height: int, width: int, plan: CalibrationPlan = CalibrationPlan()) -> Calibration:
    """Run the trajectories and collect the calibration statistics (streaming:
    only sampled cells and a few single grids are kept)."""
    rng = np.random.default_rng(plan.seed)
    weight = dense_perception_weight(model.channels, model.angle)
    state_absmax = np.zeros(model.channels)
    hidden_max = 0.0
    state_samples, hidden_samples, grids = [], [], []
    total = record_count(plan)
    keep = set(np.linspace(0, total - 1, min(plan.grids_kept, total)).round().astype(int).tolist())
    with torch.no_grad():
        for index, (_, x) in enumerate(trajectory(model, height, width, plan)):
            if index in keep:
                grids.append(x[index % x.shape[0]].numpy().copy())
            live = alive_mask(x, model.torus)[:, 0]  # (B, H, W)
            cells = x.permute(0, 2, 3, 1)[live]     # (N, C)
            if cells.shape[0] == 0:
                continue
            state_absmax = np.maximum(state_absmax, cells.abs().amax(0).numpy())
            hidden = torch.relu(model.w1(F.conv2d(pad(x, model.torus), weight))).permute(0, 2, 3, 1)[live]
            hidden_max = max(hidden_max, float(hidden.max()))
            chosen = torch.as_tensor(rng.choice(cells.shape[0], min(plan.cells_per_record, cells.shape[0]),
                                                replace=False))
            state_samples.append(cells[chosen].numpy())
            positive = hidden[chosen].reshape(-1)
            hidden_samples.append(positive[positive > 0].numpy())
    return Calibration(
        state_samples=np.concatenate(state_samples) if state_samples else np.zeros((0, model.channels)),
        hidden_samples=np.concatenate(hidden_samples) if hidden_samples else np.zeros(0),
        state_absmax=state_absmax, hidden_max=hidden_max,
        grids=np.stack(grids).astype(np.float32))
