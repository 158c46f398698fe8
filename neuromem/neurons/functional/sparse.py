"""Linear and convolutional synapses that exploit sparse input (spikes, binned events).

y = x W^T + b over all T*batch rows at once (convolutions: over all frames). Spike and event inputs are mostly
zeros (SHD's 700 channels are ~2% active per 10 ms bin; hidden spikes ~5%), so
the forward pass sums only the weight rows of the active inputs, and the
weight gradient dL/dW = G^T x scatters the output gradient only into the
columns of the active inputs: O(nnz * out) instead of O(rows * in * out).
The input is kept for backward as a compressed row list (indices and values
of its non-zeros), not as the dense tensor. A convolution scatters every
active input pixel into the outputs whose window covers it, and writes its
output channels-last (N, OH, OW, O): that is the order its inner loops run in,
and neurons, being elementwise, do not care (see `SpikingLayer.forward`).

Dense input falls back to one BLAS matmul: `SPARSE_DENSITY_LIMIT` is where the
two cost the same, measured on one CPU core (see `benchmarks/`). Values equal
the dense matmul's to float rounding (the same products summed in another
order; with 0/1 spikes the products are exact).
"""

from __future__ import annotations

import functools
import weakref

import torch

from neuromem import cpu_tier
from neuromem.neurons.functional import buffers

try:
    import numba as _numba
    import numpy as np

    from neuromem.neurons.functional.jit import kernel
    from neuromem.neurons.functional.nonzero import nonzero_entries_and_values
    from neuromem.neurons.functional.simd import add_scaled
except ImportError:  # pragma: no cover - numba comes with tonic
    _numba = None
    np = None

# Below this fraction of non-zero inputs the sparse sums win, with a margin (forward + backward,
# one core: 700 -> 256 at 8% 23.7 vs 28.2 ms dense, break-even near 11%; 2592 -> 256 with its
# input gradient at 8% 43.8 vs ~44 ms, break-even near 9%).
SPARSE_DENSITY_LIMIT = 0.08
# Narrow outputs leave less work per active input against BLAS: a lower limit for them
# (256 -> 20 with its input gradient, one core: sparse 1.3 / 1.8 / 2.2 / 3.2 ms at 0.01 / 1 /
# 2 / 5% against 2.7 ms dense at any density, break-even near 3.5%).
SPARSE_NARROW_OUTPUTS = 64
SPARSE_NARROW_DENSITY_LIMIT = 0.02
# Convolutions: the scatter does density x the dense multiply-adds, at a lower rate than oneDNN;
# measured break-even (forward + backward, 1920 frames, one core) ~8% for N-MNIST's first
# layer (2 -> 16, 5x5, stride 2), ~15% for its second (16 -> 32, 3x3, stride 2).
SPARSE_CONV_DENSITY_LIMIT = 0.1

if _numba is not None:

    @kernel
    def _compress_rows(inputs, bits, row_starts, indices, values, limit):
        # One pass: row_starts (rows + 1,) receives the CSR row pointer, indices/values the
        # non-zeros (buffers of limit + one row); bits: the inputs as unsigned integers. Returns
        # the count, or -1 once it passes `limit`.
        rows = inputs.shape[0]
        n = 0
        for r in range(rows):
            row_starts[r] = n
            n += nonzero_entries_and_values(inputs[r], bits[r], indices[n:], values[n:])
            if n > limit:
                return -1
        row_starts[rows] = n
        return n

    @kernel
    def _scatter_linear(row_starts, indices, values, row_vectors, tap_rows, bias, into_taps):
        # Every (row r, active input j) of the compressed rows; row_vectors (rows, out), tap_rows
        # (in, out), bias (out,).
        # Forward (into_taps False): row_vectors[r] = bias + sum_j x[r, j] * tap_rows[j], tap_rows W^T.
        # Weight gradient (into_taps True): tap_rows[j] += x[r, j] * row_vectors[r] and bias +=
        # row_vectors[r], row_vectors dL/dy (the bias summed while each row is in cache); tap_rows and
        # bias zeroed by the caller.
        # 2-d indexing throughout: a view per active input cost measurable time (2592 -> 256
        # dL/dW: 2.6 -> 2.1 ms)
        rows, width = row_vectors.shape
        for r in range(rows):
            if into_taps:
                for k in range(width):  # vectorised over k (no serial float reduction)
                    bias[k] += row_vectors[r, k]
            else:
                for k in range(width):
                    row_vectors[r, k] = bias[k]
            start, stop = row_starts[r], row_starts[r + 1]
            if into_taps:
                for n in range(start, stop):
                    v, j = values[n], indices[n]
                    for k in range(width):
                        tap_rows[j, k] += v * row_vectors[r, k]
                continue
            # forward: two active inputs per pass over the output row (half the loads and stores of it)
            for n in range(start, stop - 1, 2):
                v, j = values[n], indices[n]
                v_next, j_next = values[n + 1], indices[n + 1]
                for k in range(width):
                    row_vectors[r, k] += v * tap_rows[j, k] + v_next * tap_rows[j_next, k]
            if (stop - start) % 2:
                v, j = values[stop - 1], indices[stop - 1]
                for k in range(width):
                    row_vectors[r, k] += v * tap_rows[j, k]

    @kernel
    def _scatter_frame(start, stop, positions, values, pairs, counts, taps_per_channel, output_rows, tap_rows, into_taps):
        # Every (active pixel, output whose window covers it, kernel tap that sees it) of one frame's
        # compressed entries start..stop; output_rows (OH * OW, O) that frame's outputs, channels-last,
        # tap_rows (C * KH * KW, O); pairs, counts from `window_pairs`.
        # Forward (into_taps False): output_rows[p] += x * tap_rows[k], tap_rows being W^T.
        # Weight gradient (into_taps True): tap_rows[k] += x * output_rows[p], output_rows being dL/dy.
        for e in range(start, stop):
            packed = positions[e]
            v = values[e]
            c, y, x = packed >> 20, (packed >> 10) & 1023, packed & 1023
            first_tap = c * taps_per_channel
            for a in range(counts[y, x]):
                p, k = pairs[y, x, a, 0], first_tap + pairs[y, x, a, 1]
                if into_taps:
                    add_scaled(tap_rows, k, output_rows, p, v)
                else:
                    add_scaled(output_rows, p, tap_rows, k, v)

    @kernel
    def _scatter_conv(row_starts, positions, values, pairs, counts, taps_per_channel, output_rows, tap_rows, bias, into_taps):
        # `_scatter_frame` over all compressed frames; output_rows (N * OH * OW, O). As in
        # `_scatter_linear`, each frame's outputs are filled with the bias just before its
        # scatter (forward), or summed into it while in cache (weight gradient: bias zeroed by the
        # caller).
        frames = row_starts.shape[0] - 1  # at least one: empty batches take the dense op
        plane = output_rows.shape[0] // frames
        channels_out = output_rows.shape[1]
        for n in range(frames):
            frame = output_rows[n * plane:(n + 1) * plane]
            for p in range(plane):
                for o in range(channels_out):
                    if into_taps:
                        bias[o] += frame[p, o]
                    else:
                        frame[p, o] = bias[o]
            _scatter_frame(
                row_starts[n], row_starts[n + 1], positions, values, pairs, counts, taps_per_channel, frame, tap_rows,
                into_taps,
            )


def _covering_outputs(in_size: int, out_size: int, kernel: int, stride: int, padding: int) -> "np.ndarray":
    """(in_size, pairs, 2): per input index, the (output index, kernel index) pairs with
    output * stride - padding + kernel index == input, in order, (-1, -1) past the last."""
    pairs = [
        [(o, i + padding - o * stride) for o in range(out_size) if 0 <= i + padding - o * stride < kernel]
        for i in range(in_size)
    ]
    table = np.full((in_size, max(1, max(len(p) for p in pairs)), 2), -1, dtype=np.int64)
    for i, covering in enumerate(pairs):
        for a, pair in enumerate(covering):
            table[i, a] = pair
    return table


@functools.lru_cache(maxsize=64)
def window_pairs(
    in_height: int, in_width: int, out_height: int, out_width: int, kernel_height: int, kernel_width: int,
    stride: int, padding: int,
) -> tuple:
    """Per input pixel (y, x), the (output position, kernel tap) pairs whose window sees it:
    pairs (H, W, most, 2) int32 [oy * OW + ox, ky * KW + kx], counts (H, W). One table lookup and
    one loop per active pixel in the scatter: measured faster than looping over output ranges
    (N-MNIST first layer, 1920 frames at 5%: ~6.4 -> ~4.8 ms), the sums in the same order."""
    rows = _covering_outputs(in_height, out_height, kernel_height, stride, padding)
    columns = _covering_outputs(in_width, out_width, kernel_width, stride, padding)
    pairs = np.zeros((in_height, in_width, rows.shape[1] * columns.shape[1], 2), dtype=np.int32)
    counts = np.zeros((in_height, in_width), dtype=np.int32)
    for y in range(in_height):
        for x in range(in_width):
            covering = [
                (oy * out_width + ox, ky * kernel_width + kx)
                for oy, ky in rows[y] if oy >= 0
                for ox, kx in columns[x] if ox >= 0
            ]
            counts[y, x] = len(covering)
            if covering:
                pairs[y, x, :len(covering)] = covering
    pairs.flags.writeable = counts.flags.writeable = False
    return pairs, counts


def conv_input_grad(grad_out: torch.Tensor, weight: torch.Tensor, input_shape, stride: int, padding: int) -> torch.Tensor:
    """dL/dx (N, C, H, W), channels-last in memory, of conv2d (square stride and padding) for dL/dy
    (N, OH, OW, O) channels-last contiguous. Dense: every input position gets a gradient, by the
    transposed convolution, run channels-last, the layout the gradient arrives in and the one
    oneDNN is fastest in (a BLAS product + col2im in numba timed the same and was dropped)."""
    frames, out_height, out_width, channels_out = grad_out.shape
    _, channels, height, width = input_shape
    kernel_height, kernel_width = weight.shape[2:]
    output_padding = tuple(
        size - ((out_size - 1) * stride - 2 * padding + kernel)
        for size, out_size, kernel in zip((height, width), (out_height, out_width), (kernel_height, kernel_width))
    )
    return torch.nn.functional.conv_transpose2d(
        grad_out.permute(0, 3, 1, 2), weight.detach().contiguous(memory_format=torch.channels_last),
        None, stride, padding, output_padding,
    )


if _numba is not None:

    @kernel
    def _rows_in_order(counts, offsets, found, row_starts, ordered):
        # Row n's entries found[offsets[n]:offsets[n] + counts[n]] (rows listed in any order) into
        # `ordered` row after row, its start in row_starts[n] (rows + 1,).
        n = 0
        for row in range(counts.shape[0]):
            row_starts[row] = n
            for a in range(offsets[row], offsets[row] + counts[row]):
                ordered[n] = found[a]
                n += 1
        row_starts[counts.shape[0]] = n


def _kernels_apply(inputs: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        _numba is not None
        and inputs.device.type == "cpu"
        and weight.device.type == "cpu"
        and inputs.dtype in (torch.float32, torch.float64)
        and inputs.dtype == weight.dtype
        and inputs.numel() > 0  # an empty batch: the dense op handles it
        # under --precision bf16/fp16 (autocast): torch's products in autocast's dtype (`neuromem.precision`)
        and not torch.is_autocast_enabled("cpu")
    )


class _SparseInputLinear(torch.autograd.Function):
    """inputs (rows, in), or channels-last frames (rows, C, H, W) whose features are flattened in
    (C, H, W) order (`frames`): then `indices` are already (C, H, W) feature indices, and the input
    gradient is made in the frames' storage order (weight columns permuted to it)."""

    @staticmethod
    def forward(ctx, inputs, weight, bias, row_starts, indices, values, frames=False):
        out = buffers.empty((inputs.shape[0], weight.shape[0]), inputs.dtype)
        bias_values = bias.detach() if bias is not None else inputs.new_zeros(weight.shape[0])
        _scatter_linear(
            row_starts.numpy(), indices.numpy(), values.numpy(), out.numpy(), weight.detach().t().contiguous().numpy(),
            bias_values.numpy(), False,
        )  # W^T: free for `SparseInputLinear`'s weight (stored transposed), a copy otherwise
        ctx.save_for_backward(weight, row_starts, indices, values)
        ctx.has_bias, ctx.frames = bias is not None, frames
        ctx.input_shape = inputs.shape
        return out

    @staticmethod
    def backward(ctx, grad_out):
        weight, row_starts, indices, values = ctx.saved_tensors
        grad_out = grad_out.contiguous()
        grad_inputs = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:  # dense: every input gets a gradient (a pooled buffer: no page faults)
            columns = weight.detach()
            if ctx.frames:  # weight columns in the frames' (H, W, C) storage order: rows of W^T moved
                rows, channels, height, width = ctx.input_shape
                columns = columns.t().reshape(channels, height, width, -1).permute(1, 2, 0, 3).reshape(-1, weight.shape[0]).t()
            grad_inputs = torch.mm(grad_out, columns, out=buffers.empty((grad_out.shape[0], weight.shape[1]), weight.dtype))
            if ctx.frames:  # (rows, H*W*C) storage -> channels-last (rows, C, H, W)
                grad_inputs = grad_inputs.view(rows, height, width, channels).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_weight_t = weight.new_zeros(weight.shape[1], weight.shape[0])
            grad_bias = weight.new_zeros(weight.shape[0])
            _scatter_linear(
                row_starts.numpy(), indices.numpy(), values.numpy(), grad_out.numpy(), grad_weight_t.numpy(),
                grad_bias.numpy(), True,
            )
            # in the weight's own layout: autograd keeps a gradient whose strides match its parameter's
            grad_weight = grad_weight_t.t() if _stored_transposed(weight) else grad_weight_t.t().contiguous()
            grad_bias = grad_bias if ctx.has_bias else None
        return grad_inputs, grad_weight, grad_bias, None, None, None, None


def _stored_transposed(weight: torch.Tensor) -> bool:
    """A 2-d weight stored as its transpose (column-major), as `SparseInputLinear` keeps it."""
    return weight.t().is_contiguous() and not weight.is_contiguous()


def is_channels_last(frames: torch.Tensor) -> bool:
    """(..., C, H, W) logical, (..., H, W, C) in memory, and not also contiguous (C or H*W of 1)."""
    if frames.dim() < 3 or frames.is_contiguous():
        return False
    order = tuple(range(frames.dim() - 3)) + (frames.dim() - 2, frames.dim() - 1, frames.dim() - 3)
    return frames.permute(order).is_contiguous()


def packable(frames: torch.Tensor) -> bool:
    """Whether (..., C, H, W) frames fit the compressed pixel positions (c << 20 | y << 10 | x)."""
    return frames.shape[-3] < 2048 and max(frames.shape[-2:]) < 1024


def conv_taps(weight: torch.Tensor) -> torch.Tensor:
    """A conv weight (O, C, KH, KW) as W^T rows, one per kernel tap: (C, KH, KW, O), contiguous."""
    return weight.detach().permute(1, 2, 3, 0).contiguous()


def _compress(dense: torch.Tensor, density_limit: float):
    """(row_starts, indices, values) of the non-zero entries of (rows, size) contiguous `dense`, the
    last two as numpy arrays; None when more than `density_limit` of the entries are non-zero (the
    scan stops as soon as that is clear). Spikes whose non-zeros their kernel already listed
    (`remember_nonzeros`) are not scanned again."""
    limit = int(density_limit * dense.numel())
    recalled = _recalled_nonzeros(dense)
    if recalled is not None:
        return recalled if recalled[1].shape[0] <= limit else None
    dense = dense.numpy()
    row_starts = torch.empty(dense.shape[0] + 1, dtype=torch.int64)
    # np.empty leaves untouched pages unmapped: the buffers cost only what is written
    indices, values = np.empty(limit + dense.shape[1], dtype=np.int32), np.empty(limit + dense.shape[1], dtype=dense.dtype)
    bits = dense.view(np.uint32 if dense.itemsize == 4 else np.uint64)
    count = _compress_rows(dense, bits, row_starts.numpy(), indices, values, limit)
    if count < 0:
        return None
    return row_starts, indices[:count], values[:count].copy()


# Spikes a kernel wrote together with the list of their non-zero entries (the fused conv + LIF):
# the next layer, in the same step, takes the list instead of scanning the tensor again (N-MNIST:
# 35 MB of first-layer spikes, ~3.6 ms). Keyed by the data pointer; an entry holds only while its
# tensor is alive and unmodified (torch's version counter, shared by all views, moves with any
# in-place change).
_known_nonzeros: dict[int, tuple] = {}


def remember_nonzeros(spikes: torch.Tensor, row_starts: torch.Tensor, indices: "np.ndarray") -> None:
    """Record the non-zero entries of contiguous `spikes` seen as rows (rows = row_starts.shape[0] - 1,
    in storage order): their positions in each row; every value is 1 (spikes). The portable CPU tier
    records nothing: the next layer scans the spikes again."""
    if not cpu_tier.TUNED:
        return
    for key in [key for key, entry in _known_nonzeros.items() if entry[0]() is None]:
        del _known_nonzeros[key]
    values = np.ones(indices.shape[0], dtype=np.dtype(str(spikes.dtype).removeprefix("torch.")))
    _known_nonzeros[spikes.data_ptr()] = (weakref.ref(spikes), spikes._version, spikes.numel(), spikes.dtype, row_starts, indices, values)


def _recalled_nonzeros(dense: torch.Tensor):
    entry = _known_nonzeros.get(dense.data_ptr())
    if entry is None:
        return None
    reference, version, numel, dtype, row_starts, indices, values = entry
    spikes = reference()
    if (
        spikes is None or spikes._version != version or dense._version != version or dense.numel() != numel
        or dense.dtype != dtype or row_starts.shape[0] != dense.shape[0] + 1 or not dense.is_contiguous()
    ):
        return None
    return row_starts, indices, values


@functools.lru_cache(maxsize=64)
def _packed_positions(channels: int, height: int, width: int, channels_last: bool) -> np.ndarray:
    """Per storage position of a (C, H, W) frame (stored channels-last or not), its pixel packed as
    c << 20 | y << 10 | x: shifts, not divisions, decode it in the scatter's hot loop."""
    c, y, x = np.meshgrid(np.arange(channels), np.arange(height), np.arange(width), indexing="ij")
    packed = ((c << 20) | (y << 10) | x).astype(np.int32)
    return (packed.transpose(1, 2, 0) if channels_last else packed).ravel()


def _compress_frames(inputs: torch.Tensor, density_limit: float):
    """(row_starts, positions, values) of the non-zero pixels of (frames, C, H, W) inputs (stored
    either way: channels-last is read as it lies), positions packed (`_packed_positions`); None
    when more than `density_limit` of them are non-zero."""
    inputs = inputs.detach()
    channels_last = is_channels_last(inputs)
    dense = inputs.permute(0, 2, 3, 1) if channels_last else inputs.contiguous()
    compressed = _compress(dense.reshape(dense.shape[0], -1), density_limit)
    if compressed is None:
        return None
    row_starts, indices, values = compressed
    positions = _packed_positions(*inputs.shape[1:], channels_last)[indices]
    return row_starts, torch.from_numpy(positions), torch.from_numpy(values)


@functools.lru_cache(maxsize=64)
def _storage_features(channels: int, height: int, width: int) -> np.ndarray:
    """For channels-last frames: the (C, H, W)-order feature index of every (H, W, C) storage position."""
    return np.arange(channels * height * width, dtype=np.int32).reshape(channels, height, width).transpose(1, 2, 0).ravel()


def sparse_input_linear(
    inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, density_limit: float = SPARSE_DENSITY_LIMIT
) -> torch.Tensor:
    """`torch.nn.functional.linear` over (rows, in) inputs, summing only their non-zero entries
    when at most `density_limit` of them are non-zero (CPU, numba); the dense matmul otherwise.
    Frames (rows, C, H, W) with C*H*W = in are flattened in (C, H, W) order; channels-last frames
    (the sparse convolution's output) are read as they lie, without the transposing copy a flatten
    needs."""
    frames = inputs.dim() == 4 and inputs[0].numel() == weight.shape[1]
    if frames and not is_channels_last(inputs):
        inputs, frames = inputs.flatten(1), False

    def dense_linear() -> torch.Tensor:
        return torch.nn.functional.linear(inputs.flatten(1) if frames else inputs, weight, bias)

    if weight.shape[0] < SPARSE_NARROW_OUTPUTS:
        density_limit = min(density_limit, SPARSE_NARROW_DENSITY_LIMIT)
    if (not frames and inputs.dim() != 2) or not _kernels_apply(inputs, weight):
        return dense_linear()
    if frames:
        dense = inputs.detach().permute(0, 2, 3, 1).reshape(inputs.shape[0], -1)
        feature_of = _storage_features(*inputs.shape[1:])
    else:
        dense = inputs.detach().contiguous()
    compressed = _compress(dense, density_limit)
    if compressed is None:  # too dense
        return dense_linear()
    row_starts, indices, values = compressed
    # storage positions -> feature indices (the sums then run in storage order: same products)
    active = feature_of[indices] if frames else indices.copy()
    return _SparseInputLinear.apply(
        inputs, weight, bias, row_starts, torch.from_numpy(active), torch.from_numpy(values), frames
    )


class _SparseInputConv2d(torch.autograd.Function):
    """Output (N, OH, OW, O): channels-last, contiguous."""

    @staticmethod
    def forward(ctx, inputs, weight, bias, stride, padding, row_starts, positions, values):
        frames, _, height, width = inputs.shape
        channels_out, _, kernel_height, kernel_width = weight.shape
        out_height = (height + 2 * padding - kernel_height) // stride + 1
        out_width = (width + 2 * padding - kernel_width) // stride + 1
        out = buffers.empty((frames, out_height, out_width, channels_out), inputs.dtype)
        bias_values = bias.detach() if bias is not None else weight.new_zeros(channels_out)
        _scatter_conv(
            row_starts.numpy(), positions.numpy(), values.numpy(),
            *window_pairs(height, width, out_height, out_width, kernel_height, kernel_width, stride, padding),
            kernel_height * kernel_width, out.numpy().reshape(-1, channels_out),
            conv_taps(weight).numpy().reshape(-1, channels_out), bias_values.numpy(), False,
        )
        ctx.save_for_backward(weight, row_starts, positions, values)
        ctx.geometry = (inputs.shape, stride, padding, bias is not None)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        weight, row_starts, positions, values = ctx.saved_tensors
        input_shape, stride, padding, has_bias = ctx.geometry
        grad_out = grad_out.contiguous()
        grad_inputs = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_inputs = conv_input_grad(grad_out, weight, input_shape, stride, padding)
        if ctx.needs_input_grad[1] or (has_bias and ctx.needs_input_grad[2]):
            channels_out, channels_in, kernel_height, kernel_width = weight.shape
            grad_weight_t = weight.new_zeros(channels_in, kernel_height, kernel_width, channels_out)
            grad_bias = weight.new_zeros(channels_out)
            pairs = window_pairs(
                *input_shape[2:], *grad_out.shape[1:3], kernel_height, kernel_width, stride, padding
            )
            _scatter_conv(
                row_starts.numpy(), positions.numpy(), values.numpy(), *pairs, kernel_height * kernel_width,
                grad_out.numpy().reshape(-1, channels_out),
                grad_weight_t.numpy().reshape(-1, channels_out), grad_bias.numpy(), True,
            )
            grad_weight = grad_weight_t.permute(3, 0, 1, 2).contiguous()
            grad_bias = grad_bias if has_bias else None
        return grad_inputs, grad_weight, grad_bias, None, None, None, None, None


def sparse_input_conv2d(
    inputs: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    density_limit: float = SPARSE_CONV_DENSITY_LIMIT,
    chunk_frames: int | None = None,
) -> torch.Tensor:
    """`torch.nn.functional.conv2d` over (frames, C, H, W) inputs (square stride and padding, no
    dilation or groups), summing only the non-zero input pixels when at most `density_limit` of
    them are non-zero (CPU, numba); torch's convolution otherwise, `chunk_frames` frames at a time
    (its workspace grows with the frame count). The sparse result is channels-last in memory
    (an (N, C, H, W) view of (N, H, W, C) storage)."""
    compressed = None
    if inputs.dim() == 4 and packable(inputs) and _kernels_apply(inputs, weight):
        compressed = _compress_frames(inputs, density_limit)
    if compressed is None:
        if chunk_frames is None or inputs.shape[0] <= chunk_frames:
            return torch.nn.functional.conv2d(inputs, weight, bias, stride, padding)
        return torch.cat([torch.nn.functional.conv2d(chunk, weight, bias, stride, padding) for chunk in inputs.split(chunk_frames)])
    out = _SparseInputConv2d.apply(inputs, weight, bias, int(stride), int(padding), *compressed)
    return out.permute(0, 3, 1, 2)
