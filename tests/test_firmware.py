"""The C cell firmware against the integer specification, byte for byte: on the
host (system gcc, strict C99) and on emulated Cortex-M0+ / M4 boards (qemu),
over random, extreme, edge-case and trajectory-derived cell RAMs."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import random_genome, random_int_params

from cellsim.intspec import layout, update_ram
from conformance import assert_same, edge_rams, random_rams, trajectory_rams
from firmware_gen import firmware_source_paths, toolchain
from cellsim.intspec.batch import update_rams

needs_gcc = pytest.mark.skipif(bool(toolchain.missing(*toolchain.HOST_TOOLS)),
                               reason="host C compiler (gcc) not installed")
needs_arm = pytest.mark.skipif(
    bool(toolchain.missing(*toolchain.TARGET_TOOLS)),
    reason="missing " + " ".join(toolchain.missing(*toolchain.TARGET_TOOLS))
    + " (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)")


@pytest.fixture(scope="module")
def host_harness(tmp_path_factory):
    if toolchain.missing(*toolchain.HOST_TOOLS):
        pytest.skip("host C compiler (gcc) not installed")
    return toolchain.build_host_harness(tmp_path_factory.mktemp("host"))


# --- the batched reference is the specification ----------------------------------

@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), extreme=st.booleans(), hidden=st.integers(1, 40))
def test_batched_reference_equals_update_ram(seed, extreme, hidden):
    p = random_int_params(seed, hidden=hidden, extreme=extreme)
    rams = np.concatenate([random_rams(seed, 24), edge_rams(p.alive_threshold)])
    expected = np.array([update_ram(p, ram) for ram in rams])
    assert_same(update_rams(p, rams), expected, "update_rams")


# --- host -------------------------------------------------------------------------

@needs_gcc
@pytest.mark.parametrize("extreme", [False, True], ids=["realistic", "extreme"])
def test_host_matches_spec_on_thousands_of_rams(host_harness, extreme):
    for seed in range(3):
        p = random_int_params(100 + seed, extreme=extreme)
        rams = np.concatenate([random_rams(seed, 2000), edge_rams(p.alive_threshold)])
        assert_same(toolchain.run_host_harness(host_harness, rams, p), update_rams(p, rams),
                    f"host, genome seed {100 + seed}")


@needs_gcc
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), extreme=st.booleans(), hidden=st.integers(1, 160),
       zero_output=st.booleans())
def test_host_matches_spec_for_any_genome(host_harness, seed, extreme, hidden, zero_output):
    p = random_int_params(seed, hidden=hidden, extreme=extreme, zero_output=zero_output)
    rams = np.concatenate([random_rams(seed, 150), edge_rams(p.alive_threshold)])
    assert_same(toolchain.run_host_harness(host_harness, rams, p), update_rams(p, rams),
                "host")


@needs_gcc
def test_host_matches_spec_along_a_trajectory(host_harness):
    for seed in range(2):
        p = random_int_params(200 + seed)
        rams = trajectory_rams(p, seed=seed)
        live = (rams.view(np.int8)[:, layout.ALPHA:layout.STATE + 16:16] > p.alive_threshold).any(1)
        assert live.sum() > 0  # the trajectory exercises the network, not only dead cells
        assert_same(toolchain.run_host_harness(host_harness, rams, p), update_rams(p, rams),
                    "host, trajectory")


@needs_gcc
def test_host_harness_with_generated_header(tmp_path):
    """The genome as the generated header's arrays, not the test blob."""
    genome = random_genome(7, extreme=True)
    header, init = toolchain.write_genome_header(genome, tmp_path, "seven")
    exe = toolchain.build_host_harness(tmp_path, header, init)
    rams = random_rams(7, 1000)
    assert_same(toolchain.run_host_harness(exe, rams), update_rams(genome.params, rams),
                "host, header genome")


@needs_gcc
def test_message_hooks(tmp_path):
    """receive writes one mailbox slot, sending reads the state, slot 8 is refused."""
    main = tmp_path / "hooks.c"
    main.write_text(r'''
#include <stdio.h>
#include <string.h>
#include "nca_cell.h"
int main(void) {
    nca_cell_ram_t ram;
    int8_t msg[NCA_CHANNELS], out[NCA_CHANNELS];
    unsigned i, k;
    memset(&ram, 0, sizeof ram);
    for (i = 0; i < NCA_CHANNELS; ++i) {
        msg[i] = (int8_t)(i * 9 - 70);
        ram.state[i] = (int8_t)(5 - (int)i);
    }
    for (k = 0; k < NCA_MAILBOX_SLOTS; ++k) {
        if (nca_cell_receive(&ram, k, msg) != 0) return 1;
        msg[0] = (int8_t)(msg[0] + 1);
    }
    if (nca_cell_receive(&ram, NCA_MAILBOX_SLOTS, msg) != -1) return 2;
    nca_cell_state_to_send(&ram, out);
    if (nca_receiver_slot(0) != 7u || nca_receiver_slot(7) != 0u) return 3;
    fwrite(&ram, 1, sizeof ram, stdout);
    fwrite(out, 1, sizeof out, stdout);
    return 0;
}
''')
    exe = tmp_path / "hooks"
    toolchain.run_tool(["gcc", *toolchain.HOST_FLAGS, f"-I{toolchain.C_DIR}", main,
                        *firmware_source_paths(), "-o", exe])
    raw = np.frombuffer(toolchain.run_tool([exe]).stdout, np.uint8)
    ram, sent = raw[:layout.RAM_BYTES], raw[layout.RAM_BYTES:].view(np.int8)
    msg = (np.arange(16) * 9 - 70).astype(np.int8)
    box = layout.mailbox(ram.copy())
    for k in range(8):
        expect = msg.copy()
        expect[0] += k
        np.testing.assert_array_equal(box[k], expect)
    np.testing.assert_array_equal(sent, (5 - np.arange(16)).astype(np.int8))
    assert (ram[layout.STATE + layout.CHANNELS:] == 0).all()
    assert [layout.receiver_slot(k) for k in range(8)] == list(range(7, -1, -1))


# --- Cortex-M on qemu --------------------------------------------------------------

@pytest.fixture(scope="module")
def cortexm_images(tmp_path_factory):
    """One image per (cpu, genome): a realistic and an extreme genome in flash."""
    if toolchain.missing(*toolchain.TARGET_TOOLS):
        pytest.skip("missing " + " ".join(toolchain.missing(*toolchain.TARGET_TOOLS)))
    workdir = tmp_path_factory.mktemp("cortexm")
    images = {}
    for kind, genome in (("realistic", random_genome(11)),
                         ("extreme", random_genome(12, extreme=True))):
        gdir = workdir / kind
        gdir.mkdir()
        header, init = toolchain.write_genome_header(genome, gdir, kind)
        for cpu in toolchain.TARGETS:
            images[cpu, kind] = (genome, toolchain.build_image(cpu, gdir, header, init))
        images["cortex-m4-portable", kind] = (genome, toolchain.build_image(
            "cortex-m4", gdir, header, init, portable=True))
    return images


@needs_arm
@pytest.mark.toolchain
@pytest.mark.parametrize("build", [*toolchain.TARGETS, "cortex-m4-portable"])
@pytest.mark.parametrize("kind", ["realistic", "extreme"])
def test_cortexm_matches_spec_on_qemu(cortexm_images, tmp_path, build, kind):
    """Cortex-M0+ (plain C), Cortex-M4 (SMLAD first layer) and Cortex-M4 with
    NCA_PORTABLE (plain C) all give the specification's bytes."""
    genome, elf = cortexm_images[build, kind]
    cpu = "cortex-m4" if build == "cortex-m4-portable" else build
    p = genome.params
    rams = np.concatenate([random_rams(31, 2000), edge_rams(p.alive_threshold),
                           trajectory_rams(p, size=12, steps=6, seed=3)])
    got = toolchain.run_image(cpu, elf, rams, tmp_path)
    assert_same(got, update_rams(p, rams), f"{build} on {toolchain.TARGETS[cpu].board}, "
                f"{kind} genome")


@needs_arm
@pytest.mark.toolchain
def test_instruction_count_on_qemu(cortexm_images, tmp_path):
    """The trace counts the whole update: a dead cell costs a few dozen
    instructions, a live one at least one per first-layer MAC."""
    genome, elf = cortexm_images["cortex-m4", "realistic"]
    p = genome.params
    dead = np.zeros((1, layout.RAM_BYTES), np.uint8)
    live = random_rams(5, 2)
    live.view(np.int8)[:, layout.STATE + layout.ALPHA] = 127
    counts = toolchain.count_instructions("cortex-m4", elf, np.concatenate([dead, live]), tmp_path)
    assert 10 < counts[0] < 200
    assert (counts[1:] > p.w1.size).all()
    assert (counts[1:] < 20 * (p.w1.size + p.w2.size)).all()


def test_scripts_test_installs_every_targets_packages():
    """A new MCU target is a TARGETS entry; CI must install its tools too, or its
    conformance rows would skip."""
    from pathlib import Path

    script = (Path(__file__).resolve().parents[1] / "scripts" / "test").read_text()
    listed = script.split("apt_packages=(", 1)[1].split(")", 1)[0].split()
    for name, target in toolchain.TARGETS.items():
        assert set(target.packages) <= set(listed), (name, target.packages)
        assert target.tools[0] == target.tool("gcc") and target.name == name


@needs_arm
@pytest.mark.toolchain
def test_cortexm4_kernel_takes_each_activation_path_on_qemu(tmp_path):
    """The M4 kernel's activations: SMULL with the 0..255 clamp, SMULL with a
    clamp at another zero point, and a block with a shift > -2 handed to the
    portable requantisation between fast blocks; each against the spec."""
    import dataclasses

    from cellsim.genome import Genome

    base = random_int_params(41)
    shift1 = base.shift1.copy()
    shift1[21] = 1  # block 5 takes the portable path, the others SMULL
    for zero_point in (-128, -100):
        p = dataclasses.replace(base, hidden_zero_point=zero_point, shift1=shift1)
        p.validate()
        assert (np.delete(p.shift1, 21) <= -2).all()
        genome = Genome(params=p, name="paths", target="", grid_size=72, fire_rate=0.5,
                        angle=0.0, torus=False, source_sha256=bytes(32))
        gdir = tmp_path / f"zp{-zero_point}"
        gdir.mkdir()
        header, init = toolchain.write_genome_header(genome, gdir, "paths")
        elf = toolchain.build_image("cortex-m4", gdir, header, init)
        rams = np.concatenate([random_rams(43, 400), edge_rams(p.alive_threshold),
                               trajectory_rams(p, size=8, steps=4, seed=5)])
        assert_same(toolchain.run_image("cortex-m4", elf, rams, gdir), update_rams(p, rams),
                    f"cortex-m4, zero point {zero_point}")


REQUANTIZE_MAIN = r'''
#include <stdio.h>
#include "nca_kernels.h"
int main(void) {
    int32_t v[5];
    while (fread(v, sizeof v[0], 5, stdin) == 5) {
        const int32_t r = nca_requantize(v[0], v[1], (int)v[2], v[3], v[4]);
        fwrite(&r, sizeof r, 1, stdout);
    }
    return 0;
}
'''


@needs_gcc
@pytest.mark.parametrize("wide", [1, 0], ids=["64-bit multiply", "16-bit halves (Armv6-M, AVR)"])
def test_requantize_matches_spec_on_edges(tmp_path, wide):
    """nca_requantize against intspec's requantize + clamp for every shift, at
    the accumulator values where its pre-shift (t < 33) saturates or not, at
    the ends of the multiplier's range and at random values, both ways of
    forming the high product."""
    from cellsim.intspec.requantize import requantize

    main = tmp_path / "requantize.c"
    main.write_text(REQUANTIZE_MAIN)
    exe = tmp_path / "requantize"
    toolchain.run_tool(["gcc", *toolchain.HOST_FLAGS, f"-DNCA_WIDE_MULTIPLY={wide}",
                        f"-I{toolchain.C_DIR}", main, toolchain.C_DIR / "nca_requantize.c",
                        "-o", exe])
    rng = np.random.default_rng(wide)
    rows = []
    for shift in range(-31, 31):
        k = max(33 - (31 - shift), 0)
        edges = [0, 1, 2, (1 << 31) - 1] + ([(1 << (31 - k)) + d for d in (-1, 0, 1)]
                                            if 0 < k < 31 else [])
        accs = [a for e in edges for a in (e, -e)] + list(rng.integers(-(1 << 31) + 1, 1 << 31, 8))
        for m in (0, 1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31))):
            for lo, hi in ((0, 255), (-128, 127), (0, 100)):
                rows += [(a, m, shift, lo, hi) for a in accs if abs(a) < (1 << 31)]
    v = np.array(rows, np.int64)
    got = np.frombuffer(toolchain.run_tool([exe], stdin_bytes=v.astype("<i4").tobytes()).stdout,
                        "<i4")
    expected = np.clip(requantize(v[:, 0], v[:, 1], v[:, 2]), v[:, 3], v[:, 4])
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (f"{bad.size} of {len(v)} differ, first (acc, m, shift, lo, hi) = "
                           f"{v[bad[0]].tolist()}: {got[bad[0]]} != {expected[bad[0]]}")
