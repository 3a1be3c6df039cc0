"""The sync clock is the training step: on a grid whose mailboxes agree with the
states, one step of either engine equals cellsim.intspec.step_grid_sync with the
cells' own fire mask."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.intspec import layout, step_grid_sync
from cellsim.sim import Grid
from strategies import int_params


def update_counts(grid):
    return grid.ram[..., layout.COUNT:layout.COUNT + 4].copy().view("<u4")[..., 0]


@settings(max_examples=25, deadline=None)
@given(int_params(channels=st.just(16)), st.integers(3, 7), st.integers(3, 7), st.booleans(),
       st.integers(0, 2 ** 32 - 1), st.sampled_from(["reference", "fast"]))
def test_sync_steps_equal_the_integer_training_step(params, height, width, torus, seed, engine):
    rng = np.random.default_rng(seed)
    grid = Grid(params, (height, width), clock="sync", torus=torus, seed=seed, engine=engine)
    states = rng.integers(-128, 128, (height, width, 16)).astype(np.int8)
    states[..., 3] = rng.integers(-20, 30, (height, width))  # some alive, some not
    grid.set_states(states)
    for step in range(3):
        before, counted = grid.states(), update_counts(grid)
        grid.run(until=step + 1)
        fired = update_counts(grid) != counted
        assert np.array_equal(grid.states(), step_grid_sync(params, before, fired, torus))
        for k, (dy, dx) in enumerate(layout.NEIGHBOUR_OFFSETS):  # mailboxes agree again
            heard = layout.mailbox(grid.ram)[:, :, k]
            sent = np.roll(grid.states(), (-dy, -dx), axis=(0, 1))
            if not torus:
                inside = np.zeros((height, width), bool)
                inside[max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)] = True
                sent = np.where(inside[..., None], sent, 0)
            assert np.array_equal(heard, sent)
