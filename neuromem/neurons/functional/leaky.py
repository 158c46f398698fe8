"""The non-spiking leaky readout v_t = beta v_{t-1} + x_t over (T, batch, ...), as a reference
loop and as one autograd node (numba on CPU, a torch loop elsewhere); its backward is the
reverse scan g_x_t = g_t + beta g_x_{t+1}."""

from __future__ import annotations

import torch

from neuromem.neurons.functional import buffers
from neuromem.neurons.functional.neuron import compiled_kernels_apply, fast_path_enabled

try:
    from neuromem.neurons.functional.jit import kernel as _kernel
except ImportError:  # numba is a dependency; without it the torch loop runs
    _kernel = None


def _as_rows(tensor: torch.Tensor, rows: int):
    """A writable numpy view (no copy) of a contiguous CPU tensor, as (rows, -1)."""
    return tensor.detach().numpy().reshape(rows, -1)


def leaky_integrator_sequence_reference(inputs: torch.Tensor, beta: float) -> torch.Tensor:
    membrane = torch.zeros_like(inputs[0])
    out = []
    for x in inputs:
        membrane = beta * membrane + x
        out.append(membrane)
    return torch.stack(out)


if _kernel is not None:
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


class _LeakyIntegratorSequence(torch.autograd.Function):
    """v_t = beta v_{t-1} + x_t for all t; backward is the reverse scan g_x_t = g_t + beta g_x_{t+1}."""

    @staticmethod
    def forward(ctx, inputs, beta):
        ctx.beta = beta
        if compiled_kernels_apply(inputs):
            inputs = inputs.contiguous()
            out = torch.empty_like(inputs)
            dtype = buffers._numpy_dtype(inputs.dtype)
            _leaky_forward_kernel(_as_rows(inputs, inputs.shape[0]), dtype.type(beta), _as_rows(out, out.shape[0]))
            return out
        out = torch.empty_like(inputs)
        membrane = torch.zeros_like(inputs[0])
        for t in range(inputs.shape[0]):
            torch.mul(membrane, beta, out=out[t])
            out[t].add_(inputs[t])
            membrane = out[t]
        return out

    @staticmethod
    def backward(ctx, grad_out):
        if compiled_kernels_apply(grad_out):
            grad_out = grad_out.contiguous()
            grad_inputs = torch.empty_like(grad_out)
            dtype = buffers._numpy_dtype(grad_out.dtype)
            steps = grad_out.shape[0]
            _leaky_backward_kernel(_as_rows(grad_out, steps), dtype.type(ctx.beta), _as_rows(grad_inputs, steps))
            return grad_inputs, None
        grad_inputs = torch.empty_like(grad_out)
        grad_inputs[-1] = grad_out[-1]
        for t in range(grad_out.shape[0] - 2, -1, -1):
            torch.add(grad_out[t], grad_inputs[t + 1], alpha=ctx.beta, out=grad_inputs[t])
        return grad_inputs, None


def leaky_integrator_sequence(inputs: torch.Tensor, beta: float) -> torch.Tensor:
    """Non-spiking leaky readout v_t = beta * v_{t-1} + x_t over (T, batch, ...); returns all v_t."""
    if not fast_path_enabled():
        return leaky_integrator_sequence_reference(inputs, beta)
    return _LeakyIntegratorSequence.apply(inputs, float(beta))
