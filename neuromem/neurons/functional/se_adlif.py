"""SE-adLIF's fast path (`neuromem.neurons.models.se_adlif`): one autograd node per sequence.

The model is outside the generic template (its adaptation is updated after the spike, from the
new membrane and spike, and carries gradient into the membrane and back), so it brings its own
sequence function, registered as its `sequence`; `neuron_sequence` runs it on the fast path and
the model's reference step under `reference_core()`. Both loops call the model file's functions
(`charge`, `adapt`, and the backward pieces `adaptation_adjoint`, `membrane_adjoint`,
`through_reset`), so the update is written once:

- on CPU with numba (float32/64): the forward is one kernel over the sequence (the recurrent
  input s_{t-1} W^T summed over the spiking inputs only, as the template's recurrent kernel);
  the backward one kernel call over the sequence, or with a recurrent weight one per step with
  the feedback gd_{t+1} W (a dense torch matmul) between them. The surrogate's derivative is
  compiled in: kernels per surrogate (`jit.specialize`), cached on disk like the neuron kernels.
- elsewhere (GPU, no numba): the same loops on tensors, without a graph.

The backward recomputes s_t = [m_t > theta] from the kept membranes (no spikes kept except for
dL/dW). Spikes equal the reference step's; membranes and the final state bit for bit without a
recurrent weight (with one, the numba forward sums the recurrent input in another order: equal
to float rounding); gradients to float rounding.
"""

from __future__ import annotations

import functools

import torch

from neuromem.neurons.functional import buffers, neuron
from neuromem.neurons.functional.surrogate import surrogate_grad as torch_surrogate_grad
from neuromem.neurons.models.se_adlif import (
    SE_ADLIF, THETA, SEAdLIFState, adapt, adaptation_adjoint, charge, constants, membrane_adjoint, through_reset,
)
from neuromem.neurons.surrogates import get_surrogate

try:
    import numpy as np

    from neuromem.neurons.functional import neuron_kernels
    from neuromem.neurons.functional.jit import inline_kernel, kernel, specialize
    from neuromem.neurons.functional.nonzero import nonzero_entries
except ImportError:  # pragma: no cover - numba comes with tonic
    kernel = None

surrogate_grad = None  # template global: one surrogate's compiled derivative


# ------------------------------------------------------------------ the numba kernels


def _row_forward_template(x, feedback, w, m, s, m_out, s_out, c, zero_reset, recurrent):
    # one row of step t; w, m, s: the row's state (updated in place), feedback: its s_{t-1} W^T
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    for i in range(x.shape[0]):
        drive = x[i] + feedback[i] if recurrent else x[i]
        v = charge(drive, m[i], s[i], w[i], c, zero_reset)
        spike = one if v > c[5] else zero
        w[i] = adapt(w[i], v, spike, spike, c, zero_reset)
        m[i] = v
        s[i] = spike
        m_out[i] = v
        s_out[i] = spike


def _forward_template(inputs, weight_t, adaptation, membrane, spike, spikes, membranes, c, zero_reset, recurrent):
    # inputs, spikes, membranes: (T, R, C); adaptation, membrane, spike: the (R, C) state, updated in
    # place. With `recurrent`, row r's drive gains s_{t-1}[r] @ W^T (weight_t: (C, C)), summed over
    # the spiking inputs only; returns the spike count of steps 0..T-2 (the s_{t-1} of dL/dW).
    zero = inputs.dtype.type(0.0)
    steps, rows, size = inputs.shape
    feedback = np.zeros(size, dtype=inputs.dtype)
    active = np.empty(size, dtype=np.int64)
    count = 0
    for t in range(steps):
        for r in range(rows):
            if recurrent:
                feedback[:] = zero
                spike_row = spike[r]
                spiking = nonzero_entries(spike_row, active)
                if t > 0:
                    count += spiking
                for j_index in range(spiking):
                    j = active[j_index]
                    value, weight_row = spike_row[j], weight_t[j]
                    for k in range(size):
                        feedback[k] += value * weight_row[k]
            # the mode tests outside the loop: each call is inlined with constant flags
            x, w, m, s, m_out, s_out = inputs[t, r], adaptation[r], membrane[r], spike[r], membranes[t, r], spikes[t, r]
            if zero_reset:
                if recurrent:
                    _row_forward(x, feedback, w, m, s, m_out, s_out, c, True, True)
                else:
                    _row_forward(x, feedback, w, m, s, m_out, s_out, c, True, False)
            elif recurrent:
                _row_forward(x, feedback, w, m, s, m_out, s_out, c, False, True)
            else:
                _row_forward(x, feedback, w, m, s, m_out, s_out, c, False, False)
    return count


def _backward_template(
    membranes, grad_spikes, grad_membranes, feedback, grad_drive, grad_m, grad_w,
    c, sc, has_grad_spikes, has_grad_membranes, zero_reset, fed, t_high, t_low,
):
    # Steps t_high down to t_low. grad_spikes / grad_membranes (T, R, C) are read only if given;
    # feedback (R, C): dL/ds_t through the recurrent drive of step t + 1, for the one step t_high
    # (`fed`). grad_m, grad_w (R, C) carry gm_{t+1}, gw_{t+1} between steps and calls (at the last
    # step: 0 and dL/dw of the final state) and end as gm_{t_low}, gw_{t_low}; grad_drive (T, R, C)
    # receives dL/d(drive_t).
    one = membranes.dtype.type(1.0)
    zero = membranes.dtype.type(0.0)
    steps, rows, size = membranes.shape
    theta = c[5]
    for t in range(t_high, t_low - 1, -1):
        last = t == steps - 1
        with_feedback = fed and t == t_high
        for r in range(rows):
            v_t, g_out, gm_row, gw_row = membranes[t, r], grad_drive[t, r], grad_m[r], grad_w[r]
            g_spikes, g_membranes, fb = grad_spikes[t, r], grad_membranes[t, r], feedback[r]
            for i in range(size):
                v = v_t[i]
                spike = one if v > theta else zero
                h = surrogate_grad(v - theta, sc)
                g_spike = zero
                if has_grad_spikes:
                    g_spike = g_spikes[i]
                if with_feedback:
                    g_spike += fb[i]
                g_membrane = g_membranes[i] if has_grad_membranes else zero
                gm_next = gm_row[i]
                gw = gw_row[i] if last else adaptation_adjoint(gw_row[i], gm_next, c)
                gm = membrane_adjoint(h, spike, g_spike, g_membrane, gm_next, gw, c, zero_reset)
                gw_row[i] = gw
                gm_row[i] = gm
                g_out[i] = gm  # dL/d(drive_t): the drive enters the membrane with weight 1


_row_forward = None  # template global

if kernel is not None:
    _row_forward = specialize(_row_forward_template, "se_adlif", inline=True)
    _forward_kernel = specialize(_forward_template, "se_adlif", _row_forward=_row_forward)


@functools.lru_cache(maxsize=None)
def _backward_kernel(surrogate):
    return specialize(_backward_template, f"se_adlif__{surrogate.name}", surrogate_grad=inline_kernel(surrogate.compiled_grad))


# ------------------------------------------------------------------ one autograd node per sequence


class _SEAdLIFSequence(torch.autograd.Function):
    """Forward per step: `charge`, the spike, `adapt`; backward: the model file's adjoints, with
    gs_t = dL/ds_t + gd_{t+1} W (recurrent term only with W), dL/dW = sum_t gd_t^T s_{t-1}."""

    @staticmethod
    def forward(ctx, inputs, recurrent_weight, adaptation0, membrane0, spikes0, c, zero_reset, surrogate, slope, fused):
        steps = inputs.shape[0]
        inputs = inputs.contiguous()
        ctx.set_materialize_grads(False)
        ctx.options = (c, zero_reset, surrogate, slope)
        recurrent = recurrent_weight is not None
        state = (adaptation0, membrane0, spikes0)
        ctx.fused = fused  # the Triton kernels generated from this model's functions (`se_adlif_gpu`)
        ctx.compiled = (
            not fused
            and kernel is not None
            and neuron.compiled_kernels_apply(inputs, *state, *([recurrent_weight] if recurrent else []))
            and all(t.numel() == inputs[0].numel() for t in state)
        )
        if fused:
            from neuromem.neurons.functional import se_adlif_gpu

            adaptation, membrane, spike = (t.detach().expand_as(inputs[0]).clone().contiguous() for t in state)
            weight_t = recurrent_weight.detach().t() if recurrent else None
            spikes, membranes = se_adlif_gpu.forward(inputs, weight_t, adaptation, membrane, spike, c, zero_reset, surrogate)
            final_adaptation = adaptation
        elif ctx.compiled:
            spikes, membranes = buffers.empty(inputs.shape, inputs.dtype), buffers.empty(inputs.shape, inputs.dtype)
            dtype = buffers._numpy_dtype(inputs.dtype).type
            shape = (steps, -1, recurrent_weight.shape[0]) if recurrent else (steps, 1, -1)
            rows_shape = shape[1:]
            adaptation, membrane, spike = (t.detach().clone().contiguous() for t in state)
            weight_t = recurrent_weight.detach().t().contiguous() if recurrent else inputs.new_zeros(1, 1)
            ctx.previous_spikes = _forward_kernel(
                inputs.detach().numpy().reshape(shape), weight_t.numpy(),
                adaptation.numpy().reshape(rows_shape), membrane.numpy().reshape(rows_shape),
                spike.numpy().reshape(rows_shape), spikes.numpy().reshape(shape), membranes.numpy().reshape(shape),
                tuple(dtype(value) for value in c), zero_reset, recurrent,
            )
            final_adaptation = adaptation.view_as(adaptation0)
        else:
            spikes, membranes = torch.empty_like(inputs), torch.empty_like(inputs)
            weight_t = recurrent_weight.detach().t() if recurrent else None
            adaptation, membrane, spike = (t.detach() for t in state)
            for t in range(steps):
                drive = inputs[t] if weight_t is None else inputs[t] + spike @ weight_t
                membrane = charge(drive, membrane, spike, adaptation, c, zero_reset)
                spike = (membrane > c[THETA]).to(membrane.dtype)
                adaptation = adapt(adaptation, membrane, spike, spike, c, zero_reset)
                membranes[t], spikes[t] = membrane, spike
            final_adaptation = adaptation
        # the backward recomputes spikes from membranes; only dL/dW needs them
        ctx.save_for_backward(membranes, spikes if recurrent else None, recurrent_weight, spikes0)
        return spikes, membranes, final_adaptation

    @staticmethod
    def backward(ctx, grad_spikes, grad_membranes, grad_adaptation):
        membranes, spikes, weight, spikes0 = ctx.saved_tensors
        c, zero_reset, surrogate_name, slope = ctx.options
        recurrent = weight is not None
        steps = membranes.shape[0]
        if ctx.fused:
            from neuromem.neurons.functional import se_adlif_gpu

            grad_drive, grad_m, grad_w = se_adlif_gpu.backward(
                membranes, weight, grad_spikes, grad_membranes, grad_adaptation, c, zero_reset, surrogate_name, slope
            )
        elif ctx.compiled:
            grad_drive, grad_m, grad_w = _compiled_backward(
                ctx, membranes, weight, grad_spikes, grad_membranes, grad_adaptation, c, zero_reset, surrogate_name, slope
            )
        else:
            grad_drive = torch.empty_like(membranes)
            grad_m = torch.zeros_like(membranes[0])
            grad_w = grad_adaptation.detach() if grad_adaptation is not None else torch.zeros_like(membranes[0])
            theta = c[THETA]
            slopes = torch_surrogate_grad(surrogate_name, membranes - theta, slope)
            weight_matrix = weight.detach() if recurrent else None
            for t in range(steps - 1, -1, -1):
                spike = (membranes[t] > theta).to(membranes.dtype)
                g_spike = grad_spikes[t] if grad_spikes is not None else torch.zeros_like(grad_m)
                if recurrent and t < steps - 1:
                    g_spike = g_spike + grad_drive[t + 1] @ weight_matrix
                g_membrane = grad_membranes[t] if grad_membranes is not None else 0.0
                if t < steps - 1:
                    grad_w = adaptation_adjoint(grad_w, grad_m, c)
                grad_m = membrane_adjoint(slopes[t], spike, g_spike, g_membrane, grad_m, grad_w, c, zero_reset)
                grad_drive[t] = grad_m
        grad_weight = grad_adaptation0 = grad_membrane0 = grad_spikes0 = None
        if recurrent and ctx.needs_input_grad[1]:
            grad_weight = _recurrent_weight_grad(ctx, grad_drive, spikes, spikes0, weight.shape[0])
        if ctx.needs_input_grad[2]:
            grad_adaptation0 = adaptation_adjoint(grad_w, grad_m, c)
        if ctx.needs_input_grad[3]:
            grad_membrane0 = c[0] * through_reset(grad_m, spikes0.detach(), zero_reset)
        if recurrent and ctx.needs_input_grad[4]:
            grad_spikes0 = grad_drive[0] @ weight
        return (grad_drive, grad_weight, grad_adaptation0, grad_membrane0, grad_spikes0) + (None,) * 5


def _compiled_backward(ctx, membranes, weight, grad_spikes, grad_membranes, grad_adaptation, c, zero_reset, surrogate_name, slope):
    """The backward through time in numba: one call, or one per step with the feedback matmul in torch between."""
    surrogate = get_surrogate(surrogate_name)
    backward = _backward_kernel(surrogate)
    steps = membranes.shape[0]
    recurrent = weight is not None
    shape, rows_shape, dtype, constants_, surrogate_constants = neuron.kernel_layout(membranes, weight, c, surrogate, slope)
    has_grad_spikes, has_grad_membranes = grad_spikes is not None, grad_membranes is not None
    grad_spikes = grad_spikes.detach().contiguous() if has_grad_spikes else membranes
    grad_membranes = grad_membranes.detach().contiguous() if has_grad_membranes else membranes
    grad_drive = buffers.empty(membranes.shape, membranes.dtype)
    grad_m = membranes.new_zeros(membranes[0].shape)
    grad_w = (
        grad_adaptation.detach().clone().contiguous() if grad_adaptation is not None else membranes.new_zeros(membranes[0].shape)
    )
    feedback = membranes.new_zeros(grad_m.shape)
    arrays = (
        membranes.numpy().reshape(shape), grad_spikes.numpy().reshape(shape), grad_membranes.numpy().reshape(shape),
        feedback.numpy().reshape(rows_shape), grad_drive.numpy().reshape(shape),
        grad_m.numpy().reshape(rows_shape), grad_w.numpy().reshape(rows_shape),
        constants_, surrogate_constants, has_grad_spikes, has_grad_membranes, zero_reset,
    )
    if not recurrent:
        backward(*arrays, False, steps - 1, 0)
    else:
        size = weight.shape[0]
        weight_matrix = weight.detach().contiguous()
        step_grads, feedback_2d = grad_drive.view(steps, -1, size), feedback.view(-1, size)
        for t in range(steps - 1, -1, -1):
            if t < steps - 1:
                torch.mm(step_grads[t + 1], weight_matrix, out=feedback_2d)
            backward(*arrays, t < steps - 1, t, t)
    return grad_drive, grad_m, grad_w


def _recurrent_weight_grad(ctx, grad_drive, spikes, spikes0, size):
    """dL/dW = sum_t gd_t^T s_{t-1}: over the spiking entries only where spikes are sparse (numba)."""
    previous, grads = spikes[:-1].reshape(-1, size), grad_drive[1:].reshape(-1, size)
    if ctx.compiled and ctx.previous_spikes < neuron._SPARSE_OUTER_DENSITY * previous.numel():
        grad_weight_t = grad_drive.new_zeros(size, size)
        neuron_kernels.spike_outer_kernel(previous.numpy(), grads.contiguous().numpy(), grad_weight_t.numpy())
        grad_weight = grad_weight_t.t().contiguous()
    else:
        grad_weight = grads.t() @ previous
    return grad_weight + grad_drive[0].reshape(-1, size).t() @ spikes0.detach().reshape(-1, size)


def se_adlif_sequence(inputs, p, recurrent_weight=None, state=None, return_membrane=False, fused=False):
    """SE-adLIF over a whole (T, batch, ...) sequence (the model's `sequence`; see `neuron_sequence`); `fused`: on
    the Triton kernels generated from the model's functions (`se_adlif_gpu`, float32 CUDA tensors)."""
    SE_ADLIF.check(p)
    state = state if state is not None else SE_ADLIF.initial_state(inputs[0])
    spikes, membranes, adaptation = _SEAdLIFSequence.apply(
        inputs, recurrent_weight, state.adaptation, state.membrane, state.spikes,
        constants(p), p.reset == "zero", p.surrogate, float(p.surrogate_slope), fused,
    )
    final = SEAdLIFState(adaptation, membranes[-1], spikes[-1])
    if return_membrane:
        return spikes, final, membranes
    return spikes, final
