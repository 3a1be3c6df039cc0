"""Exact float32 matrix products for the batched int8 update, callable from numba.

The products of int8 perception/hidden values with int8 weights are integers
whose partial sums stay below 2^24, so float32 BLAS gives the exact integer
result (docs/integer-spec.md section 9). We call the OpenBLAS that numpy ships,
through ctypes, single-threaded inside our own parallel loops; where it cannot
be found, a numba kernel with the same C signature takes its place."""
import contextlib
import ctypes
import glob
import os

import numpy as np
from numba import carray, cfunc, njit, types
from numba.core.extending import intrinsic

ROW_MAJOR, NO_TRANS = 101, 111

# cblas_sgemm with 64-bit integers (the ILP64 build numpy ships); the fallback
# takes the array addresses as integers, which is what the call sites pass.
SIGNATURE = types.void(types.int32, types.int32, types.int32, types.int64, types.int64,
                       types.int64, types.float32, types.uint64, types.int64, types.uint64,
                       types.int64, types.float32, types.uint64, types.int64)
_CTYPES_ARGS = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int64]
_SGEMM_NAMES = ("scipy_cblas_sgemm64_", "cblas_sgemm64_")
_SET_THREADS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_")
_GET_THREADS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_")


@intrinsic
def _float32_pointer(typingctx, address):
    """An integer address -> float32* (what ctypes' c_void_p does for BLAS)."""
    pointer = types.CPointer(types.float32)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))
    return pointer(types.uint64), codegen


@cfunc(SIGNATURE, cache=True)
def fallback_sgemm(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """C = A @ B for row-major, untransposed, alpha 1, beta 0: all the engine asks."""
    a_rows = carray(_float32_pointer(a), (m, lda))
    b_rows = carray(_float32_pointer(b), (k, ldb))
    c_rows = carray(_float32_pointer(c), (m, ldc))
    for i in range(m):
        for j in range(n):
            c_rows[i, j] = 0.0
        for d in range(k):
            x = a_rows[i, d]
            for j in range(n):
                c_rows[i, j] += x * b_rows[d, j]


def _numpy_openblas():
    """The OpenBLAS shared library numpy was built with, or None."""
    base = os.path.dirname(np.__file__)
    for pattern in ("../numpy.libs/*openblas*", ".libs/*openblas*", ".dylibs/*openblas*"):
        for path in sorted(glob.glob(os.path.join(base, pattern))):
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    return None


def _symbol(lib, names):
    for name in names:
        fn = getattr(lib, name, None) if lib is not None else None
        if fn is not None:
            return fn
    return None


_LIB = None if os.environ.get("CELLSIM_NO_BLAS") else _numpy_openblas()
_BLAS_SGEMM = _symbol(_LIB, _SGEMM_NAMES)
if _BLAS_SGEMM is not None:
    _BLAS_SGEMM.argtypes, _BLAS_SGEMM.restype = _CTYPES_ARGS, None
_SET = _symbol(_LIB, _SET_THREADS)
_GET = _symbol(_LIB, _GET_THREADS)


def sgemm(prefer_blas: bool = True):
    """The product function the engine passes into its numba kernels."""
    return _BLAS_SGEMM if prefer_blas and _BLAS_SGEMM is not None else fallback_sgemm


def backend(prefer_blas: bool = True) -> str:
    return "openblas (numpy's)" if prefer_blas and _BLAS_SGEMM is not None else "numba fallback"


@contextlib.contextmanager
def single_threaded_blas():
    """OpenBLAS threads would fight our own two per-core workers: use one while
    the engine runs, then restore numpy's setting."""
    if _SET is None or _GET is None:
        yield
        return
    before = _GET()
    _SET(1)
    try:
        yield
    finally:
        _SET(before)


@njit(cache=True, nogil=True)
def matmul_rows(product, a, b, out, rows):
    """out[:rows] = a[:rows] @ b for C-contiguous float32 a (., k), b (k, n), out (., n)."""
    if rows == 0:
        return
    k = a.shape[1]
    n = b.shape[1]
    product(np.int32(ROW_MAJOR), np.int32(NO_TRANS), np.int32(NO_TRANS), np.int64(rows),
            np.int64(n), np.int64(k), np.float32(1.0), a.ctypes.data, np.int64(k),
            b.ctypes.data, np.int64(n), np.float32(0.0), out.ctypes.data, np.int64(n))
