"""Targets: the shipped emoji and user images become premultiplied RGBA grids
as the official notebook makes them; bad images give TargetError."""
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from cellsim.errors import TargetError
from cellsim.target_images import EMOJI, emoji_path, load_target, to_rgb


@pytest.mark.parametrize("name", sorted(EMOJI))
def test_every_official_emoji_ships_and_loads_as_a_40px_target(name):
    with Image.open(emoji_path(name)) as img:  # the font's bitmap, shrunk at load as the notebook does
        assert img.mode == "RGBA" and img.size[0] == img.size[1] >= 40
    grid = load_target(name)
    assert grid.shape == (4, 72, 72) and grid.dtype == np.float32
    assert np.all(grid[:3] <= grid[3:4] + 1e-6)           # premultiplied
    assert grid[3].max() > 0.9 and np.all(grid[:, :16] == 0) and np.all(grid[:, :, -16:] == 0)


@settings(max_examples=30, deadline=None)
@given(width=st.integers(8, 90), height=st.integers(8, 90), size=st.integers(8, 48),
       padding=st.integers(0, 10), seed=st.integers(0, 2 ** 32 - 1))
def test_user_images_are_shrunk_premultiplied_and_centred(tmp_path_factory, width, height, size, padding, seed):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    pixels[..., 3] = np.maximum(pixels[..., 3], 40)  # not transparent
    path = tmp_path_factory.mktemp("img") / "target.png"
    Image.fromarray(pixels, "RGBA").save(path)
    grid = load_target(str(path), size=size, padding=padding)
    side = size + 2 * padding
    assert grid.shape == (4, side, side)
    assert np.all((grid >= 0) & (grid <= 1)) and np.all(grid[:3] <= grid[3:4] + 1e-6)
    rows, cols = np.nonzero(grid[3] > 0)
    assert rows.min() >= padding and cols.min() >= padding
    assert rows.max() < side - padding and cols.max() < side - padding
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 == min(size, max(width, height))


def test_bad_targets_raise_target_error(tmp_path):
    with pytest.raises(TargetError, match="unknown emoji"):
        load_target("dragon")
    with pytest.raises(TargetError, match="does not exist"):
        load_target(str(tmp_path / "none.png"))
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(TargetError, match="not a readable image"):
        load_target(str(tmp_path / "bad.png"))
    Image.new("RGBA", (20, 20), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    with pytest.raises(TargetError, match="transparent"):
        load_target(str(tmp_path / "clear.png"))
    Image.new("RGBA", (7, 30), (10, 20, 30, 255)).save(tmp_path / "thin.png")
    with pytest.raises(TargetError, match="at least 8x8"):
        load_target(str(tmp_path / "thin.png"))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_rendering_shows_premultiplied_colour_on_white(seed):
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(-0.5, 1.5, (1, 5, 6)).astype(np.float32)
    rgb = (rng.uniform(0, 1, (3, 5, 6)) * np.clip(alpha, 0, 1)).astype(np.float32)
    img = to_rgb(np.concatenate([rgb, alpha, np.zeros((12, 5, 6), np.float32)]))
    assert img.shape == (5, 6, 3) and img.dtype == np.uint8
    expected = np.clip(1 - np.clip(alpha, 0, 1) + rgb, 0, 1).transpose(1, 2, 0) * 255
    assert np.all(np.abs(img.astype(float) - expected) <= 0.5 + 1e-3)
    empty = to_rgb(np.zeros((4, 2, 2), np.float32))
    assert np.all(empty == 255)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2 ** 32 - 1))
def test_a_recorded_target_reads_back_as_the_exact_training_target(height, width, seed):
    """The PNG `cellsim quantize` writes beside a genome stores straight 8-bit
    RGBA; read back and premultiplied as load_target does, it gives the very
    float32 target the model was trained on."""
    from cellsim.target_images import read_recorded_target, recorded_target_png

    rgba = np.random.default_rng(seed).integers(0, 256, (height, width, 4)).astype(np.uint8)
    rgba[rgba[..., 3] == 0, :3] = 0  # load_target's thumbnail gives no colour without alpha
    trained = np.asarray(rgba, np.float32) / 255.0
    trained[..., :3] *= trained[..., 3:4]
    trained = trained.transpose(2, 0, 1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.target.png"
        path.write_bytes(recorded_target_png(trained))
        assert np.array_equal(read_recorded_target(path), trained)
