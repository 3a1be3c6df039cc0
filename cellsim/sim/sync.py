"""The synchronous clock on RAM, batched: the training step (docs/integer-spec.md section 8)
as the reference engine's _sync defines it, every cell at once. The workers
stay in one kernel for a run of steps (team.py) and meet twice a step."""
import numpy as np
from numba import njit

from ..intspec import layout
from . import clocks, team
from .events import CLOCK, KILL, RAMFLIP, REBOOT, ROMFLIP
from .kernels import (ALPHA, CHANNELS, FLAG_DEAD, FLAGS, RNG, STATE, STATE_WORD, batch_network,
                      flip_bit, is_dead, mailbox_alive, queue_update, read_u32, reboot,
                      residual_words, send_state, state_channel, worker_scratch, write_u32, ZERO_WORD)
from .rng import reboot_seed
from .team import atomic_add, atomic_load, meet

SLOTS = layout.MAILBOX_SLOTS
COUNT = layout.COUNT
BLOCK = 64  # cells a worker takes at a time: interleaved blocks share a growing pattern out


def block_count(cells, workers):
    """Most cells one of `workers` workers takes (its scratch capacity)."""
    blocks = -(-cells // BLOCK)
    return -(-blocks // workers) * BLOCK


@njit(cache=True, nogil=True, _nrt=False)  # no reference counting (engine.run_in_order says why)
def sync_steps_of(w, workers, block, steps, left, ram, words, neighbours, genome_of, rate,
                  clock, tables, workspace, pre, fired, new_states, updates, arrived):
    """Worker w's blocks of `block` cells (every workers-th) through `steps`
    training steps (the reference's _sync), meeting the other workers after the
    network and after the alive test.
    updates[step] counts the step's updates; the run stops after the step that
    brings them to `left` (if >= 0)."""
    n = ram.shape[0]
    s = worker_scratch(workspace, w)
    threshold = tables.threshold
    total = 0
    for step in range(steps):
        live = np.int64(0)
        count = 0
        for first in range(w * block, n, workers * block):
            for c in range(first, min(n, first + block)):
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
                        count += 1
                        write_u32(row, COUNT, (read_u32(row, COUNT) + 1) & 0xFFFFFFFF)
                        if pre[c]:
                            queue_update(row, c, genome_of[c], c, s, live)
                            live += 1
                        else:
                            new_states[c, :] = 0
        batch_network(live, tables, s)
        for j in range(live):
            low, high = residual_words(ram[s.cells[j]], s.acc2[j], tables, s.genomes[j])
            for ch in range(CHANNELS):
                new_states[s.cells[j], ch] = state_channel(low, high, ch)
        atomic_add(updates, step, count)
        meet(arrived, (2 * step + 1) * workers)
        total += atomic_load(updates, step)
        # The alive test needs the neighbours' new alphas: all of them are in.
        for first in range(w * block, n, workers * block):
            for c in range(first, min(n, first + block)):
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
        meet(arrived, (2 * step + 2) * workers)
        # Mailboxes read the neighbours' final states; the next step's first
        # phase writes neither states nor other cells' mailboxes, so no meeting.
        for first in range(w * block, n, workers * block):
            for c in range(first, min(n, first + block)):
                row = ram[c]
                if is_dead(row):
                    continue
                for slot in range(SLOTS):  # (a state is two uint64 words of `words`)
                    sender = neighbours[c, slot]
                    if sender >= 0 and not is_dead(ram[sender]):
                        words[c, 2 * slot] = words[sender, STATE_WORD]
                        words[c, 2 * slot + 1] = words[sender, STATE_WORD + 1]
        if 0 <= left <= total:
            break


def sync_steps(workers, steps, left, ram, neighbours, genome_of, rate, clock, tables, workspace,
               pre, fired, new_states):
    """Up to `steps` training steps (fewer when `left` >= 0 updates are reached);
    returns the updates of each step run."""
    updates = np.zeros(steps, np.int64)
    args = (BLOCK, steps, left, ram, ram.view(np.uint64), neighbours, genome_of, rate, clock,
            tables, workspace, pre, fired, new_states, updates)
    team.run_team(sync_steps_of, workers, *args, np.zeros(1, np.int64))
    ran = steps if left < 0 else min(steps, int(np.searchsorted(np.cumsum(updates), left)) + 1)
    return updates[:ran]


@njit(cache=True)
def apply_sync_fault(kind, cell, tick, bit, factor, rom_target, seed, ram, words, dead, rate,
                     genome_of, neighbours, routes, inflight):
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
        reboot(row, reboot_seed(seed, cell, tick), np.int64(0))
        send_state(words, dead, cell, ZERO_WORD, ZERO_WORD, neighbours, routes, -1, inflight)
