"""The numba frame loops equal the numpy formulations they replace, bit for bit:
dequantised RGBA (int8 RAM bytes times float32 scales) and the picture on white
(target_images.to_rgb, dead cells grey)."""
import numpy as np
from hypothesis import given, settings, strategies as st

from cellsim.intspec import layout
from cellsim.sim.frame_kernels import dequantised, rgb_on_white
from cellsim.sim.render import DEAD_RGB
from cellsim.target_images import to_rgb


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 300), st.integers(1, 16))
def test_dequantised_equals_numpy(seed, cells, channels):
    rng = np.random.default_rng(seed)
    ram = rng.integers(-128, 128, (cells, layout.RAM_BYTES)).astype(np.int8)
    scales = (rng.random(16) * 0.05 + 1e-4).astype(np.float32)[:channels]
    expect = (layout.state(ram)[:, :channels] * scales).astype(np.float32, copy=False)
    got = dequantised(ram, layout.STATE, channels, scales)
    assert got.dtype == np.float32 and np.array_equal(got, expect)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2 ** 32 - 1), st.integers(1, 40), st.integers(1, 40))
def test_rgb_on_white_equals_to_rgb(seed, height, width):
    rng = np.random.default_rng(seed)
    rgba = (rng.random((height, width, 4)) * 3 - 1).astype(np.float32)  # outside [0, 1] too
    rgba[rng.random((height, width)) < 0.1] = 0.0
    dead = rng.random((height, width)) < 0.2
    expect = to_rgb(rgba.transpose(2, 0, 1))
    expect[dead] = DEAD_RGB
    assert np.array_equal(rgb_on_white(rgba, dead, DEAD_RGB), expect)
