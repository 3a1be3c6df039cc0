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

import torch
import torch.nn.functional as F

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


def sobel_x(x: torch.Tensor, torus: bool) -> torch.Tensor:
    p = pad(x, torus)
    across = p[:, :, 2:] - p[:, :, :-2]                       # x[j+1] - x[j-1]
    return (across[:, :-2] + 2 * across[:, 1:-1] + across[:, 2:]) * 0.125


def sobel_y(x: torch.Tensor, torus: bool) -> torch.Tensor:
    p = pad(x, torus)
    smooth = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]   # [1 2 1] along each row
    return (smooth[:, 2:] - smooth[:, :-2]) * 0.125


def perceive(x: torch.Tensor, angle: float, torus: bool) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, 3C) ordered [state | Kx | Ky]; first_layer()
    permutes the model's w1 columns to match."""
    gx, gy = sobel_x(x, torus), sobel_y(x, torus)
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        gx, gy = c * gx - s * gy, s * gx + c * gy
    return torch.cat([x, gx, gy], dim=-1)


def perceive_adjoint(grad: torch.Tensor, angle: float, torus: bool) -> torch.Tensor:
    """The transpose of perceive. A flipped Sobel kernel is the negated kernel, so
    Kx^T = -Kx and Ky^T = -Ky: the gradient is g_state - Kx g_x - Ky g_y."""
    g_state, g_x, g_y = grad.chunk(3, dim=-1)
    if angle:  # Kx a + Ky b = Sx (c a + s b) + Sy (c b - s a)
        c, s = math.cos(angle), math.sin(angle)
        g_x, g_y = c * g_x + s * g_y, c * g_y - s * g_x
    return g_state - sobel_x(g_x, torus) - sobel_y(g_y, torus)


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
