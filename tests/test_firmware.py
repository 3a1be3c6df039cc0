"""The C cell firmware against the integer specification, byte for byte: on the
host (system gcc, strict C99), on emulated Cortex-M0+ / M4 and RV32IMC boards
(qemu) and on a simulated ATmega2560 (simavr), over random, extreme, edge-case
and trajectory-derived cell RAMs."""
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

# The plain C build on AVR shifts int64 bit by bit: some 3x the cycles
AVR_THINNING = {"atmega2560": 6, "atmega2560-portable": 24}


def mcu_rams(p, thin: int = 1) -> np.ndarray:
    """The MCU images' inputs: random RAMs, every edge RAM and trajectory RAMs,
    the random and trajectory ones thinned to every `thin`-th."""
    return np.concatenate([random_rams(31, 2000)[::thin], edge_rams(p.alive_threshold),
                           trajectory_rams(p, size=12, steps=6, seed=3)[::thin]])


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
        for cpu in ("cortex-m4", "atmega2560"):
            images[f"{cpu}-portable", kind] = (genome, toolchain.build_image(
                cpu, gdir, header, init, portable=True))
    return images


@needs_arm
@pytest.mark.toolchain
@pytest.mark.parametrize("build", [*toolchain.TARGETS, "cortex-m4-portable",
                                   "atmega2560-portable"])
@pytest.mark.parametrize("kind", ["realistic", "extreme"])
def test_cortexm_matches_spec_on_qemu(cortexm_images, tmp_path, build, kind):
    """Cortex-M0+ (plain C), Cortex-M4 (SMLAD first layer), RV32IMC, the
    ATmega2560 (assembly kernels) and Cortex-M4 and ATmega2560 with
    NCA_PORTABLE (plain C) all give the specification's bytes."""
    genome, elf = cortexm_images[build, kind]
    cpu = build.removesuffix("-portable")
    p = genome.params
    # simavr runs an AVR at some 25 M cycles/s: the default run gives it every
    # n-th random and trajectory RAM (test_avr_on_every_ram: all of them)
    rams = mcu_rams(p, AVR_THINNING.get(build, 1))
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


@needs_arm
@pytest.mark.toolchain
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["realistic", "extreme"])
def test_avr_on_every_ram(cortexm_images, tmp_path, kind):
    """The ATmega2560 on the whole batch the QEMU targets run."""
    genome, elf = cortexm_images["atmega2560", kind]
    rams = mcu_rams(genome.params)
    got = toolchain.run_image("atmega2560", elf, rams, tmp_path, timeout=1800)
    assert_same(got, update_rams(genome.params, rams), f"atmega2560, {kind} genome, all RAMs")


@needs_arm
@pytest.mark.toolchain
@pytest.mark.parametrize("hidden, extreme", [(1, True), (2, False), (3, True), (160, False),
                                             (300, True)])
def test_avr_any_hidden_count(tmp_path, hidden, extreme):
    """The AVR kernels pair the active columns of the second layer and walk
    the flash arrays with running pointers: hidden counts with no pair, one,
    an odd one out, and more than 256 units (16-bit strides past a byte)."""
    genome = random_genome(40 + hidden, hidden=hidden, extreme=extreme)
    header, init = toolchain.write_genome_header(genome, tmp_path, "any")
    elf = toolchain.build_image("atmega2560", tmp_path, header, init)
    p = genome.params
    rams = np.concatenate([random_rams(hidden, 150), edge_rams(p.alive_threshold)])
    assert_same(toolchain.run_image("atmega2560", elf, rams, tmp_path), update_rams(p, rams),
                f"atmega2560, {hidden} hidden units")


@needs_arm
@pytest.mark.toolchain
def test_avr_genome_in_flash_cell_in_sram_and_cycles_counted(cortexm_images, tmp_path):
    """On the ATmega2560 the genome's arrays are in flash (ELF addresses below
    the SRAM's 0x800000), the cell RAM in SRAM; the bench counts cycles: a
    dead cell a few hundred, a live one at least the 3-cycle LPM of each
    first-layer weight, and the stack an update takes stays small."""
    genome, elf = cortexm_images["atmega2560", "realistic"]
    p = genome.params
    target = toolchain.TARGETS["atmega2560"]
    symbols = {parts[2]: int(parts[0], 16) for parts in map(
        str.split, toolchain.run_tool([target.tool("nm"), elf]).stdout.decode().splitlines())
        if len(parts) == 3}
    for field in ("blocks", "b2", "m2", "shift2"):
        assert symbols[f"nca_realistic_{field}"] < 0x10000, field  # flash, reachable by LPM
    assert 0x800200 <= symbols["nca_avr_ram"] < 0x802200  # the 8 KiB of SRAM
    dead = np.zeros((2, layout.RAM_BYTES), np.uint8)
    live = random_rams(5, 2)
    live.view(np.int8)[:, layout.STATE + layout.ALPHA] = 127
    got, cycles, stack = toolchain.run_simavr("atmega2560", elf, np.concatenate([dead, live]),
                                              tmp_path)
    assert cycles[0] == cycles[1] and 10 < cycles[0] < 1000
    assert (cycles[2:] > 3 * p.w1.size).all()
    # 48 B of first-layer inputs (nca_cell.c), the kernel's frame and the
    # pushes of the assembly, return addresses 3 B each on this part
    assert (3 <= stack).all() and (stack < 160).all()
    assert_same(got, update_rams(p, np.concatenate([dead, live])), "atmega2560")
    # the cycle profile accounts for every cycle of the updates, most in the kernels
    profile = toolchain.profile_update("atmega2560", elf, live, tmp_path)
    assert sum(profile.values()) == pytest.approx(cycles[2:].mean())
    assert {"nca_cell_update", "nca_avr_block_sums", "nca_avr_add_two_columns",
            "nca_requantize"} <= set(profile)


@needs_arm
@pytest.mark.toolchain
def test_avr_split_header_builds_strict_with_the_genome_in_flash(tmp_path):
    """`cellsim header --split --firmware`: the .c file's arrays go to flash
    on AVR (PROGMEM) although the .h declares them plain extern, and the
    three translation units build with -Wall -Wextra -Werror -pedantic."""
    from firmware_gen import FIRMWARE_SOURCES, write_header_files

    write_header_files(random_genome(8), tmp_path / "rom.h", name="split", split=True,
                       firmware_dir=tmp_path)
    (tmp_path / "main.c").write_text(
        '#include "nca_cell.h"\n#include "rom.h"\n'
        "static const nca_genome_t genome = NCA_SPLIT_GENOME_INIT;\n"
        "nca_cell_ram_t ram;\n"
        "int main(void) { nca_cell_update(&genome, &ram); return (int)ram.count; }\n")
    target = toolchain.TARGETS["atmega2560"]
    elf = tmp_path / "split.elf"
    sources = (*FIRMWARE_SOURCES, "rom.c", "main.c")
    toolchain.run_tool([target.tool("gcc"), *target.cflags, *target.link_flags, f"-I{tmp_path}",
                        *(tmp_path / f for f in sources), "-o", elf])
    symbols = {parts[2]: int(parts[0], 16) for parts in map(
        str.split, toolchain.run_tool([target.tool("nm"), elf]).stdout.decode().splitlines())
        if len(parts) == 3}
    assert symbols["nca_split_blocks"] < 0x10000 and symbols["ram"] >= 0x800200


def requantize_cases(seed: int) -> np.ndarray:
    """(n, 5) int64 rows acc, m, shift, lo, hi: every shift, multipliers at
    and between the ends of [2^30, 2^31) and 0 (nca_kernels.h's contract),
    accumulators anywhere in int32 and on either side of a rounding tie or a
    saturation edge, the clamps of both layers."""
    rng = np.random.default_rng(seed)
    rows = []
    for shift in range(-31, 31):
        total = 31 - shift
        for _ in range(24):
            m = int(rng.choice([0, 1 << 30, (1 << 31) - 1,
                                int(rng.integers(1 << 30, 1 << 31))]))
            zp = int(rng.integers(-128, 128))
            lo, hi = ((0, 127 - zp), (-128, 127))[int(rng.integers(2))]
            r = int(rng.integers(-300, 300))
            if m != 0 and rng.random() < 0.7:  # at a tie (r + 1/2) or an edge, +-1
                tie = ((2 * r + 1) << (total - 1)) // m
                acc = tie + int(rng.integers(-1, 2))
            else:
                acc = int(rng.integers(-(1 << 31), 1 << 31))
            acc = min(max(acc, -(1 << 31)), (1 << 31) - 1)
            rows.append((acc, m, shift, lo, hi))
    return np.array(rows, np.int64)


@needs_arm
@pytest.mark.toolchain
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.parametrize("portable", [False, True], ids=["assembly", "NCA_PORTABLE"])
@given(seed=st.integers(0, 2**32 - 1))
def test_avr_requantize_matches_spec(tmp_path, portable, seed):
    """The AVR's requantisations against the spec's int64 formula, case by
    case (harness/avr_requantize_probe.c): the assembly one
    (nca_requantize_avr.c: 64-bit product by MULs, byte moves) and the
    reference on 32-bit pieces (nca_requantize.c), where int has 16 bits."""
    from cellsim.intspec import requantize

    target = toolchain.TARGETS["atmega2560"]
    elf = tmp_path / "probe.elf"
    if not elf.exists():
        toolchain.run_tool([target.tool("gcc"), *target.cflags, f"-I{toolchain.C_DIR}",
                            *(["-DNCA_PORTABLE"] if portable else []),
                            toolchain.HARNESS_DIR / "avr_requantize_probe.c",
                            toolchain.C_DIR / "nca_requantize.c",
                            toolchain.C_DIR / "nca_requantize_avr.c", "-o", elf])
    cases = requantize_cases(seed)
    cases = np.concatenate([cases, np.zeros((-len(cases) % 16, 5), np.int64)])  # whole images
    packed = np.zeros((len(cases), 16), np.uint8)
    packed[:, 0:4] = cases[:, 0].astype("<i4").view(np.uint8).reshape(-1, 4)
    packed[:, 4:8] = cases[:, 1].astype("<i4").view(np.uint8).reshape(-1, 4)
    packed[:, 8] = cases[:, 2].astype(np.int8).view(np.uint8)
    packed[:, 10:12] = cases[:, 3].astype("<i2").view(np.uint8).reshape(-1, 2)
    packed[:, 12:14] = cases[:, 4].astype("<i2").view(np.uint8).reshape(-1, 2)
    got = toolchain.run_simavr("atmega2560", elf, packed.reshape(-1, layout.RAM_BYTES),
                               tmp_path)[0].reshape(-1, 16)[:, 0:4].copy().view("<i4")[:, 0]
    expected = np.clip(requantize(cases[:, 0], cases[:, 1], cases[:, 2]), cases[:, 3],
                       cases[:, 4])
    bad = np.flatnonzero(got != expected)
    assert bad.size == 0, (f"{bad.size} of {len(cases)} differ, e.g. acc, m, shift, lo, hi = "
                           f"{cases[bad[0]].tolist()}: got {got[bad[0]]}, spec {expected[bad[0]]}")


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
