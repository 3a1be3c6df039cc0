"""Integer dot products for the int8 layers, as AVX2 vpmaddwd, callable from numba,
and a prefetch hint for the rows the engine will touch next.

Inputs are int16 and weights int16 pairs; vpmaddwd multiplies 16 pairs and adds
each pair's two products into int32, twice as many multiply-adds per cycle as
float32 FMA on this project's EPYC, and exact without any bound but int32's.
LLVM does not find the instruction on its own, so the loop is written in LLVM IR;
without AVX2 the same loop is spelled in portable vector IR (slower, same sums)."""
import numpy as np
from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

LANES = 8  # int32 sums per 256-bit vector
HAS_AVX2 = "+avx2" in binding.get_host_cpu_features().flatten().split(",")

_I16, _I32 = ir.IntType(16), ir.IntType(32)
_PAIRS, _SUMS = ir.VectorType(_I16, 2 * LANES), ir.VectorType(_I32, LANES)


def _pair_sums(builder, x, w, native):
    """<8 x i32>: x[2i] * w[2i] + x[2i + 1] * w[2i + 1] for two <16 x i16>."""
    if native:
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(_SUMS, [_PAIRS, _PAIRS]),
                                            "llvm.x86.avx2.pmadd.wd")
        return builder.call(fn, [x, w])
    total = None
    for first in (0, 1):
        pick = ir.Constant(_SUMS, [2 * i + first for i in range(LANES)])
        a = builder.sext(builder.shuffle_vector(x, x, pick), _SUMS)
        b = builder.sext(builder.shuffle_vector(w, w, pick), _SUMS)
        total = builder.mul(a, b) if total is None else builder.add(total, builder.mul(a, b))
    return total


def pair_products(blocks: int, native: bool = HAS_AVX2):
    """An intrinsic products(x, w, g, out): out[n] = sum over k of x[2k] w[g, k, n, 0]
    + x[2k + 1] w[g, k, n, 1] for int16 x (2K,), C-contiguous int16 w (G, K * N * 2)
    laid out [g][k][n][pair] and int32 out (N,), N a multiple of 8 * blocks. Each
    pass keeps `blocks` vectors of sums in registers while it runs over all of x.
    (w and g rather than the view w[g]: a view costs reference counts.)"""
    width = LANES * blocks

    @intrinsic
    def products(typingctx, x, w, g, out):
        def codegen(context, builder, signature, args):
            xs, ws, outs = [context.make_array(signature.args[i])(context, builder, args[i])
                            for i in (0, 1, 3)]
            n = builder.extract_value(outs.shape, 0)
            index = n.type
            genome = context.cast(builder, args[2], signature.args[2], types.intp)
            weights = builder.gep(ws.data, [builder.mul(genome,
                                                        builder.extract_value(ws.shape, 1))])
            k = builder.udiv(builder.extract_value(xs.shape, 0), ir.Constant(index, 2))
            x_pairs = builder.bitcast(xs.data, _I32.as_pointer())
            sums = [cgutils.alloca_once(builder, _SUMS) for _ in range(blocks)]
            with cgutils.for_range_slice(builder, ir.Constant(index, 0), n,
                                         ir.Constant(index, width)) as (first, _):
                for s in sums:
                    builder.store(ir.Constant(_SUMS, None), s)
                with cgutils.for_range(builder, k) as loop:
                    pair = builder.load(builder.gep(x_pairs, [loop.index]))
                    spread = builder.insert_element(ir.Constant(_SUMS, ir.Undefined), pair,
                                                    ir.Constant(_I32, 0))
                    spread = builder.shuffle_vector(spread, spread, ir.Constant(_SUMS, None))
                    x = builder.bitcast(spread, _PAIRS)
                    row = builder.add(builder.mul(loop.index, n), first)
                    for b, s in enumerate(sums):
                        at = builder.shl(builder.add(row, ir.Constant(index, LANES * b)),
                                         ir.Constant(index, 1))
                        w = builder.load(builder.bitcast(builder.gep(weights, [at]),
                                                         _PAIRS.as_pointer()), align=2)
                        builder.store(builder.add(builder.load(s), _pair_sums(builder, x, w, native)),
                                      s)
                for b, s in enumerate(sums):
                    at = builder.gep(outs.data, [builder.add(first, ir.Constant(index, LANES * b))])
                    builder.store(builder.load(s), builder.bitcast(at, _SUMS.as_pointer()), align=4)
            return context.get_dummy_value()
        return types.void(x, w, g, out), codegen
    return products


WIDE, NARROW = 4, 2            # blocks per pass: hidden units / the 16 channels
HIDDEN_STEP = LANES * WIDE     # hidden units are padded to a multiple of this
wide_products = pair_products(WIDE)
narrow_products = pair_products(NARROW)


def pack_pairs(weights, outputs: int, inputs: int) -> np.ndarray:
    """(out, in) int weights -> the int16 [k][n][pair] of pair_products, padded
    with zeros to (outputs, inputs), inputs even."""
    w = np.asarray(weights)
    padded = np.zeros((outputs, inputs), np.int16)
    padded[:w.shape[0], :w.shape[1]] = w
    return np.ascontiguousarray(padded.T.reshape(-1, 2, outputs).transpose(0, 2, 1)).ravel()


def backend() -> str:
    return "int16 pairs, AVX2 vpmaddwd" if HAS_AVX2 else "int16 pairs, portable vectors"



@intrinsic
def prefetch_line(typingctx, array, row, offset):
    """A hint to bring the cache line at byte `offset` of array[row] (a C-contiguous
    2-D array) into cache for writing: the engine knows which rows its next events
    touch, the CPU cannot guess rows of cells visited in time order."""
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        row, offset = (context.cast(builder, args[i], signature.args[i], types.intp) for i in (1, 2))
        stride = builder.extract_value(ary.strides, 0)
        byte = ir.IntType(8).as_pointer()
        at = builder.gep(builder.bitcast(ary.data, byte), [builder.add(builder.mul(row, stride), offset)])
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte, _I32, _I32, _I32]), "llvm.prefetch.p0")
        builder.call(hint, [at, ir.Constant(_I32, 1), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
        return context.get_dummy_value()
    return types.void(array, row, offset), codegen
