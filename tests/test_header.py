"""The genome header generator and `cellsim header`: identifiers, deterministic
C99 text that round-trips the genome and compiles warning-free (single header
and --split pair), and bad input ending in one line, exit 2, nothing written."""
import math
import re
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import random_genome

from cellsim.cli import main
from cli_helpers import fails_cleanly
from cellsim.errors import ConfigError, GenomeError, OutputError
from cellsim.genome import FORMAT_VERSION, save_genome
from firmware_gen import (FIRMWARE_FILES, C_DIR, c_identifier, firmware_source_paths,
                          generate_header, generate_split, rom_bytes, write_header_files)
from firmware_gen import toolchain
from cellsim.intspec import layout
from firmware_gen.kernel_layout import BLOCK_DTYPE, unpack_blocks
from firmware_gen.layout_header import FILE_NAME as LAYOUT_FILE
from firmware_gen.layout_header import generate_layout_header

needs_gcc = pytest.mark.skipif(bool(toolchain.missing(*toolchain.HOST_TOOLS)),
                               reason="host C compiler (gcc) not installed")


@pytest.fixture(scope="module")
def genome():
    return random_genome(3, name="Lizard v2", target="lizard")


def parse_arrays(text: str, prefix: str) -> dict[str, np.ndarray]:
    """Every `const T prefix_NAME[..] ROM = {...};` of a generated file, as arrays;
    nca_block_t records as a structured array (kernel_layout.BLOCK_DTYPE)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    arrays = {}
    for m in re.finditer(rf"const (int8_t|int32_t|nca_block_t) {prefix}_(\w+)((?:\[\d+\])+) \w+ = "
                         r"\{(.*?)\};", text, flags=re.S):
        ctype, name, dims, body = m.groups()
        body = body.replace("(-2147483647 - 1)", str(-(1 << 31)))
        values = [int(v) for v in re.findall(r"-?\d+", body)]
        shape = tuple(int(d) for d in re.findall(r"\d+", dims))
        if ctype == "nca_block_t":  # the fields' values in order, record by record
            blocks = np.zeros(shape, BLOCK_DTYPE)
            flat = iter(values)
            for block in blocks:
                for field in BLOCK_DTYPE.names:
                    size = int(np.prod(BLOCK_DTYPE[field].shape))
                    block[field] = np.array([next(flat) for _ in range(size)]).reshape(
                        BLOCK_DTYPE[field].shape)
            assert next(flat, None) is None
            arrays[name] = blocks
        else:
            arrays[name] = np.array(values, np.int64).reshape(shape)
    return arrays


def genome_arrays(text: str, prefix: str, hidden: int) -> dict[str, np.ndarray]:
    """The genome's w1, b1, m1, shift1, w2, b2, m2, shift2 read back from a header."""
    arrays = parse_arrays(text, prefix)
    genome = unpack_blocks(arrays.pop("blocks"), hidden)
    genome.update((k, v) for k, v in arrays.items() if k != "seed_state")
    return genome


GENOME_FIELDS = ("w1", "b1", "m1", "shift1", "w2", "b2", "m2", "shift2")


def defines(text: str, macro: str) -> dict[str, str]:
    return dict(re.findall(rf"#define {macro}_(\w+) (\S+)", text))


# --- identifiers ------------------------------------------------------------------

@given(st.text(max_size=80))
def test_identifier_is_valid_c_or_config_error(name):
    try:
        ident = c_identifier(name)
    except ConfigError:
        return
    assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", ident)
    assert len(ident) <= 32
    assert c_identifier(ident) == ident  # sanitising is idempotent


@pytest.mark.parametrize("name, ident", [
    ("lizard", "lizard"), ("Lizard v2", "lizard_v2"), ("  --fish--  ", "fish"),
    ("2 fish", "2_fish"), ("\u00e9clair/\u00dcber", "eclair_uber"), ("a__b", "a_b"),
    ("lizard \U0001F98E", "lizard")])
def test_identifier_examples(name, ident):
    assert c_identifier(name) == ident


@pytest.mark.parametrize("name", ["", "   ", "\U0001F98E", "---", "x" * 33])
def test_unusable_names_are_config_errors(name):
    with pytest.raises(ConfigError):
        c_identifier(name)


# --- the text -----------------------------------------------------------------------

def test_header_round_trips_the_genome(genome):
    text = generate_header(genome, "lizard")
    p = genome.params
    arrays = genome_arrays(text, "nca_lizard", p.hidden)
    for field in GENOME_FIELDS:
        np.testing.assert_array_equal(arrays[field], getattr(p, field), err_msg=field)
    np.testing.assert_array_equal(parse_arrays(text, "nca_lizard")["seed_state"], p.seed_state())
    d = defines(text, "NCA_LIZARD")
    assert d["FORMAT_VERSION"] == str(FORMAT_VERSION)
    assert int(d["CRC32"].rstrip("u"), 16) == genome.crc32 == zlib.crc32(genome.to_bytes()[:-4])
    assert (d["CHANNELS"], d["INPUTS"], d["HIDDEN"]) == ("16", "48", str(p.hidden))
    assert d["HIDDEN_ZERO_POINT"] == f"({p.hidden_zero_point})"
    assert d["ALIVE_THRESHOLD"] == f"({p.alive_threshold})"
    assert d["ROM_BYTES"] == f"{rom_bytes(p)}u" == "9488u"
    assert text.isascii()
    assert "#ifndef NCA_LIZARD_H\n#define NCA_LIZARD_H\n" in text
    assert "#include <stdint.h>" in text and text.endswith("#endif /* NCA_LIZARD_H */\n")
    assert "__attribute__((aligned(16), unused))" in text
    assert "NCA_LIZARD_GENOME_INIT" in text


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hidden=st.integers(1, 64), extreme=st.booleans(),
       name=st.text(max_size=64).filter(lambda s: len(s.encode()) <= 64 and s.isprintable()))
def test_header_is_deterministic_and_exact_for_any_genome(seed, hidden, extreme, name):
    g = random_genome(seed, hidden=hidden, extreme=extreme, name=name, target=name)
    text = generate_header(g, "g")
    assert text == generate_header(random_genome(seed, hidden=hidden, extreme=extreme,
                                                 name=name, target=name), "g")
    assert text.isascii()
    assert "*/" not in text.split("*/", 1)[1].split("#ifndef")[0]  # the comment closes once
    arrays = genome_arrays(text, "nca_g", hidden)
    for field in GENOME_FIELDS:
        np.testing.assert_array_equal(arrays[field], getattr(g.params, field), err_msg=field)
    header, source = generate_split(g, "g")
    assert parse_arrays(source, "nca_g").keys() == parse_arrays(text, "nca_g").keys()
    for key, value in parse_arrays(source, "nca_g").items():
        np.testing.assert_array_equal(value, parse_arrays(text, "nca_g")[key])


def test_name_defaults_to_the_genomes_and_changes_only_identifiers(genome):
    assert generate_header(genome) == generate_header(genome, "lizard_v2")
    other = generate_header(genome, "gecko")
    assert "nca_gecko_blocks" in other and "nca_lizard" not in other
    assert genome_arrays(other, "nca_gecko", 128)["w1"].tolist() == genome.params.w1.tolist()


def test_firmware_needs_sixteen_channels():
    with pytest.raises(GenomeError, match="16"):
        generate_header(random_genome(1, channels=8))


# --- compiling ------------------------------------------------------------------------

def gcc(tmp_path, sources, out="a.out"):
    return toolchain.run_tool(["gcc", *toolchain.HOST_FLAGS, f"-I{C_DIR}", f"-I{tmp_path}",
                           *sources, "-o", tmp_path / out])


USE_GENOME = r'''
#include <stdio.h>
#include "nca_cell.h"
#include "%s"
static const nca_genome_t genome = NCA_LIZARD_GENOME_INIT;
int main(void) {
    nca_cell_ram_t ram;
    unsigned i;
    for (i = 0; i < sizeof ram; ++i) ((unsigned char *)&ram)[i] = (unsigned char)(i * 7);
    nca_cell_update(&genome, &ram);
    printf("%%u %%u %%d %%d\n", (unsigned)NCA_LIZARD_CRC32 == 0x%08xu,
           (unsigned)ram.count, (int)nca_lizard_seed_state[3], (int)genome.block_count);
    return 0;
}
'''


@needs_gcc
def test_header_compiles_strict_alone_and_with_the_firmware(tmp_path, genome):
    (tmp_path / "nca_lizard.h").write_text(generate_header(genome, "lizard"))
    (tmp_path / "only.c").write_text('#include "nca_lizard.h"\nint main(void) { return 0; }\n')
    gcc(tmp_path, [tmp_path / "only.c"], "only")  # unused static arrays: no warning
    (tmp_path / "main.c").write_text(USE_GENOME % ("nca_lizard.h", genome.crc32))
    gcc(tmp_path, [tmp_path / "main.c", *firmware_source_paths()], "main")
    out = toolchain.run_tool([tmp_path / "main"]).stdout.decode().split()
    count = int.from_bytes(bytes((i * 7) & 0xFF for i in range(248, 252)), "little")
    assert out == ["1", str(count + 1), str(genome.params.seed_state()[3]), "32"]  # blocks of 4


@needs_gcc
def test_split_pair_links_into_several_translation_units(tmp_path, genome):
    header, source = generate_split(genome, "lizard", "nca_lizard.h")
    (tmp_path / "nca_lizard.h").write_text(header)
    (tmp_path / "nca_lizard.c").write_text(source)
    assert "static const int" not in header
    assert "extern const nca_block_t nca_lizard_blocks[32];" in header
    (tmp_path / "main.c").write_text(USE_GENOME % ("nca_lizard.h", genome.crc32))
    (tmp_path / "other.c").write_text('#include "nca_lizard.h"\n'
                                      "int other(void) { return nca_lizard_blocks[0].w1[0][0][0]; }\n")
    gcc(tmp_path, [tmp_path / "main.c", tmp_path / "other.c", tmp_path / "nca_lizard.c",
                   *firmware_source_paths()], "split")
    assert toolchain.run_tool([tmp_path / "split"]).stdout.decode().split()[0] == "1"


@needs_gcc
def test_mismatched_firmware_abi_is_a_compile_error(tmp_path, genome):
    (tmp_path / "nca_lizard.h").write_text(generate_header(genome, "lizard"))
    (tmp_path / "abi.c").write_text('#define NCA_CELL_ABI_VERSION 99\n#include "nca_lizard.h"\n'
                                    "int main(void) { return 0; }\n")
    with pytest.raises(toolchain.ToolchainError, match="ABI version"):
        gcc(tmp_path, [tmp_path / "abi.c"], "abi")


# --- the generated RAM layout ---------------------------------------------------------------

def test_the_shipped_layout_header_is_the_one_generated_from_the_simulators_layout():
    shipped = (C_DIR / LAYOUT_FILE).read_text(encoding="ascii")
    assert shipped == generate_layout_header(), \
        f"{LAYOUT_FILE} is stale: run `python -m firmware_gen.layout_header`"


def test_the_layout_fields_tile_the_cells_ram_in_order():
    end = 0
    for name, offset, ctype, dims, _ in layout.FIELDS:
        assert offset == end, name
        end += layout.C_TYPE_BYTES[ctype] * math.prod(dims)
    assert end == layout.RAM_BYTES
    offsets = {name: offset for name, offset, *_ in layout.FIELDS}
    assert (offsets["mailbox"], offsets["state"], offsets["acc"], offsets["rng"],
            offsets["clock"], offsets["count"], offsets["flags"]) == \
        (layout.MAILBOX, layout.STATE, layout.ACC, layout.RNG, layout.CLOCK, layout.COUNT,
         layout.FLAGS)


@needs_gcc
def test_a_layout_the_compiler_disagrees_with_stops_the_build(tmp_path):
    """The generated static asserts are real checks: a header whose offsets do not
    match the struct does not compile."""
    for name in FIRMWARE_FILES:
        (tmp_path / name).write_bytes((C_DIR / name).read_bytes())
    wrong = generate_layout_header().replace('state) == 128, "state at 128"',
                                             'state) == 129, "state at 129"')
    assert wrong != generate_layout_header()
    (tmp_path / LAYOUT_FILE).write_text(wrong)
    with pytest.raises(toolchain.ToolchainError, match="state at 129"):
        toolchain.run_tool(["gcc", *toolchain.HOST_FLAGS, "-c", tmp_path / "nca_cell.c",
                        "-o", tmp_path / "nca_cell.o"])
    (tmp_path / LAYOUT_FILE).write_text(generate_layout_header())
    toolchain.run_tool(["gcc", *toolchain.HOST_FLAGS, "-c", tmp_path / "nca_cell.c",
                    "-o", tmp_path / "nca_cell.o"])


# --- writing files ----------------------------------------------------------------------

def test_write_header_files_with_firmware(tmp_path, genome):
    paths = write_header_files(genome, name="lizard", firmware_dir=tmp_path / "build")
    build = tmp_path / "build"
    assert sorted(p.name for p in paths) == sorted(["nca_lizard.h", *FIRMWARE_FILES])
    assert (build / "nca_lizard.h").read_text() == generate_header(genome, "lizard")
    for name in FIRMWARE_FILES:
        assert (build / name).read_bytes() == (C_DIR / name).read_bytes()
    assert not [p for p in build.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_write_split_names_the_source_after_the_header(tmp_path, genome):
    paths = write_header_files(genome, tmp_path / "rom.h", name="lizard", split=True)
    assert [p.name for p in paths] == ["rom.h", "rom.c"]
    assert '#include "rom.h"' in (tmp_path / "rom.c").read_text()


@pytest.mark.parametrize("kwargs, error", [
    ({"name": "\U0001F98E"}, ConfigError),
    ({"out": "missing_dir/x.h"}, OutputError),
    ({"out": "nca_cell.h"}, ConfigError),
    ({"out": "x.txt", "split": True}, ConfigError),
])
def test_bad_requests_write_nothing(tmp_path, genome, kwargs, error):
    if "out" in kwargs:
        kwargs = dict(kwargs, out=tmp_path / kwargs["out"])
    with pytest.raises(error):
        write_header_files(genome, firmware_dir=tmp_path / "fw", **kwargs)
    assert not (tmp_path / "fw").exists() or not any((tmp_path / "fw").iterdir())
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_an_output_directory_that_cannot_exist_is_output_error(tmp_path, genome):
    # A regular file where a directory should be, rather than a read-only
    # directory: root (as in CI) may write into read-only directories, but not
    # below a file.
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="does not exist"):
        write_header_files(genome, blocker / "x.h")
    with pytest.raises(OutputError, match="cannot create output directory"):
        write_header_files(genome, firmware_dir=blocker / "fw")
    assert blocker.read_text() == "x" and list(tmp_path.iterdir()) == [blocker]


# --- the command ------------------------------------------------------------------------

def test_cli_writes_header_and_firmware(tmp_path, genome, capsys):
    save_genome(genome, tmp_path / "g.genome")
    code = main(["header", str(tmp_path / "g.genome"), "--name", "lizard",
                 "--firmware", str(tmp_path / "fw")])
    assert code == 0
    assert (tmp_path / "fw" / "nca_lizard.h").read_text() == generate_header(genome, "lizard")
    assert all((tmp_path / "fw" / name).exists() for name in FIRMWARE_FILES)
    assert "9,488 bytes" in capsys.readouterr().out
    code = main(["header", str(tmp_path / "g.genome"), "--out", str(tmp_path / "s.h"), "--split"])
    assert code == 0 and (tmp_path / "s.c").exists()
    assert "nca_lizard_v2_blocks" in (tmp_path / "s.c").read_text()  # default: the genome's name


def corrupt(path):
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("case", ["corrupt", "missing", "bad_name", "unwritable", "collision"])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, genome, capsys, case):
    path = tmp_path / "g.genome"
    save_genome(genome, path)
    out = tmp_path / "out"
    out.mkdir()
    args = ["header", str(path), "--out", str(out / "nca.h"), "--firmware", str(out)]
    if case == "corrupt":
        corrupt(path)
    elif case == "missing":
        args[1] = str(tmp_path / "nope.genome")
    elif case == "bad_name":
        args += ["--name", "!!!"]
    elif case == "unwritable":
        args[3] = str(tmp_path / "no" / "such" / "dir" / "nca.h")
    elif case == "collision":
        args[3] = str(out / "nca_cell.c")
    fails_cleanly(capsys, args)
    assert not list(out.iterdir())
