"""The float model's perception written two other ways: as one dense 3x3 conv
(fast, and the ONNX graph's first node), and folded into the first layer's
weights for the integer perception of cellsim.intspec.perceive.

Integer perception of channel c gives [q_c | gx_c | gy_c], g = (S + 4) >> 3 for a
Sobel sum S (cellsim.intspec.perceive), with real steps s_c and s_c * GRADIENT_STEP.
Since the float model reads Kx x = (cos t Sx - sin t Sy) x / 8 and x = q s_c,
Sx x / 8 = s_c Sx q / 8: the rotation and the steps become the first layer's columns."""
import math

import torch
import torch.nn.functional as F

from cellsim.intspec.perceive import GRADIENT_STEP
from training.model import pad, perception_kernels


def dense_perception_weight(channels: int, angle: float) -> torch.Tensor:
    """(3C, C, 3, 3) conv weight equal to the model's grouped perception: output
    3c + f applies filter f (identity, Kx, Ky) to input channel c."""
    kernels = perception_kernels(angle)
    weight = torch.zeros(3 * channels, channels, 3, 3)
    for c in range(channels):
        weight[3 * c:3 * c + 3, c] = kernels
    return weight


def fast_update(model, x: torch.Tensor, perception_weight: torch.Tensor | None = None) -> torch.Tensor:
    """model.update(x) with the perception as one dense conv (several times faster
    on CPU than the grouped conv); equal up to float rounding."""
    if perception_weight is None:
        perception_weight = dense_perception_weight(model.channels, model.angle)
    perception = F.conv2d(pad(x, model.torus), perception_weight.to(x))
    return model.w2(torch.relu(model.w1(perception)))


def fold_first_layer(w1: torch.Tensor, angle: float, state_scale: torch.Tensor) -> torch.Tensor:
    """Float first-layer weights (hidden, 3C) in the interleaved order (3c + filter)
    -> weights (hidden, 3C) over the integer perception [q | gx | gy] (genome order),
    so that  w1 @ float_perception(q * s) == folded @ [q | Sx q / D | Sy q / D],
    D = 2^GRADIENT_SHIFT: exact but for the rounding of the integer gradients.
    Differentiable (quantisation-aware training folds every iteration)."""
    identity, along_x, along_y = w1[:, 0::3], w1[:, 1::3], w1[:, 2::3]
    cos, sin = math.cos(angle), math.sin(angle)
    scale = state_scale.to(w1)
    gradient_step = scale * GRADIENT_STEP
    return torch.cat([identity * scale,
                      (along_x * cos + along_y * sin) * gradient_step,
                      (along_y * cos - along_x * sin) * gradient_step], dim=1)
