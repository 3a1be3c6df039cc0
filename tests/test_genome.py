"""The genome file format: round trips, the 10 KB budget, and that every kind of
damage (truncation, any single-byte change, crafted inconsistent files) is
refused with a GenomeError naming the problem."""
import dataclasses
import math
import os
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellsim.errors import GenomeError, OutputError
from cellsim.genome import (ARRAYS, HEADER, MAGIC, MAX_GENOME_BYTES, Genome, genome_size,
                            load_genome, save_genome, sha256_file)
from strategies import genomes, random_genome, random_int_params

# Header field offsets (docs/genome-format.md).
VERSION, FLAGS, CHANNELS, HIDDEN, PERCEPTION, GRID = 4, 6, 8, 10, 12, 14
NAME_LEN, TARGET_LEN, ZERO_POINT, THRESHOLD = 16, 17, 18, 19
FIRE_RATE, ANGLE, HIDDEN_SCALE, SHA, FILE_SIZE = 20, 24, 28, 32, 64


def paper_genome(seed=0) -> Genome:
    return random_genome(seed, channels=16, hidden=128)


def reseal(data: bytes) -> bytes:
    """Recompute the CRC, so a crafted inconsistency reaches the later checks."""
    return data[:-4] + struct.pack("<I", zlib.crc32(data[:-4]))


def patch(data: bytes, offset: int, fmt: str, value) -> bytes:
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, offset, value)
    return bytes(out)


def test_paper_model_fits_the_rom_budget():
    genome = paper_genome()
    data = genome.to_bytes()
    print(f"paper model genome (16 channels, 128 hidden, name/target 'lizard'): "
          f"{len(data)} bytes of {MAX_GENOME_BYTES}")
    assert genome.parameter_count == 8336
    assert len(data) == genome.size_bytes == genome_size(16, 128, 6, 6) == 9640
    # even the longest allowed name and target stay inside the budget
    assert genome_size(16, 128, 64, 64) <= MAX_GENOME_BYTES
    assert len(data) % 4 == 0


def test_header_layout_matches_the_documented_offsets():
    genome = paper_genome()
    data = genome.to_bytes()
    assert HEADER.size == 68
    assert data[:4] == MAGIC
    fields = struct.unpack_from("<HHHHHH", data, VERSION)
    assert fields == (1, int(genome.torus), 16, 128, 48, 72)
    assert (data[NAME_LEN], data[TARGET_LEN]) == (6, 6)
    assert struct.unpack_from("<f", data, FIRE_RATE)[0] == 0.5
    assert data[SHA:SHA + 32] == genome.source_sha256
    assert struct.unpack_from("<I", data, FILE_SIZE)[0] == len(data)
    assert data[HEADER.size:HEADER.size + 8] == b"lizard\0\0"
    assert genome.crc32 == zlib.crc32(data[:-4]) == struct.unpack_from("<I", data, len(data) - 4)[0]


@settings(max_examples=60, deadline=None)
@given(genomes())
def test_round_trip_of_any_valid_genome(genome):
    data = genome.to_bytes()
    loaded = Genome.from_bytes(data)
    assert loaded == genome
    assert loaded.to_bytes() == data  # one canonical encoding
    assert len(data) == genome.size_bytes
    assert len(data) % 4 == 0


def test_round_trip_through_a_file(tmp_path):
    genome = paper_genome(3)
    path = tmp_path / "lizard.genome"
    assert save_genome(genome, path) == path.stat().st_size
    assert load_genome(path) == genome
    assert load_genome(str(path)) == genome
    assert [p.name for p in tmp_path.iterdir()] == ["lizard.genome"]  # no temporary left


def test_loaded_arrays_are_independent_writable_copies():
    loaded = Genome.from_bytes(paper_genome().to_bytes())
    loaded.params.w1[0, 0] = 1  # does not raise: not a view into the file's bytes


def test_values_are_rounded_to_their_stored_float32_precision():
    params = random_int_params(4, 4, 3)
    params = dataclasses.replace(params, hidden_scale=0.1)
    genome = Genome(params=params, name="x", target="", grid_size=40, fire_rate=0.1,
                    angle=0.3, torus=False, source_sha256=bytes(32))
    assert genome.fire_rate == float(np.float32(0.1))
    assert genome.params.hidden_scale == float(np.float32(0.1))
    assert Genome.from_bytes(genome.to_bytes()) == genome


def test_every_single_byte_change_is_detected():
    data = paper_genome(1).to_bytes()
    rng = np.random.default_rng(7)
    buf = bytearray(data)
    for position in range(len(data)):
        original = buf[position]
        buf[position] = (original + int(rng.integers(1, 256))) % 256
        with pytest.raises(GenomeError):
            Genome.from_bytes(buf)
        buf[position] = original
    assert bytes(buf) == data


@settings(max_examples=80, deadline=None)
@given(genomes(), st.data())
def test_any_single_byte_change_of_any_genome_is_detected(genome, data):
    raw = bytearray(genome.to_bytes())
    position = data.draw(st.integers(0, len(raw) - 1))
    raw[position] = data.draw(st.integers(0, 255).filter(lambda v: v != raw[position]))
    with pytest.raises(GenomeError):
        Genome.from_bytes(raw)


def test_truncation_at_every_length_is_detected():
    data = paper_genome(2).to_bytes()
    for length in range(len(data)):
        with pytest.raises(GenomeError, match="too short|truncated"):
            Genome.from_bytes(data[:length])


@settings(max_examples=30, deadline=None)
@given(genomes(), st.binary(min_size=1, max_size=64))
def test_trailing_bytes_are_refused(genome, extra):
    with pytest.raises(GenomeError, match="trailing bytes"):
        Genome.from_bytes(genome.to_bytes() + extra)


@pytest.mark.parametrize("craft, message", [
    (lambda d: b"PK\x03\x04" + d[4:], "wrong magic"),
    (lambda d: reseal(patch(d, VERSION, "H", 2)), "unsupported format version 2"),
    (lambda d: d[:100] + bytes([d[100] ^ 1]) + d[101:], "CRC mismatch"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 0x80]), "CRC mismatch"),
    (lambda d: reseal(patch(patch(d, CHANNELS, "H", 15), PERCEPTION, "H", 45)),
     "need .* bytes, the file has"),
    (lambda d: reseal(patch(d, HIDDEN, "H", 127)), "need .* bytes, the file has"),
    (lambda d: reseal(patch(d, NAME_LEN, "B", 9)), "need .* bytes, the file has"),
    (lambda d: reseal(patch(d, PERCEPTION, "H", 47)), "perception size 47"),
    (lambda d: reseal(patch(patch(d, CHANNELS, "H", 3), PERCEPTION, "H", 9)), "3 channels"),
    (lambda d: reseal(patch(d, HIDDEN, "H", 0)), "0 hidden units"),
    (lambda d: reseal(patch(d, FLAGS, "H", 0x0102)), "unknown flag bits 0x0102"),
    (lambda d: reseal(patch(d, FIRE_RATE, "f", float("nan"))), "fire rate is not finite"),
    (lambda d: reseal(patch(d, ANGLE, "f", float("inf"))), "angle is not finite"),
    (lambda d: reseal(patch(d, HIDDEN_SCALE, "f", float("-inf"))), "hidden scale"),
    (lambda d: reseal(patch(d, HIDDEN_SCALE, "f", -1.0)), "hidden scale must be positive"),
    (lambda d: reseal(patch(d, FIRE_RATE, "f", 1.5)), r"fire rate 1.5 is outside \(0, 1\]"),
    (lambda d: reseal(patch(d, GRID, "H", 2)), "grid size 2"),
    (lambda d: reseal(patch(d, HEADER.size, "B", 0xFF)), "name is not valid UTF-8"),
    (lambda d: reseal(patch(d, HEADER.size + 8, "B", 0xC3)), "target is not valid UTF-8"),
    (lambda d: reseal(patch(d, HEADER.size, "B", 0x0A)), "unprintable characters"),
    (lambda d: reseal(patch(d, HEADER.size + 6, "B", 1)), "nonzero padding after name"),
    (lambda d: reseal(patch(d, HEADER.size + 16, "f", float("nan"))), "state scales"),
    (lambda d: reseal(patch(d, HEADER.size + 16, "f", 0.0)), "state scales"),
    (lambda d: reseal(patch(d, NAME_LEN, "B", 7)), "unprintable characters"),
])
def test_crafted_damage_is_refused_with_a_named_problem(craft, message):
    data = paper_genome(5).to_bytes()
    with pytest.raises(GenomeError, match=message):
        Genome.from_bytes(craft(data))


def _offset_of(field: str, channels=16, hidden=128, name_len=6, target_len=6) -> int:
    offset = HEADER.size + 8 + 8
    for name, dtype, shape in ARRAYS:
        if name == field:
            return offset
        size = np.dtype(dtype).itemsize * int(np.prod(shape(channels, hidden)))
        offset += (size + 3) & ~3
    raise KeyError(field)


@pytest.mark.parametrize("field, fmt, value, message", [
    ("w1", "b", -128, "w1 holds -128"),
    ("w2", "b", -128, "w2 holds -128"),
    ("m1", "i", 5, "m1 must be 0 or lie in"),
    ("m2", "i", -(1 << 30), "m2 must be 0 or lie in"),
    ("shift1", "b", 31, "shift1 must lie in"),
    ("shift2", "b", -32, "shift2 must lie in"),
    ("b1", "i", (1 << 31) - 1, r"b1\[0\] = 2147483647 lets the accumulator overflow int32"),
])
def test_parameters_out_of_range_are_refused(field, fmt, value, message):
    data = paper_genome(6).to_bytes()
    with pytest.raises(GenomeError, match=message):
        Genome.from_bytes(reseal(patch(data, _offset_of(field), fmt, value)))


def test_accumulator_bound_is_exact():
    params = random_int_params(8, 4, 5)
    worst = int(np.abs(params.w1[0].astype(np.int64)).sum()) * 128
    at_limit = params.b1.copy()
    at_limit[0] = (1 << 31) - 1 - worst
    kwargs = dict(name="", target="", grid_size=8, fire_rate=1.0, angle=0.0, torus=True,
                  source_sha256=bytes(32))
    Genome(params=dataclasses.replace(params, b1=at_limit), **kwargs)
    at_limit[0] += 1
    with pytest.raises(GenomeError, match="overflow int32"):
        Genome(params=dataclasses.replace(params, b1=at_limit), **kwargs)


@pytest.mark.parametrize("change, message", [
    (dict(name="x" * 65), "name is 65 bytes"),
    (dict(target="é" * 33), "target is 66 bytes"),
    (dict(name="two\nlines"), "unprintable characters"),
    (dict(name=3), "name must be a string"),
    (dict(grid_size=2), "grid size 2"),
    (dict(grid_size=72.0), "grid size must be an integer"),
    (dict(grid_size=True), "grid size must be an integer"),
    (dict(fire_rate=0.0), "fire rate 0.0"),
    (dict(fire_rate=float("nan")), "fire rate"),
    (dict(angle=1e39), "angle"),
    (dict(torus=1), "torus must be a bool"),
    (dict(source_sha256=b"short"), "source sha256 is 5 bytes"),
    (dict(source_sha256=None), "source sha256 must be 32 bytes"),
    (dict(params="weights"), "params must be IntParams"),
])
def test_invalid_genome_fields_are_refused(change, message):
    fields = dict(params=random_int_params(0, 4, 2), name="a", target="b", grid_size=72,
                  fire_rate=0.5, angle=0.0, torus=False, source_sha256=bytes(32))
    fields.update(change)
    with pytest.raises(GenomeError, match=message):
        Genome(**fields)


def test_too_few_channels_for_the_alive_channel_are_refused():
    params = random_int_params(0, 16, 8)
    small = dataclasses.replace(params, w1=params.w1[:, :9], w2=params.w2[:3], b2=params.b2[:3],
                                m2=params.m2[:3], shift2=params.shift2[:3],
                                state_scale=params.state_scale[:3])
    with pytest.raises(GenomeError, match="3 channels"):
        Genome(params=small, name="", target="", grid_size=72, fire_rate=0.5, angle=0.0,
               torus=False, source_sha256=bytes(32))


def test_mutated_arrays_are_caught_when_writing():
    genome = paper_genome()
    genome.params.w2[0, 0] = -128
    with pytest.raises(GenomeError, match="w2 holds -128"):
        genome.to_bytes()


def test_load_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.genome"
    with pytest.raises(GenomeError, match="cannot read genome .*missing.genome"):
        load_genome(missing)
    with pytest.raises(GenomeError, match="cannot read genome"):
        load_genome(tmp_path)
    bad = tmp_path / "bad.genome"
    bad.write_bytes(b"NCAG")
    with pytest.raises(GenomeError, match=r"bad.genome: too short: 4 bytes"):
        load_genome(bad)


def test_save_into_a_missing_directory_fails_cleanly(tmp_path):
    with pytest.raises(OutputError):
        save_genome(paper_genome(), tmp_path / "nowhere" / "x.genome")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_leaves_the_previous_file_intact(tmp_path):
    path = tmp_path / "g.genome"
    good = paper_genome(1)
    save_genome(good, path)
    broken = paper_genome(2)
    broken.params.w1[0, 0] = -128
    with pytest.raises(GenomeError):
        save_genome(broken, path)
    assert load_genome(path) == good
    assert sorted(os.listdir(tmp_path)) == ["g.genome"]


def test_sha256_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"abc")
    assert sha256_file(path).hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    with pytest.raises(GenomeError, match="cannot read"):
        sha256_file(tmp_path / "nope")


def test_equality_compares_every_field():
    a = paper_genome(9)
    b = Genome.from_bytes(a.to_bytes())
    assert a == b
    assert a != dataclasses.replace(b, name="other")
    assert a != dataclasses.replace(b, torus=not b.torus)
    w1 = b.params.w1.copy()
    w1[0, 0] = 0 if w1[0, 0] else 1
    assert a != dataclasses.replace(b, params=dataclasses.replace(b.params, w1=w1))


def test_the_documented_byte_tables_match_the_code():
    """docs/genome-format.md: the header offsets and the paper model's section
    offsets are the ones the code writes."""
    doc = (Path(__file__).parent.parent / "docs" / "genome-format.md").read_text()
    header_rows = re.findall(r"^\| (\d+) \| (\d+) \| (\w+) \|", doc, re.M)
    sizes = {"bytes": None, "u8": 1, "i8": 1, "u16": 2, "f32": 4, "u32": 4}
    offset = 0
    for start, size, kind in header_rows:
        assert int(start) == offset and (sizes[kind] in (None, int(size)))
        offset += int(size)
    assert offset == HEADER.size
    paper = dict((name, (int(start), int(size))) for name, start, size in
                 re.findall(r"^\| (\w+)[^|]* \| (\d+) \| (\d+) \|$", doc, re.M))
    offset = HEADER.size + 16
    for name, dtype, shape in ARRAYS:
        size = np.dtype(dtype).itemsize * math.prod(shape(16, 128))
        assert paper[name] == (offset, size)
        offset += (size + 3) & ~3
    assert paper["crc32"] == (offset, 4) and offset + 4 == genome_size(16, 128, 6, 6)


def test_a_genome_is_checked_against_the_checkpoint_it_was_made_from(tmp_path):
    from cellsim.errors import ConfigError
    from cellsim.genome import load_genome_made_from, sha256_file

    checkpoint, other = tmp_path / "a.pt", tmp_path / "b.pt"
    checkpoint.write_bytes(b"the float model")
    other.write_bytes(b"another float model")
    genome = dataclasses.replace(random_genome(4), source_sha256=sha256_file(checkpoint))
    path = tmp_path / "g.genome"
    save_genome(genome, path)
    assert load_genome_made_from(path, checkpoint) == genome
    assert load_genome_made_from(path, other, sha256_file(checkpoint)) == genome
    with pytest.raises(ConfigError, match="was not made from .*b.pt"):
        load_genome_made_from(path, other)
