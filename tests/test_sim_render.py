"""render.gif_bytes: every frame comes back exactly when it has at most 256
colours, and closely when it has more (each frame has its own palette)."""
import io

import numpy as np
from hypothesis import given, settings, strategies as st
from PIL import Image, ImageSequence

from cellsim.sim import render


def decoded(data: bytes) -> list:
    with Image.open(io.BytesIO(data)) as gif:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 256), st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_frames_of_at_most_256_colours_come_back_exactly(colours, count, seed):
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        palette = rng.integers(0, 256, (colours, 3), dtype=np.uint8)
        frames.append(palette[rng.integers(0, colours, (40, 56))])
    back = decoded(render.gif_bytes(frames))
    assert len(back) == count
    for frame, got in zip(frames, back):
        np.testing.assert_array_equal(got, frame)


def test_a_many_coloured_frame_comes_back_close():
    noise = np.random.default_rng(0).integers(0, 256, (96, 96, 3), dtype=np.uint8)
    (back,) = decoded(render.gif_bytes([noise]))
    error = np.abs(back.astype(int) - noise)
    assert error.mean() < 16 and error.max() < 64
