"""Per-target timing of one cell update, for hardware-timed simulation
(`cellsim simulate --mcu TARGET@FREQ`, cellsim/hardware.py): builds and traces
the cell firmware on every target of firmware_gen/toolchain.py with the
measuring functions of benchmarks/firmware_size.py and writes what the
simulator needs to cellsim/data/mcu_timing.json.

    python -m benchmarks.mcu_timing [--out cellsim/data/mcu_timing.json] [--updates 24]

A target whose emulator counts cycles (its firmware_size result has a "cycles"
block with the keys of "instructions") is recorded in cycles; the others in
instructions, with the cycles per instruction the model assumes (1: a lower
bound on time, zero-wait-state flash)."""
import argparse
import datetime
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from cellsim import atomic
from cellsim.hardware import TIMING_PATH

from . import firmware_size

COMMAND = "python -m benchmarks.mcu_timing"
# What the summary calls each target; a target not listed is called by its name.
LABELS = {"cortex-m0plus": "Cortex-M0+", "cortex-m4": "Cortex-M4", "rv32imc": "RV32IMC",
          "atmega2560": "ATmega2560", "avr": "AVR ATmega2560"}


def assumed_cycles_per_instruction(cpu: str) -> tuple[float, str]:
    """The CPI firmware_size assumes for a target counted in instructions (one
    assumption for both reports), or 1 where it states none."""
    budget = firmware_size.TARGET_BUDGETS.get(cpu)
    if budget is None or budget.cycles_per_instruction is None:
        return 1.0, "none stated: 1 assumed, a lower bound"
    return budget.cycles_per_instruction, budget.cpi_basis


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def timing_entry(result: dict) -> dict:
    """One target's row of the JSON from its firmware_size.measure result."""
    cycles = result.get("cycles")
    counted = cycles if cycles else result["instructions"]
    cpi, cpi_basis = (1.0, "cycles counted") if cycles else assumed_cycles_per_instruction(result["cpu"])
    entry = {
        "label": LABELS.get(result["cpu"], result["cpu"]),
        "board": result["board"],
        "count": "cycles" if cycles else "instructions",
        "cycles_per_count": cpi,
        "cycles_per_count_basis": cpi_basis,
        # The timer period must fit the longest update: every hidden unit active.
        "live_update": round(float(counted["dense_mean"])),
        "live_update_typical": round(float(counted["live_mean"])),
        "dead_update": int(counted["dead_cell"]),
        "bit_exact": bool(result["qemu_agrees_bit_for_bit"]),
        "command": COMMAND,
    }
    entry["method"] = (f"{'cycles' if cycles else 'instructions'} of nca_cell_update counted on "
                       f"{result['emulator']}" + ("" if cycles else
                       " (-singlestep -d exec,nochain: every executed instruction logged), "
                       "cycles per instruction assumed"))
    return entry


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(TIMING_PATH), help="JSON to write")
    parser.add_argument("--updates", type=int, default=24, help="live updates traced per target")
    args = parser.parse_args(argv)
    from firmware_gen import toolchain

    absent = toolchain.missing(*toolchain.TARGET_TOOLS)
    if absent:
        print(f"mcu_timing: missing {' '.join(absent)}", file=sys.stderr)
        return 2
    genome = firmware_size.demo_genome()
    dense = firmware_size.dense_genome(genome)
    targets = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cpu in toolchain.TARGETS:
            result = firmware_size.measure(cpu, genome, dense, args.updates, Path(tmp))
            targets[cpu] = timing_entry(result)
            t = targets[cpu]
            print(f"{cpu:<14} {t['live_update']:>8,} {t['count']} a live update (all units on; "
                  f"typical {t['live_update_typical']:,}), {t['dead_update']:,} a dead-cell update")
    data = {
        "about": "cycles or instructions of one cell update per MCU target, for "
                 "hardware-timed simulation (docs/simulator.md, 'Hardware time')",
        "command": COMMAND,
        "commit": _commit(),
        "date": datetime.date.today().isoformat(),
        "genome": "benchmarks.sim_speed.random_params(0): 16 channels, 128 hidden units; "
                  "live_update with every hidden unit active (firmware_size.dense_genome)",
        "targets": targets,
    }
    atomic.write_text(args.out, json.dumps(data, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
