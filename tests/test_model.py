"""Semantics of the float model (training/model.py) and the equality of the fast
training engine (training/fast.py) with it, values and gradients."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from training import fast
from training.model import ALPHA, CAModel, make_seed

SETTINGS = settings(max_examples=25, deadline=None)
BACKENDS = st.sampled_from([fast.TorchOps, fast.NumbaOps])

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def trained_like(seed: int, angle: float = 0.0, torus: bool = False, scale: float = 0.05) -> CAModel:
    """A model with a non-zero last layer, as after some training."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CAModel(angle=angle, torus=torus)
        torch.nn.init.normal_(model.w2.weight, std=scale)
        torch.nn.init.normal_(model.w2.bias, std=scale)
    return model


def random_state(seed: int, batch: int, height: int, width: int) -> torch.Tensor:
    """Seed plus a random blob, some alphas above and some below the threshold."""
    g = torch.Generator().manual_seed(seed)
    x = make_seed(batch, height, width)
    top, left = height // 4, width // 4
    blob = torch.rand(batch, 16, height // 2, width // 2, generator=g) * 1.2 - 0.3
    x[:, :, top:top + height // 2, left:left + width // 2] = blob
    return x


@SETTINGS
@given(seed=st.integers(0, 10_000), size=st.integers(3, 24), batch=st.integers(1, 3), ops=BACKENDS)
def test_first_step_of_a_fresh_model_changes_nothing(seed, size, batch, ops):
    torch.manual_seed(seed)
    model = CAModel()
    x = make_seed(batch, size, size)
    with torch.no_grad():
        assert torch.equal(model(x), x)
        assert torch.equal(fast.run(model, fast.to_channels_last(x), 1, ops=ops), fast.to_channels_last(x))


@SETTINGS
@given(seed=st.integers(0, 10_000), torus=st.booleans(), ops=BACKENDS)
def test_isolated_cells_below_the_alpha_threshold_die(seed, torus, ops):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 16, 12, 12, generator=g) * 2 - 1
    x[:, ALPHA] = torch.rand(2, 12, 12, generator=g) * 0.1  # every alpha <= 0.1: nobody is alive
    model = trained_like(seed, torus=torus, scale=0.5)
    with torch.no_grad():
        assert torch.equal(model(x), torch.zeros_like(x))
        assert torch.equal(fast.run(model, fast.to_channels_last(x), 1, ops=ops), torch.zeros(2, 12, 12, 16))


@SETTINGS
@given(row=st.integers(0, 11), col=st.integers(0, 11), dy=st.integers(-1, 1), dx=st.integers(-1, 1))
def test_a_live_neighbour_keeps_a_low_alpha_cell_alive(row, col, dy, dx):
    neighbour = (min(max(row + dy, 0), 11), min(max(col + dx, 0), 11))
    loner = ((row + 6) % 12, (col + 6) % 12)   # Chebyshev distance 6 from the live cell
    x = torch.zeros(1, 16, 12, 12)
    x[0, :, row, col] = 1.0
    if neighbour != (row, col):
        x[0, ALPHA, neighbour[0], neighbour[1]] = 0.05
    x[0, ALPHA, loner[0], loner[1]] = 0.05
    with torch.no_grad():
        y = CAModel()(x)  # zero update: only the alive masks act
    assert torch.equal(y[0, :, row, col], x[0, :, row, col])
    assert y[0, ALPHA, neighbour[0], neighbour[1]] == x[0, ALPHA, neighbour[0], neighbour[1]]
    assert y[0, ALPHA, loner[0], loner[1]] == 0


@SETTINGS
@given(seed=st.integers(0, 10_000), quarter_turns=st.integers(1, 3), torus=st.booleans(), ops=BACKENDS)
def test_rotated_perception_on_a_rotated_grid_gives_the_rotated_result(seed, quarter_turns, torus, ops):
    """Experiment 4: perception turned by k*90 degrees acting on the grid turned
    by k*90 degrees is the unturned result, turned."""
    model = trained_like(seed, torus=torus, scale=0.2)
    turned = CAModel(angle=quarter_turns * math.pi / 2, torus=torus)
    turned.load_state_dict(model.state_dict())
    x = random_state(seed, 2, 14, 14)
    fire = torch.rand(2, 1, 14, 14, generator=torch.Generator().manual_seed(seed)) < 0.5

    def rot(t):
        return torch.rot90(t, quarter_turns, dims=(2, 3))

    with torch.no_grad():
        expected = rot(model(x, fire_mask=fire))
        assert torch.allclose(turned(rot(x), fire_mask=rot(fire)), expected, atol=1e-5)
        fast_turned = fast.run(turned, fast.to_channels_last(rot(x)), 1, fires=rot(fire)[:, 0][None], ops=ops)
    assert torch.allclose(fast.to_channels_first(fast_turned), expected, atol=1e-5)


def _rollout_and_gradients(model, x, masks, ops=None):
    """Final state and gradients of a loss, by the model (ops None) or the engine."""
    model.zero_grad()
    x = x.clone().requires_grad_()
    if ops is None:
        y = x
        for mask in masks:
            y = model(y, fire_mask=mask)
    else:
        y = fast.to_channels_first(fast.run(model, fast.to_channels_last(x), len(masks),
                                            fires=[m[:, 0] for m in masks], ops=ops))
    loss = (y[:, :4] - 0.3).square().mean()
    loss.backward()
    return y.detach(), [p.grad.clone() for p in model.parameters()] + [x.grad.clone()]


@SETTINGS
@given(seed=st.integers(0, 10_000), angle=st.sampled_from([0.0, 0.4, -2.0]), torus=st.booleans(),
       height=st.integers(3, 16), width=st.integers(3, 16), steps=st.integers(1, 5), ops=BACKENDS)
def test_fast_engine_equals_the_model_in_values_and_gradients(seed, angle, torus, height, width, steps, ops):
    model = trained_like(seed, angle, torus, scale=0.1)
    x = random_state(seed, 2, height, width)
    g = torch.Generator().manual_seed(seed + 1)
    masks = [torch.rand(2, 1, height, width, generator=g) <= 0.5 for _ in range(steps)]
    y_ref, grads_ref = _rollout_and_gradients(model, x, masks)
    y_fast, grads_fast = _rollout_and_gradients(model, x, masks, ops)
    assert torch.allclose(y_fast, y_ref, atol=1e-5)
    for a, b in zip(grads_fast, grads_ref):
        # float32 sums in another order: errors scale with the largest entry, not each one
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()) + 1e-9)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), rows_per_block=st.integers(1, 40))
def test_gradients_do_not_depend_on_the_backward_block_size(seed, rows_per_block):
    model = trained_like(seed, scale=0.1)
    x = random_state(seed, 2, 9, 10)
    g = torch.Generator().manual_seed(seed + 1)
    masks = [torch.rand(2, 1, 9, 10, generator=g) <= 0.5 for _ in range(3)]
    _, grads_ref = _rollout_and_gradients(model, x, masks)
    saved = fast.BACKWARD_ROWS_PER_BLOCK
    try:
        fast.BACKWARD_ROWS_PER_BLOCK = rows_per_block
        _, grads_blocked = _rollout_and_gradients(model, x, masks, fast.NumbaOps)
    finally:
        fast.BACKWARD_ROWS_PER_BLOCK = saved
    for a, b in zip(grads_blocked, grads_ref):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4 * float(b.abs().max()) + 1e-9)


@SETTINGS
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 6), ops=BACKENDS)
def test_fast_run_draws_the_same_fire_masks_as_the_model(seed, steps, ops):
    model = trained_like(seed)
    x = random_state(seed, 2, 10, 11)
    y = x
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        y = model(y, generator=g)
    with torch.no_grad():
        y_fast = fast.run(model, fast.to_channels_last(x), steps, torch.Generator().manual_seed(seed), ops=ops)
    assert torch.allclose(fast.to_channels_first(y_fast), y.detach(), atol=1e-5)


def test_perceive_adjoint_is_the_transpose_of_perceive():
    g = torch.Generator().manual_seed(3)
    for torus in (False, True):
        for angle in (0.0, 1.1):
            x = torch.randn(2, 7, 9, 5, generator=g, dtype=torch.float64)
            v = torch.randn(2, 7, 9, 15, generator=g, dtype=torch.float64)
            lhs = (fast.perceive(x, angle, torus) * v).sum()
            rhs = (x * fast.perceive_adjoint(v, angle, torus)).sum()
            assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)


def test_seed_is_one_centre_cell_with_hidden_channels_on():
    x = make_seed(1, 9, 8)
    live = np.argwhere(x[0].abs().sum(0).numpy() > 0)
    assert live.tolist() == [[4, 4]]
    assert x[0, :3, 4, 4].tolist() == [0, 0, 0] and torch.all(x[0, 3:, 4, 4] == 1)


def test_model_has_the_papers_parameter_count():
    assert sum(p.numel() for p in CAModel().parameters()) == 8336


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 10_000), angle=st.sampled_from([0.0, 0.9]), torus=st.booleans())
def test_numba_kernels_split_over_threads_give_the_same_bits(seed, angle, torus):
    """Large inputs are split across threads (rows for the gather, whole samples
    for the scatter); the result must not depend on the split."""
    from training import cpu_kernels

    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 40, 41, 16, generator=g).numpy()
    rows = torch.nonzero(torch.rand(3 * 40 * 41, generator=g) < 0.9).view(-1).numpy()
    assert len(rows) >= cpu_kernels.PARALLEL_MIN_ROWS
    c, s = math.cos(angle), math.sin(angle)
    one = cpu_kernels.gather_perception(x, rows, c, s, torus, workers=1)
    two = cpu_kernels.gather_perception(x, rows, c, s, torus, workers=2)
    assert np.array_equal(one, two)
    reference = fast.TorchOps.gather_perception(torch.from_numpy(x), torch.from_numpy(rows), angle, torus)
    assert np.allclose(one, reference.numpy(), atol=1e-5)
    grad_inputs = torch.randn(len(rows), 48, generator=g).numpy()  # no gradient for the bias input
    one = cpu_kernels.scatter_perception_grad(x, rows, grad_inputs, c, s, torus, workers=1)
    two = cpu_kernels.scatter_perception_grad(x, rows, grad_inputs, c, s, torus, workers=3)
    assert np.array_equal(one, two)
    reference = fast.TorchOps.scatter_perception_grad(torch.from_numpy(x), torch.from_numpy(rows),
                                                      torch.from_numpy(grad_inputs), angle, torus)
    assert np.allclose(one, reference.numpy(), atol=1e-4)
