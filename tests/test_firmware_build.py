"""The firmware as embedded users build it: every source and a --split genome
pair compile with -std=c99 -Wall -Wextra -Werror -pedantic on the host gcc and
every target's cross compiler (arm-none-eabi, riscv64-unknown-elf, avr-gcc;
each kernel variant, and AVR parts with and without MUL), hold no floating
point, and benchmarks/firmware_size.py judges its budgets as it says."""
import re

import pytest
from strategies import random_genome

from benchmarks import firmware_size
from firmware_gen import FIRMWARE_FILES, C_DIR, firmware_source_paths, generate_split, toolchain

BUILDS = [("host", None, ()), *((name, name, ()) for name in toolchain.TARGETS),
          *((f"{name} NCA_PORTABLE", name, ("-DNCA_PORTABLE",)) for name in toolchain.TARGETS)]


@pytest.mark.toolchain
@pytest.mark.parametrize("label, target, defines", BUILDS, ids=[b[0] for b in BUILDS])
def test_sources_and_split_genome_compile_strictly(tmp_path, label, target, defines):
    tools = toolchain.HOST_TOOLS if target is None else toolchain.TARGETS[target].tools[:1]
    if toolchain.missing(*tools):
        pytest.skip("missing " + " ".join(toolchain.missing(*tools)))
    header, source = generate_split(random_genome(5, hidden=13, extreme=True), "lizard")
    (tmp_path / "nca_lizard.h").write_text(header)
    (tmp_path / "nca_lizard.c").write_text(source)
    if target is None:
        command = ["gcc", *toolchain.HOST_FLAGS]
    else:
        command = [toolchain.TARGETS[target].tool("gcc"), *toolchain.TARGETS[target].cflags]
    for path in (*firmware_source_paths(), tmp_path / "nca_lizard.c"):
        toolchain.run_tool([*command, *defines, f"-I{C_DIR}", f"-I{tmp_path}", "-c", path,
                            "-o", tmp_path / f"{path.stem}.o"])


def test_no_floating_point_in_the_firmware_or_a_header():
    header, source = generate_split(random_genome(6), "lizard")
    texts = {name: (C_DIR / name).read_text() for name in FIRMWARE_FILES}
    texts.update({"nca_lizard.h": header, "nca_lizard.c": source})
    for name, text in texts.items():
        code = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        assert not re.search(r"\b(float|double)\b|\d\.\d|\d[eE][+-]?\d", code), name


def _result(cpu, per_mac, flash, exact=True):
    return {"cpu": cpu, "instructions": {"per_mac_dense": per_mac},
            "flash": {"genome_plus_update": flash}, "qemu_agrees_bit_for_bit": exact}


@pytest.mark.parametrize("cpu, per_mac, flash, failing", [
    ("cortex-m4", 1.5, 20000, []),
    ("cortex-m4", 1.51, 9000, ["instructions/MAC"]),
    ("cortex-m0plus", 4.0, 10240, []),
    ("cortex-m0plus", 4.1, 10241, ["instructions/MAC", "flash bytes"]),
    ("cortex-m0plus", 3.0, 9000, ["bit-exact on the emulator"]),
])
def test_budget_verdicts(cpu, per_mac, flash, failing):
    exact = failing != ["bit-exact on the emulator"]
    verdicts = firmware_size.verdicts(_result(cpu, per_mac, flash, exact))
    assert [what for what, _, _, met, checked in verdicts if checked and not met] == failing


def test_rv32_flash_is_a_goal_not_a_check():
    verdicts = firmware_size.verdicts(_result("rv32imc", 9.0, 20000))
    assert [(what, met, checked) for what, _, _, met, checked in verdicts
            if what == "flash bytes"] == [("flash bytes", False, False)]


AVR_PARTS = [("atmega2560", True), ("atmega328p", True), ("attiny85", False)]


@pytest.mark.toolchain
@pytest.mark.parametrize("mcu, has_mul", AVR_PARTS, ids=[m for m, _ in AVR_PARTS])
def test_avr_kernels_only_on_cores_with_the_multiplier(tmp_path, mcu, has_mul):
    """nca_kernels.h selects the AVR kernels on ATmega parts (MUL) and the
    reference kernels on an ATtiny without MUL: every source compiles
    strictly for each part, and the kernel files that define the layers and
    the requantisation are the ones for its core."""
    avr = toolchain.TARGETS["atmega2560"]
    if toolchain.missing(avr.tool("gcc"), avr.tool("nm")):
        pytest.skip("missing " + " ".join(toolchain.missing(avr.tool("gcc"), avr.tool("nm"))))
    defined = {}
    for path in firmware_source_paths():
        obj = tmp_path / f"{path.stem}.o"
        toolchain.run_tool([avr.tool("gcc"), *toolchain.MCU_FLAGS, f"-mmcu={mcu}",
                            f"-I{C_DIR}", "-c", path, "-o", obj])
        out = toolchain.run_tool([avr.tool("nm"), "--defined-only", obj]).stdout.decode()
        for line in out.splitlines():
            if line.split()[-1] in ("nca_fully_connected", "nca_requantize", "nca_perceive"):
                defined[line.split()[-1]] = path.name
    suffix = "_avr.c" if has_mul else ".c"
    assert defined == {"nca_fully_connected": "nca_fully_connected" + suffix,
                       "nca_requantize": "nca_requantize" + suffix,
                       "nca_perceive": "nca_perceive" + suffix}
