"""A new perception filter is an edit of cellsim/intspec/perceive.py: every kernel
builds its taps from there. Here other taps (hypothesis-drawn small integer 3x3
filters, and Scharr, a Laplacian, one with a centre tap) go through the spec
functions and, with the same taps, through the numba kernel factory, the portable
C kernel compiled from a header generated for them (on the host, and in whole
cell updates on the Cortex-M4 and ATmega2560, whose hand-tuned kernels step
aside), and the torch training paths; each must give the spec's integers (the
float paths the spec's sums / divisor)."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cellsim.intspec import layout
from cellsim.intspec.perceive import (GRADIENT_FILTERS, GRADIENT_SHIFT, SOBEL_X, SOBEL_Y,
                                      check_filters, gradient, gradient_range, gradient_sums,
                                      perceive, sum_range)
from cellsim.sim.kernels import gather_perception, make_gather_perception
from firmware_gen import FIRMWARE_FILES, C_DIR, toolchain
from firmware_gen.layout_header import FILE_NAME as LAYOUT_FILE
from firmware_gen.layout_header import generate_layout_header

SCHARR_X = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]])
SCHARR = np.stack([SCHARR_X, SCHARR_X.T])
LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]])  # rank 3: not separable
CROSS = np.array([[2, 0, -1], [0, 3, 0], [-1, 0, 1]])     # a centre tap, rank 3
OTHERS = {"scharr/32": (SCHARR, 5), "laplacian+cross/4": (np.stack([LAPLACIAN, CROSS]), 2),
          "sobel/1 (saturates)": (GRADIENT_FILTERS, 0)}

filters_3x3 = st.lists(st.integers(-9, 9), min_size=18, max_size=18).map(
    lambda taps: np.array(taps).reshape(2, 3, 3))
shifts = st.integers(0, 6)

needs_gcc = pytest.mark.skipif(bool(toolchain.missing(*toolchain.HOST_TOOLS)),
                               reason="host C compiler (gcc) not installed")


def probe_rams(seed: int, n: int = 48) -> np.ndarray:
    """(n, 256) int8 RAMs: random neighbourhoods, and ones at the extremes
    (every slot -128 or 127 at random), which drive the sums to their bounds."""
    rng = np.random.default_rng(seed)
    rams = rng.integers(-128, 128, (n, layout.RAM_BYTES)).astype(np.int8)
    edge = rng.random((n // 2, layout.STATE + layout.CHANNELS)) < 0.5
    rams[: n // 2, : layout.STATE + layout.CHANNELS] = np.where(edge, 127, -128)
    return rams


def spec_perception(rams, filters, shift) -> np.ndarray:
    return perceive(layout.neighbourhood(rams.view(np.uint8)), filters, shift)


# --- the spec -----------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(filters=filters_3x3, shift=shifts, seed=st.integers(0, 2 ** 32 - 1))
def test_spec_perception_is_the_sums_of_the_given_taps_rounded_and_saturated(filters, shift, seed):
    """perceive with other taps, against the definition written out per cell."""
    n = layout.neighbourhood(probe_rams(seed, 8).view(np.uint8)).astype(np.int64)
    got = perceive(n, filters, shift)
    for f in range(2):
        s = (n * filters[f][None, :, :, None]).sum(axis=(1, 2))
        rounded = np.floor((s + (2 ** shift // 2)) / 2 ** shift)
        assert np.array_equal(got[:, 16 * (f + 1):16 * (f + 2)], np.clip(rounded, -128, 127))
    assert np.array_equal(got[:, :16], n[:, 1, 1])


@settings(max_examples=60, deadline=None)
@given(filters=filters_3x3, shift=shifts)
def test_sum_and_gradient_ranges_are_reached_by_the_extreme_neighbourhoods(filters, shift):
    """sum_range is attained (each tap's state at the int8 end of its sign) and
    bounds |S| by 128 sum|taps|; gradient_range is the shifted extreme."""
    ranges = sum_range(filters)
    for f, (lo, hi) in enumerate(ranges):
        low_n = np.where(filters[f] > 0, -128, 127)[..., None]
        high_n = np.where(filters[f] > 0, 127, -128)[..., None]
        assert gradient_sums(low_n, filters)[f][0] == lo and gradient_sums(high_n, filters)[f][0] == hi
        assert max(-lo, hi) <= 128 * np.abs(filters[f]).sum()
    half = (1 << shift) >> 1
    assert gradient_range(filters, shift) == ((ranges[:, 0].min() + half) >> shift,
                                              (ranges[:, 1].max() + half) >> shift)


def test_the_spec_defaults_are_sobel_over_8_and_saturate_only_at_plus_128():
    assert np.array_equal(GRADIENT_FILTERS, [SOBEL_X, SOBEL_Y]) and GRADIENT_SHIFT == 3
    assert gradient_range() == (-127, 128)
    assert gradient(np.array([-1020, -5, -4, 3, 4, 1020])).tolist() == [-127, -1, 0, 0, 1, 127]
    assert gradient(np.array([-1025, 1100]), shift=0).tolist() == [-128, 127]


@pytest.mark.parametrize("filters, shift, message", [
    (np.ones((3, 3, 3), int), 3, "shape"), (np.ones((2, 3, 3)) / 2, 3, "integers"),
    (GRADIENT_FILTERS, -1, "shift"), (GRADIENT_FILTERS, 31, "shift"),
    (np.full((2, 3, 3), 2 ** 24), 3, "int32")])
def test_filters_the_kernels_cannot_take_are_value_errors(filters, shift, message):
    with pytest.raises(ValueError, match=message):
        check_filters(filters, shift)


def test_other_taps_change_the_perception():
    """The swap is real: for a random neighbourhood every alternative differs from
    Sobel / 8 (so the kernel tests below would notice taps left behind)."""
    rams = probe_rams(1)
    sobel = spec_perception(rams, GRADIENT_FILTERS, GRADIENT_SHIFT)
    for filters, shift in OTHERS.values():
        assert not np.array_equal(spec_perception(rams, filters, shift), sobel)


# --- the numba kernel ---------------------------------------------------------------

def run_numba_kernel(kernel, rams):
    rams = rams.copy()
    perception = np.zeros((len(rams), 3 * layout.CHANNELS), np.uint8)
    for row, out in zip(rams, perception):
        kernel(row, out)
    return rams, perception


def check_numba_kernel(kernel, filters, shift, seed):
    rams, perception = run_numba_kernel(kernel, probe_rams(seed))
    expected = spec_perception(probe_rams(seed), filters, shift)
    assert np.array_equal(perception.astype(np.int64) - 128, expected)
    assert np.array_equal(rams[:, layout.STATE:layout.ACC], expected)  # state unchanged, gradients
    untouched = np.r_[0:layout.STATE, layout.ACC:layout.RAM_BYTES]
    assert np.array_equal(rams[:, untouched], probe_rams(seed)[:, untouched])


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters=filters_3x3, shift=shifts, seed=st.integers(0, 2 ** 32 - 1))
@example(filters=SCHARR, shift=5, seed=3)
@example(filters=np.stack([LAPLACIAN, CROSS]), shift=2, seed=4)
@example(filters=np.zeros((2, 3, 3), int), shift=1, seed=5)
def test_numba_kernel_factory_computes_the_spec_for_any_taps(filters, shift, seed):
    check_numba_kernel(make_gather_perception(filters, shift), filters, shift, seed)


def test_the_simulators_kernel_is_the_factorys_for_the_spec_taps():
    check_numba_kernel(gather_perception, GRADIENT_FILTERS, GRADIENT_SHIFT, 7)
    scharr = make_gather_perception(*OTHERS["scharr/32"])
    _, sobel_out = run_numba_kernel(gather_perception, probe_rams(7))
    _, scharr_out = run_numba_kernel(scharr, probe_rams(7))
    assert not np.array_equal(sobel_out, scharr_out)


# --- the C firmware ---------------------------------------------------------------

PERCEIVE_DRIVER = r'''
#include <stdio.h>
#include "nca_kernels.h"
/* RAMs on stdin; per RAM: the RAM after nca_perceive, its 48 inputs, the sum. */
int main(void) {
    nca_cell_ram_t ram;
    uint8_t xq[NCA_INPUTS];
    while (fread(&ram, sizeof ram, 1, stdin) == 1) {
        int32_t sum = nca_perceive(&ram, xq);
        fwrite(&ram, sizeof ram, 1, stdout);
        fwrite(xq, 1, sizeof xq, stdout);
        fwrite(&sum, sizeof sum, 1, stdout);
    }
    return 0;
}
'''


def firmware_for(tmp_path, filters, shift):
    """The firmware's files in tmp_path with a layout header generated for the taps."""
    for name in FIRMWARE_FILES:
        (tmp_path / name).write_bytes((C_DIR / name).read_bytes())
    (tmp_path / LAYOUT_FILE).write_text(generate_layout_header(filters, shift), encoding="ascii")
    return tmp_path


def run_c_perceive(workdir, rams, *flags):
    (workdir / "driver.c").write_text(PERCEIVE_DRIVER)
    exe = workdir / "perceive"
    toolchain.run_tool(["gcc", *toolchain.HOST_FLAGS, *flags, f"-I{workdir}", workdir / "driver.c",
                        workdir / "nca_perceive.c", "-o", exe])
    out = np.frombuffer(toolchain.run_tool([exe], stdin_bytes=rams.tobytes()).stdout, np.uint8)
    out = out.reshape(len(rams), layout.RAM_BYTES + 48 + 4)
    return (out[:, :layout.RAM_BYTES].view(np.int8), out[:, layout.RAM_BYTES:-4],
            out[:, -4:].copy().view("<i4")[:, 0])


@needs_gcc
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(filters=filters_3x3, shift=shifts, seed=st.integers(0, 2 ** 32 - 1))
@example(filters=SCHARR, shift=5, seed=3)
@example(filters=np.stack([LAPLACIAN, CROSS]), shift=2, seed=4)
@example(filters=GRADIENT_FILTERS, shift=0, seed=5)
def test_portable_c_kernel_from_a_generated_header_computes_the_spec(tmp_path, filters, shift, seed):
    workdir = firmware_for(tmp_path, filters, shift)
    rams = probe_rams(seed)
    ram, xq, total = run_c_perceive(workdir, rams)
    expected = spec_perception(rams, filters, shift)
    assert np.array_equal(xq.astype(np.int64) - 128, expected)
    assert np.array_equal(total, expected.astype(np.int64).sum(axis=1))
    assert np.array_equal(ram[:, layout.STATE:layout.ACC], expected)


def test_the_generated_header_carries_the_taps_in_mailbox_order():
    text = generate_layout_header(np.stack([CROSS, LAPLACIAN]), 2)
    rows = [layout.ram_order(k).tolist() for k in (CROSS, LAPLACIAN)]
    assert rows[0] == [2, 0, -1, 0, 0, -1, 0, 1, 3]  # slots 0..7, then the centre
    table = text.split("#define NCA_PERCEPTION_WEIGHTS {")[1].split("}\n")[0]
    assert [[int(v) for v in r.split("}")[0].split(",")] for r in table.split("{")[1:]] == \
        [[0] * 8 + [4], *rows]
    assert "#define NCA_PERCEPTION_IS_SOBEL 0" in text
    assert "#define NCA_PERCEPTION_IS_SOBEL 1" in generate_layout_header()
    assert "#define NCA_PERCEPTION_IS_SOBEL 0" in generate_layout_header(GRADIENT_FILTERS, 4)
    with pytest.raises(ValueError, match="int8"):
        generate_layout_header(GRADIENT_FILTERS, 7)


HAND_TUNED = {"cortex-m4": "nca_perceive_arm_dsp.c", "atmega2560": "nca_perceive_avr.c"}


@pytest.mark.parametrize("target", sorted(HAND_TUNED))
def test_hand_tuned_kernels_step_aside_for_taps_they_do_not_write_out(tmp_path, target):
    """With the Sobel header the target's own perception kernel defines
    nca_perceive; with other taps the reference kernel does, and the hand-tuned
    file compiles to nothing."""
    t = toolchain.TARGETS[target]
    if toolchain.missing(t.tool("gcc"), t.tool("nm")):
        pytest.skip(f"{target} toolchain not installed")
    for label, (filters, shift) in (("sobel", (GRADIENT_FILTERS, GRADIENT_SHIFT)),
                                    ("scharr", OTHERS["scharr/32"])):
        (tmp_path / label).mkdir()
        workdir = firmware_for(tmp_path / label, filters, shift)
        defines = {}
        for source in ("nca_perceive.c", HAND_TUNED[target]):
            obj = workdir / f"{source}.o"
            toolchain.run_tool([t.tool("gcc"), *t.cflags, f"-I{workdir}", "-c", workdir / source,
                                "-o", obj])
            symbols = toolchain.run_tool([t.tool("nm"), obj]).stdout.decode().split()
            defines[source] = "nca_perceive" in symbols
        own = label == "sobel"
        assert defines == {"nca_perceive.c": not own, HAND_TUNED[target]: own}, label


# --- training -----------------------------------------------------------------------

def conv_reference(x, filters, divisor, torus):
    """Channels-last x through each filter / divisor with torch's conv2d, float64."""
    chw = x.permute(0, 3, 1, 2).double()
    padded = F.pad(chw, (1, 1, 1, 1), mode="circular" if torus else "constant")
    c = x.shape[-1]
    out = [F.conv2d(padded, torch.as_tensor(k / divisor).expand(c, 1, 3, 3).double(), groups=c)
           for k in filters]
    return [o.permute(0, 2, 3, 1) for o in out]


@settings(max_examples=25, deadline=None)
@given(filters=filters_3x3, shift=shifts, torus=st.booleans(), seed=st.integers(0, 2 ** 31 - 1))
@example(filters=SCHARR, shift=5, torus=False, seed=1)
@example(filters=np.stack([LAPLACIAN, CROSS]), shift=2, torus=True, seed=2)
def test_training_fast_path_perceives_with_the_given_taps(filters, shift, torus, seed):
    """fast.perceive (separable passes where the filter factors, a 3x3 pass where
    not) equals torch's conv2d, and on int8-valued states the spec's sums / 2^shift
    exactly; its adjoint is its transpose; the integer torch step gives the spec."""
    from training import fast
    from training.quantize import intsim

    plans = fast.gradient_filters(filters, 1 << shift)
    for k, plan in zip(filters, plans.forward):
        assert (plan.passes[0][:2] == (False, True)) == (np.linalg.matrix_rank(k) == 1)
    g = torch.Generator().manual_seed(seed)
    q = torch.randint(-128, 128, (2, 5, 6, 3), generator=g).double()
    n = neighbourhoods(q.numpy().astype(np.int8), torus)
    got = fast.perceive(q, 0.0, torus, plans)
    for f, (want, sums) in enumerate(zip(conv_reference(q, filters, 1 << shift, torus),
                                         gradient_sums(n, filters))):
        assert torch.equal(got[..., 3 * (f + 1):3 * (f + 2)], want)
        assert np.array_equal(got[..., 3 * (f + 1):3 * (f + 2)].numpy() * (1 << shift), sums)
    angle = 0.7
    x = torch.randn(2, 5, 6, 3, generator=g, dtype=torch.float64)
    v = torch.randn(2, 5, 6, 9, generator=g, dtype=torch.float64)
    lhs = (fast.perceive(x, angle, torus, plans) * v).sum()
    rhs = (x * fast.perceive_adjoint(v, angle, torus, plans)).sum()
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-9, abs=1e-9)
    exact = intsim.perceive(q.to(torch.float32), torus, filters, shift)
    assert np.array_equal(exact.numpy(), perceive(n, filters, shift))


def neighbourhoods(states, torus):
    """(B, H, W, C) -> (B, H, W, 3, 3, C): zeros outside the grid unless torus."""
    _, h, w, _ = states.shape
    padded = np.pad(states, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="wrap" if torus else "constant")
    return np.stack([np.stack([padded[:, dy:dy + h, dx:dx + w] for dx in range(3)], axis=-2)
                     for dy in range(3)], axis=-3)


@settings(max_examples=10, deadline=None)
@given(filters=filters_3x3, torus=st.booleans(), seed=st.integers(0, 2 ** 31 - 1))
@example(filters=np.stack([LAPLACIAN, CROSS]), torus=False, seed=2)
def test_training_cpu_kernels_take_the_given_filters(filters, torus, seed):
    """cpu_kernels' gather and scatter (the NumbaOps of training) equal TorchOps'
    for other filters, the centre tap included."""
    from training import cpu_kernels, fast

    plans = fast.gradient_filters(filters, 8)
    kernels = np.asarray(filters) / 8
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 6, 7, 4, generator=g)
    rows = torch.nonzero(torch.rand(2 * 6 * 7, generator=g) < 0.7).view(-1)
    angle = 0.9
    c, s = math.cos(angle), math.sin(angle)
    got = cpu_kernels.gather_perception(x.numpy(), rows.numpy(), c, s, torus, kernels=kernels)
    want = fast.perceive(x, angle, torus, plans).reshape(-1, 12)[rows]
    assert np.allclose(got[:, :-1], want.numpy(), atol=1e-5)
    grad_inputs = torch.randn(len(rows), 12, generator=g)
    got = cpu_kernels.scatter_perception_grad(x.numpy(), rows.numpy(), grad_inputs.numpy(), c, s,
                                              torus, kernels=kernels)
    scattered = torch.zeros(2 * 6 * 7, 12).index_copy(0, rows, grad_inputs).view(2, 6, 7, 12)
    want = x + fast.perceive_adjoint(scattered, angle, torus, plans)
    assert np.allclose(got, want.numpy(), atol=1e-5)


@pytest.mark.parametrize("target", sorted(HAND_TUNED))
def test_a_whole_cell_update_on_the_mcu_follows_other_taps(tmp_path, monkeypatch, target):
    """End to end on the emulated core whose own perception kernel is set aside:
    the firmware built from a Scharr header updates every cell as the spec does
    with Scharr taps (the spec's update_ram reading them), which differs from
    its update with Sobel."""
    from conformance import _genome_header, assert_same, cell_inputs, spec_cells
    from strategies import random_int_params

    from cellsim.intspec import cell_update

    tools = toolchain.TARGETS[target].tools
    if toolchain.missing(*tools):
        pytest.skip(f"{target}: {', '.join(toolchain.missing(*tools))} not installed")
    params = random_int_params(np.random.default_rng(11))
    rams = cell_inputs(params, seed=11, n=24)
    sobel = spec_cells(params, rams)
    filters, shift = OTHERS["scharr/32"]
    monkeypatch.setattr(cell_update, "perceive",
                        lambda n: perceive(n, filters, shift))
    expected = spec_cells(params, rams)
    assert (expected != sobel).any(axis=1).sum() >= 20  # the live cells among them
    c_dir = tmp_path / "c"
    c_dir.mkdir()
    firmware_for(c_dir, filters, shift)
    header, init = _genome_header(params, tmp_path)
    elf = toolchain.build_image(target, tmp_path, header, init, c_dir=c_dir)
    assert_same(toolchain.run_image(target, elf, rams, tmp_path), expected, f"{target}, Scharr")
