"""firmware_gen: C for the cell computers. Turns a genome into a C99 header (or a
.h/.c pair) and ships the portable integer cell firmware (c/nca_cell.h, .c, and
nca_cell_layout.h generated from the simulator's RAM layout by layout_header.py)
that computes exactly cellsim.intspec.update_ram. numpy only, never torch.

    from firmware_gen import generate_header, write_header_files
    text = generate_header(genome, "lizard")            # str, deterministic
    write_header_files(genome, "nca_lizard.h", firmware_dir="build/")
"""
import contextlib
import re
from pathlib import Path

from cellsim import atomic
from cellsim.errors import ConfigError, OutputError

from .header import c_identifier, check_firmware_genome, generate_header, generate_split, rom_bytes

C_DIR = Path(__file__).resolve().parent / "c"
# The C files of the firmware, every one compiled into a build: each kernel
# file holds code only for the cores it is written for (nca_kernels.h).
FIRMWARE_SOURCES = ("nca_cell.c",
                    "nca_perceive.c", "nca_perceive_arm_dsp.c", "nca_perceive_avr.c",
                    "nca_fully_connected.c", "nca_fully_connected_arm_dsp.c",
                    "nca_fully_connected_armv6m.c", "nca_fully_connected_avr.c",
                    "nca_residual.c", "nca_residual_arm_dsp.c",
                    "nca_requantize.c", "nca_requantize_avr.c")
FIRMWARE_FILES = ("nca_cell.h", "nca_cell_layout.h", "nca_kernels.h", *FIRMWARE_SOURCES)

__all__ = ["C_DIR", "FIRMWARE_FILES", "FIRMWARE_SOURCES", "firmware_source_paths", "c_identifier", "firmware_sources", "generate_header",
           "generate_split", "rom_bytes", "write_header_files"]


def firmware_source_paths() -> list[Path]:
    """The firmware's .c files, to compile with the harness or application."""
    return [C_DIR / name for name in FIRMWARE_SOURCES]


def firmware_sources() -> dict[str, str]:
    """The shipped cell firmware: {file name: text}."""
    return {name: (C_DIR / name).read_text(encoding="ascii") for name in FIRMWARE_FILES}


def write_header_files(genome, out=None, name: str | None = None, split: bool = False,
                       firmware_dir=None) -> list[Path]:
    """Write the genome's header (and its .c with `split`) to `out`, default
    nca_<name>.h in `firmware_dir` or the current directory, and with
    `firmware_dir` the firmware sources there too. Every input is checked and
    every text rendered before the first byte is written; then each file goes
    to a temporary beside its destination and all are renamed at the end, so a
    failure leaves no file half-written. Returns the paths written."""
    check_firmware_genome(genome)
    ident = c_identifier(genome.name if name is None else name)
    if firmware_dir is not None:
        firmware_dir = atomic.prepare_output_dir(firmware_dir)
    if out is None:
        out = (firmware_dir or Path(".")) / f"nca_{ident}.h"
    out = Path(out)
    if split and out.suffix != ".h":
        raise ConfigError(f"--split needs an output name ending in .h, got {out}")
    if out.name in FIRMWARE_FILES or (split and out.with_suffix(".c").name in FIRMWARE_FILES):
        raise ConfigError(f"output {out.name} would collide with the firmware's own files")

    texts: dict[Path, str] = {}
    if split:
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+\.h", out.name):
            raise ConfigError(f"--split output {out.name!r} must be a plain file name "
                              "(the .c file #includes it)")
        texts[out], texts[out.with_suffix(".c")] = generate_split(genome, ident, out.name)
    else:
        texts[out] = generate_header(genome, ident, out.name)
    if firmware_dir is not None:
        for file_name, text in firmware_sources().items():
            texts[firmware_dir / file_name] = text
    for path in texts:
        atomic.check_writable_file(path)

    with contextlib.ExitStack() as stack:
        for path, text in texts.items():
            tmp = stack.enter_context(atomic.atomic_path(path))
            try:
                Path(tmp).write_text(text, encoding="ascii")
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return list(texts)
