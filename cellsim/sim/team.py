"""Workers that stay in one parallel region and meet at barriers of their own.

A fork and join per level (numba's prange) costs microseconds on an idle
machine and milliseconds on a busy one, where OpenMP's spinning waits steal the
core a late worker needs. Here each worker enters once per window and waits at
a level's end by spinning briefly, then yielding its core to whoever is late."""
import contextlib
import ctypes

import numba
from numba import njit, types
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


def _sched_yield():
    fn = ctypes.CDLL(None).sched_yield
    fn.argtypes, fn.restype = [], ctypes.c_int
    return fn


YIELD = _sched_yield()  # passed to the kernels as an argument: cache=True refuses globals


@njit(cache=True, nogil=True)
def meet(counter, target, give_way):
    """Arrive at a barrier (counter[0] counts arrivals) and wait until `target`
    workers have arrived in all."""
    atomic_add(counter, 0, 1)
    spins = 0
    while atomic_load(counter, 0) < target:
        spins += 1
        if spins > SPINS:
            give_way()


def team_size(workers: int) -> int:
    """At most one worker per numba thread: the barriers wait for all of them,
    so two sharing a thread would wait for each other forever."""
    return max(1, min(int(workers), numba.get_num_threads()))


@contextlib.contextmanager
def threads(workers: int):
    """numba runs a parallel loop of `workers` iterations one per thread when it
    has exactly that many threads."""
    before = numba.get_num_threads()
    numba.set_num_threads(workers)
    try:
        yield
    finally:
        numba.set_num_threads(before)
