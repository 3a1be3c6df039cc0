"""The reference engine: one event at a time, in key order, from a heap, each
update computed by the numpy specification cellsim.intspec.update_ram. Slow and
obvious on purpose: the fast engine is tested against it, byte for byte."""
import heapq
import itertools

import numpy as np

from ..intspec import layout, update_ram
from ..intspec.alive import is_alive
from ..intspec.cell_update import hidden_activations, output_accumulators, residual
from ..intspec.perceive import perceive
from . import clocks
from .events import CLOCK, DELIVER, FIRE, KILL, RAMFLIP, REBOOT, ROMFLIP, SYNC
from .links import LOST, message_arrival
from .rng import reboot_seed
from .rom import flip_rom_bit
from .state import LAST_REST, Pending, rest_key
from .cells import RamCells

WINDOW_UNITS = 16

CHANNELS, SLOTS = layout.CHANNELS, layout.MAILBOX_SLOTS


def _word(ram_row, offset: int) -> int:
    return int(ram_row[offset:offset + 4].view("<u4")[0])


def _set_word(ram_row, offset: int, value: int) -> None:
    ram_row[offset:offset + 4].view("<u4")[0] = value


def _dead(ram_row) -> bool:
    return bool(ram_row[layout.FLAGS] & layout.FLAG_DEAD)


class ReferenceEngine(RamCells):
    def __init__(self, state, schedule, neighbours):
        self.state, self.schedule, self.neighbours = state, schedule, neighbours
        self.vector = state.clock.vector()
        self.handlers = {CLOCK: self._clock, ROMFLIP: self._romflip, RAMFLIP: self._ramflip,
                         KILL: self._kill, REBOOT: self._reboot, DELIVER: self._deliver,
                         FIRE: self._fire, SYNC: self._sync}

    def run(self, bound: tuple, max_updates=None, plan_until=None) -> None:
        """Process every event with key <= bound (or stop after max_updates updates),
        a window of WINDOW_UNITS at a time (faults are expanded per window).
        plan_until (the fast engine's planning hint) changes nothing here."""
        done = 0
        while self.state.cursor < bound and (max_updates is None or done < max_updates):
            start = max(self.state.cursor[0], 0)
            window = min(bound, (start + WINDOW_UNITS * clocks.TICKS_PER_UNIT - 1, LAST_REST))
            done += self._run_window(window, None if max_updates is None else max_updates - done)

    def _run_window(self, bound: tuple, max_updates) -> int:
        st = self.state
        if not st.link_last.flags.writeable:  # power_up's shared "nothing arrived yet"
            st.link_last = st.link_last.copy()
        self.heap, self.tokens, self.sequence = [], np.zeros(st.cells, np.int64), itertools.count()
        for c in np.flatnonzero(st.next_fire < clocks.NEVER):
            self._push_fire(int(c))
        for i in range(len(st.pending)):
            self._push(int(st.pending.time[i]), rest_key(DELIVER, int(st.pending.cell[i]),
                       int(st.pending.slot[i])), DELIVER, int(st.pending.cell[i]),
                       (int(st.pending.slot[i]), st.pending.payload[i].copy()))
        events = self.schedule.events(max(st.cursor[0], 0), bound[0] + 1)
        for j in range(len(events)):
            key = (int(events.time[j]), rest_key(int(events.kind[j]), int(events.cell[j]),
                                                 int(events.sub[j])))
            if st.cursor < key <= bound:
                self._push(*key, int(events.kind[j]), int(events.cell[j]),
                           (int(events.bit[j]), float(events.factor[j])))
        if st.clock.synchronous:
            step = max(0, -(-(st.cursor[0] + 1) // clocks.TICKS_PER_UNIT))
            while step * clocks.TICKS_PER_UNIT <= bound[0]:
                key = (step * clocks.TICKS_PER_UNIT, rest_key(SYNC, 0, 0))
                if st.cursor < key <= bound:
                    self._push(*key, SYNC, 0, None)
                step += 1
        done = 0
        while self.heap and self.heap[0][:2] <= bound:
            tick, rest, _, kind, cell, data = heapq.heappop(self.heap)
            if kind == FIRE and data != self.tokens[cell]:
                continue  # superseded by a clock change, reboot or death
            st.cursor = (tick, rest)
            st.counts[kind] += 1
            self.handlers[kind](tick, cell, data)
            if kind == FIRE:
                done += 1
            elif kind == SYNC:
                done += self.fired_in_step
            if max_updates is not None and done >= max_updates:
                break
        else:
            st.cursor = bound
        left = [(t, c, d) for t, _, _, k, c, d in self.heap if k == DELIVER]
        st.pending = Pending(np.array([t for t, _, _ in left], np.int64),
                             np.array([c for _, c, _ in left], np.int64),
                             np.array([d[0] for _, _, d in left], np.int64),
                             np.array([d[1] for _, _, d in left], np.int8).reshape(-1, CHANNELS))
        return done

    # -- the heap ---------------------------------------------------------
    def _push(self, tick, rest, kind, cell, data):
        heapq.heappush(self.heap, (tick, rest, next(self.sequence), kind, cell, data))

    def _push_fire(self, cell):
        self.tokens[cell] += 1
        if self.state.next_fire[cell] < clocks.NEVER:
            self._push(int(self.state.next_fire[cell]), rest_key(FIRE, cell, 0), FIRE, cell,
                       self.tokens[cell])

    def _die(self, cell):
        self.state.next_fire[cell] = clocks.NEVER
        self._push_fire(cell)

    # -- messages ---------------------------------------------------------
    def _send(self, tick, cell):
        st, sched = self.state, self.schedule
        payload = layout.state(st.ram[cell]).copy()
        for k in range(SLOTS):
            receiver = int(self.neighbours[cell, k])
            if receiver < 0:
                continue
            slot = SLOTS - 1 - k
            if sched.has_links:
                arrival = message_arrival(np.uint64(st.seed), cell, k, tick, sched.link_mask[cell],
                                          sched.link_start, sched.link_end, sched.link_loss,
                                          sched.link_delay, st.link_last[receiver, slot])
                if arrival == LOST:
                    continue
                st.link_last[receiver, slot] = arrival
                if arrival > tick:
                    self._push(arrival, rest_key(DELIVER, receiver, slot), DELIVER, receiver,
                               (slot, payload.copy()))
                    continue
            self._deliver(tick, receiver, (slot, payload))

    def _deliver(self, tick, cell, data):
        slot, payload = data
        if not _dead(self.state.ram[cell]):
            layout.mailbox(self.state.ram[cell])[slot] = payload

    # -- events -----------------------------------------------------------
    def _fire(self, tick, cell, token):
        st = self.state
        params = st.genomes[st.genome_of[cell]]
        st.ram[cell] = update_ram(params, st.ram[cell])
        rng, wait = clocks.next_wait(self.vector, _word(st.ram[cell], layout.RNG))
        _set_word(st.ram[cell], layout.RNG, rng)
        _set_word(st.ram[cell], layout.CLOCK, wait)
        st.next_fire[cell] = tick + clocks.to_global(wait, st.rate[cell])
        self._push_fire(cell)
        self._send(tick, cell)

    def _clock(self, tick, cell, data):
        st = self.state
        new_rate = st.rate[cell] * data[1]
        st.next_fire[cell] = clocks.rescaled_fire_time(tick, st.next_fire[cell], st.rate[cell],
                                                       new_rate)
        st.rate[cell] = new_rate
        self._push_fire(cell)

    def _romflip(self, tick, cell, data):
        st = self.state
        if _dead(st.ram[cell]):
            return
        flipped = flip_rom_bit(st.genomes[st.genome_of[cell]], data[0])
        if flipped is not None:
            st.genomes.append(flipped)
            st.genome_of[cell] = len(st.genomes) - 1

    def _ramflip(self, tick, cell, data):
        row = self.state.ram[cell]
        if _dead(row):
            return
        row[data[0] >> 3] ^= np.uint8(1 << (data[0] & 7))
        if _dead(row):
            self._die(cell)

    def _kill(self, tick, cell, data):
        if not _dead(self.state.ram[cell]):
            self.state.ram[cell, layout.FLAGS] |= layout.FLAG_DEAD
            self._die(cell)

    def _reboot(self, tick, cell, data):
        st = self.state
        if _dead(st.ram[cell]):
            return
        st.ram[cell] = 0
        rng = reboot_seed(np.uint64(st.seed), cell, tick)
        if not st.clock.synchronous:
            rng, wait = clocks.first_wait(self.vector, rng)
            _set_word(st.ram[cell], layout.CLOCK, wait)
            st.next_fire[cell] = tick + clocks.to_global(wait, st.rate[cell])
            self._push_fire(cell)
        _set_word(st.ram[cell], layout.RNG, rng)
        self._send(tick, cell)

    def _sync(self, tick, cell, data):
        """The training step on RAM: every live cell reads its mailbox; fired cells
        update; then two message rounds, one to learn the neighbours' new alphas for
        the after-update alive test, one to share the masked result."""
        st = self.state
        ram, n = st.ram, st.cells
        dead = (ram[:, layout.FLAGS] & layout.FLAG_DEAD) != 0
        new = layout.state(ram).copy()
        pre = np.zeros(n, bool)
        self.fired_in_step = 0
        for c in range(n):
            if dead[c]:
                continue
            params = st.genomes[st.genome_of[c]]
            hood = layout.neighbourhood(ram[c])
            pre[c] = is_alive(hood[..., layout.ALPHA].reshape(9), params.alive_threshold)
            if st.rate[c] <= 0:
                continue
            rng, fired = clocks.sync_fires(self.vector, _word(ram[c], layout.RNG))
            _set_word(ram[c], layout.RNG, rng)
            if fired:
                self.fired_in_step += 1
                acc2 = output_accumulators(params, hidden_activations(params, perceive(hood)))
                ram[c] = update_ram(params, ram[c])
                new[c] = residual(params, hood[1, 1], acc2) if pre[c] else 0
        st.counts[FIRE] += self.fired_in_step
        self._exchange(new, dead)
        heard = layout.mailbox(ram)[..., layout.ALPHA]
        for c in np.flatnonzero(~dead):
            params = st.genomes[st.genome_of[c]]
            post = is_alive(np.append(heard[c], new[c, layout.ALPHA]), params.alive_threshold)
            layout.state(ram)[c] = new[c] if pre[c] and post else 0
        self._exchange(layout.state(ram).copy(), dead)

    def _exchange(self, states, dead):
        """Every live cell tells its live neighbours `states`[cell]."""
        for c in np.flatnonzero(~dead):
            for k in range(SLOTS):
                receiver = self.neighbours[c, k]
                if receiver >= 0 and not dead[receiver]:
                    layout.mailbox(self.state.ram[receiver])[SLOTS - 1 - k] = states[c]
