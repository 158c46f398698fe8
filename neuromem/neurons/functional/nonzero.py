"""Finding the non-zero entries of a mostly-zero row: the scan every sparse kernel starts with.

Spike and event rows are a few % non-zero. The scan compares 8 entries at once (their bits as
unsigned integers: one vector compare, its lanes gathered into an 8-bit mask) and, where the
mask is not empty, writes all 8 candidate indices from a table of "the set bits of m, in order"
and advances the count by the mask's population: no branch per entry to mispredict, one per
block (mostly not taken). Measured on one core, rows already in cache (a kernel listing the
spikes it just made): 1920 rows of 4624 at 1.5%, 1.3 ms with a per-entry loop, 0.75 ms this way;
from memory the scans run near memory bandwidth either way (35 MB: ~2.4 ms).

Where the CPU has AVX-512, 16 entries at a time go through one compare and a compress-store
(the selected lanes written contiguously: `llvm.masked.compressstore`, vcompressps), without
the table and without a branch: N-MNIST's input, 1920 rows of 2312 at 5% from memory, with
their values, 3.55 -> 0.76 ms; its first layer's spikes, 1920 x 4624 at 1.2%, 2.76 -> 1.43 ms
(standalone loops, one core). Elsewhere LLVM would expand the compress-store lane by lane, so
the table path stays. The portable CPU tier (`neuromem/cpu_tier.py`) uses neither: one entry at a
time, `n += bits[j] != 0`, which LLVM vectorises as it can.

An entry whose only set bit is the sign (-0.0) counts as non-zero: it contributes 0 x w to the
sums, as in the dense product.
"""

from __future__ import annotations

from neuromem import cpu_tier
from neuromem.neurons.functional.jit import inline_kernel, numba as _numba

BLOCK = 8
COMPRESS_BLOCK = 16

if _numba is not None:
    import numpy as np
    from llvmlite import binding as _llvm, ir
    from numba.core import cgutils, config as _numba_config, types
    from numba.extending import intrinsic

    # how rows are scanned (a compile-time constant of the kernels): the tuned CPU tier compresses
    # 16 entries a store where the kernels are compiled for this CPU (numba's default) and it has
    # AVX-512, else looks 8-entry lane masks up in the table; the portable tier reads entry by entry
    SCAN_PLAIN, SCAN_TABLE, SCAN_COMPRESS = 0, 1, 2
    if not cpu_tier.TUNED:
        SCAN = SCAN_PLAIN
    elif not _numba_config.CPU_NAME and _llvm.get_host_cpu_features().get("avx512f"):
        SCAN = SCAN_COMPRESS
    else:
        SCAN = SCAN_TABLE

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

    def _compress_codegen(context, builder, signature, arguments, with_values):
        # the indices (and values) of the non-zero lanes of bits[start:start + 16], stored from
        # indices[n] (values[n]); returns how many
        if with_values:
            bits, start, n, indices, row, values = arguments
        else:
            bits, start, n, indices = arguments
        index_type = context.get_data_type(signature.args[3].dtype)
        lane_mask_type = ir.VectorType(ir.IntType(1), COMPRESS_BLOCK)

        def pointer(argument, array, offset):
            return builder.gep(context.make_array(signature.args[argument])(context, builder, array).data, [offset])

        def load_block(argument, array):
            vector = ir.VectorType(context.get_data_type(signature.args[argument].dtype), COMPRESS_BLOCK)
            block = builder.bitcast(pointer(argument, array, start), vector.as_pointer())
            return vector, builder.load(block, align=context.get_abi_sizeof(vector.element))

        def compress_store(vector, lanes, argument, array, mask):
            element = {ir.FloatType: "f32", ir.DoubleType: "f64"}.get(type(vector.element)) or f"i{vector.element.width}"
            function = cgutils.get_or_insert_function(
                builder.module,
                ir.FunctionType(ir.VoidType(), [vector, vector.element.as_pointer(), lane_mask_type]),
                f"llvm.masked.compressstore.v{COMPRESS_BLOCK}{element}",
            )
            builder.call(function, [lanes, pointer(argument, array, n), mask])

        bits_vector, bit_lanes = load_block(0, bits)
        mask = builder.icmp_unsigned("!=", bit_lanes, ir.Constant(bits_vector, None))
        index_vector = ir.VectorType(index_type, COMPRESS_BLOCK)
        first = builder.trunc(start, index_type) if index_type.width < 64 else start
        firsts = cgutils.get_null_value(index_vector)
        for lane in range(COMPRESS_BLOCK):
            firsts = builder.insert_element(firsts, first, ir.Constant(index_type, lane))
        compress_store(index_vector, builder.add(firsts, ir.Constant(index_vector, list(range(COMPRESS_BLOCK)))), 3, indices, mask)
        if with_values:
            value_vector, values_lanes = load_block(4, row)
            compress_store(value_vector, values_lanes, 5, values, mask)
        mask_bits = ir.IntType(COMPRESS_BLOCK)
        population = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(mask_bits, [mask_bits]), f"llvm.ctpop.i{COMPRESS_BLOCK}"
        )
        return builder.zext(builder.call(population, [builder.bitcast(mask, mask_bits)]), ir.IntType(64))

    def _compressible(bits, indices, row=None, values=None):
        arrays = [bits, indices] + ([row, values] if row is not None else [])
        if not all(isinstance(array, types.Array) and array.layout == "C" for array in arrays):
            return False
        floats_agree = row is None or (
            isinstance(row.dtype, types.Float) and row.dtype == values.dtype and row.dtype.bitwidth == bits.dtype.bitwidth
        )
        return isinstance(bits.dtype, types.Integer) and indices.dtype in (types.int32, types.int64) and floats_agree

    @intrinsic
    def _compress_block(typingctx, bits, start, n, indices):
        # indices[n:] = the j in [start, start + 16) with bits[j] != 0, in order; returns their count
        if not _compressible(bits, indices):
            return None
        signature = types.intp(bits, types.intp, types.intp, indices)
        return signature, lambda context, builder, sig, arguments: _compress_codegen(context, builder, sig, arguments, False)

    @intrinsic
    def _compress_block_and_values(typingctx, bits, start, n, indices, row, values):
        # `_compress_block`, and values[n:] = those row[j]
        if not _compressible(bits, indices, row, values):
            return None
        signature = types.intp(bits, types.intp, types.intp, indices, row, values)
        return signature, lambda context, builder, sig, arguments: _compress_codegen(context, builder, sig, arguments, True)

    @inline_kernel
    def _compressed_block(bits, j0, n, indices, row, values):
        # bits[j0:j0 + 16] by one compress-store; values None: indices only (resolved when compiled)
        if values is None:
            return _compress_block(bits, j0, n, indices)
        return _compress_block_and_values(bits, j0, n, indices, row, values)

    @inline_kernel
    def _tabled_block(bits, j0, n, indices, row, values):
        # bits[j0:j0 + 8] by the set-bit table of its lane mask
        mask = _mask_of_block(bits, j0)
        if mask == 0:
            return 0
        for k in range(BLOCK):  # n <= j0: all 8 in bounds whatever follows
            j = j0 + _SET_BITS[mask, k]
            indices[n + k] = j
            if values is not None:
                values[n + k] = row[j]
        return _SET_BIT_COUNT[mask]

    @inline_kernel
    def _scan(bits, indices, row, values, method):
        # the non-zero entries of bits, a block at a time (SCAN_COMPRESS: 16 per compress-store,
        # SCAN_TABLE: 8 per table lookup, SCAN_PLAIN: no blocks; a constant where it is called, so
        # one branch is compiled), the rest one by one; their values too unless values is None
        width = COMPRESS_BLOCK if method == SCAN_COMPRESS else BLOCK
        size = bits.shape[0]
        full = 0 if method == SCAN_PLAIN else size - size % width
        n = 0
        for j0 in range(0, full, width):
            if method == SCAN_COMPRESS:
                n += _compressed_block(bits, j0, n, indices, row, values)
            else:
                n += _tabled_block(bits, j0, n, indices, row, values)
        for j in range(full, size):
            indices[n] = j
            if values is not None:
                values[n] = row[j]
            n += bits[j] != 0
        return n

    @inline_kernel
    def nonzero_entries(row, active):
        """The indices of the non-zero entries of a contiguous float row, into `active` (as long as
        the row); returns their count."""
        if row.itemsize == 4:
            return _scan(row.view(np.uint32), active, row, None, SCAN)
        return _scan(row.view(np.uint64), active, row, None, SCAN)

    @inline_kernel
    def nonzero_entries_and_values(row, bits, indices, values):
        """`nonzero_entries` that also copies the entries' values; bits: the row as unsigned integers
        of its width. indices/values as long as the row."""
        return _scan(bits, indices, row, values, SCAN)
