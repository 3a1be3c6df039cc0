"""One cell update in integers, composed from the per-operation modules.

new state = saturate(state + FC2(ReLU(FC1(perceive(neighbourhood))))),
zeroed unless some neighbour was alive before and is alive after."""
import numpy as np

from . import layout
from .alive import is_alive
from .fully_connected import accumulate, fully_connected
from .perceive import perceive
from .requantize import requantize, saturate


def hidden_activations(p: "IntParams", perception) -> np.ndarray:
    """First layer with ReLU: (..., 48) int8 -> (..., hidden) int8."""
    zp = p.hidden_zero_point
    return fully_connected(perception, p.w1, p.b1, 0, p.m1, p.shift1, zp, zp, 127)


def output_accumulators(p: "IntParams", hidden) -> np.ndarray:
    """Second layer before requantisation: (..., hidden) int8 -> (..., channels) int64."""
    return accumulate(hidden, p.w2, p.b2, -p.hidden_zero_point)


def residual(p: "IntParams", state, acc2) -> np.ndarray:
    """state + requantised delta, each saturated to int8 (CMSIS elementwise add)."""
    delta = saturate(requantize(acc2, p.m2, p.shift2))
    return saturate(state.astype(np.int32) + delta)


def update_cell(p: "IntParams", neighbourhood) -> np.ndarray:
    """(..., 3, 3, C) int8 neighbourhood (centre = own state) -> new own state (..., C)."""
    n = np.asarray(neighbourhood, np.int8)
    alphas = n[..., layout.ALPHA].reshape(n.shape[:-3] + (9,))
    state = n[..., 1, 1, :]
    new = residual(p, state, output_accumulators(p, hidden_activations(p, perceive(n))))
    post = alphas.copy()
    post[..., 4] = new[..., layout.ALPHA]
    live = is_alive(alphas, p.alive_threshold) & is_alive(post, p.alive_threshold)
    return np.where(live[..., None], new, np.int8(0)).astype(np.int8)


def update_ram(p: "IntParams", ram) -> np.ndarray:
    """The whole effect of one update on a cell's 256 bytes; returns a new array.

    A cell with no live neighbour (itself included) skips the network: its state
    becomes zero and its scratch is left as it was. Otherwise the scratch ends
    holding this update's gradients and second-layer accumulators."""
    out = np.array(ram, dtype=np.uint8, copy=True)
    assert out.shape == (layout.RAM_BYTES,)
    count = layout.u32(out, layout.COUNT)
    count[0] = np.uint32((int(count[0]) + 1) & 0xFFFFFFFF)
    n = layout.neighbourhood(out)
    state = layout.state(out)
    if not is_alive(n[..., layout.ALPHA].reshape(9), p.alive_threshold):
        state[:] = 0
        return out
    perception = perceive(n)
    out[layout.PERCEPTION:layout.PERCEPTION + perception.size] = perception.view(np.uint8)
    acc2 = output_accumulators(p, hidden_activations(p, perception))
    out[layout.ACC:layout.ACC + 4 * acc2.size] = acc2.astype("<i4").view(np.uint8)
    state[:] = update_cell(p, n)
    return out
