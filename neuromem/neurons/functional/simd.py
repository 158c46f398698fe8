"""One vector instruction where LLVM will not emit one: `add_scaled` for short channel rows.

The sparse convolution kernels add v * w over the output channels of one position: 16 or 32
floats. LLVM vectorises such a loop with 8 lanes unrolled 4 times, behind a runtime check that
the two arrays do not overlap, so rows shorter than 32 run in its 4-wide or scalar remainder
(and a constant trip count, fully unrolled, is not vectorised at all without proof the arrays do
not overlap). `add_scaled` emits the 8-lane load, multiply, add and store itself: the same
operations per element as the scalar loop (multiply, then add; no fused multiply-add), so values
are bit for bit those of the scalar loop. Measured, N-MNIST's first convolution (16 channels,
1920 frames, one core): the scatter 11.3 -> 9.3 ms. The portable CPU tier (`neuromem/cpu_tier.py`)
compiles the plain loops instead.
"""

from __future__ import annotations

from neuromem import cpu_tier
from neuromem.neurons.functional.jit import inline_kernel, numba

LANES = 8

if numba is not None:
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    def _lanes_of(target, source):
        # the signature's arrays: C-contiguous, one float type
        contiguous_floats = all(
            isinstance(array, types.Array) and array.layout == "C" and isinstance(array.dtype, types.Float)
            for array in (target, source)
        )
        return contiguous_floats and target.dtype == source.dtype

    def _vector_pointers(context, builder, signature, target_value, target_offset, source_value, source_offset):
        element = context.get_data_type(signature.args[0].dtype)
        vector = ir.VectorType(element, LANES)
        target_data = context.make_array(signature.args[0])(context, builder, target_value).data
        source_data = context.make_array(signature.args[2])(context, builder, source_value).data
        target_pointer = builder.bitcast(builder.gep(target_data, [target_offset]), vector.as_pointer())
        source_pointer = builder.bitcast(builder.gep(source_data, [source_offset]), vector.as_pointer())
        return vector, context.get_abi_sizeof(element), target_pointer, source_pointer

    @intrinsic
    def _add_scaled_lanes(typingctx, target, target_start, source, source_start, scale):
        # target.flat[target_start + i] += scale * source.flat[source_start + i], i < LANES, as one
        # vector operation; offsets into the arrays' storage
        if not _lanes_of(target, source):
            return None
        signature = types.none(target, types.intp, source, types.intp, target.dtype)

        def codegen(context, builder, signature, arguments):
            target_value, target_offset, source_value, source_offset, scale_value = arguments
            vector, alignment, target_pointer, source_pointer = _vector_pointers(
                context, builder, signature, target_value, target_offset, source_value, source_offset
            )
            scales = cgutils.get_null_value(vector)
            for lane in range(LANES):
                scales = builder.insert_element(scales, scale_value, ir.Constant(ir.IntType(32), lane))
            products = builder.fmul(scales, builder.load(source_pointer, align=alignment))
            sums = builder.fadd(builder.load(target_pointer, align=alignment), products)
            builder.store(sums, target_pointer, align=alignment)
            return context.get_dummy_value()

        return signature, codegen


if numba is not None and cpu_tier.TUNED:

    @inline_kernel
    def add_scaled(target, target_row, source, source_row, scale):
        """target[target_row] += scale * source[source_row] for 2-d C-contiguous arrays with rows of
        the same length: LANES at a time as vector operations, the rest one by one."""
        width = target.shape[1]
        target_start, source_start = target_row * width, source_row * width
        full = width - width % LANES
        for offset in range(0, full, LANES):
            _add_scaled_lanes(target, target_start + offset, source, source_start + offset, scale)
        for column in range(full, width):
            target[target_row, column] += scale * source[source_row, column]


elif numba is not None:  # the portable CPU tier: the same rows as plain loops, vectorised by LLVM as it can

    @inline_kernel
    def add_scaled(target, target_row, source, source_row, scale):
        """target[target_row] += scale * source[source_row] (rows of one length)."""
        for column in range(target.shape[1]):
            target[target_row, column] += scale * source[source_row, column]
