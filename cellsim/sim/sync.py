"""The synchronous clock on RAM, batched: the training step (SPEC.md section 3)
as the reference engine's _sync defines it, every cell at once. Fired live
cells run the network, shared by the workers; the alive test needs the
neighbours' new alphas, so the step ends with the two message rounds folded
into reads."""
from numba import njit, prange

from ..intspec import layout
from . import clocks
from .events import CLOCK, KILL, RAMFLIP, REBOOT, ROMFLIP
from .kernels import (ALPHA, CHANNELS, FLAG_DEAD, FLAGS, RNG, STATE, batch_network, flip_bit,
                      is_dead, mailbox_alive, read_u32, reboot, residual_into, send_state,
                      worker_scratch, write_u32)
from .rng import reboot_seed

SLOTS = layout.MAILBOX_SLOTS
COUNT = layout.COUNT


@njit(cache=True)
def sync_updates(cells, ram, genome_of, tables, s, new_states):
    """The network for one worker's share of a step's fired live cells; their
    unmasked new states go to new_states."""
    for j in range(cells.shape[0]):
        s.cells[j] = cells[j]
        s.genomes[j] = genome_of[cells[j]]
    batch_network(ram, cells.shape[0], tables, s)
    for j in range(cells.shape[0]):
        residual_into(ram[cells[j]], s.acc2[j], tables, s.genomes[j], s.new_state)
        new_states[cells[j], :] = s.new_state


@njit(parallel=True, cache=True)
def sync_step(ram, neighbours, genome_of, rate, clock, tables, workspace, pre, fired, new_states,
              batch_cells):
    """One training step on RAM (the reference's _sync, batched); returns updates."""
    n = ram.shape[0]
    workers = workspace.acc2.shape[0]
    threshold = tables.threshold
    for c in prange(n):
        row = ram[c]
        fired[c], pre[c] = False, False
        for ch in range(CHANNELS):
            new_states[c, ch] = row[STATE + ch]
        if is_dead(row):
            continue
        limit = threshold[genome_of[c]]
        pre[c] = row[STATE + ALPHA] > limit or mailbox_alive(row, limit)
        if rate[c] > 0.0:
            rng, coin = clocks.sync_fires(clock, read_u32(row, RNG))
            write_u32(row, RNG, rng)
            if coin:
                fired[c] = True
                write_u32(row, COUNT, (read_u32(row, COUNT) + 1) & 0xFFFFFFFF)
                if not pre[c]:
                    new_states[c, :] = 0
    updates = 0
    live = 0
    for c in range(n):
        updates += fired[c]
        if fired[c] and pre[c]:
            batch_cells[live] = c
            live += 1
    for w in prange(workers):
        sync_updates(batch_cells[live * w // workers:live * (w + 1) // workers], ram, genome_of,
                     tables, worker_scratch(workspace, w), new_states)
    for c in prange(n):
        row = ram[c]
        if is_dead(row):
            continue
        limit = threshold[genome_of[c]]
        post = new_states[c, ALPHA] > limit
        for slot in range(SLOTS):  # slot s is heard from the neighbour at offset s
            sender = neighbours[c, slot]
            if sender >= 0 and not is_dead(ram[sender]):
                post = post or new_states[sender, ALPHA] > limit
            else:
                post = post or row[slot * CHANNELS + ALPHA] > limit
        for ch in range(CHANNELS):
            row[STATE + ch] = new_states[c, ch] if pre[c] and post else 0
    for c in prange(n):
        row = ram[c]
        if is_dead(row):
            continue
        for slot in range(SLOTS):
            sender = neighbours[c, slot]
            if sender >= 0 and not is_dead(ram[sender]):
                for ch in range(CHANNELS):
                    row[slot * CHANNELS + ch] = ram[sender, STATE + ch]
    return updates


@njit(cache=True)
def apply_sync_fault(kind, cell, tick, bit, factor, rom_target, seed, ram, dead, rate, genome_of,
                     neighbours, routes, inflight):
    """A fault between synchronous steps (no message faults in sync mode)."""
    row = ram[cell]
    if kind == CLOCK:
        rate[cell] *= factor
    elif is_dead(row):
        return
    elif kind == ROMFLIP:
        if rom_target >= 0:
            genome_of[cell] = rom_target
    elif kind == RAMFLIP:
        flip_bit(row, bit)
        dead[cell] = row[FLAGS] & FLAG_DEAD
    elif kind == KILL:
        row[FLAGS] |= FLAG_DEAD
        dead[cell] = 1
    elif kind == REBOOT:
        reboot(row, reboot_seed(seed, cell, tick), 0)
        send_state(ram, dead, cell, neighbours, routes, -1, inflight)
