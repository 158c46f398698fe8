"""The numba loops of the neuron sequence, written once for every neuron model.

Each function below is a template (`jit.specialize`): its globals `charge`,
`threshold`, `aux_update`, `leak`, `drive_decay` (one model's `MembraneDynamics`,
see `neuromem.neurons.models`), `surrogate_grad` (one surrogate's compiled
derivative) and the flags `HAS_AUX`, `FILTERED`, `ADAPTIVE` are fixed per
(model, surrogate) pair at compile time: `forward_kernels(model)` and
`backward_kernels(model, surrogate)` return that pair's compiled set, cached
in memory and on disk. Mode flags that vary per call (reset, first or last step,
which gradients are given) are tested outside the inner loops, so LLVM
vectorises each loop (they reach the inlined model functions as constants).

Layout: sequences are (T, R, C) (R rows of C neurons); per-row state (R, C).
Forward step t reads v_{t-1} back from the membranes it wrote and recomputes
s_{t-1} = [v_{t-1} > threshold(aux_{t-1})] (the test that produced it), so only
the outputs are written per step. Step 0 starts from the given state, whose
spikes need not match its membranes. `aux` (R, C) holds the aux trace (updated in
place: it ends as the final one); `aux_trace` (T, R, C) receives every aux_t for
adaptive models (their backward reads the threshold from it), else it is a
(1, 1, 1) placeholder, as `aux` is for models without an aux trace. The float
operations are the reference step's, in its order (no fastmath, no fused
multiply-add), so forward values are bit for bit equal to it.
"""

from __future__ import annotations

import functools

import numpy as np

from neuromem.neurons.functional.jit import inline_kernel, kernel, specialize
from neuromem.neurons.functional.nonzero import nonzero_entries

# ------------------------------------------------------------------ template globals (placeholders)
HAS_AUX = FILTERED = ADAPTIVE = False
charge = threshold = aux_update = leak = drive_decay = surrogate_grad = None
_row_step = _row_forward = _row_backward = None


# ------------------------------------------------------------------ forward


def _row_step_template(x, v_prev, s_prev, aux, aux_out, v_out, s_out, c, zero_reset, first):
    # one row of step t; first: s_{t-1} read from s_prev (the initial state), else recomputed
    one = x.dtype.type(1.0)
    zero = x.dtype.type(0.0)
    for i in range(x.shape[0]):
        v_before = v_prev[i]
        a_before = aux[i] if HAS_AUX else zero
        if first:
            s_before = s_prev[i]
        else:
            s_before = one if v_before > threshold(a_before, c) else zero
        a = zero
        if HAS_AUX:
            a = aux_update(a_before, x[i], s_before, c)
            aux[i] = a
            if ADAPTIVE:
                aux_out[i] = a
        v = charge(x[i], v_before, s_before, a, c, zero_reset)
        v_out[i] = v
        s_out[i] = one if v > threshold(a, c) else zero


def _row_forward_template(x, v_prev, s_prev, aux, aux_out, v_out, s_out, c, zero_reset, first):
    # the mode tests outside the loop: each call below is inlined with constant flags
    if zero_reset:
        if first:
            _row_step(x, v_prev, s_prev, aux, aux_out, v_out, s_out, c, True, True)
        else:
            _row_step(x, v_prev, s_prev, aux, aux_out, v_out, s_out, c, True, False)
    elif first:
        _row_step(x, v_prev, s_prev, aux, aux_out, v_out, s_out, c, False, True)
    else:
        _row_step(x, v_prev, s_prev, aux, aux_out, v_out, s_out, c, False, False)


def _forward_template(inputs, aux, membrane, spike, spikes, membranes, aux_trace, c, zero_reset):
    # Without a recurrent weight: inputs, spikes, membranes (T, R, C); membrane, spike (R, C) initial state
    steps, rows = inputs.shape[0], inputs.shape[1]
    for t in range(steps):
        for r in range(rows):
            a_out = aux_trace[t, r] if ADAPTIVE else aux_trace[0, 0]
            a_row = aux[r] if HAS_AUX else aux[0]
            if t == 0:
                _row_forward(inputs[t, r], membrane[r], spike[r], a_row, a_out, membranes[t, r], spikes[t, r], c, zero_reset, True)
            else:
                _row_forward(
                    inputs[t, r], membranes[t - 1, r], spike[r], a_row, a_out, membranes[t, r], spikes[t, r], c, zero_reset,
                    False,
                )


def _recurrent_forward_template(inputs, weight_t, aux, membrane, spike, spikes, membranes, aux_trace, c, zero_reset):
    # inputs, spikes, membranes: (T, R, C); aux, membrane, spike: (R, C) state, updated in place.
    # Row r's drive gains s_{t-1}[r] @ W^T (weight_t: (C, C)), summed over the spiking inputs only
    # (a spike is exactly 1, so the products are exact and only the order of the sum differs from a
    # dense matmul). Returns the spike count of steps 0..T-2 (the s_{t-1} of dL/dW: backward picks
    # the sparse or dense weight gradient by it without another pass over the spikes).
    one = inputs.dtype.type(1.0)
    zero = inputs.dtype.type(0.0)
    steps, rows, size = inputs.shape
    feedback = np.zeros(size, dtype=inputs.dtype)
    active = np.empty(size, dtype=np.int64)
    count = 0
    for t in range(steps):
        for r in range(rows):
            feedback[:] = zero
            spike_row = spike[r]  # s_{t-1}
            spiking = nonzero_entries(spike_row, active)
            if t > 0:
                count += spiking
            for j_index in range(spiking):
                j = active[j_index]
                weight, weight_row = spike_row[j], weight_t[j]
                for k in range(size):
                    feedback[k] += weight * weight_row[k]
            # one fused loop over the (R, C) state
            for i in range(size):
                drive = inputs[t, r, i] + feedback[i]
                s_before = spike[r, i]
                a = zero
                if HAS_AUX:
                    a = aux_update(aux[r, i], drive, s_before, c)
                    aux[r, i] = a
                    if ADAPTIVE:
                        aux_trace[t, r, i] = a
                v = charge(drive, membrane[r, i], s_before, a, c, zero_reset)
                s = one if v > threshold(a, c) else zero
                membranes[t, r, i] = v
                spikes[t, r, i] = s
                membrane[r, i] = v
                spike[r, i] = s
    return count


# ------------------------------------------------------------------ backward
# With h_t = surrogate'(v_t - threshold_t) and k_t = leak(s_t) = dv_{t+1}/dv_t:
#   gs_t = dL/ds_t + gd_{t+1} W  (recurrent term only with W)
#   gv_t = dL/dv_t + h_t gs_t + k_t gv_{t+1}
#   gd_t = gv_t  |  FILTERED: gi_t = gv_t + decay gi_{t+1}, gd_t = gi_t
# Spikes are recomputed as v_t > threshold_t (exactly the forward's test).


def _row_backward_template(v_t, a_t, g_spikes, g_next, g_out, last, c, sc, zero_reset):
    # One row of the unfiltered backward with only dL/ds: gd_t = h_t dL/ds_t + k_t gd_{t+1}
    # (no k term at the last step); a_t: the row's aux trace (adaptive models), else unused.
    one = v_t.dtype.type(1.0)
    zero = v_t.dtype.type(0.0)
    size = v_t.shape[0]
    if last:
        for i in range(size):
            g_out[i] = g_spikes[i] * surrogate_grad(v_t[i] - threshold(a_t[i] if ADAPTIVE else zero, c), sc)
    elif zero_reset:
        for i in range(size):
            theta = threshold(a_t[i] if ADAPTIVE else zero, c)
            g = g_spikes[i] * surrogate_grad(v_t[i] - theta, sc)
            g_out[i] = g + leak(one if v_t[i] > theta else zero, c, True) * g_next[i]
    else:
        for i in range(size):
            h = surrogate_grad(v_t[i] - threshold(a_t[i] if ADAPTIVE else zero, c), sc)
            g_out[i] = g_spikes[i] * h + leak(zero, c, False) * g_next[i]


def _spike_backward_template(membranes, aux_trace, grad_spikes, grad_drive, c, sc, zero_reset):
    # The common case on its own: unfiltered, no recurrent weight, only dL/ds_t given
    steps, rows = membranes.shape[0], membranes.shape[1]
    for t in range(steps - 1, -1, -1):
        last = t == steps - 1
        for r in range(rows):
            g_next = grad_drive[t, r] if last else grad_drive[t + 1, r]  # not read at the last step
            a_t = aux_trace[t, r] if ADAPTIVE else aux_trace[0, 0]
            _row_backward(membranes[t, r], a_t, grad_spikes[t, r], g_next, grad_drive[t, r], last, c, sc, zero_reset)


def _general_backward_template(
    membranes, aux_trace, grad_spikes, grad_membranes, feedback, grad_drive, grad_v, grad_i,
    c, sc, has_grad_spikes, has_grad_membranes, zero_reset, has_feedback, t_high, t_low,
):
    # Steps t_high down to t_low. membranes, grad_spikes, grad_membranes: (T, R, C) (the gradients
    # only read if flagged); feedback (R, C): dL/ds_t through the recurrent drive at t + 1, for the
    # one step t_high (the caller computes it with torch's matmul); grad_drive (T, R, C) receives
    # dL/d(drive_t). FILTERED only: grad_v (R, C) carries gv_{t+1} between calls and ends as gv_0,
    # grad_i (R, C) starts as dL/d(final aux) and ends as gi_0. Unfiltered, gv_t is gd_t, read back
    # from grad_drive.
    one = membranes.dtype.type(1.0)
    zero = membranes.dtype.type(0.0)
    steps, rows, size = membranes.shape
    for t in range(t_high, t_low - 1, -1):
        last = t == steps - 1
        fed = has_feedback and t == t_high
        for r in range(rows):
            v_t, g_out = membranes[t, r], grad_drive[t, r]
            a_t = aux_trace[t, r] if ADAPTIVE else aux_trace[0, 0]
            g_spikes, g_membranes, fb = grad_spikes[t, r], grad_membranes[t, r], feedback[r]
            g_next = grad_v[r] if FILTERED or last else grad_drive[t + 1, r]
            for i in range(size):
                v = v_t[i]
                theta = threshold(a_t[i] if ADAPTIVE else zero, c)
                h = surrogate_grad(v - theta, sc)
                g = zero
                if has_grad_spikes:
                    g = g_spikes[i] * h
                if fed:
                    g += h * fb[i]
                if has_grad_membranes:
                    g += g_membranes[i]
                if not last:
                    g += leak(one if v > theta else zero, c, zero_reset) * g_next[i]
                g_out[i] = g
            if FILTERED:
                decay = drive_decay(c)
                g_current = grad_i[r]
                for i in range(size):
                    g = g_out[i]
                    grad_v[r, i] = g
                    g = g + decay * g_current[i] if not last else g + g_current[i]
                    g_current[i] = g
                    g_out[i] = g


def _add_to_spiking_rows_template(spike_row, grads, out, active):
    # out[j] += s_j * grads for every spiking j of spike_row (a term of (dL/dW)^T); active: scratch
    for a in range(nonzero_entries(spike_row, active)):
        j = active[a]
        s, out_row = spike_row[j], out[j]
        for k in range(grads.shape[0]):
            out_row[k] += s * grads[k]


_add_to_spiking_rows = kernel(_add_to_spiking_rows_template)


def _recurrent_step_template(
    membranes, aux_trace, grad_spikes, spikes, feedback, grad_drive, grad_weight_t, active,
    c, sc, zero_reset, t, fed, accumulate,
):
    # Step t of the unfiltered recurrent backward, only dL/ds given (the common recurrent case):
    # gd_t = h_t (dL/ds_t + fb) + k_t gd_{t+1}. With `accumulate` (sparse spikes) the weight
    # gradient dL/dW^T[j] += gd_t[r] for s_{t-1}[r, j] = 1 is summed here, while gd_t is in cache.
    one = membranes.dtype.type(1.0)
    zero = membranes.dtype.type(0.0)
    steps, rows, size = membranes.shape
    for r in range(rows):
        v_t, g_spikes, fb, g_out = membranes[t, r], grad_spikes[t, r], feedback[r], grad_drive[t, r]
        a_t = aux_trace[t, r] if ADAPTIVE else aux_trace[0, 0]
        for i in range(size):
            g_out[i] = surrogate_grad(v_t[i] - threshold(a_t[i] if ADAPTIVE else zero, c), sc)
        if fed:
            for i in range(size):
                h = g_out[i]
                g_out[i] = g_spikes[i] * h + h * fb[i]
        else:
            for i in range(size):
                g_out[i] = g_spikes[i] * g_out[i]
        if t < steps - 1:
            g_next = grad_drive[t + 1, r]
            if zero_reset:
                for i in range(size):
                    s = one if v_t[i] > threshold(a_t[i] if ADAPTIVE else zero, c) else zero
                    g_out[i] += leak(s, c, True) * g_next[i]
            else:
                for i in range(size):
                    g_out[i] += leak(zero, c, False) * g_next[i]
        if accumulate and t >= 1:
            _add_to_spiking_rows(spikes[t - 1, r], g_out, grad_weight_t, active)


@kernel
def spike_outer_kernel(spikes, grads, out):
    # out (C, C) += sum_r spikes[r, j] * grads[r, :] over the spiking j only: (dL/dW)^T
    # = sum_t s_{t-1}^T gd_t, rows of out are contiguous for the 1-d adds.
    active = np.empty(spikes.shape[1], dtype=np.int64)
    for r in range(spikes.shape[0]):
        _add_to_spiking_rows(spikes[r], grads[r], out, active)


# ------------------------------------------------------------------ per-model compiled sets


class Kernels:
    """One (model[, surrogate]) pair's compiled kernels, as attributes."""

    def __init__(self, **kernels) -> None:
        self.__dict__.update(kernels)


# stand-ins for the pieces a model lacks (called only in branches its flags rule out)
@inline_kernel
def _no_aux_update(aux, drive, s, c):
    return aux


@inline_kernel
def _no_drive_decay(c):
    return c[0]


def _model_globals(model) -> dict:
    d = model.dynamics
    return dict(
        HAS_AUX=d.aux_update is not None, FILTERED=d.drive_decay is not None, ADAPTIVE=d.adaptive,
        charge=inline_kernel(d.charge), threshold=inline_kernel(d.threshold), leak=inline_kernel(d.leak),
        aux_update=inline_kernel(d.aux_update) if d.aux_update is not None else _no_aux_update,
        drive_decay=inline_kernel(d.drive_decay) if d.drive_decay is not None else _no_drive_decay,
    )


@functools.lru_cache(maxsize=None)
def forward_kernels(model) -> Kernels:
    """The forward kernels of a template model (`model.dynamics`); the surrogate plays no part."""
    names = _model_globals(model)
    suffix = model.name
    row_step = specialize(_row_step_template, suffix, inline=True, **names)
    row_forward = specialize(_row_forward_template, suffix, inline=True, _row_step=row_step, **names)
    return Kernels(
        row_forward=row_forward,
        forward=specialize(_forward_template, suffix, _row_forward=row_forward, **names),
        recurrent_forward=specialize(_recurrent_forward_template, suffix, **names),
    )


@functools.lru_cache(maxsize=None)
def backward_kernels(model, surrogate) -> Kernels:
    """The backward kernels of a template model with one surrogate (a `Surrogate` entry)."""
    names = dict(_model_globals(model), surrogate_grad=inline_kernel(surrogate.compiled_grad))
    suffix = f"{model.name}__{surrogate.name}"
    row_backward = specialize(_row_backward_template, suffix, inline=True, **names)
    recurrent_step = specialize(_recurrent_step_template, suffix, **names)
    return Kernels(
        row_backward=row_backward,
        spike_backward=specialize(_spike_backward_template, suffix, _row_backward=row_backward, **names),
        general_backward=specialize(_general_backward_template, suffix, **names),
        recurrent_step=recurrent_step,
    )
