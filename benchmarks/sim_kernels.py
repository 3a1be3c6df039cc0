"""Nanoseconds per update of each stage of the simulator's batched int8 update
(gather, first layer, requantisation, second layer, and the write-back with its
eight messages), on 64 cells of a 72x72 RAM with a fixed random genome, one
thread, everything in cache, and of planning a window's events: where the time of an update goes, not its speed in
a run (benchmarks/sim_speed.py measures that).

    python benchmarks/sim_kernels.py [--repeats 2000]
"""
import argparse
import sys
import time

import numpy as np
from numba import njit

from cellsim.sim.kernels import (batch_network, commit_state, gather_perception,
                                 requantize_hidden, residual_words, send_state, worker_scratch)
from cellsim.sim.simd import first_layer, first_layer_pair, second_layer, second_layer_pair

CELLS, BATCH = 72 * 72, 64


@njit(cache=False, _nrt=False)  # as the engine compiles its kernels
def _stage(ram, tables, workspace, repeats, stage):
    s = worker_scratch(workspace, 0)
    for j in range(BATCH):
        s.cells[j] = (j * 37) % CELLS
        s.genomes[j] = 0
    for _ in range(repeats):
        if stage == 0:
            for j in range(BATCH):
                gather_perception(ram[s.cells[j]], s.perception[j])
            batch_network(BATCH, tables, s)
        elif stage == 1:
            for j in range(BATCH):
                gather_perception(ram[s.cells[j]], s.perception[j])
        elif stage == 2:
            for j in range(0, BATCH, 2):
                first_layer_pair(s.perception, j, tables.w1k, tables.init1, 0, s.dots1, 0)
        elif stage == 3:
            for j in range(BATCH):
                requantize_hidden(s.dots1[j % 2], tables, 0, s.hidden[j % 2])
        elif stage == 4:
            for j in range(0, BATCH, 2):
                second_layer_pair(s.hidden, 0, tables.w2k, tables.init2, 0, s.dots2, 0)
        elif stage == 5:
            for j in range(BATCH):
                first_layer(s.perception, j, tables.w1k, tables.init1, 0, s.dots1, 0)
        elif stage == 6:
            for j in range(BATCH):
                second_layer(s.hidden, 0, tables.w2k, tables.init2, 0, s.dots2, 0)


@njit(cache=False, _nrt=False)  # as the engine compiles its kernels
def _finish(ram, words, dead, neighbours, routes, inflight, tables, workspace, repeats):
    s = worker_scratch(workspace, 0)
    for _ in range(repeats):
        for j in range(BATCH):
            cell = s.cells[j]
            low, high = residual_words(ram[cell], s.acc2[j], tables, 0)
            low, high = commit_state(ram[cell], words, cell, low, high, tables.threshold[0])
            send_state(words, dead, cell, low, high, neighbours, routes, -1, inflight)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2000)
    args = parser.parse_args(argv)

    from benchmarks.sim_speed import random_params
    from cellsim.sim import simd
    from cellsim.sim.events import neighbour_table
    from cellsim.sim.kernels import Scratch
    from cellsim.sim.rom import GenomeTables, padded_hidden

    tables = GenomeTables.build([random_params()])
    rng = np.random.default_rng(0)
    ram = np.zeros((CELLS, 256), np.uint8)
    ram[:, :144] = rng.integers(0, 256, (CELLS, 144))
    ram = ram.view(np.int8)
    workspace = Scratch.allocate(1, BATCH, padded_hidden(128))
    neighbours = neighbour_table(72, 72, False).astype(np.int64)
    runs = {name: (lambda n, stage=stage: _stage(ram, tables, workspace, n, stage))
            for stage, name in enumerate(["whole network (batch_network)", "gather perception",
                                          "first layer (cells in pairs)", "requantisation",
                                          "second layer (cells in pairs)",
                                          "first layer, one cell at a time",
                                          "second layer, one cell at a time"])}
    runs["state, accumulators, 8 messages"] = lambda n: _finish(
        ram, ram.view(np.uint64), np.zeros(CELLS, np.uint8), neighbours, np.zeros(1, np.int64),
        np.zeros((1, 2), np.uint64), tables, workspace, n)
    print(f"products: {simd.backend()}; {BATCH} cells a batch, best of 5 x {args.repeats}")
    for name, run in runs.items():
        run(10)  # compile
        best = min(_seconds(run, args.repeats) for _ in range(5))
        print(f"{name:34s} {best / args.repeats / BATCH * 1e9:7.1f} ns/update")
    for clock in ("poisson", "periodic"):
        print(f"{'planning a window, ' + clock + ' clocks':34s} {planning_ns(clock):7.1f} ns/update")
    return 0


def planning_ns(clock: str, units: int = 32) -> float:
    """The planner (schedule.py, one worker) listing `units` time units of a
    72x72 grid's events, per update: best of 5."""
    from benchmarks.sim_speed import live_states, random_params
    from cellsim.sim import Grid
    from cellsim.sim.state import LAST_REST

    grid = Grid(random_params(), 72, clock=clock, seed=3, workers=1)
    grid.set_states(live_states(72))
    grid.run(until=1)
    grid.engine.settle(keep=False)  # the clocks at t = 1, for the planner to start from
    engine, best = grid.engine, float("inf")
    for _ in range(5):
        start = time.perf_counter()
        plan = engine._plan((grid.state.cursor[0] + units * 65536, LAST_REST))
        best = min(best, (time.perf_counter() - start) / plan["fires"] * 1e9)
    return best


def _seconds(run, repeats) -> float:
    start = time.perf_counter()
    run(repeats)
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
