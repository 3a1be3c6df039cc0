"""The training engine: CAModel's step, reformulated for speed, tested equal to it.

Same maths as training/model.py, changed in form: states are channels-last
(B, H, W, C) so the MLP is two plain matrix products; the MLP runs only on the
cells whose update can reach the output (fired, and within one cell of a live
one); and the backward pass is written by hand, reusing the forward's
activations; the first layer's bias is a column of its matrix, fed by a
constant input, which saves two passes over the hidden activations. The grid-wide parts (perception, masks, their transposes) come in
two interchangeable backends: TorchOps (any device) and NumbaOps (CPU, one
fused pass each)."""
import ctypes
import ctypes.util
import math

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from cellsim.intspec.perceive import FLOAT_DIVISOR, GRADIENT_FILTERS

from .model import ALIVE_THRESHOLD, ALPHA, CAModel


def tune_cpu_allocator() -> bool:
    """Keep freed tensor memory in the heap (glibc) instead of unmapping it.

    Every step allocates activations of several MB; by default glibc maps each
    from the kernel afresh and pays a page fault per 4 KB on first touch, which
    costs as much as the arithmetic. Returns whether the setting took."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    largest_heap_chunk = 32 << 20  # glibc's upper limit for the mmap threshold
    return bool(mallopt(m_mmap_threshold, largest_heap_chunk)) and bool(mallopt(m_trim_threshold, 1 << 30))


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def to_channels_first(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).contiguous()


# ---- the torch backend ---------------------------------------------------------

def pad(x: torch.Tensor, torus: bool) -> torch.Tensor:
    """(B, H, W, C) -> (B, H+2, W+2, C), zeros outside or wrapped around."""
    if torus:
        x = torch.cat([x[:, -1:], x, x[:, :1]], dim=1)
        return torch.cat([x[:, :, -1:], x, x[:, :, :1]], dim=2)
    return F.pad(x, (0, 0, 1, 1, 1, 1))


class FilterPlan(NamedTuple):
    """One gradient filter as apply_filter runs it, read as taps / divisor: when
    the taps are separable (rank_one_factors), two 1-D passes of three taps, the
    row along W then the column along H; else one pass over the 3x3 window. A
    pass is (slides along H, slides along W, its nonzero taps ((dy, dx, weight),
    ...) in the order they are summed)."""
    taps: tuple
    scale: float
    passes: tuple


def rank_one_factors(taps) -> tuple[tuple, tuple] | None:
    """Integer (column, row) with outer(column, row) == taps for a rank-one integer
    3x3 filter, or None. The row is the first nonzero row of taps divided by the
    gcd of its entries (up to sign), so it is primitive and every column factor
    an integer."""
    k = np.asarray(taps, np.int64)
    nonzero = [i for i in range(3) if k[i].any()]
    if not nonzero:
        return None
    row = k[nonzero[0]] // np.gcd.reduce(np.abs(k[nonzero[0]]))
    j = int(np.flatnonzero(row)[0])
    column = k[:, j] // row[j]
    if not np.array_equal(np.outer(column, row), k):
        return None
    if not (row > 0).any() or not (column > 0).any():
        column, row = -column, -row  # a positive term to start each pass from
    return tuple(map(int, column)), tuple(map(int, row))


def _summation_order(terms) -> tuple:
    """The nonzero terms, the first positive one first: the sum then starts
    without a negation (for Sobel the operations of the sums written out, so the
    same bits)."""
    terms = [t for t in terms if t[2]]
    first = next((i for i, t in enumerate(terms) if t[2] > 0), 0)
    return tuple(terms[first:first + 1] + terms[:first] + terms[first + 1:])


def plan_filter(taps, divisor: float) -> FilterPlan:
    taps = tuple(tuple(int(t) for t in r) for r in np.asarray(taps))
    factors = rank_one_factors(taps)
    if factors is not None:
        column, row = factors
        passes = ((False, True, _summation_order((0, dx, row[dx]) for dx in range(3))),
                  (True, False, _summation_order((dy, 0, column[dy]) for dy in range(3))))
    else:
        passes = ((True, True, _summation_order((dy, dx, taps[dy][dx])
                                                for dy in range(3) for dx in range(3))),)
    return FilterPlan(taps, 1.0 / divisor, passes)


class GradientFilters(NamedTuple):
    """The gradient filters of perceive, and their flipped copies, which
    perceive_adjoint applies: the transpose of a same-size correlation (zero or
    circular padding) is the correlation with the kernel turned half a turn."""
    forward: tuple
    adjoint: tuple


def gradient_filters(filters=GRADIENT_FILTERS, divisor: float = FLOAT_DIVISOR) -> GradientFilters:
    """Plans for integer gradient taps (2, 3, 3) read as taps / divisor (cellsim.intspec.perceive)."""
    taps = np.asarray(filters)
    return GradientFilters(tuple(plan_filter(k, divisor) for k in taps),
                           tuple(plan_filter(k[::-1, ::-1], divisor) for k in taps))


SPEC_FILTERS = gradient_filters()


def apply_filter(x: torch.Tensor, plan: FilterPlan, torus: bool) -> torch.Tensor:
    """(B, H, W, C) -> the correlation with the plan's taps * scale, same size,
    zeros outside or wrapped around. Weights +-1 are adds and subtracts."""
    if not plan.passes[0][2]:
        return torch.zeros_like(x)
    total = pad(x, torus)
    for along_h, along_w, terms in plan.passes:
        h = total.shape[1] - 2 if along_h else total.shape[1]
        w = total.shape[2] - 2 if along_w else total.shape[2]
        views = [(weight, total[:, dy:dy + h, dx:dx + w]) for dy, dx, weight in terms]
        total = None
        for weight, view in views:
            term = view if abs(weight) == 1 else abs(weight) * view
            if total is None:
                total = term if weight > 0 else -term
            else:
                total = total + term if weight > 0 else total - term
    return total * plan.scale


def perceive(x: torch.Tensor, angle: float, torus: bool,
             filters: GradientFilters = SPEC_FILTERS) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, 3C) ordered [state | Kx | Ky]; first_layer()
    permutes the model's w1 columns to match."""
    gx, gy = (apply_filter(x, plan, torus) for plan in filters.forward)
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        gx, gy = c * gx - s * gy, s * gx + c * gy
    return torch.cat([x, gx, gy], dim=-1)


def perceive_adjoint(grad: torch.Tensor, angle: float, torus: bool,
                     filters: GradientFilters = SPEC_FILTERS) -> torch.Tensor:
    """The transpose of perceive: g_state + Kx^T g_x + Ky^T g_y, K^T the flipped
    kernel (for Sobel the negated one)."""
    g_state, g_x, g_y = grad.chunk(3, dim=-1)
    if angle:  # Kx a + Ky b = Sx (c a + s b) + Sy (c b - s a)
        c, s = math.cos(angle), math.sin(angle)
        g_x, g_y = c * g_x + s * g_y, c * g_y - s * g_x
    flipped_x, flipped_y = filters.adjoint
    return g_state + apply_filter(g_x, flipped_x, torus) + apply_filter(g_y, flipped_y, torus)


def any_in_neighbourhood(values: torch.Tensor, threshold: float, torus: bool) -> torch.Tensor:
    """(B, H, W) -> bool: some value of the 3x3 neighbourhood > threshold.
    Zero padding equals max_pool2d's -inf padding as the threshold is >= 0."""
    v = values[:, None].to(torch.float32)
    if torus:
        pooled = F.max_pool2d(F.pad(v, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    else:
        pooled = F.max_pool2d(v, 3, stride=1, padding=1)
    return pooled[:, 0] > threshold


class TorchOps:
    """Grid-wide parts of a step in plain torch operations, on any device.

    gather_perception gives each listed cell's perception plus a constant 1
    (n, 3C + 1), so that the first layer's bias rides in its matrix product."""

    @staticmethod
    def select_rows(x, fire, torus):
        pre_life = any_in_neighbourhood(x[..., ALPHA], ALIVE_THRESHOLD, torus)
        near_life = any_in_neighbourhood(pre_life, 0.0, torus)
        return pre_life, (fire & near_life).view(-1).nonzero().view(-1)

    @staticmethod
    def gather_perception(x, rows, angle, torus):
        inputs = perceive(x, angle, torus).view(-1, 3 * x.shape[-1]).index_select(0, rows)
        return torch.cat([inputs, inputs.new_ones(len(rows), 1)], dim=1)

    @staticmethod
    def apply_update(x, rows, delta, pre_life, torus):
        updated = x.reshape(-1, x.shape[-1]).index_add(0, rows, delta).view_as(x)
        life = pre_life & any_in_neighbourhood(updated[..., ALPHA], ALIVE_THRESHOLD, torus)
        return updated * life[..., None], life

    @staticmethod
    def scatter_perception_grad(grad_state, rows, grad_inputs, angle, torus):
        grad_perception = grad_inputs.new_zeros(grad_state.shape[:-1] + (grad_inputs.shape[1],))
        grad_perception.view(-1, grad_inputs.shape[1]).index_copy_(0, rows, grad_inputs)
        return grad_state + perceive_adjoint(grad_perception, angle, torus)


class NumbaOps:
    """The same four operations as TorchOps, by the kernels of cpu_kernels,
    on as many threads as torch uses."""

    @staticmethod
    def _kernels():
        from . import cpu_kernels
        return cpu_kernels

    @classmethod
    def select_rows(cls, x, fire, torus):
        pre_life, rows = cls._kernels().select_rows(x.numpy(), fire.numpy(), torus)
        return torch.from_numpy(pre_life), torch.from_numpy(rows)

    @classmethod
    def gather_perception(cls, x, rows, angle, torus):
        return torch.from_numpy(cls._kernels().gather_perception(
            x.numpy(), rows.numpy(), math.cos(angle), math.sin(angle), torus, torch.get_num_threads()))

    @classmethod
    def apply_update(cls, x, rows, delta, pre_life, torus):
        out, life = cls._kernels().apply_update(x.numpy(), rows.numpy(), delta.numpy(), pre_life.numpy(), torus)
        return torch.from_numpy(out), torch.from_numpy(life)

    @classmethod
    def scatter_perception_grad(cls, grad_state, rows, grad_inputs, angle, torus):
        return torch.from_numpy(cls._kernels().scatter_perception_grad(
            grad_state.numpy(), rows.numpy(), grad_inputs.numpy(), math.cos(angle), math.sin(angle), torus,
            torch.get_num_threads()))


def ops_for(device: torch.device):
    return NumbaOps if device.type == "cpu" else TorchOps


# ---- the step ------------------------------------------------------------------

class _Step(torch.autograd.Function):
    """One masked stochastic step on channels-last states.

    A cell's update can only reach the output if it fired and a cell of its 3x3
    neighbourhood (itself included) is alive before the step: otherwise the
    pre-life mask zeroes it and every neighbour whose post-life it could decide.
    Only those rows go through the MLP. The backward pass needs just the saved
    perception rows and hidden activations of those cells."""

    @staticmethod
    def forward(ctx, x, fire, w1, w2, b2, angle, torus, ops):
        x, fire = x.detach().contiguous(), fire.contiguous()
        pre_life, rows = ops.select_rows(x, fire, torus)
        inputs = ops.gather_perception(x, rows, angle, torus)
        hidden = (inputs @ w1.T).relu_()
        delta = torch.addmm(b2, hidden, w2.T)
        out, life = ops.apply_update(x, rows, delta, pre_life, torus)
        ctx.save_for_backward(rows, inputs, hidden, life, w1, w2)
        ctx.angle, ctx.torus, ctx.ops = angle, torus, ops
        return out

    @staticmethod
    def backward(ctx, grad_out):
        rows, inputs, hidden, life, w1, w2 = ctx.saved_tensors
        grad_updated = (grad_out * life[..., None]).contiguous()
        grad_delta = grad_updated.view(-1, grad_updated.shape[-1]).index_select(0, rows)
        grad_inputs, grad_w1 = _first_layer_backward(grad_delta, w2, hidden, inputs, w1)
        grad_x = ctx.ops.scatter_perception_grad(grad_updated, rows, grad_inputs, ctx.angle, ctx.torus)
        return (grad_x, None, grad_w1, grad_delta.T @ hidden, grad_delta.sum(0), None, None, None)


BACKWARD_ROWS_PER_BLOCK = 2048  # a block's hidden gradient (1 MB) stays in cache for its three uses


def _first_layer_backward(grad_delta, w2, hidden, inputs, w1):
    """Gradients of the first layer's inputs (without the bias column) and of
    [w1 | b1], block by block of cells: the hidden-layer gradient is made,
    masked by the ReLU and used twice while in cache, instead of making three
    passes over memory."""
    grad_inputs = inputs.new_empty(inputs.shape[0], w1.shape[1] - 1)
    grad_w1 = torch.zeros_like(w1)
    for first in range(0, inputs.shape[0], BACKWARD_ROWS_PER_BLOCK):
        block = slice(first, first + BACKWARD_ROWS_PER_BLOCK)
        grad_hidden = torch.ops.aten.threshold_backward(grad_delta[block] @ w2, hidden[block], 0.0)
        torch.mm(grad_hidden, w1[:, :-1], out=grad_inputs[block])   # the bias column has no input
        grad_w1.addmm_(grad_hidden.T, inputs[block])
    return grad_inputs, grad_w1


def first_layer(model: CAModel) -> torch.Tensor:
    """[w1 | b1] as one (hidden, 3C + 1) matrix, w1's columns reordered from the
    model's interleaved 3*c + filter to perceive()'s filter*C + c."""
    c = model.channels
    order = torch.arange(3 * c).view(c, 3).T.reshape(-1)
    return torch.cat([model.w1.weight[:, :, 0, 0][:, order], model.w1.bias[:, None]], dim=1)


def fire_masks(model: CAModel, shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """The (B, H, W) random fire mask, drawn exactly as CAModel.forward draws its
    (B, 1, H, W) one (same numbers, same order)."""
    b, h, w = shape[:3]
    return torch.rand((b, 1, h, w), generator=generator, device=device).view(b, h, w) <= model.fire_rate


def run(model: CAModel, x: torch.Tensor, steps: int, generator: torch.Generator | None = None,
        fires=None, ops=None) -> torch.Tensor:
    """`steps` steps of CAModel.forward on channels-last x (B, H, W, C),
    differentiable in x and the weights. `fires` optionally gives each step's
    (B, H, W) fire mask; `ops` overrides the backend chosen for x's device."""
    ops = ops or ops_for(x.device)
    w1 = first_layer(model)
    w2, b2 = model.w2.weight[:, :, 0, 0], model.w2.bias
    angle, torus = float(model.angle), bool(model.torus)
    for k in range(steps):
        fire = fires[k] if fires is not None else fire_masks(model, x.shape, generator, x.device)
        x = _Step.apply(x, fire, w1, w2, b2, angle, torus, ops)
    return x
