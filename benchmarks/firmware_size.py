"""Flash, RAM and instructions of the C cell firmware on every MCU target of
firmware_gen/toolchain.py (Cortex-M0+, Cortex-M4, RV32IMC, ATmega2560),
measured with the target's gcc -Os, size/nm and instruction traces of QEMU,
or for the AVR cycles and stack counted on simavr; prints a table and writes JSON.

    python -m benchmarks.firmware_size [--json runs/firmware_size.json] [--updates 24]
                                       [--targets atmega2560 ...]
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
    """Constant data nca_cell.c itself keeps in flash (not the genome)."""
    obj = toolchain.compile_firmware(cpu, workdir / f"nca_cell_{cpu}_data.o")
    out = toolchain.run_tool([toolchain.TARGETS[cpu].tool("nm"), "-S", obj]).stdout.decode()
    return {parts[3]: int(parts[1], 16) for parts in map(str.split, out.splitlines())
            if len(parts) == 4 and parts[2] in "rR"}


def stack_usage(workdir: Path, cpu: str) -> int:
    """Worst stack depth of the update (-fstack-usage of nca_cell.c, summed
    over the call chain nca_cell_update -> nca_requantize)."""
    obj = toolchain.compile_firmware(cpu, workdir / f"nca_cell_{cpu}.o", "-fstack-usage")
    usage = {}
    for line in obj.with_suffix(".su").read_text().splitlines():
        where, size, _ = line.split("\t")
        usage[where.rsplit(":", 1)[-1]] = int(size)
    return usage.get("nca_cell_update", 0) + usage.get("nca_requantize", 0)


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
    functions = sorted(reachable(call_graph(cpu, with_update_elf), UPDATE_ROOT))
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
    p = genome.params
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
                "stack_bytes": measured_stack if cycles else stack_usage(wdir, cpu),
                "stack_bytes_static": stack_usage(wdir, cpu),
                "stack_measured": cycles,
                # nca_cell.c's own static RAM (its sections, -fdata-sections)
                "firmware_static": sum(v for k, v in toolchain.section_sizes(
                    cpu, toolchain.compile_firmware(cpu, wdir / f"nca_cell_{cpu}_ram.o")).items()
                    if k.split(".")[1] in ("data", "bss", "sdata", "sbss")),
                "descriptor_in_ram": bool(cycles)},  # AVR: const data lives in SRAM
        "unit": "cycles" if cycles else "instructions",
        "cycles_by_function": by_function,
        "clock_hz": target.clock_hz,
        "update_seconds_dense": (float(dense_counts.mean()) / target.clock_hz
                                 if cycles and target.clock_hz else None),
        "update_seconds_live": (float(live_counts.mean()) / target.clock_hz
                                if cycles and target.clock_hz else None),
        "cycles" if cycles else "instructions": counts,
        "qemu_agrees_bit_for_bit": agree,
    }


def _active_hidden(p, ram) -> int:
    """Hidden units above their ReLU floor for one live RAM."""
    from cellsim.intspec.cell_update import hidden_activations
    from cellsim.intspec.perceive import perceive
    h = hidden_activations(p, perceive(layout.neighbourhood(ram[None])[0]))
    return int((h != p.hidden_zero_point).sum())


def format_table(results: list[dict]) -> str:
    rows = [("", *[r["cpu"] for r in results])]

    def row(label, fn):
        rows.append((label, *[fn(r) for r in results]))
    row("genome arrays (B flash)", lambda r: f"{r['flash']['genome_arrays']:,}")
    row("update code + callees (B)", lambda r: f"{r['flash']['update_code']:,}")
    row("  of which nca_* (B)", lambda r: f"{r['flash']['update_code_own']:,}")
    row("genome + update (B)", lambda r: f"{r['flash']['genome_plus_update']:,} / "
                                        f"{r['flash']['budget']:,}")
    row("added to a firmware (B)", lambda r: f"{r['flash']['image_delta_update']:,}")
    row("message hooks add (B)", lambda r: f"{r['flash']['image_delta_hooks']:,}")
    row("RAM per cell (B)", lambda r: str(r["ram"]["per_cell"]))
    row("stack during update (B)", lambda r: str(r["ram"]["stack_bytes"])
        + (" (measured)" if r["ram"].get("stack_measured") else ""))
    row("other static RAM (B)", lambda r: str(r["ram"]["firmware_static"]
                                              + (r["flash"]["genome_descriptor"]
                                                 if r["ram"]["descriptor_in_ram"] else 0)))
    def unit(r):  # AVR figures are simavr's cycles, the others QEMU's instructions
        return " cyc" if r["unit"] == "cycles" else ""

    def n(r):  # the counts, whichever the emulator counted
        return r.get("cycles") or r["instructions"]

    def per_second(r, key):
        t = r.get(f"update_seconds_{key}")
        return "-" if t is None else f"{t * 1e3:.2f} ms, {1 / t:,.0f}/s @ {r['clock_hz'] / 1e6:g} MHz"
    row("instr./update, live cells", lambda r: f"{n(r)['live_mean']:,.0f}{unit(r)} "
        f"({n(r)['live_min']:,}-{n(r)['live_max']:,})")
    row("  active hidden units", lambda r: f"{n(r)['active_hidden_mean']:.1f} / 128")
    row("instr./update, all units on", lambda r: f"{n(r)['dense_mean']:,.0f}{unit(r)}")
    row("instr./MAC, all units on", lambda r: f"{n(r)['per_mac_dense']:.2f}{unit(r)} "
        f"(CMSIS-NN ~{CMSIS_INSTRUCTIONS_PER_MAC})")
    row("instr./update, dead cell", lambda r: f"{n(r)['dead_cell']}{unit(r)}")
    row("update time, rate: live", lambda r: per_second(r, "live"))
    row("update time, rate: all on", lambda r: per_second(r, "dense"))
    row("emulator == intspec", lambda r: "yes" if r["qemu_agrees_bit_for_bit"] else "NO")
    widths = [max(len(str(x[i])) for x in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", default="runs/firmware_size.json", help="JSON output path")
    parser.add_argument("--updates", type=int, default=24, help="live updates traced per CPU")
    parser.add_argument("--targets", nargs="+", choices=list(toolchain.TARGETS),
                        default=list(toolchain.TARGETS), help="the targets to measure (all)")
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
