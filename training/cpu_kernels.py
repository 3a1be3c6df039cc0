"""Numba kernels for the grid-wide parts of a training step on the CPU.

Each replaces a chain of torch operations in fast.TorchOps (pad, shifted adds,
concatenation, max pools, gathers and scatters, each a full pass over memory)
by one pass; fast.NumbaOps wraps them and the tests hold the two to the same
results. States are channels-last float32 (B, H, W, C); a row index is the
flat cell number b*H*W + i*W + j, as torch's nonzero gives it."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numba import njit

from cellsim.intspec.perceive import float_filters

from . import model

ALPHA, ALIVE_THRESHOLD = model.ALPHA, np.float32(model.ALIVE_THRESHOLD)
PARALLEL_MIN_ROWS = 4096


@njit(cache=True, inline="always")
def _neighbour(i, d, n, torus):
    """Index i+d on an axis of length n, or -1 outside a zero-padded grid."""
    k = i + d
    if torus:
        return k % n
    return k if 0 <= k < n else -1


@njit(cache=True, inline="always")
def _cell(row, h, w):
    """(b, i, j) of the flat cell number row = b*H*W + i*W + j."""
    return row // (h * w), (row // w) % h, row % w


@njit(cache=True, inline="always")
def _tap_cell(i, j, taps, t, h, w, torus):
    """(ii, jj): the cell tap t of _taps reaches from (i, j); ii or jj is -1
    outside a zero-padded grid."""
    return _neighbour(i, int(taps[t, 0]), h, torus), _neighbour(j, int(taps[t, 1]), w, torus)


SPEC_KERNELS = float_filters(0.0)[1:]  # Kx, Ky unrotated: the spec's gradient taps / 8


@njit(cache=True)
def _taps(cos_a, sin_a, kernels=SPEC_KERNELS):
    """The neighbour offsets with the weights of the rotated Kx and Ky there: rows
    (di, dj, wx, wy), float32; the centre only where a kernel weighs it (for
    Sobel it does not). `kernels`: (2, 3, 3) float64, Kx and Ky unrotated."""
    taps = np.zeros((9, 4), np.float32)
    k = 0
    for di in range(-1, 2):
        for dj in range(-1, 2):
            sx, sy = kernels[0, di + 1, dj + 1], kernels[1, di + 1, dj + 1]
            if di == 0 and dj == 0 and sx == 0 and sy == 0:
                continue
            taps[k, 0], taps[k, 1] = di, dj
            taps[k, 2], taps[k, 3] = cos_a * sx - sin_a * sy, sin_a * sx + cos_a * sy
            k += 1
    return taps[:k].copy()  # C-contiguous: the kernels index it as such


@njit(cache=True)
def _alive(alpha, torus):
    """(B, H, W) alphas -> bool: some alpha of the 3x3 neighbourhood > 0.1."""
    b_n, h, w = alpha.shape
    out = np.zeros((b_n, h, w), np.bool_)
    for b in range(b_n):
        for i in range(h):
            for j in range(w):
                for di in range(-1, 2):
                    ii = _neighbour(i, di, h, torus)
                    if ii < 0:
                        continue
                    for dj in range(-1, 2):
                        jj = _neighbour(j, dj, w, torus)
                        if jj >= 0 and alpha[b, ii, jj] > ALIVE_THRESHOLD:
                            out[b, i, j] = True
                    if out[b, i, j]:
                        break
    return out


@njit(cache=True)
def select_rows(x, fire, torus):
    """The pre-life mask and the cells whose update can reach the output: fired,
    with a pre-alive cell in their 3x3 neighbourhood. Rows come out ascending."""
    pre_life = _alive(x[:, :, :, ALPHA], torus)
    near = _alive(pre_life.astype(np.float32), torus)
    wanted = fire & near
    return pre_life, np.flatnonzero(wanted.ravel()).astype(np.int64)


@njit(cache=True, nogil=True)
def _gather_perception(x, rows, taps, torus, out, first, stop):
    _, h, w, c_n = x.shape
    for r in range(first, stop):
        b, i, j = _cell(rows[r], h, w)
        for c in range(c_n):
            out[r, c] = x[b, i, j, c]
        for t in range(taps.shape[0]):
            ii, jj = _tap_cell(i, j, taps, t, h, w, torus)
            if ii >= 0 and jj >= 0:
                for c in range(c_n):
                    out[r, c_n + c] += taps[t, 2] * x[b, ii, jj, c]
                    out[r, 2 * c_n + c] += taps[t, 3] * x[b, ii, jj, c]


def gather_perception(x, rows, cos_a, sin_a, torus, workers=1, kernels=SPEC_KERNELS):
    """(n, 3C + 1): the perception of the listed cells, ordered [state | Kx | Ky],
    then a constant 1 that feeds the first layer's bias."""
    out = np.zeros((rows.shape[0], 3 * x.shape[3] + 1), np.float32)
    out[:, -1] = 1.0
    taps = _taps(cos_a, sin_a, kernels)
    _in_parallel(_threads_for(rows, workers), rows.shape[0],
                 lambda first, stop: _gather_perception(x, rows, taps, torus, out, first, stop))
    return out


@njit(cache=True)
def apply_update(x, rows, delta, pre_life, torus):
    """x plus each listed cell's delta, zeroed where no cell of the 3x3
    neighbourhood was alive before or is alive after. Returns (out, life)."""
    b_n, h, w, c_n = x.shape
    updated = x.copy()
    flat = updated.reshape(b_n * h * w, c_n)
    for r in range(rows.shape[0]):
        for c in range(c_n):
            flat[rows[r], c] += delta[r, c]
    life = pre_life & _alive(updated[:, :, :, ALPHA], torus)
    _zero_dead(updated, life)
    return updated, life


@njit(cache=True)
def _zero_dead(x, life):
    b_n, h, w, c_n = x.shape
    for b in range(b_n):
        for i in range(h):
            for j in range(w):
                if not life[b, i, j]:
                    for c in range(c_n):
                        x[b, i, j, c] = 0.0


@njit(cache=True, nogil=True)
def _scatter_perception_grad(out, rows, grad_inputs, taps, torus, first, stop):
    _, h, w, c_n = out.shape
    for r in range(first, stop):
        b, i, j = _cell(rows[r], h, w)
        for c in range(c_n):
            out[b, i, j, c] += grad_inputs[r, c]
        for t in range(taps.shape[0]):
            ii, jj = _tap_cell(i, j, taps, t, h, w, torus)
            if ii >= 0 and jj >= 0:
                for c in range(c_n):
                    out[b, ii, jj, c] += (taps[t, 2] * grad_inputs[r, c_n + c]
                                          + taps[t, 3] * grad_inputs[r, 2 * c_n + c])


def scatter_perception_grad(grad_state, rows, grad_inputs, cos_a, sin_a, torus, workers=1,
                            kernels=SPEC_KERNELS):
    """grad_state plus the transpose of gather_perception applied to grad_inputs.

    Threads take whole samples (rows ascend, so a sample's rows are contiguous):
    a cell only receives from cells of its own sample, so no two threads write
    one cell."""
    b_n, h, w, _ = grad_state.shape
    out = grad_state.copy()
    taps = _taps(cos_a, sin_a, kernels)
    sample_starts = np.searchsorted(rows, np.arange(b_n + 1) * (h * w))
    _in_parallel(_threads_for(rows, workers), b_n, lambda first, stop: _scatter_perception_grad(
        out, rows, grad_inputs, taps, torus, sample_starts[first], sample_starts[stop]))
    return out


def _threads_for(rows, workers: int) -> int:
    """Below a few thousand cells, handing work to threads costs more than it saves."""
    return workers if rows.shape[0] >= PARALLEL_MIN_ROWS else 1


def _in_parallel(workers: int, n: int, work) -> None:
    """Run work(first, stop) over [0, n) in `workers` contiguous parts on a
    thread pool (the kernels release the GIL), or inline when small. Plain
    threads that block when idle, unlike numba's parallel=True pools, whose
    spinning threads stall the rest of the process on a busy machine."""
    if workers <= 1 or n < 2:
        work(0, n)
        return
    parts = min(workers, n)
    bounds = [n * k // parts for k in range(parts + 1)]
    list(_pool(parts).map(work, bounds[:-1], bounds[1:]))


_POOLS = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cellsim-train")
    return _POOLS[workers]
