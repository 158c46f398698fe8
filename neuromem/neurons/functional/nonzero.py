"""Finding the non-zero entries of a mostly-zero row: the scan every sparse kernel starts with.

Spike and event rows are a few % non-zero. The scan compares 8 entries at once (their bits as
unsigned integers: one vector compare, its lanes gathered into an 8-bit mask) and, where the
mask is not empty, writes all 8 candidate indices from a table of "the set bits of m, in order"
and advances the count by the mask's population: no branch per entry to mispredict, one per
block (mostly not taken). Measured on one core, rows already in cache (a kernel listing the
spikes it just made): 1920 rows of 4624 at 1.5%, 1.3 ms with a per-entry loop, 0.75 ms this way;
from memory the scans run near memory bandwidth either way (35 MB: ~2.4 ms).

An entry whose only set bit is the sign (-0.0) counts as non-zero: it contributes 0 x w to the
sums, as in the dense product.
"""

from __future__ import annotations

from neuromem.neurons.functional.jit import inline_kernel, numba as _numba

BLOCK = 8

if _numba is not None:
    import numpy as np
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    # per 8-bit mask m: the positions of its set bits, in order (then zeros), and how many
    _SET_BITS = np.zeros((256, BLOCK), dtype=np.int32)
    _SET_BIT_COUNT = np.zeros(256, dtype=np.int64)
    for _mask in range(256):
        _positions = [k for k in range(BLOCK) if _mask >> k & 1]
        _SET_BITS[_mask, :len(_positions)] = _positions
        _SET_BIT_COUNT[_mask] = len(_positions)

    @intrinsic
    def _mask_of_block(typingctx, bits, start):
        # bit k set where bits[start + k] != 0, k < 8: one vector compare and its lane mask
        if not (isinstance(bits, types.Array) and bits.layout == "C" and isinstance(bits.dtype, types.Integer)):
            return None

        def codegen(context, builder, signature, arguments):
            array, offset = arguments
            element = context.get_data_type(signature.args[0].dtype)
            vector = ir.VectorType(element, BLOCK)
            data = context.make_array(signature.args[0])(context, builder, array).data
            pointer = builder.bitcast(builder.gep(data, [offset]), vector.as_pointer())
            lanes = builder.load(pointer, align=context.get_abi_sizeof(element))
            non_zero = builder.icmp_unsigned("!=", lanes, ir.Constant(vector, None))
            return builder.zext(builder.bitcast(non_zero, ir.IntType(BLOCK)), ir.IntType(64))

        return types.intp(bits, types.intp), codegen

    @inline_kernel
    def _nonzero_bits(bits, active):
        size = bits.shape[0]
        full = size - size % BLOCK
        n = 0
        for j0 in range(0, full, BLOCK):
            mask = _mask_of_block(bits, j0)
            if mask != 0:
                for k in range(BLOCK):  # n <= j0: all 8 in bounds whatever follows
                    active[n + k] = j0 + _SET_BITS[mask, k]
                n += _SET_BIT_COUNT[mask]
        for j in range(full, size):
            active[n] = j
            n += bits[j] != 0
        return n

    @inline_kernel
    def nonzero_entries(row, active):
        """The indices of the non-zero entries of a contiguous float row, into `active` (as long as
        the row); returns their count."""
        if row.itemsize == 4:
            return _nonzero_bits(row.view(np.uint32), active)
        return _nonzero_bits(row.view(np.uint64), active)

    @inline_kernel
    def nonzero_entries_and_values(row, bits, indices, values):
        """`nonzero_entries` that also copies the entries' values; bits: the row as unsigned integers
        of its width. indices/values as long as the row."""
        size = row.shape[0]
        full = size - size % BLOCK
        n = 0
        for j0 in range(0, full, BLOCK):
            mask = _mask_of_block(bits, j0)
            if mask != 0:
                for k in range(BLOCK):
                    j = j0 + _SET_BITS[mask, k]
                    indices[n + k] = j
                    values[n + k] = row[j]
                n += _SET_BIT_COUNT[mask]
        for j in range(full, size):
            indices[n] = j
            values[n] = row[j]
            n += bits[j] != 0
        return n
