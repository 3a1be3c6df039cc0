"""The packed integer products (simd.py) equal integer matrix products: the
native instruction of this CPU and the portable spelling, for both packings
(VNNI quads, AVX2 pairs), one cell at a time and two cells per weight load, on
random and extreme weights and inputs, for hidden sizes that need padding, with
the per-genome start values."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from cellsim.sim import simd

NATIVE = {simd.QUADS: simd.HAS_VNNI, simd.PAIRS: simd.HAS_AVX2}
VARIANTS = [(packing, native) for packing in (simd.QUADS, simd.PAIRS)
            for native in sorted({False, NATIVE[packing]})]
SHAPES = {"first": dict(blocks=8, chains=2), "second": dict(blocks=1, chains=8)}
CELLS = (1, 2)


def runner(packing, native, layer, cells):
    products = simd.products(packing=packing, native=native, cells=cells, **SHAPES[layer])

    @njit
    def run(xs, row, w, init, g, outs, out_row):
        products(xs, row, w, init, g, outs, out_row)
    return run


RUNNERS = {(packing.name, native, layer, cells): runner(packing, native, layer, cells)
           for packing, native in VARIANTS for layer in SHAPES for cells in CELLS}


def rows_of(run, x, w, init, g, n):
    """Each cell count's products of x, run on rows 1.. of a table with a row of
    zeros above and below (rows the products must not read), into rows 2.. of
    an output table (another row than the inputs'; rows 0, 1 and the last must
    stay zero)."""
    results = []
    for cells in CELLS:
        xs = np.zeros((cells + 2, len(x)), np.uint8)
        xs[1:1 + cells] = x[None]
        xs[1 + cells - 1] = x[::-1] if cells > 1 else x  # the pair's second row differs
        outs = np.zeros((cells + 3, n), np.int32)
        run[cells](xs, 1, w, init, g, outs, 2)
        assert not outs[:2].any() and not outs[-1].any()
        results.append((xs[1:1 + cells], outs[2:2 + cells]))
    return results


def padded(hidden):
    return -(-hidden // simd.HIDDEN_STEP) * simd.HIDDEN_STEP


def check(packing, native, w1, w2, x, h, init1, init2):
    """Both layers of genome 1 of a stack of two (the products read the second)."""
    hidden = w1.shape[0]
    pad = padded(hidden)
    stack = lambda a: np.stack([np.zeros_like(a), a])  # noqa: E731
    w1k = stack(simd.pack(w1, pad, 48, packing))
    w2k = stack(simd.pack(w2, 16, pad, packing))
    i1 = stack(np.pad(init1, (0, pad - hidden)).astype(np.int32))
    i2 = stack(init2.astype(np.int32))
    hp = np.zeros(pad, np.uint8)
    hp[:hidden] = h
    first = {c: RUNNERS[packing.name, native, "first", c] for c in CELLS}
    second = {c: RUNNERS[packing.name, native, "second", c] for c in CELLS}
    for xs, dots1 in rows_of(first, x, w1k, i1, 1, pad):
        for xr, d in zip(xs, dots1):
            assert np.array_equal(d[:hidden], init1 + w1 @ xr.astype(np.int64))
            assert not d[hidden:].any()
    for hs, dots2 in rows_of(second, hp, w2k, i2, 1, 16):
        for hr, d in zip(hs, dots2):
            assert np.array_equal(d, init2 + w2 @ hr[:hidden].astype(np.int64))


@pytest.mark.parametrize("packing,native", VARIANTS, ids=lambda v: getattr(v, "name", str(v)))
@pytest.mark.parametrize("hidden", [2, 31, 128, 130, 600])
def test_products_equal_integer_products(packing, native, hidden):
    rng = np.random.default_rng(hidden)
    for extreme in (False, True):
        if extreme:  # every term at its largest: 255 * -127
            w1, w2 = np.full((hidden, 48), -127), np.full((16, hidden), -127)
            x, h = np.full(48, 255, np.uint8), np.full(hidden, 255, np.uint8)
        else:
            w1, w2 = rng.integers(-127, 128, (hidden, 48)), rng.integers(-127, 128, (16, hidden))
            x, h = rng.integers(0, 256, 48).astype(np.uint8), rng.integers(0, 256, hidden).astype(np.uint8)
        init1 = rng.integers(-10 ** 6, 10 ** 6, hidden)
        init2 = rng.integers(-10 ** 6, 10 ** 6, 16)
        check(packing, native, w1, w2, x, h, init1, init2)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), hidden=st.sampled_from([1, 16, 128, 129]),
       variant=st.sampled_from(VARIANTS))
def test_products_equal_integer_products_on_random_genomes(seed, hidden, variant):
    rng = np.random.default_rng(seed)
    w1, w2 = rng.integers(-127, 128, (hidden, 48)), rng.integers(-127, 128, (16, hidden))
    x, h = rng.integers(0, 256, 48).astype(np.uint8), rng.integers(0, 256, hidden).astype(np.uint8)
    check(*variant, w1, w2, x, h, -128 * w1.sum(axis=1), np.zeros(16, np.int64))


def test_the_chosen_packing_runs_natively_where_the_cpu_can():
    assert simd.NATIVE == (simd.HAS_VNNI if simd.PACKING is simd.QUADS else simd.HAS_AVX2)
    assert simd.PACKING is simd.QUADS or simd.HAS_AVX2 and not simd.HAS_VNNI
    assert simd.HIDDEN_STEP % (simd.QUADS.lanes * SHAPES["first"]["blocks"]) == 0
    assert simd.HIDDEN_STEP % (simd.QUADS.step * SHAPES["second"]["chains"]) == 0


@njit
def _waits(us, mean, out):
    simd.exponential_waits(us, mean, out)


@settings(max_examples=50, deadline=None)
@given(us=st.lists(st.integers(1, 2 ** 32 - 1), min_size=simd.WAIT_LANES, max_size=simd.WAIT_LANES),
       mean=st.sampled_from([1, 255, 11_629_080, 23_258_160, (1 << 26) - 1, 11_906_643_600]))
def test_exponential_waits_are_the_scalar_draws_bit_for_bit(us, mean):
    """The planner's many-lane Poisson draw equals rng.exponential_ticks, the
    clock's definition, on every lane (extremes included: u = 1, 2^31, 2^32 - 1)."""
    from cellsim.sim.rng import exponential_ticks

    extremes = [1, 2, 3, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, 2 ** 32 - 2, 2 ** 32 - 1]
    for lanes in (np.array(us, np.int64), np.resize(np.array(extremes, np.int64), simd.WAIT_LANES)):
        out = np.zeros(simd.WAIT_LANES, np.int64)
        _waits(lanes, mean, out)
        assert out.tolist() == [exponential_ticks(int(u), mean) for u in lanes]
