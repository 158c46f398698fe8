"""Leaky integrate-and-fire neurons as pure functions (after Norse's functional core).

Parameters are small immutable records; `*_step` advances one time step;
`*_sequence` runs a whole (T, batch, ...) sequence in one call, which is the
one place where speed work on the time loop lives.

Dynamics (snnTorch's `Leaky` / `Synaptic`, reset computed from the previous step):

    LIF:   v_t = beta * v_{t-1} + x_t - theta * s_{t-1}              (reset="subtract")
           v_t = beta * (1 - s_{t-1}) * v_{t-1} + x_t                 (reset="zero")
    CUBA:  i_t = alpha * i_{t-1} + x_t ; v_t as LIF with x_t -> i_t
           s_t = H(v_t - theta)

The reset term uses a detached spike, as snnTorch does, so gradients flow only
through the membrane path and the surrogate of the spike non-linearity.

Two implementations of every sequence function live here:
- the *reference* path (`*_sequence_reference`): a Python loop over `*_step`,
  autograd records every step. Short and obviously right.
- the *fast* path (default): one autograd node per sequence. The forward loop
  runs without recording a graph, writing into preallocated (T, ...) buffers;
  the backward through time is written out by hand (see `_SpikingSequence`).
  On CPU both loops are numba kernels (no per-step dispatch; the surrogate is
  fused into the backward pass, which recomputes spikes from membranes; the
  recurrent input s_{t-1} W^T is summed over the spiking inputs only; the
  (T, ...) buffers are allocated on huge pages); elsewhere (GPU, no numba) a
  torch loop runs.
  Spikes equal the reference path's. Membranes are bit for bit equal without a
  recurrent weight (same float operations in the same order, no fused
  multiply-add); with one, the recurrent sum runs in another order, so they
  agree to float rounding. Gradients agree to float rounding.
`reference_core()` switches every caller back to the reference path (tests,
benchmarks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import contextlib
from typing import Iterator

import torch

from neuromem.neurons.functional import blas, buffers
from neuromem.neurons.functional.surrogate import heaviside_surrogate, surrogate_grad

Reset = Literal["subtract", "zero"]


@dataclass(frozen=True)
class LIFParameters:
    beta: float = 0.9  # membrane decay per time step
    threshold: float = 1.0
    reset: Reset = "subtract"
    # SuperSpike's fast sigmoid at slope 5: on SHD-shaped data it trains far faster than
    # snnTorch's default atan(alpha=2), whose gradient is too flat below threshold
    surrogate: str = "fast_sigmoid"
    surrogate_slope: float = 5.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must lie in [0, 1], got {self.beta}")
        if self.reset not in ("subtract", "zero"):
            raise ValueError(f"reset must be 'subtract' or 'zero', got {self.reset!r}")


@dataclass(frozen=True)
class CUBAParameters(LIFParameters):
    alpha: float = 0.8  # synaptic current decay per time step

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")


class LIFState(NamedTuple):
    membrane: torch.Tensor
    spikes: torch.Tensor


class CUBAState(NamedTuple):
    current: torch.Tensor
    membrane: torch.Tensor
    spikes: torch.Tensor


def _integrate(membrane: torch.Tensor, drive: torch.Tensor, spikes_prev: torch.Tensor, p: LIFParameters) -> torch.Tensor:
    reset = spikes_prev.detach()
    if p.reset == "subtract":
        return p.beta * membrane + drive - reset * p.threshold
    return p.beta * (1.0 - reset) * membrane + drive


def lif_step(x: torch.Tensor, state: LIFState, p: LIFParameters) -> tuple[torch.Tensor, LIFState]:
    membrane = _integrate(state.membrane, x, state.spikes, p)
    spikes = heaviside_surrogate(membrane - p.threshold, p.surrogate, p.surrogate_slope)
    return spikes, LIFState(membrane, spikes)


def cuba_step(x: torch.Tensor, state: CUBAState, p: CUBAParameters) -> tuple[torch.Tensor, CUBAState]:
    current = p.alpha * state.current + x
    membrane = _integrate(state.membrane, current, state.spikes, p)
    spikes = heaviside_surrogate(membrane - p.threshold, p.surrogate, p.surrogate_slope)
    return spikes, CUBAState(current, membrane, spikes)


def initial_lif_state(like: torch.Tensor) -> LIFState:
    zeros = torch.zeros_like(like)
    return LIFState(zeros, zeros)


def initial_cuba_state(like: torch.Tensor) -> CUBAState:
    zeros = torch.zeros_like(like)
    return CUBAState(zeros, zeros, zeros)


_FAST_PATH = True


@contextlib.contextmanager
def reference_core() -> Iterator[None]:
    """Within this block, sequence functions (and spiking layers) use the step-by-step reference path."""
    global _FAST_PATH
    previous, _FAST_PATH = _FAST_PATH, False
    try:
        yield
    finally:
        _FAST_PATH = previous


def fast_path_enabled() -> bool:
    return _FAST_PATH


# ---------------------------------------------------------------- reference path


def lif_sequence_reference(
    inputs: torch.Tensor,
    p: LIFParameters,
    recurrent_weight: torch.Tensor | None = None,
    state: LIFState | None = None,
    return_membrane: bool = False,
) -> tuple[torch.Tensor, LIFState] | tuple[torch.Tensor, LIFState, torch.Tensor]:
    state = state if state is not None else initial_lif_state(inputs[0])
    spikes_out, membranes = [], []
    for x in inputs:
        if recurrent_weight is not None:
            x = x + state.spikes @ recurrent_weight.t()
        spikes, state = lif_step(x, state, p)
        spikes_out.append(spikes)
        if return_membrane:
            membranes.append(state.membrane)
    spikes_seq = torch.stack(spikes_out)
    if return_membrane:
        return spikes_seq, state, torch.stack(membranes)
    return spikes_seq, state


def cuba_sequence_reference(
    inputs: torch.Tensor,
    p: CUBAParameters,
    recurrent_weight: torch.Tensor | None = None,
    state: CUBAState | None = None,
) -> tuple[torch.Tensor, CUBAState]:
    state = state if state is not None else initial_cuba_state(inputs[0])
    spikes_out = []
    for x in inputs:
        if recurrent_weight is not None:
            x = x + state.spikes @ recurrent_weight.t()
        spikes, state = cuba_step(x, state, p)
        spikes_out.append(spikes)
    return torch.stack(spikes_out), state


def leaky_integrator_sequence_reference(inputs: torch.Tensor, beta: float) -> torch.Tensor:
    membrane = torch.zeros_like(inputs[0])
    out = []
    for x in inputs:
        membrane = beta * membrane + x
        out.append(membrane)
    return torch.stack(out)


# ---------------------------------------------------------------- fast path


# Compiled CPU kernels (numba, already installed with tonic): the feed-forward
# neuron loop with no per-step dispatch. They run exactly the float operations of
# the torch loop below (no fastmath, so no fused multiply-add: same rounding), so
# forward values stay bit-for-bit equal to the reference path. Without numba or on
# GPUs the torch loop runs instead.
try:
    import numba as _numba
    import numpy as np

    from neuromem.neurons.functional.nonzero import nonzero_entries
except ImportError:  # pragma: no cover - numba comes with tonic
    _numba = None

if _numba is not None:
    from neuromem.neurons.functional.jit import kernel as _kernel

    @_kernel
    def _lif_row_first(x, v_prev, s_prev, v_out, s_out, beta, threshold, zero_reset):
        # One row of LIF step 0, from the given initial state (its spikes need not match its membranes).
        one = x.dtype.type(1.0)
        zero = x.dtype.type(0.0)
        for i in range(x.shape[0]):
            if zero_reset:
                v = (one - s_prev[i]) * beta * v_prev[i] + x[i]
            else:
                v = beta * v_prev[i] + x[i] - s_prev[i] * threshold
            v_out[i] = v
            s_out[i] = one if v > threshold else zero

    @_kernel
    def _lif_row_forward(x, v_prev, v_out, s_out, beta, threshold, zero_reset):
        # One row of LIF step t > 0: v_{t-1} read back from the membranes written at t - 1 and
        # s_{t-1} = [v_{t-1} > theta] recomputed (the same test that produced it), so only two
        # streams are written per step; mode tests outside the loops: LLVM vectorises them.
        one = x.dtype.type(1.0)
        zero = x.dtype.type(0.0)
        if zero_reset:
            for i in range(x.shape[0]):
                v_before = v_prev[i]
                s_before = one if v_before > threshold else zero
                v = (one - s_before) * beta * v_before + x[i]
                v_out[i] = v
                s_out[i] = one if v > threshold else zero
        else:
            for i in range(x.shape[0]):
                v_before = v_prev[i]
                s_before = one if v_before > threshold else zero
                v = beta * v_before + x[i] - s_before * threshold
                v_out[i] = v
                s_out[i] = one if v > threshold else zero

    @_kernel
    def _surrogate_slope(x, one, slope, half_slope, atan_scale, atan):
        # d spike / d v at v - theta = x: atan (snnTorch's ATan) or the fast sigmoid; the constants
        # come in the membranes' dtype (a float64 literal here would widen float32 arithmetic)
        if atan:
            u = atan_scale * x
            return half_slope / (one + u * u)
        d = slope * abs(x) + one
        return one / (d * d)

    @_kernel
    def _lif_row_backward(v_t, g_spikes, g_next, g_out, last, beta, threshold, slope, atan, zero_reset):
        # One row of the feedforward LIF backward: gd_t = h_t dL/ds_t + k_t gd_{t+1} (no k term at
        # the last step). One loop per mode, no flag tests inside: they vectorise fully.
        one = v_t.dtype.type(1.0)
        zero = v_t.dtype.type(0.0)
        half_slope = slope * v_t.dtype.type(0.5)
        atan_scale = v_t.dtype.type(1.5707963267948966) * slope
        size = v_t.shape[0]
        if last:
            for i in range(size):
                g_out[i] = g_spikes[i] * _surrogate_slope(v_t[i] - threshold, one, slope, half_slope, atan_scale, atan)
        elif zero_reset:  # k_t = (1 - s_t) beta, s_t recomputed as in the forward
            for i in range(size):
                g = g_spikes[i] * _surrogate_slope(v_t[i] - threshold, one, slope, half_slope, atan_scale, atan)
                g_out[i] = g + ((one - (one if v_t[i] > threshold else zero)) * beta) * g_next[i]
        else:
            for i in range(size):
                h = _surrogate_slope(v_t[i] - threshold, one, slope, half_slope, atan_scale, atan)
                g_out[i] = g_spikes[i] * h + beta * g_next[i]

    @_kernel
    def _neuron_forward_kernel(
        inputs, current, membrane, spike, spikes, membranes, alpha, beta, threshold, cuba, zero_reset,
    ):
        # Without a recurrent weight. inputs, spikes, membranes: (T, R, C); current, membrane,
        # spike: (R, C) initial state (current is updated in place: it ends as the final current).
        # Step t reads v_{t-1} back from the membranes it wrote and recomputes s_{t-1} = [v_{t-1} >
        # theta] (the same test that produced it), so only two streams are written per step; the
        # inner loops run over 1-d row views with the mode tests hoisted out: LLVM vectorises them.
        steps, rows, size = inputs.shape
        for t in range(steps):
            for r in range(rows):
                x, v_out, s_out = inputs[t, r], membranes[t, r], spikes[t, r]
                if cuba:
                    c_state = current[r]
                    for i in range(size):
                        c_state[i] = alpha * c_state[i] + x[i]
                    x = c_state
                if t == 0:
                    _lif_row_first(x, membrane[r], spike[r], v_out, s_out, beta, threshold, zero_reset)
                else:
                    _lif_row_forward(x, membranes[t - 1, r], v_out, s_out, beta, threshold, zero_reset)

    @_kernel
    def _add_to_spiking_rows(spike_row, grads, out, active):
        # out[j] += s_j * grads for every spiking j of spike_row (a term of (dL/dW)^T); active: scratch
        for a in range(nonzero_entries(spike_row, active)):
            j = active[a]
            s, out_row = spike_row[j], out[j]
            for k in range(grads.shape[0]):
                out_row[k] += s * grads[k]

    @_kernel
    def _recurrent_forward_kernel(
        inputs, weight_t, current, membrane, spike, spikes, membranes,
        alpha, beta, threshold, cuba, zero_reset,
    ):
        # inputs, spikes, membranes: (T, R, C); current, membrane, spike: (R, C) initial state,
        # updated in place. Row r's drive gains s_{t-1}[r] @ W^T (weight_t: (C, C)),
        # summed over the spiking inputs only (spikes are sparse; a spike is exactly 1, so the
        # products are exact and only the order of the sum differs from a dense matmul).
        # Returns the spike count of steps 0..T-2 (the s_{t-1} of dL/dW; backward picks the
        # sparse or dense weight gradient by it without another pass over the spikes).
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
                for a in range(spiking):
                    j = active[a]
                    weight, weight_row = spike_row[j], weight_t[j]
                    for k in range(size):
                        feedback[k] += weight * weight_row[k]
                # one fused loop over the (R, C) state: measured faster here than row calls
                # reading v_{t-1} back from the outputs (1.6 vs 2.3 ms, SHD shape, no spikes)
                for i in range(size):
                    drive = inputs[t, r, i] + feedback[i]
                    if cuba:
                        current[r, i] = alpha * current[r, i] + drive
                        drive = current[r, i]
                    if zero_reset:
                        v = (one - spike[r, i]) * beta * membrane[r, i] + drive
                    else:
                        v = beta * membrane[r, i] + drive - spike[r, i] * threshold
                    s = one if v > threshold else zero
                    membranes[t, r, i] = v
                    spikes[t, r, i] = s
                    membrane[r, i] = v
                    spike[r, i] = s
        return count

    @_kernel
    def _neuron_backward_kernel(
        membranes, grad_spikes, grad_membranes, feedback, grad_drive, grad_v, grad_i,
        alpha, beta, threshold, slope, atan, has_grad_spikes, has_grad_membranes, cuba, zero_reset,
        has_feedback, t_high, t_low,
    ):
        # Steps t_high down to t_low. membranes, grad_spikes, grad_membranes: (T, R, C) (the
        # gradients only read if flagged); feedback (R, C): dL/ds_t through the recurrent drive
        # at t + 1, for the one step t_high (the caller computes it with torch's matmul: BLAS
        # inside numba competes with torch's threads); grad_drive (T, R, C) receives
        # dL/d(drive_t). CUBA only: grad_v (R, C) carries gv_{t+1} between calls and ends as
        # gv_0, grad_i (R, C) starts as dL/d(final current) and ends as gi_0. For LIF gv_t is
        # gd_t, read back from grad_drive (no state traffic). Spikes are recomputed as
        # v_t > theta (exactly the forward's test), so they need not be saved. The surrogate
        # is fused in (one pass instead of five torch passes).
        one = membranes.dtype.type(1.0)
        zero = membranes.dtype.type(0.0)
        half_slope = slope * membranes.dtype.type(0.5)
        atan_scale = membranes.dtype.type(1.5707963267948966) * slope
        steps, rows, size = membranes.shape
        for t in range(t_high, t_low - 1, -1):
            last = t == steps - 1
            fed = has_feedback and t == t_high
            for r in range(rows):
                v_t, g_out = membranes[t, r], grad_drive[t, r]
                g_spikes, g_membranes, fb = grad_spikes[t, r], grad_membranes[t, r], feedback[r]
                g_next = grad_v[r] if cuba or last else grad_drive[t + 1, r]
                for i in range(size):
                    v = v_t[i]
                    x = v - threshold
                    if atan:
                        u = atan_scale * x
                        h = half_slope / (one + u * u)
                    else:
                        d = slope * abs(x) + one
                        h = one / (d * d)
                    g = zero
                    if has_grad_spikes:
                        g = g_spikes[i] * h
                    if fed:
                        g += h * fb[i]
                    if has_grad_membranes:
                        g += g_membranes[i]
                    if not last:
                        if zero_reset:  # k_t = (1 - s_t) beta
                            g += ((one - (one if v > threshold else zero)) * beta) * g_next[i]
                        else:
                            g += beta * g_next[i]
                    g_out[i] = g
                if cuba:
                    g_current = grad_i[r]
                    for i in range(size):
                        g = g_out[i]
                        grad_v[r, i] = g
                        g = g + alpha * g_current[i] if not last else g + g_current[i]
                        g_current[i] = g
                        g_out[i] = g

    @_kernel
    def _lif_backward_kernel(membranes, grad_spikes, grad_drive, beta, threshold, slope, atan, zero_reset):
        # The common case on its own: LIF, no recurrent weight, only dL/ds_t given. Then
        # gd_t = gv_t = h_t dL/ds_t + k_t gd_{t+1}, row by row (N-MNIST conv1 shape: 17.5 -> 13.2 ms
        # without the general kernel's flag tests, same values bit for bit).
        steps, rows, size = membranes.shape
        for t in range(steps - 1, -1, -1):
            last = t == steps - 1
            for r in range(rows):
                g_next = grad_drive[t, r] if last else grad_drive[t + 1, r]  # not read at the last step
                _lif_row_backward(
                    membranes[t, r], grad_spikes[t, r], g_next, grad_drive[t, r], last,
                    beta, threshold, slope, atan, zero_reset,
                )

    @_kernel
    def _recurrent_lif_step_kernel(
        membranes, grad_spikes, spikes, feedback, grad_drive, grad_weight_t, active,
        beta, threshold, slope, atan, zero_reset, t, fed, accumulate,
    ):
        # Step t of the backward of LIF with a recurrent weight, only dL/ds given (the common
        # recurrent case, without the general kernel's flag tests): gd_t = h_t (dL/ds_t + fb)
        # + k_t gd_{t+1}, in the general kernel's operation order. With `accumulate` (sparse
        # spikes) the weight gradient dL/dW^T[j] += gd_t[r] for s_{t-1}[r, j] = 1 is summed here,
        # while gd_t is in cache, instead of in a pass of its own after the loop.
        one = membranes.dtype.type(1.0)
        zero = membranes.dtype.type(0.0)
        half_slope = slope * membranes.dtype.type(0.5)
        atan_scale = membranes.dtype.type(1.5707963267948966) * slope
        steps, rows, size = membranes.shape
        for r in range(rows):
            v_t, g_spikes, fb, g_out = membranes[t, r], grad_spikes[t, r], feedback[r], grad_drive[t, r]
            if atan:
                for i in range(size):
                    u = atan_scale * (v_t[i] - threshold)
                    g_out[i] = half_slope / (one + u * u)
            else:
                for i in range(size):
                    d = slope * abs(v_t[i] - threshold) + one
                    g_out[i] = one / (d * d)
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
                        g_out[i] += ((one - (one if v_t[i] > threshold else zero)) * beta) * g_next[i]
                else:
                    for i in range(size):
                        g_out[i] += beta * g_next[i]
            if accumulate and t >= 1:
                _add_to_spiking_rows(spikes[t - 1, r], g_out, grad_weight_t, active)

    @_kernel
    def _recurrent_lif_backward_kernel(
        membranes, grad_spikes, spikes, feedback, grad_drive, grad_weight_t, active, weight,
        beta, threshold, slope, atan, zero_reset, accumulate, gemm, sizes, scalars, no_transpose,
    ):
        # The whole backward of `_recurrent_lif_step_kernel`'s case in one call: per step the
        # feedback gd_{t+1} W (BLAS, the library torch.mm runs) and the step itself.
        steps = membranes.shape[0]
        for t in range(steps - 1, -1, -1):
            if t < steps - 1:
                blas.row_major_product(gemm, grad_drive[t + 1], weight, feedback, sizes, scalars, no_transpose)
            _recurrent_lif_step_kernel(
                membranes, grad_spikes, spikes, feedback, grad_drive, grad_weight_t, active,
                beta, threshold, slope, atan, zero_reset, t, t < steps - 1, accumulate,
            )

    @_kernel
    def _spike_outer_kernel(spikes, grads, out):
        # out (C, C) += sum_r spikes[r, j] * grads[r, :] over the spiking j only: (dL/dW)^T
        # = sum_t s_{t-1}^T gd_t, rows of out are contiguous for the 1-d adds.
        active = np.empty(spikes.shape[1], dtype=np.int64)
        for r in range(spikes.shape[0]):
            _add_to_spiking_rows(spikes[r], grads[r], out, active)

    @_kernel
    def _leaky_forward_kernel(inputs, beta, out):
        size = inputs.shape[1]
        for i in range(size):
            out[0, i] = beta * inputs.dtype.type(0.0) + inputs[0, i]
        for t in range(1, inputs.shape[0]):
            for i in range(size):
                out[t, i] = beta * out[t - 1, i] + inputs[t, i]

    @_kernel
    def _leaky_backward_kernel(grad_out, beta, grad_inputs):
        steps = grad_out.shape[0]
        for i in range(grad_out.shape[1]):
            grad_inputs[steps - 1, i] = grad_out[steps - 1, i]
        for t in range(steps - 2, -1, -1):
            for i in range(grad_out.shape[1]):
                grad_inputs[t, i] = grad_out[t, i] + beta * grad_inputs[t + 1, i]


def _compiled(*tensors: torch.Tensor) -> bool:
    """Whether the numba kernels can run on these tensors (CPU, float32/64, one dtype)."""
    if _numba is None or not _FAST_PATH:
        return False
    dtype = tensors[0].dtype
    return dtype in (torch.float32, torch.float64) and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)


def _as_array(tensor: torch.Tensor, rows: int | None = None):
    """A writable numpy view (no copy) of a contiguous CPU tensor, as (rows, -1) or flat."""
    array = tensor.detach().numpy()
    return array.reshape(rows, -1) if rows is not None else array.reshape(-1)


# Below this spike density the recurrent dL/dW is summed over the spiking entries only
# (numba) instead of a dense matmul: 100 x 64 x 256 (SHD), one thread, the dense
# product takes 6.0 ms at any density; the sparse sum 3.4 ms at 2%, 4.5 ms at 5%,
# 6.6 ms at 10%; within a backward the break-even measured ~7-8%.
_SPARSE_OUTER_DENSITY = 0.07


class _SpikingSequence(torch.autograd.Function):
    """LIF (alpha is None) or CUBA over a whole sequence, one autograd node.

    Forward, per step t (drive d_t = x_t [+ s_{t-1} W^T]; CUBA: i_t = alpha i_{t-1} + d_t, d_t <- i_t):
        v_t = beta v_{t-1} + d_t - theta s_{t-1}        (subtract)
        v_t = beta (1 - s_{t-1}) v_{t-1} + d_t           (zero)
        s_t = [v_t > theta]
    Backward, with h_t = surrogate'(v_t - theta) and the reset spike detached
    (so dv_{t+1}/dv_t = k_t = beta, or beta (1 - s_t) for zero reset):
        gs_t = dL/ds_t + gd_{t+1} W                       (recurrent term only with W)
        gv_t = dL/dv_t + h_t gs_t + k_t gv_{t+1}
        gd_t = gv_t  (LIF)   |   gi_t = gv_t + alpha gi_{t+1}, gd_t = gi_t  (CUBA)
        dL/dW = sum_t gd_t^T s_{t-1},  dL/dx_t = gd_t
    Only the membranes are kept for backward (T B N floats; the numba backward
    recomputes s_t = [v_t > theta] exactly, and keeps the spikes only for dL/dW)
    instead of the ~8 tensors per step autograd keeps for the reference loop.
    """

    @staticmethod
    def forward(ctx, inputs, recurrent_weight, current0, membrane0, spikes0, alpha, beta, threshold, zero_reset, surrogate, slope):
        steps = inputs.shape[0]
        inputs = inputs.contiguous()
        ctx.set_materialize_grads(False)
        ctx.options = (alpha, beta, threshold, zero_reset, surrogate, slope)
        state = [t for t in (current0, membrane0, spikes0) if t is not None]
        recurrent = recurrent_weight is not None
        ctx.compiled = _compiled(inputs, *state, *([recurrent_weight] if recurrent else [])) and all(
            t.numel() == inputs[0].numel() for t in state
        )
        if ctx.compiled:
            spikes, membranes = buffers.empty(inputs.shape, inputs.dtype), buffers.empty(inputs.shape, inputs.dtype)
            dtype = np.dtype(str(inputs.dtype).removeprefix("torch.")).type
            shape = (steps, -1, recurrent_weight.shape[0]) if recurrent else (steps, 1, -1)
            rows_shape = shape[1:]
            current = current0.detach().clone().contiguous() if alpha is not None else inputs.new_zeros(inputs[0].shape)
            membrane = membrane0.detach().clone().contiguous()
            spike = spikes0.detach().clone().contiguous()
            arrays = (
                current.numpy().reshape(rows_shape), membrane.numpy().reshape(rows_shape),
                spike.numpy().reshape(rows_shape), spikes.numpy().reshape(shape), membranes.numpy().reshape(shape),
                dtype(alpha or 0.0), dtype(beta), dtype(threshold), alpha is not None, zero_reset,
            )
            if recurrent:
                weight_t = recurrent_weight.detach().t().contiguous()
                ctx.previous_spikes = _recurrent_forward_kernel(inputs.detach().numpy().reshape(shape), weight_t.numpy(), *arrays)
            else:
                _neuron_forward_kernel(inputs.detach().numpy().reshape(shape), *arrays)
            # the backward kernel recomputes spikes from membranes; only dL/dW needs them
            ctx.save_for_backward(membranes, spikes if recurrent else None, recurrent_weight, spikes0)
            if alpha is not None:
                return spikes, membranes, current.view_as(current0)
            return spikes, membranes
        spikes, membranes = torch.empty_like(inputs), torch.empty_like(inputs)
        weight_t = recurrent_weight.t() if recurrent_weight is not None else None
        current, membrane, spike = current0, membrane0, spikes0
        for t in range(steps):
            drive = inputs[t]
            if weight_t is not None:
                drive = drive + spike @ weight_t
            if alpha is not None:
                current = alpha * current + drive
                drive = current
            out = membranes[t]
            if zero_reset:
                # same float ops as beta * (1 - s) * v + d in the reference step
                torch.mul((1.0 - spike).mul_(beta), membrane, out=out)
                out.add_(drive)
            else:
                torch.mul(membrane, beta, out=out)
                out.add_(drive)
                out.sub_(spike, alpha=threshold)
            # v > theta is exactly (v - theta) > 0 in floating point
            torch.gt(out, threshold, out=spikes[t])
            membrane, spike = out, spikes[t]
        ctx.save_for_backward(membranes, spikes, recurrent_weight, spikes0)
        if alpha is not None:
            return spikes, membranes, current
        return spikes, membranes

    @staticmethod
    def backward(ctx, grad_spikes, grad_membranes, grad_current=None):
        membranes, spikes, weight, spikes0 = ctx.saved_tensors
        alpha, beta, threshold, zero_reset, surrogate, slope = ctx.options
        steps = membranes.shape[0]
        recurrent = weight is not None
        if ctx.compiled:
            return _SpikingSequence._compiled_backward(ctx, grad_spikes, grad_membranes, grad_current)
        surrogate_slopes = surrogate_grad(surrogate, membranes - threshold, slope, inplace=True)
        # `grad_drive` starts as the part of gv_t known before the loop, dL/dv_t + h_t dL/ds_t,
        # and is overwritten step by step (from the end) with dL/d(drive_t): one (T, ...) buffer.
        if grad_spikes is None:
            grad_drive = torch.zeros_like(membranes)
        elif recurrent:
            grad_drive = grad_spikes * surrogate_slopes  # h_t is needed again in the loop
        else:
            grad_drive = surrogate_slopes.mul_(grad_spikes)
        if grad_membranes is not None:
            grad_drive.add_(grad_membranes)
        decay = (1.0 - spikes).mul_(beta) if zero_reset else None
        grad_v_next = grad_i_next = None
        for t in range(steps - 1, -1, -1):
            grad_v = grad_drive[t]
            if grad_v_next is not None:
                if recurrent:
                    grad_v.addcmul_(surrogate_slopes[t], grad_drive[t + 1] @ weight)
                if zero_reset:
                    grad_v.addcmul_(decay[t], grad_v_next)
                else:
                    grad_v.add_(grad_v_next, alpha=beta)
            if alpha is not None:
                # grad_drive[t] becomes gi_t; gv_t is kept aside for the next (earlier) step
                grad_v = grad_v.clone()
                if grad_i_next is not None:
                    grad_drive[t].add_(grad_i_next, alpha=alpha)
                elif grad_current is not None:
                    grad_drive[t].add_(grad_current)
                grad_i_next = grad_drive[t]
            grad_v_next = grad_v

        grad_weight = grad_current0 = grad_membrane0 = grad_spikes0 = None
        if recurrent and ctx.needs_input_grad[1]:
            previous_spikes = torch.cat([spikes0.unsqueeze(0), spikes[:-1]])
            size = weight.shape[0]
            grad_weight = grad_drive.reshape(-1, size).t() @ previous_spikes.reshape(-1, size)
        if alpha is not None and ctx.needs_input_grad[2]:
            grad_current0 = grad_drive[0] * alpha
        if ctx.needs_input_grad[3]:
            grad_membrane0 = grad_v_next * ((1.0 - spikes0) * beta if zero_reset else beta)
        if recurrent and ctx.needs_input_grad[4]:
            grad_spikes0 = grad_drive[0] @ weight
        return (grad_drive, grad_weight, grad_current0, grad_membrane0, grad_spikes0) + (None,) * 6


    @staticmethod
    def _compiled_backward(ctx, grad_spikes, grad_membranes, grad_current):
        """The whole backward through time in one numba pass (BLAS for the recurrent matmul)."""
        membranes, spikes, weight, spikes0 = ctx.saved_tensors  # spikes only with a weight
        alpha, beta, threshold, zero_reset, surrogate, slope = ctx.options
        if surrogate not in ("atan", "fast_sigmoid"):
            surrogate_grad(surrogate, membranes[:1], slope)  # raises the error naming the valid surrogates
        steps = membranes.shape[0]
        recurrent = weight is not None
        shape = (steps, -1, weight.shape[0]) if recurrent else (steps, 1, -1)
        rows_shape = shape[1:]
        dtype = np.dtype(str(membranes.dtype).removeprefix("torch.")).type
        has_grad_spikes, has_grad_membranes = grad_spikes is not None, grad_membranes is not None
        grad_spikes = grad_spikes.detach().contiguous() if has_grad_spikes else membranes
        grad_membranes = grad_membranes.detach().contiguous() if has_grad_membranes else membranes
        grad_drive = buffers.empty(membranes.shape, membranes.dtype)
        grad_v = membranes.new_zeros(membranes[0].shape)
        grad_i = (
            grad_current.detach().clone().contiguous()
            if grad_current is not None
            else membranes.new_zeros(membranes[0].shape)
        )
        arrays = (
            membranes.numpy().reshape(shape), grad_spikes.numpy().reshape(shape), grad_membranes.numpy().reshape(shape),
        )
        outputs = (grad_drive.numpy().reshape(shape), grad_v.numpy().reshape(rows_shape), grad_i.numpy().reshape(rows_shape))
        options = (
            dtype(alpha or 0.0), dtype(beta), dtype(threshold), dtype(slope), surrogate == "atan",
            has_grad_spikes, has_grad_membranes, alpha is not None, zero_reset,
        )
        accumulated_weight_grad = None
        if not recurrent and alpha is None and has_grad_spikes and not has_grad_membranes:
            _lif_backward_kernel(
                arrays[0], arrays[1], outputs[0], dtype(beta), dtype(threshold), dtype(slope), surrogate == "atan", zero_reset
            )
        elif not recurrent:  # the whole sequence in one call
            _neuron_backward_kernel(*arrays, grad_v.numpy().reshape(rows_shape), *outputs, *options, False, steps - 1, 0)
        elif alpha is None and has_grad_spikes and not has_grad_membranes:  # recurrent LIF, the common case
            size = weight.shape[0]
            accumulate = ctx.needs_input_grad[1] and ctx.previous_spikes < _SPARSE_OUTER_DENSITY * spikes[:-1].numel()
            grad_weight_t = membranes.new_zeros(size, size) if accumulate else membranes.new_zeros(1, 1)
            feedback = membranes.new_zeros(grad_v.shape)
            feedback_array = feedback.numpy().reshape(rows_shape)
            weight_matrix = weight.detach().contiguous()
            step_arrays = (
                arrays[0], arrays[1], spikes.numpy().reshape(shape), feedback_array, outputs[0], grad_weight_t.numpy(),
                np.empty(size, dtype=np.int64),  # scratch: the spiking entries of a row
            )
            step_options = (dtype(beta), dtype(threshold), dtype(slope), surrogate == "atan", zero_reset)
            gemm = blas.gemm_for(membranes.dtype)
            if gemm is not None:  # the whole loop in one numba call
                product = blas.row_major_product_arguments(feedback_array.shape[0], size, size, membranes.dtype)
                _recurrent_lif_backward_kernel(
                    *step_arrays, weight_matrix.numpy(), *step_options, accumulate, gemm, *product
                )
            else:
                step_grads, feedback_2d = grad_drive.view(steps, -1, size), feedback.view(-1, size)  # views made once
                for t in range(steps - 1, -1, -1):
                    if t < steps - 1:
                        torch.mm(step_grads[t + 1], weight_matrix, out=feedback_2d)
                    _recurrent_lif_step_kernel(*step_arrays, *step_options, t, t < steps - 1, accumulate)
            if accumulate:
                accumulated_weight_grad = grad_weight_t.t().contiguous()
        else:  # one call per step, the feedback matmul in torch between them
            feedback = membranes.new_zeros(grad_v.shape)
            feedback_array = feedback.numpy().reshape(rows_shape)
            weight = weight.detach()
            for t in range(steps - 1, -1, -1):
                if t < steps - 1:
                    torch.mm(grad_drive[t + 1].reshape(-1, weight.shape[0]), weight, out=feedback.view(-1, weight.shape[0]))
                _neuron_backward_kernel(*arrays, feedback_array, *outputs, *options, t < steps - 1, t, t)
        grad_weight = grad_current0 = grad_membrane0 = grad_spikes0 = None
        if recurrent and ctx.needs_input_grad[1]:
            # sum_t gd_t^T s_{t-1} without materialising the shifted spike sequence
            size = weight.shape[0]
            previous, grads = spikes[:-1].reshape(-1, size), grad_drive[1:].reshape(-1, size)
            if accumulated_weight_grad is not None:  # summed inside the step kernel
                grad_weight = accumulated_weight_grad
            elif ctx.previous_spikes < _SPARSE_OUTER_DENSITY * previous.numel():
                grad_weight_t = membranes.new_zeros(size, size)
                _spike_outer_kernel(previous.numpy(), grads.numpy(), grad_weight_t.numpy())
                grad_weight = grad_weight_t.t().contiguous()
            else:
                grad_weight = grads.t() @ previous
            grad_weight += grad_drive[0].reshape(-1, size).t() @ spikes0.reshape(-1, size)
        if alpha is not None and ctx.needs_input_grad[2]:
            grad_current0 = grad_drive[0] * alpha
        if ctx.needs_input_grad[3]:
            grad_v0 = grad_v if alpha is not None else grad_drive[0]  # LIF: gv_0 = gd_0
            grad_membrane0 = grad_v0 * ((1.0 - spikes0) * beta if zero_reset else beta)
        if recurrent and ctx.needs_input_grad[4]:
            grad_spikes0 = grad_drive[0] @ weight
        return (grad_drive, grad_weight, grad_current0, grad_membrane0, grad_spikes0) + (None,) * 6


class _LeakyIntegratorSequence(torch.autograd.Function):
    """v_t = beta v_{t-1} + x_t for all t; backward is the reverse scan g_x_t = g_t + beta g_x_{t+1}."""

    @staticmethod
    def forward(ctx, inputs, beta):
        ctx.beta = beta
        if _compiled(inputs):
            inputs = inputs.contiguous()
            out = torch.empty_like(inputs)
            dtype = np.dtype(str(inputs.dtype).removeprefix("torch."))
            _leaky_forward_kernel(_as_array(inputs, inputs.shape[0]), dtype.type(beta), _as_array(out, out.shape[0]))
            return out
        out = torch.empty_like(inputs)
        membrane = torch.zeros_like(inputs[0])
        for t in range(inputs.shape[0]):
            torch.mul(membrane, beta, out=out[t])
            out[t].add_(inputs[t])
            membrane = out[t]
        ctx.beta = beta
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if _compiled(grad_out):
            grad_out = grad_out.contiguous()
            grad_inputs = torch.empty_like(grad_out)
            dtype = np.dtype(str(grad_out.dtype).removeprefix("torch."))
            steps = grad_out.shape[0]
            _leaky_backward_kernel(_as_array(grad_out, steps), dtype.type(ctx.beta), _as_array(grad_inputs, steps))
            return grad_inputs, None
        grad_inputs = torch.empty_like(grad_out)
        grad_inputs[-1] = grad_out[-1]
        for t in range(grad_out.shape[0] - 2, -1, -1):
            torch.add(grad_out[t], grad_inputs[t + 1], alpha=ctx.beta, out=grad_inputs[t])
        return grad_inputs, None


def _options(p: LIFParameters) -> tuple:
    return float(p.beta), float(p.threshold), p.reset == "zero", p.surrogate, float(p.surrogate_slope)


def lif_sequence(
    inputs: torch.Tensor,
    p: LIFParameters,
    recurrent_weight: torch.Tensor | None = None,
    state: LIFState | None = None,
    return_membrane: bool = False,
) -> tuple[torch.Tensor, LIFState] | tuple[torch.Tensor, LIFState, torch.Tensor]:
    """Run LIF over a whole sequence.

    inputs: (T, batch, ...) input currents, already projected (the synaptic
    matmul is hoisted out of the time loop by the caller). If `recurrent_weight`
    (out, out) is given, s_{t-1} @ W^T is added to the drive at step t.
    Returns spikes (T, batch, ...) and the final state (and membranes if asked).
    """
    if not _FAST_PATH:
        return lif_sequence_reference(inputs, p, recurrent_weight, state, return_membrane)
    state = state if state is not None else initial_lif_state(inputs[0])
    spikes, membranes = _SpikingSequence.apply(
        inputs, recurrent_weight, None, state.membrane, state.spikes, None, *_options(p)
    )
    final = LIFState(membranes[-1], spikes[-1])
    if return_membrane:
        return spikes, final, membranes
    return spikes, final


def cuba_sequence(
    inputs: torch.Tensor,
    p: CUBAParameters,
    recurrent_weight: torch.Tensor | None = None,
    state: CUBAState | None = None,
) -> tuple[torch.Tensor, CUBAState]:
    """Current-based LIF over a whole (T, batch, ...) sequence; see `lif_sequence`."""
    if not _FAST_PATH:
        return cuba_sequence_reference(inputs, p, recurrent_weight, state)
    state = state if state is not None else initial_cuba_state(inputs[0])
    spikes, membranes, current = _SpikingSequence.apply(
        inputs, recurrent_weight, state.current, state.membrane, state.spikes, float(p.alpha), *_options(p)
    )
    return spikes, CUBAState(current, membranes[-1], spikes[-1])


def leaky_integrator_sequence(inputs: torch.Tensor, beta: float) -> torch.Tensor:
    """Non-spiking leaky readout v_t = beta * v_{t-1} + x_t over (T, batch, ...); returns all v_t."""
    if not _FAST_PATH:
        return leaky_integrator_sequence_reference(inputs, beta)
    return _LeakyIntegratorSequence.apply(inputs, float(beta))
