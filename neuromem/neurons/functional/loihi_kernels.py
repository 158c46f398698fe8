"""The Loihi fixed-point neuron's fast path (`neuromem.neurons.functional.loihi`): one autograd node per sequence.

The neuron is outside the template (integer decays, Lava's 24-bit wrap of u, the clip of v, the voltage
reset to 0, a surrogate on (v - vth<<6) / (vth<<6)), so it brings its own numba kernels, the way SE-adLIF
does (`se_adlif.py`). `loihi.loihi_sequence` runs them on CPU with numba, and the step-by-step reference
loop (`loihi.loihi_reference_sequence`, autograd through every `loihi_step`) under `reference_core()`,
off CPU, or with an initial state that needs a gradient: the reference stays the test oracle.

Forward, per step t and neuron (a_t the delayed feed-forward activation, W the recurrent integer weights,
e their exponent), exactly `loihi_step`'s integer arithmetic in float64:

    a'_t = a_t + shift(s_{t-1} W^T, e)                   (summed over the spiking inputs only: exact)
    u_t  = wrap24(trunc(u_{t-1} (4095 - du) / 4096) + 64 a'_t)
    p_t  = clip(trunc(v_{t-1} (4096 - dv) / 4096) + u_t + bias, +-(2**23 - 1))
    s_t  = [p_t > vth << 6],   v_t = 0 where s_t else p_t

Every value is an integer below 2**53, so each operation is exact and spikes and voltages equal the
reference's bit for bit (and so Lava's) whatever the summation order. The pre-reset voltages p_t are kept
for the backward, which is the reference's autograd written out (straight-through rounding, wrap and
clip; the reset sees the detached spike; h_t the surrogate's derivative at x_t = (p_t - th) / th):

    gs_t = dL/ds_t + 2**e gd_{t+1} W                      (recurrent term only with W)
    gp_t = (dL/dv_t + kv gp_{t+1}) (1 - s_t) + gs_t h_t / th
    gu_t = gp_t + ku gu_{t+1},   gd_t = dL/da_t = 64 gu_t
    dL/dW = 2**e sum_t gd_t^T s_{t-1}

(ku = (4095 - du)/4096, kv = (4096 - dv)/4096): gradients equal the reference's to float rounding.
The final state's current carries no gradient (the layers never read it).
"""

from __future__ import annotations

import functools

import torch

from neuromem.neurons.functional import buffers, neuron
from neuromem.neurons.surrogates import get_surrogate

try:
    import numpy as np

    from neuromem.neurons.functional import neuron_kernels
    from neuromem.neurons.functional.jit import inline_kernel, kernel, specialize
    from neuromem.neurons.functional.nonzero import nonzero_entries
except ImportError:  # pragma: no cover - numba comes with tonic
    kernel = None

surrogate_grad = None  # template global: one surrogate's compiled derivative
_row_backward = None  # template global: the backward row compiled with that surrogate

# c: (keep_u, keep_v, bias, threshold, limit, activation scale 64, recurrent scale 2**|e|)
KEEP_U, KEEP_V, BIAS, THRESHOLD, LIMIT, ACTIVATION, RECURRENT = range(7)


# ------------------------------------------------------------------ the numba kernels


def _row_forward_body(x, feedback, u, v, s, s_out, v_out, p_out, c, recurrent, floor_shift):
    # one row of step t; u, v, s: the row's state (updated in place), feedback: its s_{t-1} W^T
    keep_u, keep_v, bias, threshold = c[0], c[1], c[2], c[3]
    limit, activation_scale, recurrent_scale = c[4], c[5], c[6]
    two_limit = limit + limit
    v_limit = limit - 1.0
    for i in range(x.shape[0]):
        a = x[i]
        if recurrent:
            if floor_shift:
                a = a + np.floor(feedback[i] / recurrent_scale)
            else:
                a = a + feedback[i] * recurrent_scale
        raw = np.trunc(u[i] * keep_u) + a * activation_scale
        wrapped = raw - two_limit if raw > limit else raw
        wrapped = raw + two_limit if wrapped <= -limit else wrapped
        p = np.trunc(v[i] * keep_v) + wrapped + bias
        p = min(max(p, -v_limit), v_limit)
        spiked = p > threshold
        spike = 1.0 if spiked else 0.0
        voltage = 0.0 if spiked else p
        u[i] = wrapped
        p_out[i] = p
        s[i] = spike
        s_out[i] = spike
        v[i] = voltage
        v_out[i] = voltage


def _forward_kernel_body(inputs, weight_t, current, voltage, spike, spikes, voltages, pre, c, recurrent, floor_shift):
    # inputs, spikes, voltages, pre: (T, R, C); current, voltage, spike: the (R, C) state, updated in place.
    # With `recurrent`, row r's activation gains shift(s_{t-1}[r] @ W^T) (weight_t: (C, C)), summed over the
    # spiking inputs only; returns the spike count of steps 0..T-2 (the s_{t-1} of dL/dW).
    steps, rows, size = inputs.shape
    # the recurrent sums in weight_t's dtype: float32 where they are integers below 2**24 (exact, twice the lanes)
    feedback = np.zeros(size, dtype=weight_t.dtype)
    zero = weight_t.dtype.type(0.0)
    active = np.empty(size, dtype=np.int64)
    count = 0
    for t in range(steps):
        for r in range(rows):
            x, u, v, s = inputs[t, r], current[r], voltage[r], spike[r]
            if recurrent:
                feedback[:] = zero
                spiking = nonzero_entries(s, active)
                if t > 0:
                    count += spiking
                for j_index in range(spiking):
                    j = active[j_index]
                    value, weight_row = weight_t.dtype.type(s[j]), weight_t[j]
                    for k in range(size):
                        feedback[k] += value * weight_row[k]
            s_out, v_out, p_out = spikes[t, r], voltages[t, r], pre[t, r]
            # the mode tests outside the row loop: each call is inlined with constant flags
            if not recurrent:
                _row_forward(x, feedback, u, v, s, s_out, v_out, p_out, c, False, False)
            elif floor_shift:
                _row_forward(x, feedback, u, v, s, s_out, v_out, p_out, c, True, True)
            else:
                _row_forward(x, feedback, u, v, s, s_out, v_out, p_out, c, True, False)
    return count


def _row_backward_template(p_t, g_spikes, g_voltages, fb, g_out, gu_row, gp_row, c, sc,
                           has_grad_spikes, has_grad_voltages, with_feedback):
    # one row of step t (see `_backward_template`)
    keep_u, keep_v, threshold, activation_scale = c[0], c[1], c[3], c[5]
    for i in range(p_t.shape[0]):
        p = p_t[i]
        g_spike = 0.0
        if has_grad_spikes:
            g_spike = g_spikes[i]
        if with_feedback:
            g_spike += fb[i]
        g_voltage = keep_v * gp_row[i]
        if has_grad_voltages:
            g_voltage = g_voltages[i] + g_voltage
        g_pre = 0.0 if p > threshold else g_voltage
        g_pre += g_spike * surrogate_grad((p - threshold) / threshold, sc) / threshold
        gu = g_pre + keep_u * gu_row[i]
        gu_row[i] = gu
        gp_row[i] = g_pre
        g_out[i] = activation_scale * gu


def _backward_template(pre, grad_spikes, grad_voltages, feedback, grad_drive, grad_u, grad_p, c, sc,
                       has_grad_spikes, has_grad_voltages, fed, t_high, t_low):
    # Steps t_high down to t_low. grad_spikes / grad_voltages (T, R, C) are read only if given; feedback
    # (R, C): 2**e gd_{t+1} W, dL/ds_t through the recurrent drive of step t + 1, for the one step t_high
    # (`fed`). grad_u, grad_p (R, C) carry gu_{t+1} / gp_{t+1} between steps and calls (zero at the last
    # step); grad_drive (T, R, C) receives dL/da_t.
    steps, rows, size = pre.shape
    for t in range(t_high, t_low - 1, -1):
        with_feedback = fed and t == t_high
        for r in range(rows):
            p_t, g_s, g_v, fb = pre[t, r], grad_spikes[t, r], grad_voltages[t, r], feedback[r]
            g_out, gu, gp = grad_drive[t, r], grad_u[r], grad_p[r]
            # the common modes inlined with constant flags (hidden layers: spikes only; the readout: voltages only)
            if has_grad_spikes and not has_grad_voltages and not with_feedback:
                _row_backward(p_t, g_s, g_v, fb, g_out, gu, gp, c, sc, True, False, False)
            elif has_grad_spikes and not has_grad_voltages:
                _row_backward(p_t, g_s, g_v, fb, g_out, gu, gp, c, sc, True, False, True)
            elif has_grad_voltages and not has_grad_spikes and not with_feedback:
                _row_backward(p_t, g_s, g_v, fb, g_out, gu, gp, c, sc, False, True, False)
            else:
                _row_backward(p_t, g_s, g_v, fb, g_out, gu, gp, c, sc, has_grad_spikes, has_grad_voltages, with_feedback)


_row_forward = None  # the compiled row, a global of the forward kernel

if kernel is not None:
    _row_forward = inline_kernel(_row_forward_body)
    _forward_kernel = kernel(_forward_kernel_body)


@functools.lru_cache(maxsize=None)
def _backward_kernel(surrogate):
    row = specialize(_row_backward_template, f"loihi__{surrogate.name}", inline=True,
                     surrogate_grad=inline_kernel(surrogate.compiled_grad))
    return specialize(_backward_template, f"loihi__{surrogate.name}", _row_backward=row)


def constants(p, recurrent_exp: int = 0) -> tuple[float, ...]:
    from neuromem.neurons.functional.loihi import ACTIVATION_SHIFT, DECAY_UNITY, STATE_LIMIT

    return (
        (DECAY_UNITY - (p.du + 1)) / DECAY_UNITY, (DECAY_UNITY - p.dv) / DECAY_UNITY, float(p.effective_bias),
        float(p.effective_threshold), float(STATE_LIMIT), float(1 << ACTIVATION_SHIFT), float(1 << abs(recurrent_exp)),
    )


def kernels_apply(activations, recurrent_weight, state) -> bool:
    """Whether the compiled path runs: CPU float64 tensors, numba, the fast path on, no gradient into a given state."""
    if kernel is None or activations.dtype != torch.float64 or activations.dim() < 2:
        return False
    tensors = [activations] + ([recurrent_weight] if recurrent_weight is not None else [])
    if state is not None:
        if any(t.requires_grad for t in state) or any(t.shape != activations[0].shape for t in state):
            return False
        tensors += list(state)
    return neuron.compiled_kernels_apply(*tensors)


# ------------------------------------------------------------------ one autograd node per sequence


def sequence_forward(activations, recurrent_weight, state, p, recurrent_exp, out_dtype=torch.float64):
    """The forward kernel over (T, rows, N) activations: float64, or float32 holding integers below 2**24 (every
    value then exact, so the same arithmetic). `state`: (current, voltage, spikes) of the step before, not
    modified. Returns (spikes, voltages) in `out_dtype` (0/1 and integers below 2**23: exact in float32 too),
    the final current, and what `sequence_backward` needs: tensors (for `save_for_backward`: the pre-reset
    voltages, in float32, exact) and the rest."""
    steps = activations.shape[0]
    activations = activations.detach().contiguous()
    recurrent = recurrent_weight is not None
    c = constants(p, recurrent_exp)
    spikes, voltages = buffers.empty(activations.shape, out_dtype), buffers.empty(activations.shape, out_dtype)
    pre = buffers.empty(activations.shape, torch.float32)
    shape = (steps, -1, recurrent_weight.shape[0]) if recurrent else (steps, 1, -1)
    rows_shape = shape[1:]
    current0, voltage0, spikes0 = state
    current, voltage, spike = (t.detach().to(torch.float64).clone().contiguous() for t in (current0, voltage0, spikes0))
    weight_t = current.new_zeros(1, 1)
    if recurrent:
        # float32 holds every recurrent sum exactly while |w| <= 256 (8-bit weights, x2) and fan-in < 2**16 on
        # binary spikes (the state the kernel keeps); anything else: float64
        exact32 = recurrent_weight.shape[0] < (1 << 16) and bool(recurrent_weight.detach().abs().max() <= 256) and \
            bool(((spikes0 == 0) | (spikes0 == 1)).all())
        weight_t = recurrent_weight.detach().t().to(torch.float32 if exact32 else torch.float64).contiguous()
    previous_spikes = _forward_kernel(
        activations.numpy().reshape(shape), weight_t.numpy(), current.numpy().reshape(rows_shape),
        voltage.numpy().reshape(rows_shape), spike.numpy().reshape(rows_shape), spikes.numpy().reshape(shape),
        voltages.numpy().reshape(shape), pre.numpy().reshape(shape), c, recurrent, recurrent_exp < 0,
    )
    tensors = (pre, spikes if recurrent else None, recurrent_weight, spikes0 if recurrent else None)
    return spikes, voltages, current, (tensors, (previous_spikes, c, p.surrogate, float(p.surrogate_slope), recurrent_exp))


def sequence_backward(tensors, info, grad_spikes, grad_voltages, weight_grad: bool, grad_drive=None):
    """dL/d(activations) (float64, into `grad_drive` when given: a contiguous (T, rows, N) float64 view) and
    dL/d(recurrent weight) (or None) from what `sequence_forward` returned for the backward and the gradients
    of its spikes and voltages (None: zero), in float64 whatever their dtype (the same values)."""
    pre, spikes, weight, spikes0 = tensors
    previous_spikes, c, surrogate_name, slope, recurrent_exp = info
    surrogate = get_surrogate(surrogate_name)
    backward = _backward_kernel(surrogate)
    steps = pre.shape[0]
    recurrent = weight is not None
    size = weight.shape[0] if recurrent else None
    shape = (steps, -1, size) if recurrent else (steps, 1, -1)
    rows_shape = shape[1:]
    has_grad_spikes, has_grad_voltages = grad_spikes is not None, grad_voltages is not None
    grad_spikes = grad_spikes.detach().contiguous() if has_grad_spikes else pre
    grad_voltages = grad_voltages.detach().contiguous() if has_grad_voltages else pre
    if grad_drive is None:
        grad_drive = buffers.empty(pre.shape, torch.float64)
    grad_u, grad_p, feedback = (torch.zeros(pre[0].shape, dtype=torch.float64) for _ in range(3))
    surrogate_constants = tuple(float(v) for v in surrogate.constants(slope))
    arrays = (
        pre.numpy().reshape(shape), grad_spikes.numpy().reshape(shape), grad_voltages.numpy().reshape(shape),
        feedback.numpy().reshape(rows_shape), grad_drive.numpy().reshape(shape),
        grad_u.numpy().reshape(rows_shape), grad_p.numpy().reshape(rows_shape),
        c, surrogate_constants, has_grad_spikes, has_grad_voltages,
    )
    scale = 2.0 ** recurrent_exp
    if not recurrent:
        backward(*arrays, False, steps - 1, 0)
    else:
        weight_matrix = weight.detach().contiguous() * scale  # exact: a power of two
        step_grads, feedback_2d = grad_drive.view(steps, -1, size), feedback.view(-1, size)
        for t in range(steps - 1, -1, -1):
            if t < steps - 1:
                torch.mm(step_grads[t + 1], weight_matrix, out=feedback_2d)
            backward(*arrays, t < steps - 1, t, t)
    grad_weight = None
    if recurrent and weight_grad:
        spikes = spikes.to(torch.float64)  # the products and sums in float64, as before (0/1: the same values)
        previous, grads = spikes[:-1].reshape(-1, size), grad_drive[1:].reshape(-1, size)
        if previous_spikes < neuron._SPARSE_OUTER_DENSITY * previous.numel():
            grad_weight_t = grad_drive.new_zeros(size, size)
            neuron_kernels.spike_outer_kernel(previous.numpy(), grads.numpy(), grad_weight_t.numpy())
            grad_weight = grad_weight_t.t().contiguous()
        else:
            grad_weight = grads.t() @ previous
        spikes0 = spikes0.to(torch.float64)
        grad_weight = (grad_weight + grad_drive[0].reshape(-1, size).t() @ spikes0.reshape(-1, size)) * scale
    return grad_drive, grad_weight


class _LoihiSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, activations, recurrent_weight, current0, voltage0, spikes0, p, recurrent_exp):
        ctx.set_materialize_grads(False)
        spikes, voltages, current, (tensors, ctx.info) = sequence_forward(
            activations, recurrent_weight, (current0, voltage0, spikes0), p, recurrent_exp)
        ctx.save_for_backward(*tensors)
        ctx.mark_non_differentiable(current)
        return spikes, voltages, current

    @staticmethod
    def backward(ctx, grad_spikes, grad_voltages, _grad_current):
        grad_drive, grad_weight = sequence_backward(ctx.saved_tensors, ctx.info, grad_spikes, grad_voltages,
                                                    ctx.needs_input_grad[1])
        return grad_drive, grad_weight, None, None, None, None, None


def loihi_fast_sequence(activations, p, recurrent_weight=None, recurrent_exp=0, state=None):
    """`loihi_sequence` in the numba kernels (callers check `kernels_apply` first); same returns."""
    from neuromem.neurons.functional.loihi import LoihiState

    if state is None:
        zeros = activations.new_zeros(activations[0].shape)
        state = LoihiState(zeros, zeros, zeros)
    spikes, voltages, current = _LoihiSequence.apply(
        activations, recurrent_weight, state.current, state.voltage, state.spikes, p, int(recurrent_exp),
    )
    return spikes, voltages, LoihiState(current, voltages[-1], spikes[-1])
