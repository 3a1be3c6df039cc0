"""The genome: the int8 program one cell's ROM holds, and its binary file format.

A genome file is a fixed little-endian header, length-prefixed UTF-8 strings and
4-byte-aligned parameter arrays, closed by a CRC32; docs/genome-format.md has
the byte table. Loading validates everything and raises GenomeError naming the
first problem. numpy only: the simulator and firmware generator never need torch."""
import dataclasses
import hashlib
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import atomic
from .errors import GenomeError
from .intspec import IntParams
from .intspec.layout import ALPHA

MAGIC = b"NCAG"
FORMAT_VERSION = 1
MAX_GENOME_BYTES = 10240  # the article's ROM budget for one cell

MAX_TEXT_BYTES = 64       # name and target, UTF-8
MIN_CHANNELS = ALPHA + 1  # the alive test reads channel 3
MAX_CHANNELS = 256
MAX_HIDDEN = 4096
MIN_GRID, MAX_GRID = 3, 4096
FLAG_TORUS = 0x0001
KNOWN_FLAGS = FLAG_TORUS

# magic, version, flags, channels, hidden, perception size, grid size,
# name length, target length, hidden zero point, alive threshold,
# fire rate, angle, hidden scale, source sha256, file size
HEADER = struct.Struct("<4sHHHHHHBBbbfff32sI")
CRC = struct.Struct("<I")
MIN_FILE_BYTES = HEADER.size + CRC.size

# The arrays after the two strings, in file order: (field, dtype, shape from (C, H)).
# 4-byte types come first; every section is zero-padded to a multiple of 4 bytes.
ARRAYS = (
    ("state_scale", "<f4", lambda c, h: (c,)),
    ("b1", "<i4", lambda c, h: (h,)),
    ("m1", "<i4", lambda c, h: (h,)),
    ("b2", "<i4", lambda c, h: (c,)),
    ("m2", "<i4", lambda c, h: (c,)),
    ("w1", "i1", lambda c, h: (h, 3 * c)),
    ("w2", "i1", lambda c, h: (c, h)),
    ("shift1", "i1", lambda c, h: (h,)),
    ("shift2", "i1", lambda c, h: (c,)),
)
# Arrays the simulator keeps that the cell firmware never reads (real values, for display).
HOST_ONLY_ARRAYS = ("state_scale",)


def _padded(n: int) -> int:
    return (n + 3) & ~3


def genome_size(channels: int, hidden: int, name_bytes: int = 0, target_bytes: int = 0) -> int:
    """Exact file size in bytes for these dimensions and UTF-8 string lengths."""
    total = HEADER.size + _padded(name_bytes) + _padded(target_bytes)
    for _, dtype, shape in ARRAYS:
        total += _padded(np.dtype(dtype).itemsize * math.prod(shape(channels, hidden)))
    return total + CRC.size


def rom_bytes(channels: int, hidden: int) -> int:
    """Bytes of the arrays the cell firmware's update reads from flash (weights,
    biases, requantisation multipliers and shifts), unpadded."""
    return sum(np.dtype(dtype).itemsize * math.prod(shape(channels, hidden))
               for field, dtype, shape in ARRAYS if field not in HOST_ONLY_ARRAYS)


@dataclass(frozen=True)
class GenomeBytes:
    """The two sizes of a genome, each with what it counts."""
    rom: int    # ROM_COUNTS
    file: int   # FILE_COUNTS

    ROM_COUNTS = ("the arrays the firmware's update reads (weights, biases, requantisation "
                  "multipliers and shifts)")
    FILE_COUNTS = "those arrays plus the state scales, header, name, target, padding and CRC-32"

    def text(self) -> str:
        """One phrase giving both figures and what each counts."""
        return (f"{self.rom:,} bytes of genome ROM, {self.ROM_COUNTS}; the genome file is "
                f"{self.file:,} bytes, {self.FILE_COUNTS}")


def sha256_file(path) -> bytes:
    """SHA-256 digest of a file (the source checkpoint), for Genome.source_sha256."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise GenomeError(f"cannot read {path}: {exc.strerror or exc}") from None
    return digest.digest()


def check_accumulator_range(params: IntParams) -> None:
    """Reject biases that could overflow the firmware's int32 accumulators.

    Layer 1 inputs are int8 (|x| <= 128, no offset); layer 2 inputs are hidden
    activations in [zp, 127] shifted by -zp, so 0 <= x - zp <= 127 - zp. The
    bound is the worst case over all inputs, so a genome that passes can never
    overflow, whatever the state."""
    limit = (1 << 31) - 1
    for layer, b, reach in zip(("b1", "b2"), (params.b1, params.b2), params.products_reach()):
        worst = reach + np.abs(b.astype(np.int64))
        bad = np.flatnonzero(worst > limit)
        if bad.size:
            raise GenomeError(f"{layer}[{bad[0]}] = {int(b[bad[0]])} lets the accumulator "
                              "overflow int32")


def genome_name(name: str | None, target: str) -> str:
    """A genome's name: `name` if given (printable, at most MAX_TEXT_BYTES of
    UTF-8, else ConfigError), else the target's emoji name or image file stem, cut
    to fit."""
    from .errors import ConfigError
    from .target_images import EMOJI

    chosen = name if name is not None else (target if target in EMOJI else Path(target).stem)
    encoded = chosen.encode("utf-8", errors="replace")
    if name is None:  # a long file stem is cut, a long --name is refused
        return encoded[:MAX_TEXT_BYTES].decode("utf-8", errors="ignore")
    if len(encoded) > MAX_TEXT_BYTES or not chosen.isprintable():
        raise ConfigError(f"--name must be printable and at most {MAX_TEXT_BYTES} bytes of UTF-8")
    return chosen


def _check_text(field: str, value) -> bytes:
    if not isinstance(value, str):
        raise GenomeError(f"{field} must be a string, got {type(value).__name__}")
    if not value.isprintable():
        raise GenomeError(f"{field} {value!r} contains unprintable characters")
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise GenomeError(f"{field} {value!r} cannot be encoded as UTF-8") from None
    if len(encoded) > MAX_TEXT_BYTES:
        raise GenomeError(f"{field} is {len(encoded)} bytes of UTF-8; at most "
                          f"{MAX_TEXT_BYTES} fit in a genome")
    return encoded


def _as_float32(field: str, value) -> float:
    """Round to float32 (the stored precision) so a genome equals its reload."""
    try:
        real = float(value)
    except (TypeError, ValueError):
        raise GenomeError(f"{field} must be a number, got {value!r}") from None
    with np.errstate(over="ignore"):
        single = float(np.float32(real))
    if not math.isfinite(single):
        raise GenomeError(f"{field} {value!r} is not a finite float32")
    return single


@dataclass(frozen=True, eq=False)
class Genome:
    params: IntParams
    name: str
    target: str          # emoji name trained on, or "" (pixels don't fit in 10 KB)
    grid_size: int       # 72 for the paper
    fire_rate: float
    angle: float         # radians; already folded into params.w1, kept as a record
    torus: bool
    source_sha256: bytes  # SHA-256 of the source checkpoint (32 bytes)

    def __post_init__(self):
        if not isinstance(self.params, IntParams):
            raise GenomeError(f"params must be IntParams, got {type(self.params).__name__}")
        self.params.validate()
        channels, hidden = self.params.channels, self.params.hidden
        if not MIN_CHANNELS <= channels <= MAX_CHANNELS:
            raise GenomeError(f"{channels} channels; a genome has {MIN_CHANNELS} to "
                              f"{MAX_CHANNELS}")
        if not 1 <= hidden <= MAX_HIDDEN:
            raise GenomeError(f"{hidden} hidden units; a genome has 1 to {MAX_HIDDEN}")
        check_accumulator_range(self.params)
        single_hidden_scale = _as_float32("hidden scale", self.params.hidden_scale)
        if single_hidden_scale != self.params.hidden_scale:
            object.__setattr__(self, "params", dataclasses.replace(
                self.params, hidden_scale=single_hidden_scale))
        _check_text("name", self.name)
        _check_text("target", self.target)
        if isinstance(self.grid_size, bool) or not isinstance(self.grid_size, (int, np.integer)):
            raise GenomeError(f"grid size must be an integer, got {self.grid_size!r}")
        if not MIN_GRID <= self.grid_size <= MAX_GRID:
            raise GenomeError(f"grid size {self.grid_size} is outside [{MIN_GRID}, {MAX_GRID}]")
        object.__setattr__(self, "grid_size", int(self.grid_size))
        fire_rate = _as_float32("fire rate", self.fire_rate)
        if not 0.0 < fire_rate <= 1.0:
            raise GenomeError(f"fire rate {fire_rate} is outside (0, 1]")
        object.__setattr__(self, "fire_rate", fire_rate)
        object.__setattr__(self, "angle", _as_float32("angle", self.angle))
        if not isinstance(self.torus, (bool, np.bool_)):
            raise GenomeError(f"torus must be a bool, got {self.torus!r}")
        object.__setattr__(self, "torus", bool(self.torus))
        try:
            digest = bytes(self.source_sha256)
        except TypeError:
            raise GenomeError("source sha256 must be 32 bytes") from None
        if len(digest) != 32:
            raise GenomeError(f"source sha256 is {len(digest)} bytes, expected 32")
        object.__setattr__(self, "source_sha256", digest)

    def __eq__(self, other):
        if not isinstance(other, Genome):
            return NotImplemented
        return self.params.equals(other.params) and all(
            getattr(self, f.name) == getattr(other, f.name)
            for f in dataclasses.fields(self) if f.name != "params")

    __hash__ = None  # mutable numpy arrays inside

    @property
    def channels(self) -> int:
        return self.params.channels

    @property
    def hidden(self) -> int:
        return self.params.hidden

    @property
    def parameter_count(self) -> int:
        """Weights and biases, as the paper counts them (8,336 for 16/128)."""
        p = self.params
        return p.w1.size + p.b1.size + p.w2.size + p.b2.size

    @property
    def size_bytes(self) -> int:
        return genome_size(self.channels, self.hidden, len(self.name.encode("utf-8")),
                           len(self.target.encode("utf-8")))

    @property
    def byte_counts(self) -> GenomeBytes:
        """Flash the firmware needs for it, and its file size."""
        return GenomeBytes(rom=rom_bytes(self.channels, self.hidden), file=self.size_bytes)

    @property
    def crc32(self) -> int:
        """The CRC32 stored in the file (zlib.crc32 of every byte before it)."""
        return CRC.unpack_from(self.to_bytes(), self.size_bytes - CRC.size)[0]

    def to_bytes(self) -> bytes:
        p = self.params
        p.validate()  # the arrays are mutable numpy buffers: check them as written
        check_accumulator_range(p)
        name, target = self.name.encode("utf-8"), self.target.encode("utf-8")
        parts = [HEADER.pack(
            MAGIC, FORMAT_VERSION, FLAG_TORUS if self.torus else 0, p.channels, p.hidden,
            3 * p.channels, self.grid_size, len(name), len(target), p.hidden_zero_point,
            p.alive_threshold, self.fire_rate, self.angle, p.hidden_scale,
            self.source_sha256, self.size_bytes)]
        sections = [name, target] + [np.asarray(getattr(p, field)).astype(dtype).tobytes()
                                     for field, dtype, _ in ARRAYS]
        for raw in sections:
            parts.append(raw + bytes(_padded(len(raw)) - len(raw)))
        body = b"".join(parts)
        assert len(body) + CRC.size == self.size_bytes
        return body + CRC.pack(zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data) -> "Genome":
        """Parse and validate a genome file's bytes; GenomeError names the problem."""
        data = bytes(data)
        if len(data) < MIN_FILE_BYTES:
            raise GenomeError(f"too short: {len(data)} bytes, a genome has at least "
                              f"{MIN_FILE_BYTES}")
        if data[:4] != MAGIC:
            raise GenomeError(f"wrong magic {data[:4]!r}: not a genome file (expected {MAGIC!r})")
        (_, version, flags, channels, hidden, perception, grid_size, name_len, target_len,
         zero_point, alive_threshold, fire_rate, angle, hidden_scale, source_sha256,
         declared) = HEADER.unpack_from(data)
        if version != FORMAT_VERSION:
            raise GenomeError(f"unsupported format version {version} (this cellsim reads "
                              f"version {FORMAT_VERSION})")
        if len(data) < declared:
            raise GenomeError(f"truncated: {len(data)} bytes, the header declares {declared}")
        if len(data) > declared:
            raise GenomeError(f"{len(data) - declared} trailing bytes after the declared "
                              f"end at {declared}")
        stored_crc = CRC.unpack_from(data, declared - CRC.size)[0]
        actual_crc = zlib.crc32(data[:declared - CRC.size])
        if stored_crc != actual_crc:
            raise GenomeError(f"CRC mismatch: stored 0x{stored_crc:08x}, computed "
                              f"0x{actual_crc:08x} (corrupt file)")
        if perception != 3 * channels:
            raise GenomeError(f"perception size {perception} is not 3 x {channels} channels")
        if not MIN_CHANNELS <= channels <= MAX_CHANNELS:
            raise GenomeError(f"{channels} channels; a genome has {MIN_CHANNELS} to "
                              f"{MAX_CHANNELS}")
        if not 1 <= hidden <= MAX_HIDDEN:
            raise GenomeError(f"{hidden} hidden units; a genome has 1 to {MAX_HIDDEN}")
        expected = genome_size(channels, hidden, name_len, target_len)
        if expected != declared:
            raise GenomeError(f"dimensions ({channels} channels, {hidden} hidden, strings of "
                              f"{name_len} and {target_len} bytes) need {expected} bytes, "
                              f"the file has {declared}")
        if flags & ~KNOWN_FLAGS:
            raise GenomeError(f"unknown flag bits 0x{flags & ~KNOWN_FLAGS:04x}")

        offset = HEADER.size

        def section(field: str, size: int) -> bytes:
            nonlocal offset
            raw = data[offset:offset + size]
            padding = data[offset + size:offset + _padded(size)]
            if any(padding):
                raise GenomeError(f"nonzero padding after {field} at byte {offset + size}")
            offset += _padded(size)
            return raw

        texts = {}
        for field, length in (("name", name_len), ("target", target_len)):
            try:
                texts[field] = section(field, length).decode("utf-8")
            except UnicodeDecodeError:
                raise GenomeError(f"{field} is not valid UTF-8") from None
        arrays = {}
        for field, dtype, shape in ARRAYS:
            dims = shape(channels, hidden)
            raw = section(field, np.dtype(dtype).itemsize * math.prod(dims))
            arrays[field] = np.frombuffer(raw, dtype=dtype).reshape(dims).copy()
        if not np.isfinite(arrays["state_scale"]).all():
            raise GenomeError("state scales are not all finite")
        for field, value in (("fire rate", fire_rate), ("angle", angle),
                             ("hidden scale", hidden_scale)):
            if not math.isfinite(value):
                raise GenomeError(f"{field} is not finite ({value})")
        params = IntParams(hidden_zero_point=zero_point, alive_threshold=alive_threshold,
                           hidden_scale=hidden_scale, **arrays)
        return cls(params=params, name=texts["name"], target=texts["target"],
                   grid_size=grid_size, fire_rate=fire_rate, angle=angle,
                   torus=bool(flags & FLAG_TORUS), source_sha256=source_sha256)


def save_genome(genome: Genome, path) -> int:
    """Write `genome` to `path` all-or-nothing; returns the file size in bytes."""
    data = genome.to_bytes()
    atomic.write_bytes(path, data)
    return len(data)


def load_genome(path) -> Genome:
    """Read and validate a genome file; GenomeError names the file and the problem."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise GenomeError(f"cannot read genome {path}: {exc.strerror or exc}") from None
    try:
        return Genome.from_bytes(data)
    except GenomeError as exc:
        raise GenomeError(f"{path}: {exc}") from None


def load_genome_made_from(path, checkpoint, checkpoint_sha256: bytes | None = None) -> Genome:
    """The genome at `path`, checked against the checkpoint it claims to come from
    (the SHA-256 recorded at quantisation): a genome paired with the float rows of
    another model would compare two different models. ConfigError if it differs."""
    from .errors import ConfigError

    genome = load_genome(path)
    source = checkpoint_sha256 if checkpoint_sha256 is not None else sha256_file(checkpoint)
    if genome.source_sha256 != source:
        raise ConfigError(f"genome {path} was not made from {checkpoint} "
                          "(source checkpoint hash differs)")
    return genome
