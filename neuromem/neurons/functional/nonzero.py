"""Finding the non-zero entries of a mostly-zero row: the scan every sparse kernel starts with.

Spike and event rows are a few % non-zero. The plain scan reads entry by entry, branch-free:
`indices[n] = j; n += bits[j] != 0`.

Where the CPU has AVX-512 (the tuned CPU tier, `neuromem/cpu_tier.py`), 16 entries at a time go
through one compare and a compress-store (the selected lanes written contiguously:
`llvm.masked.compressstore`, vcompressps), without a branch: N-MNIST's input, 1920 rows of 2312
at 5% from memory, with their values, 3.55 -> 0.76 ms; its first layer's spikes, 1920 x 4624 at
1.2%, 2.76 -> 1.43 ms (standalone loops, one core). Elsewhere LLVM would expand the
compress-store lane by lane, so the plain scan runs there. (An 8-lane compare with a table of
set-bit positions, once the scan for every CPU, was dropped: on an AVX2-only AMD EPYC it made the
SHD training step ~10 ms slower than the plain scan, 27.5 vs 16.8 ms; benchmarks/README.md.)

An entry whose only set bit is the sign (-0.0) counts as non-zero: it contributes 0 x w to the
sums, as in the dense product.
"""

from __future__ import annotations

from neuromem import cpu_tier
from neuromem.neurons.functional.jit import inline_kernel, numba as _numba

COMPRESS_BLOCK = 16

if _numba is not None:
    import numpy as np
    from llvmlite import binding as _llvm, ir
    from numba.core import cgutils, config as _numba_config, types
    from numba.extending import intrinsic

    # how rows are scanned (a compile-time constant of the kernels): the tuned CPU tier compresses
    # 16 entries a store where the kernels are compiled for this CPU (numba's default) and it has
    # AVX-512; everywhere else, entry by entry
    SCAN_PLAIN, SCAN_COMPRESS = 0, 2
    if cpu_tier.TUNED and not _numba_config.CPU_NAME and _llvm.get_host_cpu_features().get("avx512f"):
        SCAN = SCAN_COMPRESS
    else:
        SCAN = SCAN_PLAIN

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
    def _scan(bits, indices, row, values, method):
        # the non-zero entries of bits (SCAN_COMPRESS: 16 per compress-store, then the rest one by
        # one; SCAN_PLAIN: one by one; a constant where it is called, so one branch is compiled);
        # their values too unless values is None
        size = bits.shape[0]
        full = size - size % COMPRESS_BLOCK if method == SCAN_COMPRESS else 0
        n = 0
        for j0 in range(0, full, COMPRESS_BLOCK):
            n += _compressed_block(bits, j0, n, indices, row, values)
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
