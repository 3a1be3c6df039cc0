"""The int16 pair products (simd.py) equal integer matrix products, both the
AVX2 instruction and the portable spelling, on random and extreme weights,
for hidden sizes that need padding."""
import numpy as np
import pytest
from numba import njit

from cellsim.sim import simd

WIDE = {native: simd.pair_products(simd.WIDE, native) for native in (False, simd.HAS_AVX2)}
NARROW = {native: simd.pair_products(simd.NARROW, native) for native in (False, simd.HAS_AVX2)}


def runner(products):
    @njit
    def run(x, w, g, out):
        products(x, w, g, out)
    return run


@pytest.mark.parametrize("native", sorted({False, simd.HAS_AVX2}))
@pytest.mark.parametrize("hidden", [2, 31, 32, 128, 600])
def test_pair_products_equal_integer_products(native, hidden):
    rng = np.random.default_rng(hidden)
    padded = -(-hidden // simd.HIDDEN_STEP) * simd.HIDDEN_STEP
    for extreme in (False, True):
        w1 = np.full((hidden, 48), -127) if extreme else rng.integers(-127, 128, (hidden, 48))
        w2 = np.full((16, hidden), 127) if extreme else rng.integers(-127, 128, (16, hidden))
        x = np.full(48, 127 if extreme else 0, np.int16)
        if not extreme:
            x[:] = rng.integers(-128, 128, 48)
        h = np.zeros(padded, np.int16)
        h[:hidden] = 255 if extreme else rng.integers(0, 256, hidden)
        # two genomes stacked: the products read the second
        w1p = np.stack([np.zeros_like(simd.pack_pairs(w1, padded, 48)),
                        simd.pack_pairs(w1, padded, 48)])
        w2p = np.stack([np.zeros_like(simd.pack_pairs(w2, 16, padded)),
                        simd.pack_pairs(w2, 16, padded)])
        dots1 = np.zeros(padded, np.int32)
        runner(WIDE[native])(x, w1p, 1, dots1)
        assert np.array_equal(dots1[:hidden], w1 @ x.astype(np.int64))
        assert not dots1[hidden:].any()
        dots2 = np.zeros(16, np.int32)
        runner(NARROW[native])(h, w2p, 1, dots2)
        assert np.array_equal(dots2, w2 @ h[:hidden].astype(np.int64))
