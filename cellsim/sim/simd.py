"""Integer dot products for the int8 layers, callable from numba, and a prefetch
hint for the rows the engine will touch next.

Both layers are out[n] = init[n] + sum_i x[i] * w[n, i] with x unsigned bytes
(the state and gradients plus 128; the hidden values minus their zero point) and
w int8: exact integer sums, whatever the instruction. On CPUs with AVX-512 VNNI
one vpdpbusd multiplies 64 byte pairs and adds them in fours into 16 int32 sums
(quads); on AVX2 one vpmaddwd does 16 int16 pairs into 8 sums (pairs). LLVM finds
neither on its own, so the loops are written in LLVM IR; each also has a portable
spelling in plain vector IR (slower, the same sums), used elsewhere and in tests."""
from typing import NamedTuple

import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

_FEATURES = set(binding.get_host_cpu_features().flatten().split(","))
HAS_AVX2 = "+avx2" in _FEATURES
HAS_VNNI = {"+avx512f", "+avx512bw", "+avx512vnni"} <= _FEATURES

_I8, _I16, _I32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)


class Packing(NamedTuple):
    """How one instruction consumes the weights: `step` inputs per int32 lane,
    `lanes` sums per vector, weights stored as `dtype`."""
    name: str
    step: int
    lanes: int
    dtype: type


QUADS = Packing("quads", 4, 16, np.int8)   # vpdpbusd on 512-bit vectors
PAIRS = Packing("pairs", 2, 8, np.int16)   # vpmaddwd on 256-bit vectors
PACKING = QUADS if HAS_VNNI or not HAS_AVX2 else PAIRS
NATIVE = HAS_VNNI if PACKING is QUADS else HAS_AVX2
HIDDEN_STEP = 128  # hidden units are padded to a multiple of this (both packings' blocks)


def _dot_step(builder, acc, x, w, packing, native):
    """acc + the lane-wise dot products of `step` unsigned x bytes with `step`
    signed weights (one <lanes x i32> step of the sum)."""
    sums = ir.VectorType(_I32, packing.lanes)
    if native and packing is QUADS:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(sums, [sums] * 3),
                                            "llvm.x86.avx512.vpdpbusd.512")
        return builder.call(fn, [acc, x, w])
    wide = ir.VectorType(_I8 if packing is QUADS else _I16, packing.lanes * packing.step)
    xs, ws = builder.bitcast(x, wide), builder.bitcast(w, wide)
    if native:  # pairs: the x bytes were widened to int16 when loaded
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(sums, [wide, wide]),
                                            "llvm.x86.avx2.pmadd.wd")
        return builder.add(acc, builder.call(fn, [xs, ws]))
    for j in range(packing.step):
        pick = ir.Constant(sums, [packing.step * i + j for i in range(packing.lanes)])
        a = builder.shuffle_vector(xs, xs, pick)
        a = builder.zext(a, sums) if packing is QUADS else builder.sext(a, sums)
        b = builder.sext(builder.shuffle_vector(ws, ws, pick), sums)
        acc = builder.add(acc, builder.mul(a, b))
    return acc


def products(blocks: int, chains: int = 1, packing: Packing = PACKING, native: bool = NATIVE,
             cells: int = 1):
    """An intrinsic products(xs, row, w, init, g, outs, out_row): for the `cells`
    rows r = row, row + 1, ... of xs, outs[out_row + r - row, n] = init[g, n] +
    sum over i of xs[r, i] * W[n, i], for uint8 xs rows (K * step,), W packed by `pack` as
    row g of the 2-D w, int32 init (G, N) and outs rows (N,), N a multiple of
    lanes * blocks, K of chains. Each pass over the inputs keeps cells * blocks *
    chains vectors of sums in registers: `chains` independent running sums per
    block, so that the adds need not wait for each other, and `cells` rows that
    share each weight vector loaded (the cells run one genome). (w and g rather
    than the view w[g], rows of 2-D arrays rather than views: a view costs
    reference counts.)"""
    step, lanes = packing.step, packing.lanes
    sums = ir.VectorType(_I32, lanes)
    width = lanes * blocks

    @intrinsic
    def dot_products(typingctx, xs, row, w, init, g, outs, out_row):
        def codegen(context, builder, signature, args):
            x2, ws, inits, o2 = [context.make_array(signature.args[i])(context, builder, args[i])
                                 for i in (0, 2, 3, 5)]
            n = builder.extract_value(o2.shape, 1)
            index = n.type
            first_row = context.cast(builder, args[1], signature.args[1], types.intp)
            first_out = context.cast(builder, args[6], signature.args[6], types.intp)
            genome = context.cast(builder, args[4], signature.args[4], types.intp)
            weights = builder.gep(ws.data,
                                  [builder.mul(genome, builder.extract_value(ws.shape, 1))])
            init_row = builder.gep(inits.data, [builder.mul(genome, n)])
            k = builder.udiv(builder.extract_value(x2.shape, 1), ir.Constant(index, step))
            x_step = ir.IntType(8 * step)
            x_rows, out_rows = [], []
            for c in range(cells):
                r = builder.add(first_row, ir.Constant(index, c))
                x_rows.append(builder.bitcast(builder.gep(x2.data, [builder.mul(
                    r, builder.extract_value(x2.shape, 1))]), x_step.as_pointer()))
                out_rows.append(builder.gep(o2.data, [builder.mul(
                    builder.add(first_out, ir.Constant(index, c)), n)]))
            # accs[cell][chain][block]
            accs = [[[cgutils.alloca_once(builder, sums) for _ in range(blocks)]
                     for _ in range(chains)] for _ in range(cells)]
            with cgutils.for_range_slice(builder, ir.Constant(index, 0), n,
                                         ir.Constant(index, width)) as (first, _):
                for cell in accs:
                    for chain in cell:
                        for acc in chain:
                            builder.store(ir.Constant(sums, None), acc)
                with cgutils.for_range_slice(builder, ir.Constant(index, 0), k,
                                             ir.Constant(index, chains)) as (k0, _):
                    for c in range(chains):
                        at = builder.add(k0, ir.Constant(index, c))
                        spreads = []
                        for x_row in x_rows:
                            value = builder.load(builder.gep(x_row, [at]), align=1)
                            if packing is PAIRS:  # two bytes -> two int16 in one int32
                                value = builder.bitcast(builder.zext(
                                    builder.bitcast(value, ir.VectorType(_I8, 2)),
                                    ir.VectorType(_I16, 2)), _I32)
                            spread = builder.insert_element(ir.Constant(sums, ir.Undefined), value,
                                                            ir.Constant(_I32, 0))
                            spreads.append(builder.shuffle_vector(spread, spread,
                                                                  ir.Constant(sums, None)))
                        w_row = builder.add(builder.mul(at, n), first)
                        for b in range(blocks):
                            offset = builder.mul(builder.add(w_row, ir.Constant(index, lanes * b)),
                                                 ir.Constant(index, step))
                            wv = builder.load(builder.bitcast(builder.gep(weights, [offset]),
                                                              sums.as_pointer()), align=1)
                            for cell, spread in zip(accs, spreads):
                                acc = cell[c][b]
                                builder.store(_dot_step(builder, builder.load(acc), spread, wv,
                                                        packing, native), acc)
                for b in range(blocks):
                    start = builder.add(first, ir.Constant(index, lanes * b))
                    base = builder.load(builder.bitcast(builder.gep(init_row, [start]),
                                                        sums.as_pointer()), align=4)
                    for cell, out_row in zip(accs, out_rows):
                        total = base
                        for chain in cell:
                            total = builder.add(total, builder.load(chain[b]))
                        builder.store(total, builder.bitcast(builder.gep(out_row, [start]),
                                                             sums.as_pointer()), align=4)
            return context.get_dummy_value()
        return types.void(xs, row, w, init, g, outs, out_row), codegen
    return dot_products


# The layers' shapes: 48 inputs -> the padded hidden units (many outputs: all in
# registers at once), and the hidden units -> 16 channels (few outputs, a long
# sum: split into several chains). The _pair kernels do two cells of one genome
# at a time, each weight vector loaded serving both: python benchmarks/sim_kernels.py
# measured the first layer at 16.8 ns a cell in pairs, 30.1 one at a time (second
# layer 6.9 and 9.4).
if PACKING is QUADS:
    SHAPES = {"first": dict(blocks=8, chains=2), "second": dict(blocks=1, chains=8),
              "first_pair": dict(blocks=8, chains=1, cells=2),
              "second_pair": dict(blocks=1, chains=8, cells=2)}
else:
    SHAPES = {"first": dict(blocks=4), "second": dict(blocks=2),
              "first_pair": dict(blocks=4, cells=2), "second_pair": dict(blocks=2, cells=2)}
first_layer, second_layer = products(**SHAPES["first"]), products(**SHAPES["second"])
first_layer_pair, second_layer_pair = (products(**SHAPES["first_pair"]),
                                       products(**SHAPES["second_pair"]))


def pack(weights, outputs: int, inputs: int, packing: Packing = PACKING) -> np.ndarray:
    """(out, in) int weights -> the flat [i / step][n][i % step] order of
    `products`, zero-padded to (outputs, inputs)."""
    w = np.asarray(weights)
    padded = np.zeros((outputs, inputs), packing.dtype)
    padded[:w.shape[0], :w.shape[1]] = w
    grouped = padded.T.reshape(inputs // packing.step, packing.step, outputs).transpose(0, 2, 1)
    return np.ascontiguousarray(grouped).ravel()


REQUANT_LANES = 8  # int32 lanes a step of requantize_high (one 256-bit vector)


@intrinsic
def requantize_high(typingctx, dots, bias, mult, rshift, g, top, out):
    """out[n] = clamp(floor((floor(a m / 2^32) / 2^r + 1) / 2), 0, top) with
    a = dots[n] + bias[g, n], m = mult[g, n], r = rshift[g, n], for every n of
    the 1-D int32 `dots` (a multiple of REQUANT_LANES) into the 1-D uint8 `out`:
    the spec's floor((a m + 2^(t-1)) / 2^t) for t = r + 33 >= 33, from the high
    word of each product (nca_requantize.c proves it), in int32 lanes, eight at
    a time. The int64 formulation runs four lanes at a time on AVX2 (which has
    no 64-bit arithmetic shift, min or max) and took 60 ns of a 128-unit layer."""
    int32_rows = all(isinstance(a, types.Array) and a.dtype == types.int32 for a in (dots, bias, mult, rshift))
    if not (int32_rows and isinstance(out, types.Array) and out.dtype == types.uint8
            and dots.ndim == out.ndim == 1 and bias.ndim == mult.ndim == rshift.ndim == 2):
        return None

    def codegen(context, builder, signature, args):
        d, b, m, r, o = [context.make_array(signature.args[i])(context, builder, args[i])
                         for i in (0, 1, 2, 3, 6)]
        lanes = REQUANT_LANES
        v32, v64 = ir.VectorType(_I32, lanes), ir.VectorType(ir.IntType(64), lanes)
        n = builder.extract_value(d.shape, 0)
        index = n.type
        genome = context.cast(builder, args[4], signature.args[4], types.intp)
        row = builder.mul(genome, builder.extract_value(b.shape, 1))
        bias_row, mult_row, shift_row = (builder.gep(t.data, [row]) for t in (b, m, r))
        limit = context.cast(builder, args[5], signature.args[5], types.int32)
        top = builder.shuffle_vector(builder.insert_element(ir.Constant(v32, ir.Undefined), limit,
                                                            ir.Constant(_I32, 0)),
                                     ir.Constant(v32, ir.Undefined), ir.Constant(v32, None))
        zero, one = ir.Constant(v32, None), ir.Constant(v32, [1] * lanes)

        def vector(pointer, at):
            return builder.load(builder.bitcast(builder.gep(pointer, [at]), v32.as_pointer()),
                                align=4)
        with cgutils.for_range_slice(builder, ir.Constant(index, 0), n,
                                     ir.Constant(index, lanes)) as (at, _):
            a = builder.add(vector(d.data, at), vector(bias_row, at))
            p = builder.mul(builder.sext(a, v64), builder.sext(vector(mult_row, at), v64))
            high = builder.trunc(builder.ashr(p, ir.Constant(v64, [32] * lanes)), v32)
            value = builder.ashr(builder.add(builder.ashr(high, vector(shift_row, at)), one), one)
            value = builder.select(builder.icmp_signed(">", value, zero), value, zero)
            value = builder.select(builder.icmp_signed("<", value, top), value, top)
            small = builder.trunc(value, ir.VectorType(_I8, lanes))
            builder.store(small, builder.bitcast(builder.gep(o.data, [at]),
                                                 ir.VectorType(_I8, lanes).as_pointer()), align=1)
        return context.get_dummy_value()
    return types.void(dots, bias, mult, rshift, g, top, out), codegen


def backend() -> str:
    instruction = {QUADS: "AVX-512 VNNI vpdpbusd", PAIRS: "AVX2 vpmaddwd"}[PACKING]
    return f"int8 {PACKING.name}, " + (instruction if NATIVE else "portable vectors")


# exponential_waits draws this many at once: two 512-bit vectors of int64, two
# independent chains of multiplies (planning took 12.3 ns an update, 14.5 with one,
# python benchmarks/sim_kernels.py, though more of the draws fall past the window)
WAIT_LANES = 16


@intrinsic
def exponential_waits(typingctx, us, mean_ln2_q8, waits):
    """waits[j] = rng.exponential_ticks(us[j], mean_ln2_q8) for the WAIT_LANES
    uniforms of `us` (int64 arrays), bit for bit: log2_q16's binary search and
    sixteen truncated squarings, a step at a time on all lanes. One draw alone is
    a chain of sixteen dependent multiplies that LLVM does not vectorise across
    draws; this was most of the cost of planning a Poisson firing."""
    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        lanes = ir.VectorType(i64, WAIT_LANES)
        src, dst = (context.make_array(signature.args[i])(context, builder, args[i]) for i in (0, 2))

        def splat(value):
            return ir.Constant(lanes, [value] * WAIT_LANES)

        u = builder.load(builder.bitcast(src.data, lanes.as_pointer()), align=8)
        integer = splat(0)
        for step in (16, 8, 4, 2, 1):  # floor(log2 u)
            reached = builder.icmp_unsigned("!=", builder.lshr(u, builder.add(integer, splat(step))),
                                            splat(0))
            integer = builder.add(integer, builder.select(reached, splat(step), splat(0)))
        x = builder.shl(u, builder.sub(splat(31), integer))  # u / 2^integer in Q31
        logs = builder.shl(integer, splat(16))
        for bit in range(15, -1, -1):
            x = builder.lshr(builder.mul(x, x), splat(31))
            top = builder.lshr(x, splat(32))
            x = builder.lshr(x, top)
            logs = builder.or_(logs, builder.shl(top, splat(bit)))
        mean = context.cast(builder, args[1], signature.args[1], types.int64)
        mean = builder.shuffle_vector(builder.insert_element(ir.Constant(lanes, ir.Undefined), mean,
                                                             ir.Constant(_I32, 0)),
                                      ir.Constant(lanes, ir.Undefined),
                                      ir.Constant(ir.VectorType(_I32, WAIT_LANES), None))
        wait = builder.ashr(builder.mul(builder.sub(splat(32 << 16), logs), mean), splat(24))
        wait = builder.select(builder.icmp_signed("<", wait, splat(1)), splat(1), wait)
        builder.store(wait, builder.bitcast(dst.data, lanes.as_pointer()), align=8)
        return context.get_dummy_value()
    return types.void(us, mean_ln2_q8, waits), codegen


def prefetch(write: bool, keep: bool):
    """An intrinsic hint(array, row, offset) to bring the cache line at byte
    `offset` of array[row] (a C-contiguous 2-D array) into cache, for writing
    or reading, to stay (keep) or to be used once and leave soon: the engine
    knows which rows its next events touch, the CPU cannot guess rows of cells
    visited in time order."""
    @intrinsic
    def hint(typingctx, array, row, offset):
        def codegen(context, builder, signature, args):
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            row, offset = (context.cast(builder, args[i], signature.args[i], types.intp)
                           for i in (1, 2))
            stride = builder.extract_value(ary.strides, 0)
            byte = ir.IntType(8).as_pointer()
            at = builder.gep(builder.bitcast(ary.data, byte),
                             [builder.add(builder.mul(row, stride), offset)])
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [byte, _I32, _I32, _I32]),
                "llvm.prefetch.p0")
            builder.call(fn, [at, ir.Constant(_I32, int(write)), ir.Constant(_I32, 3 if keep else 0),
                              ir.Constant(_I32, 1)])
            return context.get_dummy_value()
        return types.void(array, row, offset), codegen
    return hint


# A cell's RAM row: written, and wanted again soon. An event's row: read once (a
# window's table is several MB, more than the L2 cache, which holds the RAM).
prefetch_line = prefetch(write=True, keep=True)
prefetch_once = prefetch(write=False, keep=False)
