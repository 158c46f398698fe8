"""A sparse-input convolution and the LIF neurons it drives, in one pass per frame.

A vision front end's convolutions turn sparse events or spikes into currents
for millions of neurons (N-MNIST benchmark shape: 1920 frames of 16 x 17 x 17,
then of 32 x 9 x 9). Unfused, those currents go to memory (35 / 20 MB) and come
back for the neurons; on the way back the current gradient is written once and
read twice (weight gradient, bias gradient). Fused, one frame's currents (a few
KB) stay in a scratch buffer between the scatter (`sparse._scatter_frame`) and
the neuron update (`neuron_kernels`' row forward), and one frame's current gradient
between the neuron backward (its row backward) and the weight-gradient scatter. A layer whose input needs a gradient (any but the first) keeps the
whole current gradient for the input gradient (`sparse.conv_input_grad`).

The float operations are the unfused path's, in the same order per value:
spikes and membranes are equal bit for bit; the weight, bias and input
gradients are summed in another order (equal to float rounding).

Covers the neuron models that declare `fused_conv` (template models without an
aux trace: `lif`), any registered surrogate and either reset, without a recurrent
weight, from the zero state, on inputs sparse enough for the scatter; the kernels
are compiled per (model, surrogate) like the neuron kernels. `conv_lif_sequence`
returns None otherwise and the caller runs the layer unfused.
"""

from __future__ import annotations

import torch

import functools

from neuromem.neurons.functional import buffers
from neuromem.neurons.functional.neuron import fast_path_enabled
from neuromem.neurons.surrogates import get_surrogate
from neuromem.neurons.functional.sparse import (
    SPARSE_CONV_DENSITY_LIMIT,
    _compress_frames,
    _kernels_apply,
    conv_input_grad,
    conv_taps,
    packable,
    remember_nonzeros,
    window_pairs,
)

try:
    import numba as _numba
    import numpy as np

    from neuromem.neurons.functional import neuron_kernels
    from neuromem.neurons.functional.jit import specialize
    from neuromem.neurons.functional.nonzero import nonzero_entries
    from neuromem.neurons.functional.sparse import _rows_in_order, _scatter_frame
except ImportError:  # pragma: no cover - numba comes with tonic
    _numba = None

_row_forward = _row_backward = None  # template globals: one model's (and surrogate's) row kernels


if _numba is not None:
    def _conv_lif_forward_template(
        row_starts, positions, values, pairs, counts, taps_per_channel,
        tap_rows, bias, current, membranes, spikes, c, zero_reset, spike_counts, spike_offsets, found,
    ):
        # membranes, spikes: (T, B, OH * OW * O) channels-last; frame n = t * B + b of the compressed
        # input; current: (OH * OW, O) scratch for one frame's currents. The spikes' positions in
        # their frame are listed while it is in cache (the next layer would scan it from memory):
        # frame n's in found[spike_offsets[n]:][:spike_counts[n]] (found: T * B * OH * OW * O,
        # untouched beyond the spikes).
        # sample by sample, its steps in order: v_{t-1} is read back while still in cache (in step
        # order, 64 frames of 2 x 18 KB came between: N-MNIST's membranes came from memory)
        steps, batch, size = membranes.shape
        x = current.reshape(size)
        zeros = np.zeros(size, dtype=membranes.dtype)  # the initial state
        no_aux, no_trace = np.zeros(1, dtype=membranes.dtype), np.zeros(1, dtype=membranes.dtype)  # no aux trace
        listed = 0
        bias_frame = np.empty_like(x)  # the bias at every position: one long copy per frame
        for i in range(size):
            bias_frame[i] = bias[i % bias.shape[0]]
        for b in range(batch):
            for t in range(steps):
                n = t * batch + b
                for i in range(size):
                    x[i] = bias_frame[i]
                _scatter_frame(
                    row_starts[n], row_starts[n + 1], positions, values, pairs, counts, taps_per_channel, current,
                    tap_rows, False,
                )
                if t > 0:
                    _row_forward(x, membranes[t - 1, b], zeros, no_aux, no_trace, membranes[t, b], spikes[t, b], c, zero_reset, False)
                else:
                    _row_forward(x, zeros, zeros, no_aux, no_trace, membranes[0, b], spikes[0, b], c, zero_reset, True)
                spike_offsets[n] = listed
                spike_counts[n] = nonzero_entries(spikes[t, b], found[listed:])
                listed += spike_counts[n]

    def _conv_lif_backward_template(
        row_starts, positions, values, pairs, counts, taps_per_channel,
        membranes, grad_spikes, carry, grad_taps, grad_bias, c, sc, zero_reset,
    ):
        # Sample by sample, its steps from the last. carry (2, 1, OH * OW * O): gd_t in carry[t % 2],
        # gd_{t+1} in the other (distinct arrays: the row kernel vectorises only when they do not
        # overlap), in cache; or (T, B, OH * OW * O): every gd_t kept (the currents' gradient, for the
        # input gradient). grad_taps (C * KH * KW, O) and grad_bias (O,) accumulate, zeroed by the
        # caller.
        steps, batch, size = membranes.shape
        channels_out = grad_taps.shape[1]
        plane = size // channels_out
        bias_sums = np.zeros(size, dtype=membranes.dtype)  # per position: one long add per frame
        periods, samples = carry.shape[0], carry.shape[1]
        no_trace = np.zeros(1, dtype=membranes.dtype)
        for b in range(batch):
            for t in range(steps - 1, -1, -1):
                g = carry[t % periods, b % samples]
                _row_backward(
                    membranes[t, b], no_trace, grad_spikes[t, b], carry[(t + 1) % periods, b % samples], g, t == steps - 1,
                    c, sc, zero_reset,
                )
                for i in range(size):
                    bias_sums[i] += g[i]
                n = t * batch + b
                _scatter_frame(
                    row_starts[n], row_starts[n + 1], positions, values, pairs, counts, taps_per_channel,
                    g.reshape(plane, channels_out), grad_taps, True,
                )
        for i in range(size):
            grad_bias[i % channels_out] += bias_sums[i]

    @functools.lru_cache(maxsize=None)
    def _forward_kernel(model):
        row_forward = neuron_kernels.forward_kernels(model).row_forward
        return specialize(_conv_lif_forward_template, model.name, _row_forward=row_forward)

    @functools.lru_cache(maxsize=None)
    def _backward_kernel(model, surrogate):
        row_backward = neuron_kernels.backward_kernels(model, surrogate).row_backward
        return specialize(_conv_lif_backward_template, f"{model.name}__{surrogate.name}", _row_backward=row_backward)


class _ConvLIFSequence(torch.autograd.Function):
    """Spikes (T, B, OH, OW, O) of LIF neurons driven by conv2d of compressed (T * B) frames."""

    @staticmethod
    def forward(ctx, inputs, weight, bias, steps, geometry, compressed, options):
        (in_height, in_width, out_height, out_width, stride, padding), (model, c, zero_reset, surrogate, slope) = geometry, options
        row_starts, positions, values = compressed
        channels_out, _, kernel_height, kernel_width = weight.shape
        batch = (row_starts.shape[0] - 1) // steps
        dtype = buffers._numpy_dtype(weight.dtype).type
        pairs = window_pairs(in_height, in_width, out_height, out_width, kernel_height, kernel_width, stride, padding)
        scatter_tables = (*pairs, kernel_height * kernel_width)
        shape = (steps, batch, out_height, out_width, channels_out)
        membranes, spikes = buffers.empty(shape, weight.dtype), buffers.empty(shape, weight.dtype)
        bias_values = bias.detach() if bias is not None else weight.new_zeros(channels_out)
        frames = steps * batch
        spike_counts, spike_offsets = np.empty(frames, dtype=np.int64), np.empty(frames, dtype=np.int64)
        found = np.empty(spikes.numel(), dtype=np.int32)  # pages beyond the spikes stay unmapped
        _forward_kernel(model)(
            row_starts.numpy(), positions.numpy(), values.numpy(), *scatter_tables,
            conv_taps(weight).numpy().reshape(-1, channels_out),
            bias_values.numpy(), np.empty((out_height * out_width, channels_out), dtype=dtype),
            membranes.numpy().reshape(steps, batch, -1), spikes.numpy().reshape(steps, batch, -1),
            tuple(dtype(value) for value in c), zero_reset, spike_counts, spike_offsets, found,
        )
        spike_row_starts = torch.empty(frames + 1, dtype=torch.int64)
        spike_positions = np.empty(int(spike_counts.sum()), dtype=np.int32)
        _rows_in_order(spike_counts, spike_offsets, found, spike_row_starts.numpy(), spike_positions)
        remember_nonzeros(spikes, spike_row_starts, spike_positions)
        ctx.save_for_backward(weight, membranes, row_starts, positions, values)
        ctx.kernel_arguments = (scatter_tables, (stride, padding), dtype, options)
        ctx.has_bias = bias is not None
        ctx.input_shape = inputs.shape
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):
        weight, membranes, row_starts, positions, values = ctx.saved_tensors
        scatter_tables, (stride, padding), dtype, (model, c, zero_reset, surrogate, slope) = ctx.kernel_arguments
        steps, batch = membranes.shape[:2]
        channels_out, channels_in, kernel_height, kernel_width = weight.shape
        grad_taps = weight.new_zeros(channels_in, kernel_height, kernel_width, channels_out)
        grad_bias = weight.new_zeros(channels_out)
        input_grad = ctx.needs_input_grad[0]
        # the currents' gradient: all of it for the input gradient, else one sample's last two steps
        carry = buffers.empty(membranes.shape, weight.dtype) if input_grad else weight.new_empty(2, 1, membranes[0, 0].numel())
        _backward_kernel(model, surrogate)(
            row_starts.numpy(), positions.numpy(), values.numpy(), *scatter_tables,
            membranes.numpy().reshape(steps, batch, -1), grad_spikes.contiguous().numpy().reshape(steps, batch, -1),
            carry.numpy().reshape(carry.shape[0], carry.shape[1], -1), grad_taps.numpy().reshape(-1, channels_out),
            grad_bias.numpy(), tuple(dtype(value) for value in c), tuple(dtype(value) for value in surrogate.constants(slope)),
            zero_reset,
        )
        grad_inputs = None
        if input_grad:
            frames_shape = (steps * batch, *ctx.input_shape[2:])
            grad_inputs = conv_input_grad(carry.view(steps * batch, *membranes.shape[2:]), weight, frames_shape, stride, padding)
            grad_inputs = grad_inputs.reshape(ctx.input_shape)
        grad_weight = grad_taps.permute(3, 0, 1, 2).contiguous()
        return grad_inputs, grad_weight, grad_bias if ctx.has_bias else None, None, None, None, None


def conv_lif_sequence(
    inputs: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int, model, p
) -> torch.Tensor | None:
    """Spikes (T, B, O, OH, OW) (channels-last in memory) of `model`'s neurons (a `NeuronModel` that
    declares `fused_conv`) driven by conv2d(inputs) over (T, B, C, H, W) inputs, fused per frame;
    None where the fused path does not apply (see the module doc)."""
    if not model.fused_conv:
        from neuromem.neurons.models import get_neuron, neuron_names

        fused = ", ".join(name for name in neuron_names() if get_neuron(name).fused_conv)
        raise ValueError(f"neuron model {model.name!r} has no fused convolution kernel; models with one: {fused}")
    model.check(p)
    applies = (
        _numba is not None
        and fast_path_enabled()
        and inputs.dim() == 5
        and packable(inputs)
        and _kernels_apply(inputs, weight)
    )
    if not applies:
        return None
    steps, batch, _, height, width = inputs.shape
    compressed = _compress_frames(inputs.reshape(steps * batch, *inputs.shape[2:]), SPARSE_CONV_DENSITY_LIMIT)
    if compressed is None:
        return None
    kernel_height, kernel_width = weight.shape[2:]
    geometry = (
        height, width, (height + 2 * padding - kernel_height) // stride + 1, (width + 2 * padding - kernel_width) // stride + 1,
        int(stride), int(padding),
    )
    options = (model, model.dynamics.constants(p), p.reset == "zero", get_surrogate(p.surrogate), float(p.surrogate_slope))
    spikes = _ConvLIFSequence.apply(inputs, weight, bias, steps, geometry, compressed, options)
    return spikes.permute(0, 1, 4, 2, 3)
