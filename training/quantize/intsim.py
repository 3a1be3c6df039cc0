"""cellsim.intspec.step_grid_sync in torch, batched over (B, C, H, W): the same
integers, bit for bit, fast enough for int8 rollouts of whole batches, and
differentiable with straight-through estimators so that quantisation-aware
training's forward pass IS the integer arithmetic of the genome.

Values live in float tensors that hold integers. Every sum stays below 2^24 in
magnitude for the parameters the quantiser makes (float32 is then exact in any
summation order); other parameters (tests draw biases anywhere in int32) switch
to float64, exact to 2^53. Requantisation runs in int64 like the reference."""
from dataclasses import dataclass

import numba
import numpy as np
import torch
import torch.nn.functional as F

from cellsim.intspec import IntParams
from cellsim.intspec.layout import ALPHA
from cellsim.intspec.perceive import GRADIENT_FILTERS, GRADIENT_SHIFT, check_filters, rounding

FLOAT32_EXACT = 1 << 24


class StraightThrough(torch.autograd.Function):
    """Forward gives `exact`; backward hands the gradient to `shadow` unchanged.

    `shadow` is the real-valued expression `exact` rounds (w / s before round(),
    acc * M before requantisation), so d exact / d shadow is taken as 1."""

    @staticmethod
    def forward(ctx, shadow, exact):
        return exact.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def straight_through(shadow: torch.Tensor | None, exact: torch.Tensor) -> torch.Tensor:
    if shadow is None or not (torch.is_grad_enabled() and shadow.requires_grad):
        return exact
    return StraightThrough.apply(shadow, exact)


@dataclass
class TorchIntParams:
    """An IntParams as torch tensors. w1, b1, w2, b2 are float tensors holding the
    integers (they may carry straight-through gradients to float weights);
    ratio1, ratio2 are the real requantisation ratios m * 2^(shift-31), used only
    by gradients."""
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    m1: torch.Tensor
    shift1: torch.Tensor
    m2: torch.Tensor
    shift2: torch.Tensor
    ratio1: torch.Tensor
    ratio2: torch.Tensor
    hidden_zero_point: int
    alive_threshold: int

    @classmethod
    def from_int_params(cls, p: IntParams, dtype: torch.dtype | None = None) -> "TorchIntParams":
        dtype = dtype or exact_dtype(p)

        def real(a):
            return torch.as_tensor(np.asarray(a, np.float64)).to(dtype)

        def whole(a):
            return torch.as_tensor(np.asarray(a, np.int64))

        return cls(w1=real(p.w1), b1=real(p.b1), w2=real(p.w2), b2=real(p.b2),
                   m1=whole(p.m1), shift1=whole(p.shift1), m2=whole(p.m2), shift2=whole(p.shift2),
                   ratio1=real(requantize_ratio(p.m1, p.shift1)),
                   ratio2=real(requantize_ratio(p.m2, p.shift2)),
                   hidden_zero_point=int(p.hidden_zero_point),
                   alive_threshold=int(p.alive_threshold))

    @property
    def dtype(self) -> torch.dtype:
        return self.w1.dtype


def requantize_ratio(multiplier, shift) -> np.ndarray:
    """The real ratio M = m * 2^(shift - 31) a multiplier and shift stand for."""
    return np.ldexp(np.asarray(multiplier, np.float64), np.asarray(shift, np.int64) - 31)


def accumulator_bounds(p: IntParams) -> tuple[int, int]:
    """Worst-case |accumulator| of each layer, over all int8 inputs."""
    reach1, reach2 = p.products_reach()
    return (int((reach1 + np.abs(p.b1.astype(np.int64))).max()),
            int((reach2 + np.abs(p.b2.astype(np.int64))).max()))


def exact_dtype(p: IntParams) -> torch.dtype:
    """float32 when every partial sum is an integer below 2^24, else float64."""
    return torch.float32 if max(accumulator_bounds(p)) < FLOAT32_EXACT else torch.float64


@numba.njit(cache=True)
def _requantize_rows(acc, multiplier, shift, offset, lo, hi, out):
    """out[i, j] = clamp(requantize(acc[i, j], multiplier[j], shift[j]) + offset, lo, hi),
    the single-rounding rule of cellsim.intspec.requantize, fused in one pass
    (torch's int64 elementwise ops made this the slowest part of a step)."""
    rows, cols = acc.shape
    for i in range(rows):
        for j in range(cols):
            total_shift = 31 - shift[j]
            value = (np.int64(acc[i, j]) * multiplier[j] + (np.int64(1) << (total_shift - 1))) >> total_shift
            out[i, j] = min(max(value + offset, lo), hi)


def requantize_exact(acc: torch.Tensor, multiplier: torch.Tensor, shift: torch.Tensor,
                     offset: int = 0, lo: int = -(1 << 62), hi: int = 1 << 62) -> torch.Tensor:
    """clamp(cellsim.intspec.requantize(acc) + offset, lo, hi) on an integer-valued
    tensor whose last axis is the output channel; same dtype as acc."""
    flat = acc.detach().reshape(-1, acc.shape[-1]).contiguous().numpy()
    out = np.empty_like(flat)
    _requantize_rows(flat, multiplier.numpy(), shift.numpy(), offset, lo, hi, out)
    return torch.from_numpy(out).reshape(acc.shape)


def requantize(acc: torch.Tensor, multiplier, shift, ratio, offset: int, lo: int, hi: int) -> torch.Tensor:
    """Exact requantisation, offset and clamp in the forward pass; gradient as if
    clamp(acc * ratio + offset) (zero where the clamp saturates)."""
    exact = requantize_exact(acc, multiplier, shift, offset, lo, hi)
    if not (torch.is_grad_enabled() and acc.requires_grad):
        return exact
    shadow = torch.clamp(acc * ratio + offset, lo, hi)
    return straight_through(shadow, exact)


def _neighbour(padded: torch.Tensor, dy: int, dx: int, h: int, w: int) -> torch.Tensor:
    """The (B, H, W, C) view of the neighbour at offset (dy - 1, dx - 1)."""
    return padded[:, dy:dy + h, dx:dx + w]


def pad_cells(x: torch.Tensor, torus: bool) -> torch.Tensor:
    """(B, H, W, C) -> (B, H+2, W+2, C), zeros outside the grid unless `torus`."""
    chw = x.permute(0, 3, 1, 2)
    padded = F.pad(chw, (1, 1, 1, 1), mode="circular" if torus else "constant")
    return padded.permute(0, 2, 3, 1)


def gradient_sums(x: torch.Tensor, torus: bool, filters=GRADIENT_FILTERS) -> tuple[torch.Tensor, ...]:
    """Integer sums of every channel under each gradient filter
    (cellsim.intspec.perceive), as scaled adds (exact, unlike a conv library
    free to pick Winograd-style transforms)."""
    taps, _ = check_filters(filters)
    h, w = x.shape[1:3]
    padded = pad_cells(x, torus)
    sums = [torch.zeros_like(x) for _ in taps]
    for dy in range(3):
        for dx in range(3):
            if taps[:, dy, dx].any():
                cell = _neighbour(padded, dy, dx, h, w)
                for f, weight in enumerate(map(int, taps[:, dy, dx])):
                    if weight:
                        sums[f] = sums[f] + weight * cell
    return tuple(sums)


def perceive(x: torch.Tensor, torus: bool, filters=GRADIENT_FILTERS,
             shift: int = GRADIENT_SHIFT) -> torch.Tensor:
    """(B, H, W, C) int8-valued states -> (B, H, W, 3C): [q | gx | gy] where
    g = saturate((S + 2^(shift-1)) >> shift) of each gradient filter's sum S,
    cellsim.intspec.perceive; gradient as if g = S / 2^shift."""
    _, shift = check_filters(filters, shift)
    half = rounding(shift)
    divisor = 1 << shift
    grads = []
    for g in gradient_sums(x, torus, filters):
        exact = torch.clamp(torch.floor((g.detach() + half) / divisor), -128, 127)
        shadow = torch.clamp(g / divisor, -128, 127) if g.requires_grad else None
        grads.append(straight_through(shadow, exact))
    return torch.cat([x] + grads, dim=-1)


def _max3x3(plane: torch.Tensor, torus: bool) -> torch.Tensor:
    """(B, H, W) -> max over each 3x3 neighbourhood; outside is 0 unless `torus`."""
    padded = F.pad(plane[:, None], (1, 1, 1, 1), mode="circular" if torus else "constant")
    return F.max_pool2d(padded, 3, stride=1)[:, 0]


def live_cells(alpha: torch.Tensor, threshold: int, torus: bool) -> torch.Tensor:
    """(B, H, W) alpha -> bool: some cell of the 3x3 neighbourhood has alpha > threshold."""
    return _max3x3(alpha.detach(), torus) > threshold


def update_delta(p: TorchIntParams, perception: torch.Tensor) -> torch.Tensor:
    """(N, 3C) integer perceptions -> the saturated int8 deltas (N, C)."""
    acc1 = F.linear(perception, p.w1, p.b1)
    zp = p.hidden_zero_point
    hidden = requantize(acc1, p.m1, p.shift1, p.ratio1, zp, zp, 127)
    acc2 = F.linear(hidden - zp, p.w2, p.b2)
    return requantize(acc2, p.m2, p.shift2, p.ratio2, 0, -128, 127)


def step_cells(p: TorchIntParams, x: torch.Tensor, fire_mask: torch.Tensor, torus: bool) -> torch.Tensor:
    """One synchronous masked step in (B, H, W, C) layout; fire_mask (B, H, W) bool.

    Only cells that fired within one cell of a live one run the network: any
    other update is either not applied or zeroed without being seen (a cell's
    post-update alpha feeds its neighbours' alive test, hence "within one")."""
    channels = x.shape[-1]
    pre_live = live_cells(x[..., ALPHA], p.alive_threshold, torus)
    near_live = _max3x3(pre_live.to(x.dtype), torus) > 0
    rows = (fire_mask & near_live).reshape(-1).nonzero().squeeze(1)
    flat = x.reshape(-1, channels)
    perception = perceive(x, torus).reshape(-1, 3 * channels).index_select(0, rows)
    fired = torch.clamp(flat.index_select(0, rows) + update_delta(p, perception), -128, 127)
    new = flat.index_copy(0, rows, fired).view_as(x)
    live = pre_live & live_cells(new[..., ALPHA], p.alive_threshold, torus)
    return new * live[..., None].to(new.dtype)


def step(p: TorchIntParams, state: torch.Tensor, fire_mask: torch.Tensor, torus: bool = False) -> torch.Tensor:
    """cellsim.intspec.step_grid_sync on a batch: state (B, C, H, W) holding int8
    values (any float dtype; computed in p.dtype), fire_mask (B, 1, H, W) or
    (B, H, W) bool -> next state (B, C, H, W)."""
    mask = fire_mask.reshape(state.shape[0], *state.shape[2:]).bool()
    cells = state.to(p.dtype).permute(0, 2, 3, 1).contiguous()
    return step_cells(p, cells, mask, torus).permute(0, 3, 1, 2)


def seed_states(p: IntParams, batch: int, height: int, width: int, dtype=torch.float32) -> torch.Tensor:
    """(B, C, H, W) int8-valued seeds: zero but the centre cell (IntParams.seed_state)."""
    x = torch.zeros(batch, p.channels, height, width, dtype=dtype)
    x[:, :, height // 2, width // 2] = torch.as_tensor(p.seed_state().astype(np.float64)).to(dtype)
    return x
