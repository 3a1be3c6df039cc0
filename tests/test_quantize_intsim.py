"""The torch integer step equals cellsim.intspec.step_grid_sync bit for bit, with
and without the straight-through gradient machinery of quantisation-aware training."""
import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.intspec import step_grid_sync
from strategies import random_int_params, seeds
from training.quantize import intsim


def random_grid(rng, channels, height, width, live_fraction):
    grid = rng.integers(-128, 128, (height, width, channels)).astype(np.int8)
    dead = rng.random((height, width)) > live_fraction
    grid[dead] = 0
    return grid


def torch_step(params, grid, mask, torus, dtype=None):
    tp = intsim.TorchIntParams.from_int_params(params, dtype)
    state = torch.as_tensor(grid.astype(np.float64)).permute(2, 0, 1)[None]
    out = intsim.step(tp, state, torch.as_tensor(mask)[None, None], torus)
    return out[0].permute(1, 2, 0).numpy()


@settings(max_examples=60, deadline=None)
@given(seed=seeds, channels=st.integers(4, 8), hidden=st.integers(1, 24), extreme=st.booleans(),
       height=st.integers(1, 7), width=st.integers(1, 7), torus=st.booleans(),
       live_fraction=st.floats(0, 1), fire_rate=st.floats(0, 1))
def test_step_equals_integer_reference(seed, channels, hidden, extreme, height, width, torus,
                                       live_fraction, fire_rate):
    rng = np.random.default_rng(seed)
    params = random_int_params(rng, channels, hidden, extreme)
    grid = random_grid(rng, channels, height, width, live_fraction)
    mask = rng.random((height, width)) < fire_rate
    expected = step_grid_sync(params, grid, mask, torus)
    got = torch_step(params, grid, mask, torus)
    assert np.array_equal(got, expected.astype(np.float64))


@settings(max_examples=20, deadline=None)
@given(seed=seeds, torus=st.booleans())
def test_batched_rollout_of_paper_sized_params_is_exact_in_float32(seed, torus):
    """Realistic 16/128 parameters pick float32; several steps of a batch of two
    grids stay equal to the reference, each grid with its own fire masks."""
    rng = np.random.default_rng(seed)
    params = random_int_params(rng)
    tp = intsim.TorchIntParams.from_int_params(params)
    assert tp.dtype == torch.float32
    grids = [random_grid(rng, 16, 9, 8, 0.7) for _ in range(2)]
    state = torch.as_tensor(np.stack(grids).astype(np.float32)).permute(0, 3, 1, 2)
    for _ in range(4):
        masks = rng.random((2, 9, 8)) < 0.5
        state = intsim.step(tp, state, torch.as_tensor(masks)[:, None], torus)
        grids = [step_grid_sync(params, g, m, torus) for g, m in zip(grids, masks)]
        assert np.array_equal(state.permute(0, 2, 3, 1).numpy(), np.stack(grids).astype(np.float32))


@settings(max_examples=30, deadline=None)
@given(seed=seeds, torus=st.booleans())
def test_straight_through_forward_is_the_integer_step(seed, torus):
    """With gradients flowing to the state and the weights, the forward values are
    unchanged and gradients reach every float input."""
    rng = np.random.default_rng(seed)
    params = random_int_params(rng, 6, 12)
    grid = random_grid(rng, 6, 6, 5, 0.8)
    grid[..., 3] = np.abs(grid[..., 3])  # mostly live cells, so gradients reach the weights
    mask = rng.random((6, 5)) < 0.7
    tp = intsim.TorchIntParams.from_int_params(params)
    shadows = {}
    for name in ("w1", "b1", "w2", "b2"):
        exact = getattr(tp, name)
        shadow = (exact + torch.as_tensor(rng.uniform(-0.49, 0.49, exact.shape)).to(exact)).requires_grad_()
        shadows[name] = shadow
        setattr(tp, name, intsim.straight_through(shadow, exact))
    state = torch.as_tensor(grid.astype(np.float32)).permute(2, 0, 1)[None].requires_grad_()
    out = intsim.step(tp, state, torch.as_tensor(mask)[None, None], torus)
    expected = step_grid_sync(params, grid, mask, torus)
    assert np.array_equal(out[0].detach().permute(1, 2, 0).numpy(), expected.astype(np.float32))
    out.square().sum().backward()
    assert state.grad is not None and torch.isfinite(state.grad).all()
    for shadow in shadows.values():
        assert shadow.grad is not None and torch.isfinite(shadow.grad).all()


@settings(max_examples=30, deadline=None)
@given(seed=seeds, offset=st.integers(-128, 127))
def test_requantize_matches_reference_on_extreme_values(seed, offset):
    from cellsim.intspec import requantize
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << 31), 1 << 31, (300, 7))
    mult = rng.integers(1 << 30, 1 << 31, 7)
    mult[0] = 0
    shift = rng.integers(-31, 31, 7)
    expected = np.clip(requantize(acc, mult, shift) + offset, -128, 127)
    got = intsim.requantize_exact(torch.as_tensor(acc, dtype=torch.float64), torch.as_tensor(mult),
                                  torch.as_tensor(shift), offset, -128, 127)
    assert np.array_equal(got.numpy(), expected)
