"""The training engine: CAModel's step, reformulated for speed, tested equal to it.

Same maths as training/model.py, three changes of form: states are channels-last
(B, H, W, C) so the MLP is two plain matrix products; perception is shifted
adds instead of a grouped conv; and the MLP runs only on the cells whose update
can matter (fired, and within one cell of a live one), with a hand-written
backward that reuses the forward's activations."""
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
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    largest_heap_chunk = 32 << 20  # glibc's upper limit for the mmap threshold
    return bool(mallopt(m_mmap_threshold, largest_heap_chunk)) and bool(mallopt(m_trim_threshold, 1 << 30))


def pad(x: torch.Tensor, torus: bool) -> torch.Tensor:
    """(B, H, W, C) -> (B, H+2, W+2, C), zeros outside or wrapped around."""
    if torus:
        x = torch.cat([x[:, -1:], x, x[:, :1]], dim=1)
        return torch.cat([x[:, :, -1:], x, x[:, :, :1]], dim=2)
    return F.pad(x, (0, 0, 1, 1, 1, 1))


def sobel(x: torch.Tensor, torus: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Sobel-x/8 and Sobel-y/8 of every channel, as model.perception_kernels(0)."""
    p = pad(x, torus)
    across = p[:, :, 2:] - p[:, :, :-2]                       # x[j+1] - x[j-1], all rows
    gx = (across[:, :-2] + 2 * across[:, 1:-1] + across[:, 2:]) * 0.125
    smooth = p[:, :, :-2] + 2 * p[:, :, 1:-1] + p[:, :, 2:]   # [1 2 1] along each row
    gy = (smooth[:, 2:] - smooth[:, :-2]) * 0.125
    return gx, gy


def perceive(x: torch.Tensor, angle: float, torus: bool) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, 3C) ordered [state | Kx | Ky] (model's w1 columns
    are permuted to match, see first_layer)."""
    gx, gy = sobel(x, torus)
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
    sx, _ = sobel(g_x, torus)
    _, sy = sobel(g_y, torus)
    return g_state - sx - sy


def alive(x: torch.Tensor, torus: bool) -> torch.Tensor:
    """(B, H, W, C) -> (B, H, W, 1) bool: some alpha of the 3x3 neighbourhood > 0.1.

    Zero padding equals max_pool2d's -inf padding here because the threshold
    is positive."""
    alpha = x[..., ALPHA][:, None]
    if torus:
        alpha = F.pad(alpha, (1, 1, 1, 1), mode="circular")
        pooled = F.max_pool2d(alpha, 3, stride=1)
    else:
        pooled = F.max_pool2d(alpha, 3, stride=1, padding=1)
    return pooled[:, 0, :, :, None] > ALIVE_THRESHOLD


def near(mask: torch.Tensor, torus: bool) -> torch.Tensor:
    """(B, H, W, 1) bool -> cells whose 3x3 neighbourhood holds a True."""
    m = mask[..., 0][:, None].to(torch.float32)
    if torus:
        pooled = F.max_pool2d(F.pad(m, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    else:
        pooled = F.max_pool2d(m, 3, stride=1, padding=1)
    return pooled[:, 0, :, :, None] > 0


def first_layer(model: CAModel) -> tuple[torch.Tensor, torch.Tensor]:
    """w1 as a (hidden, 3C) matrix with columns reordered from the model's
    interleaved 3*c + filter to perceive()'s filter*C + c; and b1."""
    c = model.channels
    order = torch.arange(3 * c).view(c, 3).T.reshape(-1)
    return model.w1.weight[:, :, 0, 0][:, order], model.w1.bias


class _Step(torch.autograd.Function):
    """One masked stochastic step on channels-last states.

    A cell's update only reaches the output where it fired and some neighbour
    was alive before the step (otherwise the pre-life mask zeroes the cell and
    all its neighbours); only those rows go through the MLP. The backward pass
    needs just the saved perception rows and hidden activations of those cells."""

    @staticmethod
    def forward(ctx, x, fire, w1, b1, w2, b2, angle, torus):
        cells = x.shape[0] * x.shape[1] * x.shape[2]
        pre_life = alive(x, torus)
        rows = (fire & near(pre_life, torus)).view(-1).nonzero().view(-1)
        inputs = perceive(x, angle, torus).view(cells, -1).index_select(0, rows)
        hidden = torch.addmm(b1, inputs, w1.T).relu_()
        delta = torch.addmm(b2, hidden, w2.T)
        updated = x.reshape(cells, -1).index_add(0, rows, delta).view_as(x)
        life = pre_life & alive(updated, torus)
        ctx.save_for_backward(rows, inputs, hidden, life, w1, w2)
        ctx.angle, ctx.torus = angle, torus
        return updated * life

    @staticmethod
    def backward(ctx, grad_out):
        rows, inputs, hidden, life, w1, w2 = ctx.saved_tensors
        grad_updated = grad_out * life
        grad_delta = grad_updated.reshape(-1, grad_updated.shape[-1]).index_select(0, rows)
        grad_hidden = (grad_delta @ w2).mul_(hidden > 0)
        grad_inputs = grad_hidden @ w1
        grad_perception = grad_out.new_zeros(grad_out.shape[:-1] + (w1.shape[1],))
        grad_perception.view(-1, w1.shape[1]).index_copy_(0, rows, grad_inputs)
        grad_x = grad_updated + perceive_adjoint(grad_perception, ctx.angle, ctx.torus)
        return (grad_x, None, grad_hidden.T @ inputs, grad_hidden.sum(0),
                grad_delta.T @ hidden, grad_delta.sum(0), None, None)


def fire_masks(model: CAModel, shape, generator: torch.Generator | None, device) -> torch.Tensor:
    """The (B, H, W, 1) random fire mask, drawn exactly as CAModel.forward does
    (its (B, 1, H, W) draw has the same element order)."""
    b, h, w = shape[:3]
    return torch.rand((b, 1, h, w), generator=generator, device=device).view(b, h, w, 1) <= model.fire_rate


def step(model: CAModel, x: torch.Tensor, fire: torch.Tensor | None = None,
         generator: torch.Generator | None = None) -> torch.Tensor:
    """CAModel.forward on a channels-last state (B, H, W, C)."""
    if fire is None:
        fire = fire_masks(model, x.shape, generator, x.device)
    w1, b1 = first_layer(model)
    return _Step.apply(x, fire, w1, b1, model.w2.weight[:, :, 0, 0], model.w2.bias,
                       float(model.angle), bool(model.torus))


def run(model: CAModel, x: torch.Tensor, steps: int,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """`steps` steps from channels-last x; differentiable in x and the weights."""
    w1, b1 = first_layer(model)
    w2, b2 = model.w2.weight[:, :, 0, 0], model.w2.bias
    for _ in range(steps):
        fire = fire_masks(model, x.shape, generator, x.device)
        x = _Step.apply(x, fire, w1, b1, w2, b2, float(model.angle), bool(model.torus))
    return x


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).contiguous()


def to_channels_first(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2).contiguous()
