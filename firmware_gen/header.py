"""C99 text of a genome: a drop-in header (or a .h/.c pair) holding the ROM
data the cell firmware reads, in its kernels' layout (kernel_layout.py: the
hidden layer as nca_block_t records), with defines for the dimensions, the
format version and the genome's CRC. Pure string building: the same genome and
name give the same bytes on every run and machine."""
import re
import unicodedata

import numpy as np

from cellsim import __version__
from cellsim.errors import ConfigError, GenomeError
from cellsim.intspec import layout

from .kernel_layout import BLOCK, BLOCK_FIELDS, kernel_blocks, padded_hidden

MAX_IDENTIFIER_NAME = 32  # keeps nca_<name>_shift1 within C99's 63 significant characters
FIRMWARE_ABI = 2          # nca_genome_t version of nca_cell.h (NCA_CELL_ABI_VERSION)
ALIGNMENT = 16            # TFLM's alignas(16): lets DSP code use word loads

# (field, C type, what it holds); also the order of the arrays in the file and
# of the ROM byte count. "blocks" is the hidden layer, nca_block_t records.
ARRAYS = (
    ("blocks", "nca_block_t", f"the hidden units in blocks of {BLOCK}: biases, first-layer "
     "weights, requantisation, second-layer weights"),
    ("b2", "int32_t", "second-layer biases"),
    ("m2", "int32_t", "second-layer requantisation multipliers"),
    ("shift2", "int8_t", "second-layer requantisation shifts"),
)


def rom_arrays(params) -> dict[str, np.ndarray]:
    """The arrays of ARRAYS, by field name."""
    return {"blocks": kernel_blocks(params), "b2": np.asarray(params.b2, np.int32),
            "m2": np.asarray(params.m2, np.int32), "shift2": np.asarray(params.shift2, np.int8)}


def c_identifier(name: str) -> str:
    """The lower-case identifier part made from a genome name: accents folded,
    runs of anything but ASCII letters and digits turned into one underscore.
    ConfigError if nothing usable is left or the result is too long."""
    if not isinstance(name, str):
        raise ConfigError(f"name must be a string, got {type(name).__name__}")
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ident = re.sub(r"[^a-z0-9]+", "_", folded.lower()).strip("_")
    if not ident:
        raise ConfigError(f"name {name!r} has no ASCII letters or digits to make a C "
                          "identifier from; pass another --name")
    if len(ident) > MAX_IDENTIFIER_NAME:
        raise ConfigError(f"name {name!r} gives the identifier {ident!r} of {len(ident)} "
                          f"characters; at most {MAX_IDENTIFIER_NAME} are allowed")
    return ident


def check_firmware_genome(genome) -> None:
    """The firmware's RAM layout fixes the state at 16 channels."""
    if genome.params.channels != layout.CHANNELS:
        raise GenomeError(f"genome has {genome.params.channels} channels; the cell "
                          f"firmware's 256-byte RAM holds exactly {layout.CHANNELS}")


def rom_bytes(params) -> int:
    """Flash taken by the arrays the update reads (cellsim.genome.rom_bytes: the
    one count, shared with `cellsim genome info`)."""
    from cellsim.genome import rom_bytes as genome_rom_bytes

    return genome_rom_bytes(params.channels, params.hidden)


def _comment_text(text: str) -> str:
    """Arbitrary UTF-8 made safe inside an ASCII C comment."""
    escaped = text.encode("ascii", "backslashreplace").decode("ascii")
    return escaped.replace("*/", "*\\/")


def _int_literal(value: int) -> str:
    # -2147483648 would be the negation of a constant too big for int32
    return "(-2147483647 - 1)" if value == -(1 << 31) else str(value)


def _initializer(values, per_line: int, indent: str) -> str:
    """Rows of comma-separated literals, right-aligned per array."""
    texts = [_int_literal(int(v)) for v in np.asarray(values).ravel()]
    width = max(len(t) for t in texts)
    lines = []
    for start in range(0, len(texts), per_line):
        chunk = texts[start:start + per_line]
        lines.append(indent + ", ".join(t.rjust(width) for t in chunk) + ",")
    return "\n".join(lines)


def _block_definition(prefix: str, rom: str, blocks: np.ndarray, storage: str) -> str:
    """The nca_block_t records, every field braced (-Wmissing-braces)."""
    def braced(values, indent: str) -> str:
        values = np.asarray(values)
        if values.ndim == 1:
            return "{" + ", ".join(_int_literal(int(v)) for v in values) + "}"
        inner = f",\n{indent} ".join(braced(v, indent + " ") for v in values)
        return "{" + inner + "}"

    parts = []
    for b, block in enumerate(blocks):
        fields = []
        for name, _, _, what in BLOCK_FIELDS:
            fields.append(f"        /* {name}: {what} */\n        "
                          + braced(block[name], "        ") + ",")
        parts.append(f"    {{ /* block {b}: hidden units {BLOCK * b}..{BLOCK * b + BLOCK - 1} */\n"
                     + "\n".join(fields) + "\n    },")
    return (f"{storage}const nca_block_t {prefix}_blocks[{len(blocks)}] {rom} = {{\n"
            + "\n".join(parts) + "\n};")


def _array_definition(prefix: str, rom: str, field: str, ctype: str, values,
                      storage: str) -> str:
    values = np.asarray(values)
    if ctype == "nca_block_t":
        return _block_definition(prefix, rom, values, storage)
    dims = "".join(f"[{d}]" for d in values.shape)
    head = f"{storage}const {ctype} {prefix}_{field}{dims} {rom} = {{"
    per_line = 16 if ctype == "int8_t" else 8
    return head + "\n" + _initializer(values, per_line, "    ") + "\n};"


def _names(genome, name):
    ident = c_identifier(genome.name if name is None else name)
    return ident, f"nca_{ident}", f"NCA_{ident.upper()}"


def _preamble(genome, ident: str, file_name: str, split: bool) -> str:
    from cellsim.genome import FORMAT_VERSION
    p = genome.params
    prefix, macro = f"nca_{ident}", f"NCA_{ident.upper()}"
    scale_texts = [f"{float(s):.6g}" for s in p.state_scale]
    scales = ",\n *     ".join(", ".join(scale_texts[i:i + 6])
                                  for i in range(0, len(scale_texts), 6))
    split_note = (f"\n * The arrays are defined in {file_name[:-2]}.c (cellsim header --split);"
                  "\n * compile it once into the firmware." if split else
                  "\n * The arrays are static: include this header in one translation unit"
                  "\n * (for several, generate a .h/.c pair with --split).")
    file_name = _comment_text(file_name)
    title = _comment_text(genome.name)
    grid = f"{genome.grid_size}x{genome.grid_size} {'torus' if genome.torus else 'grid'}"
    return f"""/* {file_name} - int8 genome "{title}" for the cellsim cell firmware.
 *
 * Generated by cellsim {__version__} (firmware_gen) from a genome file of format
 * version {FORMAT_VERSION}, CRC-32 0x{genome.crc32:08x}: target "{_comment_text(genome.target)}",
 * {p.channels} channels, {p.hidden} hidden units, trained on a {grid} with fire rate \
{genome.fire_rate:g},
 * source checkpoint SHA-256 {genome.source_sha256.hex()}.
 * Do not edit: regenerate with `cellsim header GENOME --name {ident}`.{split_note}
 *
 * Use with the cell firmware nca_cell.h / nca_cell.c (`cellsim header --firmware DIR`
 * copies them), one 256-byte nca_cell_ram_t per cell:
 *     #include "nca_cell.h"
 *     #include "{file_name}"
 *     static const nca_genome_t genome = {macro}_GENOME_INIT;
 *     nca_cell_update(&genome, &ram);
 * The hidden layer is in the firmware kernels' layout (nca_block_t, see
 * docs/firmware.md): blocks of {BLOCK} hidden units, weights offset-binary
 * (w + 128) and interleaved, the offsets folded into b1. Per-output
 * requantisation ratio m * 2^(shift - 31) is applied as
 * (acc * m + 2^(30 - shift)) >> (31 - shift). Layer 1 reads the 48
 * int8 perception values with input offset 0 and outputs with zero point
 * {macro}_HIDDEN_ZERO_POINT, clamped to [zero point, 127] (ReLU); layer 2 reads
 * them with input offset -zero point; its output is a saturated int8 delta
 * added to the state. A cell lives while some alpha (channel 3) in its 3x3
 * neighbourhood exceeds {macro}_ALIVE_THRESHOLD.
 * Real state value = q * scale, per channel:
 *     {scales}.
 */
#ifndef {macro}_H
#define {macro}_H

#include <stdint.h>

#define {macro}_FORMAT_VERSION {FORMAT_VERSION}   /* genome file format */
#define {macro}_CRC32 0x{genome.crc32:08X}u  /* CRC-32 of the genome file */
#define {macro}_CHANNELS {p.channels}
#define {macro}_INPUTS {3 * p.channels}
#define {macro}_HIDDEN {p.hidden}
#define {macro}_BLOCKS {padded_hidden(p.hidden) // BLOCK}   /* of {BLOCK} hidden units; padding units add 0 */
#define {macro}_HIDDEN_ZERO_POINT ({p.hidden_zero_point})
#define {macro}_ALIVE_THRESHOLD ({p.alive_threshold})
#define {macro}_ROM_BYTES {rom_bytes(p)}u  /* flash taken by the arrays the update reads */

/* The nca_genome_t layout this header's {macro}_GENOME_INIT fills in. */
#if defined(NCA_CELL_ABI_VERSION) && NCA_CELL_ABI_VERSION != {FIRMWARE_ABI}
#error "the {prefix} genome header was made for nca_cell.h ABI version {FIRMWARE_ABI}"
#endif
#include "nca_cell.h"  /* nca_block_t, nca_genome_t */
#if NCA_CELL_ABI_VERSION != {FIRMWARE_ABI}
#error "the {prefix} genome header was made for nca_cell.h ABI version {FIRMWARE_ABI}"
#endif

/* {ALIGNMENT}-byte alignment (as TFLM's alignas(16)) for word-wise DSP loads;
 * `unused` keeps translation units that read only some arrays warning-free.
 * On AVR the arrays go to flash (avr-libc's PROGMEM), which the firmware reads
 * with LPM; its 8-bit loads need no alignment. */
#if defined(__AVR__)
#define {macro}_ROM __attribute__((__progmem__, unused))
#elif defined(__GNUC__) || defined(__clang__)
#define {macro}_ROM __attribute__((aligned({ALIGNMENT}), unused))
#else
#define {macro}_ROM
#endif
"""


def _genome_init(prefix: str, macro: str) -> str:
    return f"""
/* Initialiser of an nca_genome_t (nca_cell.h) pointing at these arrays. */
#define {macro}_GENOME_INIT {{ \\
    {prefix}_blocks, {prefix}_b2, {prefix}_m2, {prefix}_shift2, \\
    {macro}_BLOCKS, {macro}_HIDDEN_ZERO_POINT, {macro}_ALIVE_THRESHOLD }}
"""


def _arrays(genome, prefix: str, rom: str, storage: str) -> str:
    p = genome.params
    arrays = rom_arrays(p)
    parts = []
    for field, ctype, what in ARRAYS:
        parts.append(f"/* {what} */\n"
                     + _array_definition(prefix, rom, field, ctype, arrays[field], storage))
    parts.append("/* the seed cell's state (channels 3.. = 1.0): put it in the centre cell */\n"
                 + _array_definition(prefix, rom, "seed_state", "int8_t", p.seed_state(),
                                     storage))
    return "\n\n".join(parts) + "\n"


def _declarations(genome, prefix: str) -> str:
    p = genome.params
    arrays = rom_arrays(p)
    lines = []
    for field, ctype, _ in ARRAYS + (("seed_state", "int8_t", ""),):
        values = p.seed_state() if field == "seed_state" else arrays[field]
        dims = f"[{len(values)}]" if ctype == "nca_block_t" else "".join(
            f"[{d}]" for d in np.shape(values))
        lines.append(f"extern const {ctype} {prefix}_{field}{dims};")
    return "\n".join(lines) + "\n"


def generate_header(genome, name: str | None = None, file_name: str | None = None) -> str:
    """One self-contained C99 header: static const arrays, defines, initialiser.

    `name` (default: the genome's own) becomes the identifier prefix nca_<name>_;
    `file_name` (default nca_<name>.h) only appears in the comments."""
    check_firmware_genome(genome)
    ident, prefix, macro = _names(genome, name)
    file_name = file_name or f"{prefix}.h"
    return (_preamble(genome, ident, file_name, split=False) + "\n"
            + _arrays(genome, prefix, f"{macro}_ROM", "static ")
            + _genome_init(prefix, macro)
            + f"\n#endif /* {macro}_H */\n")


def generate_split(genome, name: str | None = None,
                   file_name: str | None = None) -> tuple[str, str]:
    """(header, source) for builds with several translation units: the header
    declares the arrays extern, the source (file_name with .c) defines them."""
    check_firmware_genome(genome)
    ident, prefix, macro = _names(genome, name)
    file_name = file_name or f"{prefix}.h"
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+\.h", file_name):
        raise ConfigError(f"split header name {file_name!r} must be a plain file name ending "
                          "in .h (the .c file #includes it)")
    header = (_preamble(genome, ident, file_name, split=True) + "\n"
              + _declarations(genome, prefix)
              + _genome_init(prefix, macro)
              + f"\n#endif /* {macro}_H */\n")
    source = (f"/* {file_name[:-2]}.c - the ROM arrays declared in {file_name}; generated by "
              f"cellsim {__version__}, do not edit. */\n"
              f'#include "{file_name}"\n\n'
              + _arrays(genome, prefix, f"{macro}_ROM", ""))
    return header, source
