"""Build and run the firmware test harnesses: the host one with the system gcc,
the MCU images with each target's cross compiler on its emulator (QEMU with
semihosting for file I/O and its instruction trace for counting; for AVR a
small libsimavr bench, harness/simavr_runner.c, that does the I/O and counts
cycles). Each MCU target is data (TARGETS): compiler prefix, flags, harness,
emulator. Shared by the tests and benchmarks/firmware_size.py; nothing here is
needed at run time."""
import atexit
import bisect
import functools
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellsim.intspec.layout import RAM_BYTES

from . import C_DIR, FIRMWARE_SOURCES, c_identifier, firmware_source_paths, generate_header
from .header import ARRAYS, rom_arrays

HARNESS_DIR = C_DIR / "harness"
STRICT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
HOST_FLAGS = STRICT_FLAGS + ["-O2"]
MCU_FLAGS = STRICT_FLAGS + ["-Os", "-ffunction-sections", "-fdata-sections"]


@dataclass(frozen=True)
class Target:
    """One MCU build and the emulator that runs it. A new architecture is a new
    entry of TARGETS, not new code."""
    name: str
    board: str                # what the emulator emulates
    prefix: str               # cross toolchain: PREFIXgcc, PREFIXnm, PREFIXsize, PREFIXobjdump
    arch_flags: tuple         # code generation for the core
    emulator: tuple           # qemu: argv up to the image (which follows -kernel); simavr: (core,)
    packages: tuple           # Debian packages that provide the tools
    harness: tuple = ("mcu_harness.c",)      # the test harness's main, in firmware_gen/c/harness
    support: tuple = ("semihost.c", "cortexm_startup.c")  # startup and I/O every image links
    linker_script: str | None = "cortexm.ld"  # None: the toolchain's default for the part
    # "qemu": the image runs with -kernel and semihosting, and the emulator
    # counts instructions; "simavr": harness/simavr_runner.c (built on the
    # host against libsimavr) feeds the image and counts cycles.
    bench: str = "qemu"
    clock_hz: int | None = None  # the part's usual clock, for update times (cycle-counted targets)
    link_flags: tuple = ("-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections")
    link_arch: tuple | None = None  # the libraries' variant, where it differs from arch_flags
    # main's call of the update in `objdump -d`: its address and encoding (the
    # update returns to the instruction after it).
    update_call: str = (r"\s*(?P<addr>[0-9a-f]+):\s+(?P<enc>[0-9a-f]{4} [0-9a-f]{4})\s+bl\s+"
                        r"\S+ <nca_cell_update>")
    # A call or tail call in `objdump -d` (group 1: the callee), for a size
    # report's call graph.
    call: str = r"\s(?:bl|b\.w|b)\s+[0-9a-f]+ <([^+>]+)>"
    # Where set: the instructions that end a function; one that ends otherwise
    # falls through into the next (libgcc's AVR __umulsidi3 does), which the
    # call graph then counts as a call.
    function_end: str | None = None

    @property
    def tools(self) -> tuple:
        bench = (("gcc", SIMAVR_HEADER) if self.bench == "simavr" else (self.emulator[0],))
        return (*(self.tool(t) for t in ("gcc", "size", "nm", "objdump")), *bench)

    def tool(self, name: str) -> str:
        return self.prefix + name

    @property
    def cflags(self) -> list:
        return [*MCU_FLAGS, *self.arch_flags]


def _arm(cpu: str, machine: str, board: str) -> Target:
    return Target(cpu, board, "arm-none-eabi-", (f"-mcpu={cpu}", "-mthumb"),
                  ("qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none",
                   "-serial", "none", "-semihosting"),
                  ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm"))


# Debian's riscv64-unknown-elf-gcc has no rv32imc library variant (rv32im and
# rv32imac, among others): the code is built for rv32imc (ESP32-C3 class; zicsr
# for the trap vector) and linked with picolibc's rv32im libraries, which run
# on any rv32imc core.
RV32IMC = Target(
    "rv32imc", "QEMU virt, RV32IMC (ESP32-C3 class core)", "riscv64-unknown-elf-",
    ("-march=rv32imc_zicsr", "-mabi=ilp32", "--specs=picolibc.specs"),
    ("qemu-system-riscv32", "-M", "virt", "-nographic", "-monitor", "none", "-serial", "none",
     "-semihosting", "-bios", "none"),
    ("gcc-riscv64-unknown-elf", "picolibc-riscv64-unknown-elf", "qemu-system-misc"),
    support=("semihost.c", "riscv_startup.c"), linker_script="riscv_virt.ld",
    link_flags=("-nostartfiles", "--specs=picolibc.specs", "-Wl,--gc-sections",
                "-Wl,--no-warn-rwx-segments"),
    link_arch=("-march=rv32im", "-mabi=ilp32"),
    update_call=(r"\s*(?P<addr>[0-9a-f]+):\s+(?P<enc>[0-9a-f]{4}|[0-9a-f]{8})\s+jal\s+"
                 r"(?:ra,)?[0-9a-f]+ <nca_cell_update>"),
    call=r"\s(?:jal|j)\s+(?:ra,)?[0-9a-f]+ <([^+>]+)>")

# The ATmega2560 of the Arduino Mega, the board of the physical neural CA of
# Walker et al. 2022: gcc-avr 5.4 with avr-libc's start-up code and linker
# script, the genome in flash (PROGMEM), run on simavr's ATmega2560 core by
# harness/simavr_runner.c. objdump 2.26 prints "call 0x1a4 ; 0x1a4 <f>".
SIMAVR_HEADER = "/usr/include/simavr/sim_avr.h"  # libsimavr-dev: the bench links libsimavr
ATMEGA2560 = Target(
    "atmega2560", "simavr ATmega2560 (Arduino Mega, 16 MHz)", "avr-",
    ("-mmcu=atmega2560",), ("atmega2560",),
    ("gcc-avr", "avr-libc", "binutils-avr", "simavr", "libsimavr-dev"),
    harness=("avr_harness.c",), support=(), linker_script=None,
    link_flags=("-Wl,--gc-sections",), bench="simavr", clock_hz=16_000_000,
    update_call=(r"\s*(?P<addr>[0-9a-f]+):\s+(?P<enc>[0-9a-f]{2} [0-9a-f]{2}"
                 r"(?: [0-9a-f]{2} [0-9a-f]{2})?)\s+r?call\s+\S+\s+; 0x[0-9a-f]+ <nca_cell_update>"),
    call=r"\s(?:r?call|r?jmp)\s+[^;]*;\s+0x[0-9a-f]+ <([^+>]+)>",
    function_end=r"\s(?:ret|reti|r?jmp|e?ijmp)\b")

# QEMU 7.2 has no Cortex-M0+ board; the micro:bit's Cortex-M0 runs the same
# ARMv6-M Thumb instruction set, so an M0+ build runs unchanged on it.
TARGETS = {
    "cortex-m0plus": _arm("cortex-m0plus", "microbit", "BBC micro:bit (nRF51, Cortex-M0)"),
    "cortex-m4": _arm("cortex-m4", "mps2-an386", "ARM MPS2 AN386 (Cortex-M4)"),
    "rv32imc": RV32IMC,
    "atmega2560": ATMEGA2560,
}


class ToolchainError(RuntimeError):
    """A compiler, linker or emulator run failed; the message holds its output."""


def missing(*tools: str) -> list[str]:
    """The named executables not on PATH; an absolute path names a file (a
    header a bench compiles against) that must exist."""
    return [tool for tool in tools
            if not (os.path.isfile(tool) if os.path.isabs(tool) else shutil.which(tool))]


HOST_TOOLS = ("gcc",)
# Every MCU target's tools, for a test that needs them all.
TARGET_TOOLS = tuple(dict.fromkeys(tool for t in TARGETS.values() for tool in t.tools))


def run_tool(cmd, cwd=None, stdin_bytes=None, timeout=300) -> subprocess.CompletedProcess:
    """Run a compiler, binutil, emulator or built program; ToolchainError with its
    output when it fails or times out."""
    try:
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, input=stdin_bytes,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"timed out after {timeout} s: {' '.join(map(str, cmd))}") from None
    if proc.returncode != 0:
        raise ToolchainError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n"
                             + proc.stderr.decode(errors="replace")
                             + proc.stdout.decode(errors="replace")[-2000:])
    return proc


def write_genome_header(genome, workdir, name: str = "genome") -> tuple[Path, str]:
    """Generate the genome's header into workdir; returns (path, init macro)."""
    ident = c_identifier(name)
    path = Path(workdir) / f"nca_{ident}.h"
    path.write_text(generate_header(genome, ident), encoding="ascii")
    return path, f"NCA_{ident.upper()}_GENOME_INIT"


def genome_defines(header: Path | None, init: str | None) -> list[str]:
    if header is None:
        return []
    return [f"-I{Path(header).parent}", f'-DNCA_GENOME_HEADER="{Path(header).name}"',
            f"-DNCA_GENOME_INIT={init}"]


# --- host -------------------------------------------------------------------

def build_host_harness(workdir, header: Path | None = None, init: str | None = None) -> Path:
    """Compile the firmware and the host harness with the strict flags. Without
    a header the harness reads the genome as a blob (genome_blob) from stdin."""
    exe = Path(workdir) / ("host_harness_header" if header else "host_harness")
    run_tool(["gcc", *HOST_FLAGS, f"-I{C_DIR}", *genome_defines(header, init),
          HARNESS_DIR / "host_harness.c", *firmware_source_paths(), "-o", exe])
    return exe


def genome_blob(params) -> bytes:
    """The host harness's genome input (layout in host_harness.c): the header's
    arrays (header.rom_arrays), so the blob and the header agree."""
    arrays = rom_arrays(params)
    head = b"NCAG" + np.array([len(arrays["blocks"])], "<u2").tobytes() + np.array(
        [params.hidden_zero_point, params.alive_threshold], np.int8).tobytes()
    return head + b"".join(arrays[name].astype(arrays[name].dtype.newbyteorder("<")).tobytes()
                           for name, _, _ in ARRAYS)


def run_host_harness(exe, rams, params=None) -> np.ndarray:
    """(N, 256) uint8 RAMs through one update each; `params` for a blob harness."""
    rams = np.ascontiguousarray(rams, dtype=np.uint8)
    data = (genome_blob(params) if params is not None else b"") + rams.tobytes()
    out = run_tool([exe], stdin_bytes=data).stdout
    return np.frombuffer(out, np.uint8).reshape(-1, RAM_BYTES)


def build_grid_driver(workdir, header: Path, init: str) -> Path:
    """Compile harness/grid_driver.c (a synchronous grid of cells driven by the
    firmware, timed) with the genome's header and the strict host flags."""
    exe = Path(workdir) / "grid_driver"
    run_tool(["gcc", *HOST_FLAGS, f"-I{C_DIR}", *genome_defines(header, init),
          HARNESS_DIR / "grid_driver.c", *firmware_source_paths(), "-o", exe])
    return exe


def run_grid_driver(exe, int_grid: np.ndarray, masks: np.ndarray, torus: bool, reps: int,
                    workdir) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Run `reps` repetitions of len(masks) synchronous steps from int_grid (H, W, C)
    int8 with masks (steps, H, W) bool: [(nanoseconds, updates)] per repetition and
    the grid after the first."""
    workdir = Path(workdir)
    h, w, c = int_grid.shape
    grid_file, mask_file, final_file = (workdir / "grid.bin", workdir / "masks.bin",
                                        workdir / "final.bin")
    grid_file.write_bytes(np.ascontiguousarray(int_grid, np.int8).tobytes())
    mask_file.write_bytes(np.ascontiguousarray(masks, np.uint8).tobytes())
    out = run_tool([exe, h, w, len(masks), reps, int(torus), grid_file, mask_file, final_file],
               timeout=3600).stdout.decode()
    timings = [tuple(int(v) for v in line.split()) for line in out.split("\n") if line.strip()]
    final = np.frombuffer(final_file.read_bytes(), np.int8).reshape(h, w, c)
    return timings, final


# --- Cortex-M ---------------------------------------------------------------

def build_image(name: str, workdir, header: Path, init: str, portable: bool = False,
                c_dir: Path = C_DIR) -> Path:
    """Link the target's harness image (genome in flash); also writes a linker map
    beside it. `portable` builds the plain C loops even where the core has a DSP
    extension (NCA_PORTABLE). `c_dir`: a copy of the firmware's files to build
    instead (a test's, with a layout header generated for other taps)."""
    target, workdir = TARGETS[name], Path(workdir)
    elf = workdir / f"harness_{name}{'_portable' if portable else ''}.elf"
    sources = [*(Path(c_dir) / f for f in FIRMWARE_SOURCES),
               *(HARNESS_DIR / f for f in (*target.harness, *target.support))]
    flags = [f"-I{c_dir}", f"-I{HARNESS_DIR}", *(["-DNCA_PORTABLE"] if portable else []),
             *genome_defines(header, init)]
    return _link(target, _objects(target, sources, flags, elf), elf,
                 f"-Wl,-Map={elf.with_suffix('.map')}")


def _objects(target: Target, sources, flags, elf: Path) -> list:
    """Each source compiled for the target, beside the image it is for. Compiling
    and linking apart lets a target link library variants other than its code's
    (Target.link_arch)."""
    objects = []
    for source in sources:
        obj = elf.with_name(f"{elf.stem}.{Path(source).stem}.o")
        run_tool([target.tool("gcc"), *target.cflags, *flags, "-c", source, "-o", obj])
        objects.append(obj)
    return objects


def _link(target: Target, objects, elf: Path, *extra: str) -> Path:
    arch = target.link_arch if target.link_arch is not None else target.arch_flags
    script = ["-T", HARNESS_DIR / target.linker_script] if target.linker_script else []
    run_tool([target.tool("gcc"), *arch, *objects, *target.link_flags, *extra, *script,
              "-o", elf])
    return elf


def compile_firmware(name: str, workdir: Path, *flags: str) -> list[Path]:
    """The firmware's sources alone, compiled for the target into objects in
    `workdir` (sizes, stack usage)."""
    target = TARGETS[name]
    objects = []
    for source in firmware_source_paths():
        obj = Path(workdir) / f"{source.stem}_{name}.o"
        run_tool([target.tool("gcc"), *target.cflags, *flags, "-c", source, "-o", obj])
        objects.append(obj)
    return objects


def _emulator_cmd(name: str, elf: Path) -> list:
    return [*TARGETS[name].emulator, "-kernel", elf]


def run_image(name: str, elf, rams, workdir, timeout: int = 300) -> np.ndarray:
    """Run the image on the target's emulated board over `rams`; the updated RAMs."""
    if TARGETS[name].bench == "simavr":
        return run_simavr(name, elf, rams, workdir, timeout)[0]
    workdir = Path(workdir)
    rams = np.ascontiguousarray(rams, dtype=np.uint8)
    (workdir / "vectors.in").write_bytes(rams.tobytes())
    out = workdir / "vectors.out"
    out.unlink(missing_ok=True)
    run_tool(_emulator_cmd(name, Path(elf).resolve()), cwd=workdir, timeout=timeout)
    return np.frombuffer(out.read_bytes(), np.uint8).reshape(-1, RAM_BYTES)


def _symbol_address(target: Target, elf, name: str, code: bool = True) -> int:
    """A symbol's address; for code without the Thumb bit."""
    out = run_tool([target.tool("nm"), elf]).stdout.decode()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16) & ~1 if code else int(parts[0], 16)
    raise ToolchainError(f"{name} not found in {elf}")


def _return_address(target: Target, elf) -> int:
    """The instruction after main's call of nca_cell_update (the whole
    disassembly is read: binutils-avr 2.26 has no --disassemble=SYMBOL)."""
    dis = run_tool([target.tool("objdump"), "-d", elf]).stdout.decode()
    in_main = False
    for line in dis.splitlines():
        head = re.match(r"[0-9a-f]+ <([^>]+)>:$", line)
        if head:
            in_main = head.group(1) == "main"
            continue
        m = re.match(target.update_call, line) if in_main else None
        if m:  # the encoding's hex digits, two per byte
            return int(m.group("addr"), 16) + len(m.group("enc").replace(" ", "")) // 2
    raise ToolchainError(f"no call of nca_cell_update in main of {elf}")


# --- AVR on simavr ----------------------------------------------------------

@functools.lru_cache(maxsize=None)
def simavr_runner() -> Path:
    """harness/simavr_runner.c built once per process (host gcc, libsimavr)."""
    workdir = Path(tempfile.mkdtemp(prefix="cellsim-simavr-"))
    atexit.register(shutil.rmtree, workdir, True)
    exe = workdir / "simavr_runner"
    run_tool(["gcc", *HOST_FLAGS, "-isystem", Path(SIMAVR_HEADER).parent,
              HARNESS_DIR / "simavr_runner.c", "-lsimavr", "-o", exe])
    return exe


def run_simavr(name: str, elf, rams, workdir, timeout: int = 600,
               profile: Path | None = None) -> tuple:
    """Run an AVR image on simavr over `rams`: (updated RAMs, cycles of each
    update, stack bytes each update took, its call's return address included).
    With `profile`, that file gets the cycles spent at each instruction
    address inside the updates (see profile_update)."""
    target, workdir, elf = TARGETS[name], Path(workdir), Path(elf).resolve()
    rams = np.ascontiguousarray(rams, dtype=np.uint8)
    ram = _symbol_address(target, elf, "nca_avr_ram", code=False) & 0xFFFF  # data: 0x80xxxx
    entry = _symbol_address(target, elf, "nca_cell_update")
    stats = workdir / "simavr_stats.txt"
    out = run_tool([simavr_runner(), elf, target.emulator[0], target.clock_hz, f"{ram:x}",
                    f"{entry:x}", f"{_return_address(target, elf):x}", stats,
                    *([profile] if profile is not None else [])],
                   stdin_bytes=rams.tobytes(), timeout=timeout).stdout
    got = np.frombuffer(out, np.uint8).reshape(-1, RAM_BYTES)
    counted = np.loadtxt(stats, dtype=np.int64, ndmin=2).reshape(-1, 2)
    stats.unlink()
    if len(got) != len(rams) or len(counted) != len(rams):
        raise ToolchainError(f"simavr returned {len(got)} RAMs and {len(counted)} counts for "
                             f"{len(rams)} inputs")
    return got, counted[:, 0], counted[:, 1]


def profile_update(name: str, elf, rams, workdir) -> dict[str, float]:
    """Cycles per update spent in each function (own instructions, not its
    callees'), from simavr's cycle profile over `rams`; the values add up to
    the mean cycles per update."""
    target, workdir = TARGETS[name], Path(workdir)
    where = workdir / "simavr_profile.txt"
    run_simavr(name, elf, rams, workdir, profile=where)
    starts = []
    for line in run_tool([target.tool("nm"), "-n", elf]).stdout.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tT":
            starts.append((int(parts[0], 16), parts[2]))
    addresses = [a for a, _ in starts]
    per_function: dict[str, float] = {}
    for line in where.read_text().splitlines():
        address, cycles = (int(v, 16 if i == 0 else 10) for i, v in enumerate(line.split()))
        function = starts[bisect.bisect_right(addresses, address) - 1][1]
        per_function[function] = per_function.get(function, 0.0) + cycles / len(rams)
    where.unlink()
    return dict(sorted(per_function.items(), key=lambda kv: -kv[1]))


def count_cycles(name: str, elf, rams, workdir, timeout: int = 600) -> np.ndarray:
    """Cycles of each nca_cell_update call over `rams`, on a cycle-counting bench."""
    if TARGETS[name].bench != "simavr":
        raise ToolchainError(f"{name} runs on QEMU, which counts instructions, not cycles")
    return run_simavr(name, elf, rams, workdir, timeout)[1]


def count_instructions(name: str, elf, rams, workdir, timeout: int = 600) -> np.ndarray:
    """Instructions executed by each nca_cell_update call over `rams`, counted
    on the emulator: QEMU runs one instruction per translation block
    (-singlestep) and logs every block it executes (-d exec,nochain), so the
    log lines from the entry of nca_cell_update to the return into main are
    exactly its instructions, helpers and library calls included."""
    if TARGETS[name].bench != "qemu":
        raise ToolchainError(f"{name} runs on {TARGETS[name].bench}: use count_cycles")
    workdir = Path(workdir)
    rams = np.ascontiguousarray(rams, dtype=np.uint8)
    (workdir / "vectors.in").write_bytes(rams.tobytes())
    log = workdir / "exec.log"
    target = TARGETS[name]
    entry = _symbol_address(target, elf, "nca_cell_update")
    ret = _return_address(target, elf)
    run_tool(_emulator_cmd(name, Path(elf).resolve()) + ["-singlestep", "-d", "exec,nochain",
                                                         "-D", log], cwd=workdir, timeout=timeout)
    pc_field = re.compile(rb"\[[0-9a-f]+/([0-9a-f]+)/")
    counts, current = [], None
    with open(log, "rb") as f:
        for line in f:
            m = pc_field.search(line)
            if m is None:
                continue
            pc = int(m.group(1), 16)
            if pc == entry:
                current = 0
            elif pc == ret and current is not None:
                counts.append(current)
                current = None
            if current is not None:
                current += 1
    log.unlink()
    if len(counts) != len(rams):
        raise ToolchainError(f"traced {len(counts)} updates, expected {len(rams)}")
    return np.array(counts, np.int64)


def section_sizes(name: str, elf) -> dict[str, int]:
    """PREFIXsize -A: section name -> bytes."""
    out = run_tool([TARGETS[name].tool("size"), "-A", elf]).stdout.decode()
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def symbol_sizes(name: str, elf) -> dict[str, int]:
    """Sized symbols of the image: name -> bytes."""
    out = run_tool([TARGETS[name].tool("nm"), "-S", "--size-sort", elf]).stdout.decode()
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def build_size_probe(name: str, workdir, header: Path | None = None, init: str | None = None,
                     update: bool = False, hooks: bool = False) -> Path:
    """Link size_probe.c for the target: the startup alone, plus the update (and
    the genome) with `update`, plus the message hooks with `hooks`."""
    target = TARGETS[name]
    parts = ("update" if update else "") + ("hooks" if hooks else "")
    elf = Path(workdir) / f"probe_{name}_{parts or 'base'}.elf"
    defines = (["-DNCA_PROBE_UPDATE", *genome_defines(header, init)] if update else []) + (
        ["-DNCA_PROBE_HOOKS"] if hooks else [])
    sources = [*firmware_source_paths(), HARNESS_DIR / "size_probe.c",
               *(HARNESS_DIR / f for f in target.support)]
    flags = [f"-I{C_DIR}", f"-I{HARNESS_DIR}", *defines]
    return _link(target, _objects(target, sources, flags, elf), elf)
