"""Neuron sequences for every registered neuron model, from its one definition.

`neuron_sequence(model, inputs, p, ...)` runs a whole (T, batch, ...) sequence.
Which path runs comes from the model's registry entry (`neuromem.neurons.models`),
never from the type or a field of `p`:

- the *reference* path (`reference_core()`, or a model outside the template without
  a fast path of its own): a Python loop over the model's step; autograd records
  every step. Short and obviously right: the test oracle.
- a model outside the template may bring a fast path of its own (the registry
  entry's `sequence`, e.g. SE-adLIF's, Loihi's fixed-point kernels in
  `loihi_kernels.py`): it runs in place of the reference loop.
- the *fast* path (template models): one autograd node per sequence. The forward
  loop runs without recording a graph; the backward through time is written out
  once for all models (see `_NeuronSequence`) from the model's derivative pieces.
  On CPU both loops are numba kernels (`neuron_kernels.py`, compiled per model and
  surrogate; the surrogate is fused into the backward, which recomputes spikes from
  membranes; the recurrent input s_{t-1} W^T is summed over the spiking inputs
  only); on CUDA with Triton, kernels generated from the model's pieces
  (`neuromem.neurons.fused_gpu`: the whole T-step forward and backward each one
  launch); elsewhere (no numba, no Triton) the torch loop runs: a pure per-step
  function of the model's pieces (`torch_loop_step`).

Spikes equal the reference path's. Membranes are bit for bit equal without a
recurrent weight (the same model functions, so the same float operations in the
same order, no fused multiply-add); with one, the recurrent sum runs in another
order, so they agree to float rounding. Gradients agree to float rounding.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from neuromem.neurons.functional import buffers
from neuromem.neurons.functional.surrogate import heaviside_surrogate, surrogate_grad
from neuromem.neurons.surrogates import get_surrogate
from neuromem.precision import full_precision

try:
    import numba as _numba
    import numpy as np

    from neuromem.neurons.functional import neuron_kernels
except ImportError:  # numba is a dependency; without it the torch loop runs
    _numba = None

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


def compiled_kernels_apply(*tensors: torch.Tensor) -> bool:
    """Whether the numba kernels can run on these tensors (CPU, float32/64, one dtype)."""
    if _numba is None or not _FAST_PATH:
        return False
    dtype = tensors[0].dtype
    return dtype in (torch.float32, torch.float64) and all(t.device.type == "cpu" and t.dtype == dtype for t in tensors)


# ---------------------------------------------------------------- the reference step, from the template


def _make_state(model, aux, membrane, spikes):
    if model.aux_field is None:
        return model.state(membrane=membrane, spikes=spikes)
    return model.state(**{model.aux_field: aux, "membrane": membrane, "spikes": spikes})


def template_step(model):
    """The reference step (x, state, p) -> (spikes, state) of a template model."""
    d = model.dynamics

    def step(x: torch.Tensor, state, p) -> tuple[torch.Tensor, Any]:
        c = d.constants(p)
        s_prev = state.spikes.detach()  # the reset (and any adaptation) sees the detached spike
        aux = None
        if d.aux_update is not None:
            aux_prev = getattr(state, model.aux_field)
            aux = d.aux_update(aux_prev.detach() if d.adaptive else aux_prev, x, s_prev, c)
        membrane = d.charge(x, state.membrane, s_prev, aux, c, p.reset == "zero")
        spikes = heaviside_surrogate(membrane - d.threshold(aux, c), p.surrogate, p.surrogate_slope)
        return spikes, _make_state(model, aux, membrane, spikes)

    step.__name__ = step.__qualname__ = f"{model.name}_step"
    step.__doc__ = f"One reference step of the {model.name!r} neuron model (generated from its dynamics)."
    return step


def template_initial_state(model):
    def initial_state(like: torch.Tensor):
        zeros = torch.zeros_like(like)
        return model.state(*([zeros] * len(model.state._fields)))

    initial_state.__name__ = f"initial_{model.name}_state"
    return initial_state


def reference_sequence(model, inputs, p, recurrent_weight=None, state=None, return_membrane=False):
    """The step-by-step loop (autograd through every step) of any registered model."""
    state = state if state is not None else model.initial_state(inputs[0])
    spikes_out, membranes = [], []
    for x in inputs:
        if recurrent_weight is not None:
            x = x + state.spikes @ recurrent_weight.t()
        spikes, state = model.step(x, state, p)
        spikes_out.append(spikes)
        if return_membrane:
            membranes.append(_membrane_of(state))
    spikes_seq = torch.stack(spikes_out)
    if return_membrane:
        return spikes_seq, state, torch.stack(membranes)
    return spikes_seq, state


def _membrane_of(state):
    return state.membrane if hasattr(state, "membrane") else state[1]  # Loihi: (current, voltage, spikes)


# ---------------------------------------------------------------- the fast path


def torch_loop_step(dynamics, drive, membrane, spike, aux, c, zero_reset):
    """One step of the torch loop: a pure function of tensors (no graph is recorded around it)."""
    if dynamics.aux_update is not None:
        aux = dynamics.aux_update(aux, drive, spike, c)
    membrane = dynamics.charge(drive, membrane, spike, aux, c, zero_reset)
    spike = (membrane > dynamics.threshold(aux, c)).to(membrane.dtype)
    return membrane, spike, aux


# Below this spike density the recurrent dL/dW is summed over the spiking entries only
# (numba) instead of a dense matmul (break-even measured ~7-8%: benchmarks/README.md).
_SPARSE_OUTER_DENSITY = 0.07



def kernel_layout(membranes, weight, c, surrogate, slope) -> tuple:
    """What the numba backward kernels read besides the tensors: the (T, rows, columns) view of a sequence
    (columns = neurons with a recurrent weight), its rows' shape, the numpy scalar type, and the model's and
    surrogate's constants in it."""
    steps = membranes.shape[0]
    shape = (steps, -1, weight.shape[0]) if weight is not None else (steps, 1, -1)
    dtype = buffers._numpy_dtype(membranes.dtype).type
    return (shape, shape[1:], dtype, tuple(dtype(value) for value in c),
            tuple(dtype(value) for value in surrogate.constants(slope)))

class _NeuronSequence(torch.autograd.Function):
    """A template model over a whole sequence, one autograd node.

    Forward, per step t (drive d_t = x_t [+ s_{t-1} W^T]): the model's aux_update,
    charge and threshold (see `neuromem.neurons.models`).
    Backward, with h_t = surrogate'(v_t - threshold_t) and the reset spike detached
    (k_t = leak(s_t) = dv_{t+1}/dv_t):
        gs_t = dL/ds_t + gd_{t+1} W                       (recurrent term only with W)
        gv_t = dL/dv_t + h_t gs_t + k_t gv_{t+1}
        gd_t = gv_t   |   drive filtered by aux: gi_t = gv_t + decay gi_{t+1}, gd_t = gi_t
        dL/dW = sum_t gd_t^T s_{t-1},  dL/dx_t = gd_t
    Only the membranes (and an adaptive model's aux trace) are kept for backward; the
    numba backward recomputes s_t = [v_t > threshold_t] exactly, and keeps the spikes
    only for dL/dW.
    """

    @staticmethod
    def forward(ctx, inputs, recurrent_weight, aux0, membrane0, spikes0, model, constants, zero_reset, surrogate, slope):
        d = model.dynamics
        has_aux = d.aux_update is not None
        steps = inputs.shape[0]
        inputs = inputs.contiguous()
        ctx.set_materialize_grads(False)
        ctx.options = (model, constants, zero_reset, surrogate, slope)
        state = [t for t in (aux0, membrane0, spikes0) if t is not None]
        recurrent = recurrent_weight is not None
        ctx.compiled = compiled_kernels_apply(inputs, *state, *([recurrent_weight] if recurrent else [])) and all(
            t.numel() == inputs[0].numel() for t in state
        )
        if ctx.compiled:
            kernels = neuron_kernels.forward_kernels(model)
            spikes, membranes = buffers.empty(inputs.shape, inputs.dtype), buffers.empty(inputs.shape, inputs.dtype)
            dtype = buffers._numpy_dtype(inputs.dtype).type
            shape = (steps, -1, recurrent_weight.shape[0]) if recurrent else (steps, 1, -1)
            rows_shape = shape[1:]
            aux = aux0.detach().clone().contiguous() if has_aux else inputs.new_zeros(1, 1)
            aux_trace = buffers.empty(inputs.shape, inputs.dtype) if d.adaptive else inputs.new_zeros(1, 1, 1)
            membrane = membrane0.detach().clone().contiguous()
            spike = spikes0.detach().clone().contiguous()
            arrays = (
                aux.numpy().reshape(rows_shape) if has_aux else aux.numpy(),
                membrane.numpy().reshape(rows_shape), spike.numpy().reshape(rows_shape),
                spikes.numpy().reshape(shape), membranes.numpy().reshape(shape),
                aux_trace.numpy().reshape(shape) if d.adaptive else aux_trace.numpy(),
                tuple(dtype(value) for value in constants), zero_reset,
            )
            if recurrent:
                weight_t = recurrent_weight.detach().t().contiguous()
                ctx.previous_spikes = kernels.recurrent_forward(inputs.detach().numpy().reshape(shape), weight_t.numpy(), *arrays)
            else:
                kernels.forward(inputs.detach().numpy().reshape(shape), *arrays)
            # the backward kernel recomputes spikes from membranes; only dL/dW needs them
            ctx.save_for_backward(
                membranes, spikes if recurrent else None, recurrent_weight, spikes0, aux_trace if d.adaptive else None
            )
        else:
            spikes, membranes = torch.empty_like(inputs), torch.empty_like(inputs)
            aux_trace = torch.empty_like(inputs) if d.adaptive else None
            weight_t = recurrent_weight.detach().t() if recurrent else None
            aux = aux0.detach() if has_aux else None
            membrane, spike = membrane0.detach(), spikes0.detach()
            for t in range(steps):
                drive = inputs[t] if weight_t is None else inputs[t] + spike @ weight_t
                membrane, spike, aux = torch_loop_step(d, drive, membrane, spike, aux, constants, zero_reset)
                membranes[t], spikes[t] = membrane, spike
                if d.adaptive:
                    aux_trace[t] = aux
            ctx.save_for_backward(membranes, spikes, recurrent_weight, spikes0, aux_trace)
        if not has_aux:
            return spikes, membranes
        final_aux = aux.view_as(aux0) if ctx.compiled else aux
        if d.adaptive:  # the threshold carries no gradient
            ctx.mark_non_differentiable(final_aux)
        return spikes, membranes, final_aux

    @staticmethod
    def backward(ctx, grad_spikes, grad_membranes, grad_aux=None):
        if ctx.compiled:
            return _NeuronSequence._compiled_backward(ctx, grad_spikes, grad_membranes, grad_aux)
        membranes, spikes, weight, spikes0, aux_trace = ctx.saved_tensors
        model, c, zero_reset, surrogate, slope = ctx.options
        d = model.dynamics
        filtered = d.drive_decay is not None
        steps = membranes.shape[0]
        recurrent = weight is not None
        surrogate_slopes = surrogate_grad(surrogate, membranes - d.threshold(aux_trace, c), slope, inplace=True)
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
        leak = d.leak(spikes, c, zero_reset)  # a tensor (T, ...) or one float
        decay = d.drive_decay(c) if filtered else None
        grad_v_next = grad_i_next = None
        for t in range(steps - 1, -1, -1):
            grad_v = grad_drive[t]
            if grad_v_next is not None:
                if recurrent:
                    grad_v.addcmul_(surrogate_slopes[t], grad_drive[t + 1] @ weight)
                if isinstance(leak, torch.Tensor):
                    grad_v.addcmul_(leak[t], grad_v_next)
                else:
                    grad_v.add_(grad_v_next, alpha=leak)
            if filtered:
                # grad_drive[t] becomes gi_t; gv_t is kept aside for the next (earlier) step
                grad_v = grad_v.clone()
                if grad_i_next is not None:
                    grad_drive[t].add_(grad_i_next, alpha=decay)
                elif grad_aux is not None:
                    grad_drive[t].add_(grad_aux)
                grad_i_next = grad_drive[t]
            grad_v_next = grad_v

        grad_weight = grad_aux0 = grad_membrane0 = grad_spikes0 = None
        if recurrent and ctx.needs_input_grad[1]:
            previous_spikes = torch.cat([spikes0.unsqueeze(0), spikes[:-1]])
            size = weight.shape[0]
            grad_weight = grad_drive.reshape(-1, size).t() @ previous_spikes.reshape(-1, size)
        if filtered and ctx.needs_input_grad[2]:
            grad_aux0 = grad_drive[0] * decay
        if ctx.needs_input_grad[3]:
            grad_membrane0 = grad_v_next * d.leak(spikes0, c, zero_reset)
        if recurrent and ctx.needs_input_grad[4]:
            grad_spikes0 = grad_drive[0] @ weight
        return (grad_drive, grad_weight, grad_aux0, grad_membrane0, grad_spikes0) + (None,) * 5

    @staticmethod
    def _compiled_backward(ctx, grad_spikes, grad_membranes, grad_aux):
        """The whole backward through time in numba (the recurrent feedback product in torch between steps)."""
        membranes, spikes, weight, spikes0, aux_trace = ctx.saved_tensors  # spikes only with a weight
        model, c, zero_reset, surrogate_name, slope = ctx.options
        d = model.dynamics
        filtered = d.drive_decay is not None
        surrogate = get_surrogate(surrogate_name)
        kernels = neuron_kernels.backward_kernels(model, surrogate)
        steps = membranes.shape[0]
        recurrent = weight is not None
        shape, rows_shape, dtype, constants, surrogate_constants = kernel_layout(membranes, weight, c, surrogate, slope)
        trace = aux_trace.numpy().reshape(shape) if aux_trace is not None else np.zeros((1, 1, 1), dtype=dtype)
        has_grad_spikes, has_grad_membranes = grad_spikes is not None, grad_membranes is not None
        grad_spikes = grad_spikes.detach().contiguous() if has_grad_spikes else membranes
        grad_membranes = grad_membranes.detach().contiguous() if has_grad_membranes else membranes
        grad_drive = buffers.empty(membranes.shape, membranes.dtype)
        grad_v = membranes.new_zeros(membranes[0].shape)
        grad_i = (
            grad_aux.detach().clone().contiguous() if grad_aux is not None else membranes.new_zeros(membranes[0].shape)
        )
        membranes_array, grad_spikes_array = membranes.numpy().reshape(shape), grad_spikes.numpy().reshape(shape)
        grad_drive_array = grad_drive.numpy().reshape(shape)
        general = (
            membranes_array, trace, grad_spikes_array, grad_membranes.numpy().reshape(shape),
        )
        state_outputs = (grad_drive_array, grad_v.numpy().reshape(rows_shape), grad_i.numpy().reshape(rows_shape))
        options = (constants, surrogate_constants, has_grad_spikes, has_grad_membranes, zero_reset)
        spikes_only = not filtered and has_grad_spikes and not has_grad_membranes
        accumulated_weight_grad = None
        if not recurrent and spikes_only:
            kernels.spike_backward(membranes_array, trace, grad_spikes_array, grad_drive_array, constants, surrogate_constants, zero_reset)
        elif not recurrent:  # the whole sequence in one call
            kernels.general_backward(*general, grad_v.numpy().reshape(rows_shape), *state_outputs, *options, False, steps - 1, 0)
        elif spikes_only:  # recurrent, the common case
            size = weight.shape[0]
            accumulate = ctx.needs_input_grad[1] and ctx.previous_spikes < _SPARSE_OUTER_DENSITY * spikes[:-1].numel()
            grad_weight_t = membranes.new_zeros(size, size) if accumulate else membranes.new_zeros(1, 1)
            feedback = membranes.new_zeros(grad_v.shape)
            feedback_array = feedback.numpy().reshape(rows_shape)
            weight_matrix = weight.detach().contiguous()
            step_arrays = (
                membranes_array, trace, grad_spikes_array, spikes.numpy().reshape(shape), feedback_array, grad_drive_array,
                grad_weight_t.numpy(), np.empty(size, dtype=np.int64),  # scratch: the spiking entries of a row
            )
            step_options = (constants, surrogate_constants, zero_reset)
            step_grads, feedback_2d = grad_drive.view(steps, -1, size), feedback.view(-1, size)  # views made once
            for t in range(steps - 1, -1, -1):
                if t < steps - 1:
                    torch.mm(step_grads[t + 1], weight_matrix, out=feedback_2d)
                kernels.recurrent_step(*step_arrays, *step_options, t, t < steps - 1, accumulate)
            if accumulate:
                accumulated_weight_grad = grad_weight_t.t().contiguous()
        else:  # one call per step, the feedback matmul in torch between them
            feedback = membranes.new_zeros(grad_v.shape)
            feedback_array = feedback.numpy().reshape(rows_shape)
            weight = weight.detach()
            for t in range(steps - 1, -1, -1):
                if t < steps - 1:
                    torch.mm(grad_drive[t + 1].reshape(-1, weight.shape[0]), weight, out=feedback.view(-1, weight.shape[0]))
                kernels.general_backward(*general, feedback_array, *state_outputs, *options, t < steps - 1, t, t)
        grad_weight = grad_aux0 = grad_membrane0 = grad_spikes0 = None
        if recurrent and ctx.needs_input_grad[1]:
            # sum_t gd_t^T s_{t-1} without materialising the shifted spike sequence
            size = weight.shape[0]
            previous, grads = spikes[:-1].reshape(-1, size), grad_drive[1:].reshape(-1, size)
            if accumulated_weight_grad is not None:  # summed inside the step kernel
                grad_weight = accumulated_weight_grad
            elif ctx.previous_spikes < _SPARSE_OUTER_DENSITY * previous.numel():
                grad_weight_t = membranes.new_zeros(size, size)
                neuron_kernels.spike_outer_kernel(previous.numpy(), grads.numpy(), grad_weight_t.numpy())
                grad_weight = grad_weight_t.t().contiguous()
            else:
                grad_weight = grads.t() @ previous
            grad_weight += grad_drive[0].reshape(-1, size).t() @ spikes0.reshape(-1, size)
        if filtered and ctx.needs_input_grad[2]:
            grad_aux0 = grad_drive[0] * d.drive_decay(c)
        if ctx.needs_input_grad[3]:
            grad_v0 = grad_v if filtered else grad_drive[0]  # unfiltered: gv_0 = gd_0
            grad_membrane0 = grad_v0 * d.leak(spikes0, c, zero_reset)
        if recurrent and ctx.needs_input_grad[4]:
            grad_spikes0 = grad_drive[0] @ weight
        return (grad_drive, grad_weight, grad_aux0, grad_membrane0, grad_spikes0) + (None,) * 5


def neuron_sequence(
    model,
    inputs: torch.Tensor,
    p,
    recurrent_weight: torch.Tensor | None = None,
    state=None,
    return_membrane: bool = False,
):
    """Run a registered neuron model (a `NeuronModel` or its name) over a whole sequence.

    inputs: (T, batch, ...) input currents, already projected (the synaptic matmul is
    hoisted out of the time loop by the caller). If `recurrent_weight` (out, out) is
    given, s_{t-1} @ W^T is added to the drive at step t. Returns spikes (T, batch, ...)
    and the final state (and the membranes (T, batch, ...) if asked).
    """
    if isinstance(model, str):
        from neuromem.neurons.models import get_neuron

        model = get_neuron(model)
    model.check(p)
    inputs = full_precision(inputs)  # under --precision bf16/fp16 autocast: the neuron state stays float32
    if _FAST_PATH and inputs.is_cuda:  # on CUDA: the Triton kernels generated from the model's own functions
        from neuromem.neurons import fused_gpu  # (`neuromem.neurons.fused_gpu`: its dynamics, or its gpu_module)

        state = state if state is not None else model.initial_state(inputs[0])
        if fused_gpu.applies(model, inputs, recurrent_weight, *state):
            return fused_gpu.fused_sequence(model, inputs, p, recurrent_weight, state, return_membrane)
    if not _FAST_PATH or model.dynamics is None:  # a model outside the template: its own fast path, or its reference loop
        if _FAST_PATH and model.sequence is not None:
            return model.sequence(inputs, p, recurrent_weight, state, return_membrane)
        return reference_sequence(model, inputs, p, recurrent_weight, state, return_membrane)
    return template_sequence(_NeuronSequence, model, inputs, p, recurrent_weight, state, return_membrane)


def template_sequence(function, model, inputs, p, recurrent_weight, state, return_membrane):
    """A template model's sequence through `function` (an autograd Function taking `_NeuronSequence`'s arguments)."""
    d = model.dynamics
    state = state if state is not None else model.initial_state(inputs[0])
    aux0 = getattr(state, model.aux_field) if model.aux_field is not None else None
    outputs = function.apply(
        inputs, recurrent_weight, aux0, state.membrane, state.spikes,
        model, d.constants(p), p.reset == "zero", p.surrogate, float(p.surrogate_slope),
    )
    spikes, membranes = outputs[0], outputs[1]
    final = _make_state(model, outputs[2] if len(outputs) > 2 else None, membranes[-1], spikes[-1])
    if return_membrane:
        return spikes, final, membranes
    return spikes, final
