"""Flash, RAM and instructions of the C cell firmware on every MCU target of
firmware_gen.toolchain.TARGETS (Cortex-M0+, Cortex-M4, RV32IMC, ATmega2560),
measured with the target's gcc -Os, size/nm and instruction traces of QEMU, or
for the AVR cycles and stack counted on simavr; prints a table with each
target's budget beside its figure and writes JSON. --check exits 1 when a
checked budget (TARGET_BUDGETS) is not met.

    python -m benchmarks.firmware_size [--json runs/firmware_size.json] [--updates 24]
                                       [--targets atmega2560 ...] [--check]
"""
import argparse
import dataclasses
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from cellsim.genome import MAX_GENOME_BYTES, Genome
from cellsim.intspec import layout, step_grid_sync
from firmware_gen import rom_bytes, toolchain
from cellsim.intspec.batch import rams_from_grid, update_rams

CMSIS_INSTRUCTIONS_PER_MAC = 1.9  # CMSIS-NN's s8 fully-connected inner loop: about 60 instructions per 32 MACs
UPDATE_ROOT = "nca_cell_update"


@dataclasses.dataclass(frozen=True)
class Budget:
    """A target's budgets (None: not set) and the clock its real-time figures
    assume. qemu counts instructions, not cycles: the update time is
    instructions x cycles_per_instruction / clock, with a CPI that is an
    assumption about the core, stated beside it, not a measurement."""
    max_per_mac: float | None = None      # instructions per MAC, all hidden units active
    max_flash: int | None = None          # genome + descriptor + update code, bytes
    checked: bool = True                  # whether --check fails on it
    clock_hz: float | None = None
    cycles_per_instruction: float | None = None
    cpi_basis: str = ""


TARGET_BUDGETS = {
    # issue 14: M4 <= 1.5 instructions/MAC; M0+ within 10,240 B and <= 4/MAC
    "cortex-m4": Budget(max_per_mac=1.5, clock_hz=80e6, cycles_per_instruction=1.3,
                        cpi_basis="single-cycle SMLAD/UXTB16/SMULL; LDM of 4 words 5 cycles, "
                                  "LDRD 3; flash wait states not counted"),
    "cortex-m0plus": Budget(max_per_mac=4.0, max_flash=MAX_GENOME_BYTES, clock_hz=48e6,
                            cycles_per_instruction=1.4,
                            cpi_basis="single-cycle MULS; loads 2 cycles, taken branches 2"),
    # a goal, not a requirement of the issue
    "rv32imc": Budget(max_flash=MAX_GENOME_BYTES, checked=False, clock_hz=160e6,
                      cycles_per_instruction=1.3,
                      cpi_basis="ESP32-C3 class: loads and MUL mostly 1-2 cycles"),
    # the issue sets no AVR budget; simavr counts cycles, so no CPI is assumed
    "atmega2560": Budget(clock_hz=toolchain.ATMEGA2560.clock_hz, cycles_per_instruction=1.0,
                         cpi_basis="simavr counts the ATmega2560's cycles: no assumption"),
}
# Stack that assembly reserves where -fstack-usage cannot see it: the
# Cortex-M0+ kernel is a naked function (nca_fully_connected_armv6m.c) whose
# frame is its own pushes, 20 + 8 + 20 + 24 bytes, and 8 for nca_requantize's
# fifth argument.
ASM_STACK_BYTES = {"cortex-m0plus": 80}


def demo_genome(seed: int = 0) -> Genome:
    """The fixed random genome the simulator's speed benchmark uses
    (sim_speed.random_params: 16 channels, 128 hidden units, realistic
    requantisation), so no trained model is needed. Its weights are random, so
    instruction counts depend on how many hidden units it leaves active; the
    dense variant bounds them."""
    from .sim_speed import random_params

    return Genome(params=random_params(seed), name="bench", target="", grid_size=72,
                  fire_rate=0.5, angle=0.0, torus=False, source_sha256=bytes(32))


def dense_genome(genome: Genome) -> Genome:
    """The same genome with first-layer biases that keep every hidden unit above
    its ReLU floor: no unit is skipped, so every one of the 8,192 MACs runs."""
    p = genome.params
    reach = np.abs(p.w1.astype(np.int64)).sum(axis=1) * 128
    # m1 >= 2^30, so acc1 >= 2^(2 - shift1) requantises to at least 2
    floor = np.left_shift(np.int64(1), 2 - p.shift1.astype(np.int64))
    b1 = (reach + floor).astype(np.int32)
    return dataclasses.replace(genome, params=dataclasses.replace(p, b1=b1))


def benchmark_rams(genome: Genome, n: int, seed: int = 0) -> np.ndarray:
    """Live cells from a synchronous run from the seed: realistic inputs."""
    rng = np.random.default_rng(seed)
    p = genome.params
    grid = np.zeros((16, 16, layout.CHANNELS), np.int8)
    grid[8, 8] = p.seed_state()
    pool = []
    for _ in range(8):
        grid = step_grid_sync(p, grid, rng.random((16, 16)) < 0.5)
        pool.append(rams_from_grid(grid, rng=rng))
    pool = np.concatenate(pool)
    alphas = pool.view(np.int8)[:, layout.ALPHA:layout.STATE + layout.CHANNELS:layout.CHANNELS]
    live = pool[(alphas > p.alive_threshold).any(axis=1)]
    if len(live) < n:  # a genome that dies out: top up with random live RAMs
        extra = rng.integers(0, 256, (n - len(live), layout.RAM_BYTES), dtype=np.uint8)
        extra[:, layout.STATE + layout.ALPHA] = 127
        live = np.concatenate([live, extra])
    return live[rng.permutation(len(live))[:n]]


def call_graph(cpu: str, elf) -> dict[str, set[str]]:
    """function -> functions it calls or tail-calls (the target's call and branch
    mnemonics to a symbol)."""
    target = toolchain.TARGETS[cpu]
    dis = toolchain.run_tool([target.tool("objdump"), "-d", elf]).stdout.decode()
    graph, current, last = {}, None, ""
    for line in dis.splitlines():
        head = re.match(r"[0-9a-f]+ <([^>]+)>:$", line)
        if head:
            if current and target.function_end and not re.search(target.function_end, last):
                graph[current].add(head.group(1))  # falls through into this one
            current, last = head.group(1), ""
            graph[current] = set()
            continue
        if re.match(r"\s+[0-9a-f]+:", line):
            last = line
        call = re.search(target.call, line)
        if current and call and call.group(1) != current:
            graph[current].add(call.group(1))
    return graph


def reachable(graph, root: str) -> set[str]:
    seen, todo = set(), [root]
    while todo:
        f = todo.pop()
        if f not in seen:
            seen.add(f)
            todo.extend(graph.get(f, ()))
    return seen


def rodata_of_firmware(workdir: Path, cpu: str) -> dict[str, int]:
    """Constant data the firmware's own sources keep in flash (not the genome)."""
    nm = toolchain.TARGETS[cpu].tool("nm")
    data = {}
    for obj in toolchain.compile_firmware(cpu, workdir):
        out = toolchain.run_tool([nm, "-S", obj]).stdout.decode()
        data.update({parts[3]: int(parts[1], 16) for parts in map(str.split, out.splitlines())
                     if len(parts) == 4 and parts[2] in "rR"})
    return data


def stack_usage(workdir: Path, cpu: str, graph: dict[str, set[str]]) -> int:
    """Worst stack depth of the update: the frames of -fstack-usage summed along
    the deepest call chain from nca_cell_update (library callees, which
    -fstack-usage does not see, are not in the update's chain on any target)."""
    sdir = workdir / "stack"
    sdir.mkdir()
    frames = {}
    for obj in toolchain.compile_firmware(cpu, sdir, "-fstack-usage"):
        for line in obj.with_suffix(".su").read_text().splitlines():
            where, size, _ = line.split("\t")
            frames[where.rsplit(":", 1)[-1]] = int(size)

    def depth(function: str, seen: frozenset) -> int:
        callees = [depth(f, seen | {f}) for f in graph.get(function, ()) if f not in seen]
        return frames.get(function, 0) + max(callees, default=0)
    return depth(UPDATE_ROOT, frozenset({UPDATE_ROOT})) + ASM_STACK_BYTES.get(cpu, 0)


def _static_ram(workdir: Path, cpu: str) -> int:
    """Static RAM of the firmware's own sources (.data, .bss; on AVR also their
    const tables, which live in SRAM unless put in PROGMEM)."""
    rdir = workdir / "static_ram"
    rdir.mkdir()
    return sum(size for obj in toolchain.compile_firmware(cpu, rdir)
               for section, size in toolchain.section_sizes(cpu, obj).items()
               if section.split(".")[1] in ("data", "bss", "sdata", "sbss"))


def measure(cpu: str, genome: Genome, dense: Genome, updates: int, workdir: Path) -> dict:
    target = toolchain.TARGETS[cpu]
    wdir = workdir / cpu
    wdir.mkdir()
    header, init = toolchain.write_genome_header(genome, wdir, "bench")
    base = toolchain.section_sizes(cpu, toolchain.build_size_probe(cpu, wdir))
    with_update_elf = toolchain.build_size_probe(cpu, wdir, header, init, update=True)
    with_update = toolchain.section_sizes(cpu, with_update_elf)
    with_hooks = toolchain.section_sizes(
        cpu, toolchain.build_size_probe(cpu, wdir, header, init, update=True, hooks=True))
    symbols = toolchain.symbol_sizes(cpu, with_update_elf)
    graph = call_graph(cpu, with_update_elf)
    functions = sorted(reachable(graph, UPDATE_ROOT))
    code = {f: symbols[f] for f in functions if f in symbols}
    code.update(rodata_of_firmware(wdir, cpu))
    genome_rom = rom_bytes(genome.params)
    descriptor = symbols.get("genome", 0)  # the nca_genome_t of pointers, in flash
    update_code = sum(code.values())
    own_code = sum(v for f, v in code.items() if f.startswith("nca_"))

    # instructions, on the emulated board
    rams = benchmark_rams(genome, updates)
    dead = np.zeros((4, layout.RAM_BYTES), np.uint8)
    elf = toolchain.build_image(cpu, wdir, header, init)
    # QEMU counts instructions; simavr counts cycles (and the stack it saw)
    cycles = target.bench == "simavr"
    count = toolchain.count_cycles if cycles else toolchain.count_instructions
    counts = count(cpu, elf, np.concatenate([rams, dead]), wdir)
    live_counts, dead_counts = counts[:updates], counts[updates:]
    got = toolchain.run_image(cpu, elf, rams, wdir)
    agree = bool((got == update_rams(genome.params, rams)).all())
    ddir = wdir / "dense"
    ddir.mkdir()
    dheader, dinit = toolchain.write_genome_header(dense, ddir, "dense")
    delf = toolchain.build_image(cpu, ddir, dheader, dinit)
    dense_counts = count(cpu, delf, rams[:4], wdir)
    measured_stack = (int(toolchain.run_simavr(cpu, delf, rams[:4], wdir)[2].max())
                      if cycles else None)
    # where the cycles go, per function (own instructions), on the cycle-counted targets
    by_function = ({"live": toolchain.profile_update(cpu, elf, rams, wdir),
                    "dense": toolchain.profile_update(cpu, delf, rams[:4], wdir)}
                   if cycles else None)
    # -fstack-usage frames; on AVR they miss the assembly's pushes, so simavr's
    # measured stack is the figure there
    static_stack = stack_usage(wdir, cpu, graph)
    p = genome.params
    budget = TARGET_BUDGETS.get(cpu, Budget())
    hidden = np.asarray([_active_hidden(p, r) for r in rams])
    macs = p.w1.size + hidden * p.channels  # MACs actually run (zero units skipped)
    nominal = p.w1.size + p.w2.size
    # counted on the emulator: QEMU's instructions, or simavr's cycles under "cycles"
    counts = {
        "live_mean": float(live_counts.mean()), "live_min": int(live_counts.min()),
        "live_max": int(live_counts.max()), "dead_cell": int(dead_counts.max()),
        "dense_mean": float(dense_counts.mean()),
        "active_hidden_mean": float(hidden.mean()),
        "per_mac_dense": float(dense_counts.mean() / nominal),
        "per_executed_mac_live": float((live_counts / macs).mean()),
        "cmsis_nn_per_mac": CMSIS_INSTRUCTIONS_PER_MAC,
        "cmsis_nn_estimate_per_update": CMSIS_INSTRUCTIONS_PER_MAC * nominal,
        "macs_per_update": nominal,
        "updates_traced": updates,
    }
    emulator = (f"simavr ({target.emulator[0]} core; firmware_gen/c/harness/simavr_runner.c)"
                if cycles else " ".join(target.emulator))
    return {
        "cpu": cpu, "board": target.board, "emulator": emulator,
        "flash": {
            "genome_arrays": genome_rom,
            "genome_descriptor": descriptor,
            "update_code": update_code,
            "update_code_own": own_code,
            "update_functions": code,
            "genome_plus_update": genome_rom + descriptor + update_code,
            "budget": MAX_GENOME_BYTES,
            "fits_budget": genome_rom + descriptor + update_code <= MAX_GENOME_BYTES,
            "image_delta_update": with_update[".text"] - base[".text"],
            "image_delta_hooks": with_hooks[".text"] - with_update[".text"],
            "probe_image_text": with_update[".text"],
        },
        "ram": {"per_cell": int(symbols.get("nca_probe_ram", 0)),
                "stack_bytes": measured_stack if cycles else static_stack,
                "stack_bytes_static": static_stack,
                "stack_measured": cycles,
                # the firmware's own static RAM (its sections, -fdata-sections)
                "firmware_static": _static_ram(wdir, cpu),
                "descriptor_in_ram": bool(cycles)},  # AVR: const data lives in SRAM
        "unit": "cycles" if cycles else "instructions",
        "cycles_by_function": by_function,
        "cycles" if cycles else "instructions": counts,
        "qemu_agrees_bit_for_bit": agree,
        "budget": dataclasses.asdict(budget),
        "real_time": _real_time(budget, float(dense_counts.mean()), float(live_counts.mean())),
    }


def _real_time(budget: Budget, dense: float, live: float) -> dict | None:
    """Update time and maximum update rate at the budget's clock and assumed CPI."""
    if budget.clock_hz is None:
        return None
    seconds = {kind: count * budget.cycles_per_instruction / budget.clock_hz
               for kind, count in (("dense", dense), ("live", live))}
    return {"clock_hz": budget.clock_hz, "cycles_per_instruction": budget.cycles_per_instruction,
            "cpi_basis": budget.cpi_basis,
            "update_us_dense": seconds["dense"] * 1e6, "update_us_live": seconds["live"] * 1e6,
            "max_updates_per_s_dense": 1 / seconds["dense"],
            "max_updates_per_s_live": 1 / seconds["live"]}


def verdicts(result: dict) -> list[tuple[str, float, float, bool, bool]]:
    """(what, figure, limit, met, checked) for each budget the target has."""
    b = TARGET_BUDGETS.get(result["cpu"], Budget())
    out = []
    if b.max_per_mac is not None:
        figure = result["instructions"]["per_mac_dense"]
        out.append(("instructions/MAC", figure, b.max_per_mac, figure <= b.max_per_mac, b.checked))
    if b.max_flash is not None:
        figure = result["flash"]["genome_plus_update"]
        out.append(("flash bytes", figure, b.max_flash, figure <= b.max_flash, b.checked))
    out.append(("bit-exact on the emulator", 1, 1, result["qemu_agrees_bit_for_bit"], True))
    return out


def _active_hidden(p, ram) -> int:
    """Hidden units above their ReLU floor for one live RAM."""
    from cellsim.intspec.cell_update import hidden_activations
    from cellsim.intspec.perceive import perceive
    h = hidden_activations(p, perceive(layout.neighbourhood(ram[None])[0]))
    return int((h != p.hidden_zero_point).sum())


def _limit(result: dict, field: str, fmt) -> str:
    """' (target X: met)' beside a figure, or '' when the target has no such budget."""
    b = TARGET_BUDGETS.get(result["cpu"], Budget())
    limit = getattr(b, field)
    if limit is None:
        return ""
    met = {v[0]: v[3] for v in verdicts(result)}["instructions/MAC" if field == "max_per_mac"
                                                    else "flash bytes"]
    kind = "target" if b.checked else "goal"
    return f" ({kind} <= {fmt(limit)}: {'met' if met else 'NOT met'})"


def format_table(results: list[dict]) -> str:
    rows = [("", *[r["cpu"] for r in results])]

    def row(label, fn):
        rows.append((label, *[fn(r) for r in results]))
    row("genome arrays (B flash)", lambda r: f"{r['flash']['genome_arrays']:,}")
    row("update code + callees (B)", lambda r: f"{r['flash']['update_code']:,}")
    row("  of which nca_* (B)", lambda r: f"{r['flash']['update_code_own']:,}")
    row("genome + descriptor + update (B)", lambda r: f"{r['flash']['genome_plus_update']:,}"
        + _limit(r, "max_flash", lambda v: f"{v:,}"))
    row("added to a firmware (B)", lambda r: f"{r['flash']['image_delta_update']:,}")
    row("message hooks add (B)", lambda r: f"{r['flash']['image_delta_hooks']:,}")
    row("RAM: cell + update's stack (B)", lambda r: f"{r['ram']['per_cell']} + "
        f"{r['ram']['stack_bytes']} = {r['ram']['per_cell'] + r['ram']['stack_bytes']}"
        + (" (stack measured)" if r["ram"].get("stack_measured") else ""))
    row("other static RAM (B)", lambda r: str(r["ram"]["firmware_static"]
                                              + (r["flash"]["genome_descriptor"]
                                                 if r["ram"]["descriptor_in_ram"] else 0)))

    def n(r):  # the counts, whichever the emulator counted
        return r.get("cycles") or r["instructions"]

    def unit(r):  # the ATmega2560's figures are simavr's cycles, the others QEMU's instructions
        return " cyc" if r["unit"] == "cycles" else ""
    row("instr./update, live cells", lambda r: f"{n(r)['live_mean']:,.0f}{unit(r)} "
        f"({n(r)['live_min']:,}-{n(r)['live_max']:,})")
    row("  active hidden units", lambda r: f"{n(r)['active_hidden_mean']:.1f} / 128")
    row("instr./update, all units on", lambda r: f"{n(r)['dense_mean']:,.0f}{unit(r)}")
    row("instr./MAC, all units on", lambda r: f"{n(r)['per_mac_dense']:.2f}{unit(r)}"
        + _limit(r, "max_per_mac", lambda v: f"{v:g}"))
    row("  CMSIS-NN inner loop", lambda r: f"~{CMSIS_INSTRUCTIONS_PER_MAC}")
    row("instr./update, dead cell", lambda r: f"{n(r)['dead_cell']}{unit(r)}")
    row("emulator == intspec", lambda r: "yes" if r["qemu_agrees_bit_for_bit"] else "NO")
    row("clock, assumed CPI", lambda r: "-" if r["real_time"] is None else
        f"{r['real_time']['clock_hz'] / 1e6:g} MHz, " + (
            "cycles counted" if r["unit"] == "cycles"
            else f"{r['real_time']['cycles_per_instruction']:g}"))
    row("update time, all on / live", lambda r: "-" if r["real_time"] is None else
        f"{r['real_time']['update_us_dense']:,.0f} / {r['real_time']['update_us_live']:,.0f} us")
    row("max updates/s, all on / live", lambda r: "-" if r["real_time"] is None else
        f"{r['real_time']['max_updates_per_s_dense']:,.0f} / "
        f"{r['real_time']['max_updates_per_s_live']:,.0f}")
    widths = [max(len(str(x[i])) for x in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="runs/firmware_size.json", help="JSON output path")
    parser.add_argument("--updates", type=int, default=24, help="live updates traced per CPU")
    parser.add_argument("--targets", nargs="+", choices=list(toolchain.TARGETS),
                        default=list(toolchain.TARGETS), help="the targets to measure (all)")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a checked budget (TARGET_BUDGETS) is not met")
    args = parser.parse_args(argv)
    absent = toolchain.missing(*(tool for cpu in args.targets
                                 for tool in toolchain.TARGETS[cpu].tools))
    if absent:
        print(f"firmware_size: missing {' '.join(absent)}", file=sys.stderr)
        return 2
    genome = demo_genome()
    dense = dense_genome(genome)
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(cpu, genome, dense, args.updates, Path(tmp)) for cpu in args.targets]
    print(format_table(results))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    from cellsim import atomic
    atomic.write_text(out, json.dumps({"compiler_flags": {cpu: toolchain.TARGETS[cpu].cflags
                                                          for cpu in args.targets},
                                       "results": results}, indent=2) + "\n")
    print(f"wrote {out}")
    failed = [f"{r['cpu']}: {what} {figure:g} > {limit:g}" if what != "bit-exact on the emulator"
              else f"{r['cpu']}: not bit-exact on the emulator"
              for r in results for what, figure, limit, met, checked in verdicts(r)
              if checked and not met]
    for line in failed:
        print(f"firmware_size: budget not met: {line}", file=sys.stderr)
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
