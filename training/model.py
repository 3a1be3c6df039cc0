"""The Growing NCA update rule (Mordvintsev et al., Distill 2020), as the official notebook defines it.

perceive -> update -> step, written plainly; this module is the float source of
truth that faster formulations and the int8 genome are tested against."""

import torch
import torch.nn.functional as F
from torch import nn

from cellsim.intspec.alive import ALIVE_ALPHA as ALIVE_THRESHOLD
from cellsim.intspec.perceive import float_filters

CHANNELS, HIDDEN, ALPHA = 16, 128, 3


def perception_kernels(angle: float = 0.0) -> torch.Tensor:
    """Identity and the gradient filters / 8 (Sobel x, Sobel y) rotated by `angle` radians: (3, 3, 3)."""
    return torch.from_numpy(float_filters(angle)).to(torch.float32)


def pad(x: torch.Tensor, torus: bool) -> torch.Tensor:
    return F.pad(x, (1, 1, 1, 1), mode="circular" if torus else "constant")


def alive_mask(x: torch.Tensor, torus: bool) -> torch.Tensor:
    """A cell lives while some cell of its 3x3 neighbourhood has alpha > 0.1."""
    alpha = pad(x[:, ALPHA:ALPHA + 1], torus)
    return F.max_pool2d(alpha, 3, stride=1) > ALIVE_THRESHOLD


class CAModel(nn.Module):
    def __init__(self, channels=CHANNELS, hidden=HIDDEN, fire_rate=0.5, angle=0.0, torus=False):
        super().__init__()
        self.channels, self.fire_rate, self.angle, self.torus = channels, fire_rate, angle, torus
        self.w1 = nn.Conv2d(3 * channels, hidden, 1)
        self.w2 = nn.Conv2d(hidden, channels, 1)
        nn.init.zeros_(self.w2.weight)  # a fresh model does nothing
        nn.init.zeros_(self.w2.bias)

    def perceive(self, x: torch.Tensor) -> torch.Tensor:
        """Per channel c: identity, Kx, Ky at output index 3*c + filter."""
        kernels = perception_kernels(self.angle).to(x).repeat(self.channels, 1, 1)[:, None]
        return F.conv2d(pad(x, self.torus), kernels, groups=self.channels)

    def update(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(torch.relu(self.w1(self.perceive(x))))

    def forward(self, x: torch.Tensor, fire_mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """One stochastic step; `fire_mask` (B,1,H,W) overrides the random draw."""
        pre_life = alive_mask(x, self.torus)
        if fire_mask is None:
            fire_mask = torch.rand(x[:, :1].shape, generator=generator, device=x.device) <= self.fire_rate
        x = x + self.update(x) * fire_mask.to(x.dtype)
        post_life = alive_mask(x, self.torus)
        return x * (pre_life & post_life).to(x.dtype)


def make_seed(batch: int, height: int, width: int, channels: int = CHANNELS) -> torch.Tensor:
    """All zeros but the centre cell, whose channels 3.. are 1 (RGB stay 0)."""
    x = torch.zeros(batch, channels, height, width)
    x[:, ALPHA:, height // 2, width // 2] = 1.0
    return x
