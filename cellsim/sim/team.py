"""Workers on threads of their own that meet at barriers of their own.

A fork and join per level (numba's prange) costs microseconds on an idle
machine and milliseconds on a busy one, where OpenMP's spinning waits steal the
core a late worker needs. Here each worker enters a nogil kernel once per window
and waits at a level's end by spinning briefly, then yielding its core to
whoever is late. Plain Python threads start the workers: no parallel=True
kernel, whose compilation would cost seconds on every cold start."""
import ctypes
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import numba
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit, types
from numba._dispatcher import compute_fingerprint
from numba.core import cgutils
from numba.core.extending import intrinsic

SPINS = 2000  # checks before a waiting worker starts yielding (a few microseconds)


def _element_pointer(context, builder, array_type, array, index):
    ary = context.make_array(array_type)(context, builder, array)
    return cgutils.get_item_pointer(context, builder, array_type, ary, [index])


@intrinsic
def atomic_add(typingctx, array, index, value):
    """array[index] += value atomically (int64 array); returns the old value."""
    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        return builder.atomic_rmw("add", pointer, value, "seq_cst")
    return types.int64(array, index, value), codegen


@intrinsic
def atomic_load(typingctx, array, index):
    """array[index] (int64 array), read afresh: a plain load could be hoisted
    out of a waiting loop, and needs no ordering with the other workers' writes."""
    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(pointer, "acquire", 8)
    return types.int64(array, index), codegen


@intrinsic
def atomic_store(typingctx, array, index, value):
    """array[index] = value (int64 array), with release ordering: every write
    before it is visible to a worker whose atomic_load sees the value."""
    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, pointer, "release", 8)
        return context.get_dummy_value()
    return types.void(array, index, value), codegen


@intrinsic
def atomic_cas(typingctx, array, index, expected, value):
    """array[index] = value if it holds `expected` (int64 array), atomically;
    returns whether it did."""
    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        expected, value = (context.cast(builder, args[i], signature.args[i], types.int64)
                           for i in (2, 3))
        pair = builder.cmpxchg(pointer, expected, value, "seq_cst", "seq_cst")
        return builder.zext(builder.extract_value(pair, 1), cgutils.bool_t)
    return types.boolean(array, index, expected, value), codegen


# A waiting worker gives way with the C library's sched_yield, called by name
# from the compiled code. (Passed to the kernels as a ctypes function, it cost
# numba 4 us of Python to unbox at every call, a tenth of a short run's call.)
llvm.add_symbol("sched_yield", ctypes.cast(ctypes.CDLL(None).sched_yield, ctypes.c_void_p).value)


@intrinsic
def give_way(typingctx):
    """sched_yield(): let a late worker have this core."""
    def codegen(context, builder, signature, args):
        yield_type = ir.FunctionType(ir.IntType(32), [])
        builder.call(cgutils.get_or_insert_function(builder.module, yield_type, "sched_yield"), [])
        return context.get_dummy_value()
    return types.void(), codegen


@njit(cache=True, nogil=True)
def meet(counter, target):
    """Arrive at a barrier (counter[0] counts arrivals) and wait until `target`
    workers have arrived in all."""
    atomic_add(counter, 0, 1)
    spins = 0
    while atomic_load(counter, 0) < target:
        spins += 1
        if spins > SPINS:
            give_way()


def team_size(workers: int) -> int:
    """At most numba's thread count (NUMBA_NUM_THREADS, the cores by default)."""
    return max(1, min(int(workers), numba.get_num_threads()))


_entries = {}  # (kernel, the arguments' type fingerprints) -> compiled entry


def compiled(kernel, *args):
    """The compiled entry of kernel(w, workers, *args) for these arguments'
    types: a call that skips numba's dispatch (typing some twenty arguments on
    every call, tens of microseconds; a caller that runs the same arguments
    many times resolves them once). Found again by the arguments' type
    fingerprints, numba's own dispatch key: typing them again took 1-2 ms, a
    cost each window of a run in short pieces paid."""
    values = (0, 1) + args
    try:
        key = (kernel, tuple(compute_fingerprint(v) for v in values))
    except (TypeError, ValueError, NotImplementedError):
        key = None
    entry = _entries.get(key) if key is not None else None
    if entry is None:
        types = tuple(kernel.typeof_pyval(v) for v in values)
        if types not in kernel.overloads:
            kernel.compile(types)
        entry = kernel.overloads[types].entry_point
        if key is not None:
            _entries[key] = entry
    return entry


_helpers = []  # thread pools, one thread per worker after the first, kept for reuse


def run_team(kernel, workers: int, *args):
    """kernel(w, workers, *args) for w = 0 .. workers - 1 at once, worker 0 on
    the calling thread. The kernel must be nogil: the workers wait for each
    other at barriers, so all of them have to run at the same time."""
    if workers == 1:
        kernel(0, 1, *args)
        return
    while len(_helpers) < workers - 1:
        _helpers.append(ThreadPoolExecutor(1, thread_name_prefix="cellsim-worker"))
    helpers = [_helpers[w - 1].submit(kernel, w, workers, *args) for w in range(1, workers)]
    try:
        kernel(0, workers, *args)
    finally:
        for helper in helpers:
            helper.result()


# -- helpers that stay for the next call ---------------------------------------
# Handing a helper thread its piece costs a pool submit, a wake-up and the GIL
# for unboxing the kernel's arguments: 65 us a call of a 72x72 grid with two
# workers, a fifth of a 0.5-unit run. A crew's helpers stay in a nogil kernel
# between calls and take the next piece from a word of shared memory; one idle
# for IDLE_YIELDS yields (a millisecond or two) gives its thread back.
POSTS, BOUND, DONE, STOP = 0, 1, 2, 3   # the control words (POSTS: 2 x pieces + alive bit)
IDLE_YIELDS = 2000


@njit(cache=True, nogil=True)
def next_piece(control, served, idle):
    """A crew helper's wait for piece number served + 1: returns (bound, idle),
    bound < 0 when it should leave (stopped, or idle too long: it then clears
    the alive bit, unless a piece came in meanwhile)."""
    while True:
        if atomic_load(control, STOP):
            atomic_add(control, POSTS, -1)
            return -1, idle
        word = atomic_load(control, POSTS)
        if (word >> 1) > served:
            return atomic_load(control, BOUND), 0
        idle += 1
        if idle > SPINS:
            give_way()
            if idle > SPINS + IDLE_YIELDS and atomic_cas(control, POSTS, word, word - 1):
                return -1, idle


@njit(cache=True, nogil=True)
def await_pieces(control, done):
    """The caller's wait until the helpers have done `done` pieces in all."""
    spins = 0
    while atomic_load(control, DONE) < done:
        spins += 1
        if spins > SPINS:
            give_way()


class Crew:
    """Worker 1 of two, of a kernel run in pieces, kept in `kernel` (a nogil
    kernel kernel(1, 2, control, *args) that loops on next_piece and runs its
    piece) between calls; worker 0 runs on the caller's thread. (One helper:
    its alive bit is one bit; more workers take run_team.)"""

    def __init__(self, kernel, args: tuple, pool: ThreadPoolExecutor):
        """pool: a one-thread pool of the crew's own (its helper stays in it
        between calls, so a pool shared with another grid's crew would make
        that grid's helper wait for this one to leave)."""
        self.control = np.zeros(4, np.int64)
        self.serve = compiled(kernel, self.control, *args)
        self.args, self.pool = args, pool
        self.posts = 0
        self.futures = []

    def run(self, own_piece, bound: int) -> None:
        """One piece up to `bound`: the helpers' (started again if they left)
        and the caller's, own_piece(bound)."""
        control = self.control
        control[BOUND] = bound
        self.posts += 1
        old = atomic_post(control)
        if not old & 1:  # no helper in the kernel: start them (the alive bit is ours to set)
            control[POSTS] += 1
            self.futures = [self.pool.submit(self.serve, 1, 2, control, *self.args)]
        own_piece(bound)
        await_pieces(control, self.posts)

    def stop(self) -> None:
        """Send the helpers away (they leave within a spin)."""
        self.control[STOP] = 1
        for future in self.futures:
            future.result()
        self.futures = []


@njit(cache=True)
def atomic_post(control):
    """Post a piece: POSTS += 2, returning the word before."""
    return atomic_add(control, POSTS, 2)
