"""The BLAS matrix product torch itself runs, callable from inside numba kernels.

A recurrent layer's backward needs one dense product gd_{t+1} W per time step,
between elementwise passes. Calling torch.mm from a Python loop costs ~25 us of
interpreter and dispatch per step (2.5 ms of a 26 ms SHD step); numba's own
np.dot goes to numpy's OpenBLAS, 30% slower than torch's MKL at these shapes.
So the kernels call the Fortran `sgemm_` / `dgemm_` that torch's CPU library
exports (MKL in the x86-64 wheels): same library, same threads
(`torch.set_num_threads`), same results as torch.mm. When the symbol is not
there (other builds or platforms) `gemm_for` returns None and callers keep
their torch loop.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import os

import numpy as np
import torch

from neuromem import cpu_tier
from neuromem.neurons.functional.jit import kernel

_NO_TRANSPOSE = np.array([ord("N")], dtype=np.uint8)


@functools.lru_cache(maxsize=None)
def _torch_cpu_library() -> ctypes.CDLL | None:
    library_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
    for path in sorted(glob.glob(os.path.join(library_dir, "libtorch_cpu.*"))):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


@functools.lru_cache(maxsize=None)
def gemm_for(dtype: torch.dtype):
    """The Fortran gemm (ctypes function, 13 pointer arguments) for float32/float64, or None (also in
    the portable CPU tier, which keeps the products in torch)."""
    name = {torch.float32: "sgemm_", torch.float64: "dgemm_"}.get(dtype)
    if not cpu_tier.TUNED:
        return None
    library = _torch_cpu_library()
    if name is None or library is None or not hasattr(library, name):
        return None
    function = getattr(library, name)
    function.restype = None
    function.argtypes = [ctypes.c_void_p] * 13
    return function


def row_major_product_arguments(rows: int, inner: int, columns: int, dtype: torch.dtype) -> tuple:
    """Constant arguments for C (rows, columns) = A (rows, inner) @ B (inner, columns), all row-major:
    column-major BLAS sees C^T = B^T A^T, i.e. gemm('N', 'N', columns, rows, inner, 1, B, columns,
    A, inner, 0, C, columns). Returns (sizes int32 [columns, rows, inner], scalars [1, 0], 'N')."""
    scalar_type = np.float32 if dtype == torch.float32 else np.float64
    return np.array([columns, rows, inner], dtype=np.int32), np.array([1.0, 0.0], dtype=scalar_type), _NO_TRANSPOSE


if kernel is not None:

    @kernel
    def row_major_product(gemm, a, b, out, sizes, scalars, no_transpose):
        """out = a @ b, all C-contiguous, through BLAS's column-major gemm, from inside a kernel
        (constant arguments: `row_major_product_arguments`); every gemm argument is passed by
        reference."""
        flag, size = no_transpose.ctypes.data, sizes.ctypes.data
        columns, rows, inner = size, size + sizes.itemsize, size + 2 * sizes.itemsize
        gemm(
            flag, flag, columns, rows, inner, scalars.ctypes.data, b.ctypes.data, columns, a.ctypes.data, inner,
            scalars.ctypes.data + scalars.itemsize, out.ctypes.data, columns,
        )
