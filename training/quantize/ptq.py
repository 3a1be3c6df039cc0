"""Post-training quantisation: float CAModel weights + calibrated scales -> IntParams.

State channel c is int8 with step s_c (zero point 0); the first layer reads the
integer perception [q | gx | gy] through weights with the rotation and the
steps folded in (fold.py); weights are symmetric per output channel; hidden
activations after the ReLU have step s_h and zero point -128; the requantisation
ratios become TFLM multipliers (cellsim.intspec.requantize). The same code, run
on tensors that require grad, gives quantisation-aware training its weights."""
from dataclasses import dataclass

import numpy as np
import torch

from cellsim.errors import CheckpointError
from cellsim.intspec import IntParams, quantize_multiplier
from cellsim.intspec.alive import alive_threshold
from cellsim.intspec.layout import ALPHA

from .fold import fold_first_layer
from .intsim import TorchIntParams, exact_dtype, requantize_ratio, straight_through

WEIGHT_MAX = 127
HIDDEN_ZERO_POINT = -128
HIDDEN_LEVELS = 127 - HIDDEN_ZERO_POINT  # a ReLU output spans 255 steps above the zero point
# A weight scale never gets so small that the bias needs more than 2^22 steps:
# every accumulator then stays below 2^24 (exact float32 sums in intsim, far
# from int32 overflow in the firmware).
BIAS_STEPS_MAX = 1 << 22


@dataclass(frozen=True)
class Scales:
    """Real step of one int8 unit: per state channel, and of the hidden activations.
    Both are float32 values, the precision a genome stores."""
    state: np.ndarray
    hidden: float

    def __post_init__(self):
        state = np.asarray(self.state, np.float32)
        if not (np.isfinite(state).all() and (state > 0).all()):
            raise ValueError("state scales must be positive and finite")
        if not (np.isfinite(self.hidden) and self.hidden > 0):
            raise ValueError("the hidden scale must be positive and finite")
        object.__setattr__(self, "state", state)
        object.__setattr__(self, "hidden", float(np.float32(self.hidden)))


def float_weights(model) -> dict:
    """The model's weights as 2-D tensors (autograd-connected to the model)."""
    return {"w1": model.w1.weight[:, :, 0, 0], "b1": model.w1.bias,
            "w2": model.w2.weight[:, :, 0, 0], "b2": model.w2.bias}


def row_scales(weights: torch.Tensor, bias: torch.Tensor, bias_step: float | torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel scales max|w| / 127, raised where the bias
    would need more than BIAS_STEPS_MAX steps of bias_step * scale; all-zero
    rows get 1 (any positive scale represents them exactly)."""
    with torch.no_grad():
        scale = weights.abs().amax(dim=1) / WEIGHT_MAX
        scale = torch.maximum(scale, bias.abs() / (bias_step * BIAS_STEPS_MAX))
        return torch.where(scale > 0, scale, torch.ones_like(scale))


def multipliers(ratios: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in ratios.detach().cpu().numpy()]
    return (np.array([m for m, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int64))


def _round_weights(real_steps: torch.Tensor) -> torch.Tensor:
    return torch.clamp(torch.round(real_steps.detach()), -WEIGHT_MAX, WEIGHT_MAX)


def _round_bias(real_steps: torch.Tensor) -> torch.Tensor:
    return torch.round(real_steps.detach())


def quantize_weights(weights: dict, angle: float, scales: Scales,
                     dtype: torch.dtype | None = None) -> tuple[IntParams, TorchIntParams]:
    """Float weights (float_weights()) -> the genome's IntParams and the same
    integers as TorchIntParams. If the weights require grad, the torch integers
    carry straight-through gradients back to them (quantisation-aware training)."""
    w1, b1 = weights["w1"].double(), weights["b1"].double()
    w2, b2 = weights["w2"].double(), weights["b2"].double()
    state_scale = torch.as_tensor(scales.state, dtype=torch.float64)
    hidden_scale = scales.hidden

    folded = fold_first_layer(w1, angle, state_scale)
    # the perception is in integer units, so b1's step is s_w1 itself
    w1_scale = row_scales(folded, b1, 1.0)
    w2_scale = row_scales(w2, b2, hidden_scale)
    w1_steps = folded / w1_scale[:, None]
    b1_steps = b1 / w1_scale
    w2_steps = w2 / w2_scale[:, None]
    b2_steps = b2 / (w2_scale * hidden_scale)
    try:
        m1, shift1 = multipliers(w1_scale / hidden_scale)
        m2, shift2 = multipliers(w2_scale * hidden_scale / state_scale)
    except ValueError as exc:
        raise CheckpointError(f"cannot quantise these weights: {exc}") from None

    w1q, b1q, w2q, b2q = (_round_weights(w1_steps), _round_bias(b1_steps),
                          _round_weights(w2_steps), _round_bias(b2_steps))
    params = IntParams(
        w1=w1q.numpy().astype(np.int8), b1=b1q.numpy().astype(np.int32), m1=m1, shift1=shift1,
        w2=w2q.numpy().astype(np.int8), b2=b2q.numpy().astype(np.int32), m2=m2, shift2=shift2,
        hidden_zero_point=HIDDEN_ZERO_POINT,
        alive_threshold=alive_threshold(float(scales.state[ALPHA])),
        state_scale=scales.state, hidden_scale=hidden_scale)
    dtype = dtype or exact_dtype(params)
    torch_params = TorchIntParams.from_int_params(params, dtype)
    for name, shadow in (("w1", w1_steps), ("b1", b1_steps), ("w2", w2_steps), ("b2", b2_steps)):
        exact = getattr(torch_params, name)
        setattr(torch_params, name, straight_through(shadow.to(dtype), exact))
    return params, torch_params


def quantize_model(model, scales: Scales) -> IntParams:
    """Post-training quantisation of a CAModel with the given scales."""
    with torch.no_grad():
        return quantize_weights(float_weights(model), model.angle, scales)[0]


def dequantized_ratios(params: IntParams) -> dict:
    """The real ratios the genome's multipliers stand for (for reports and tests)."""
    return {"m1": requantize_ratio(params.m1, params.shift1),
            "m2": requantize_ratio(params.m2, params.shift2)}
