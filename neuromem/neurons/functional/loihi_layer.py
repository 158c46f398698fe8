"""A whole Loihi linear layer in one autograd node on the CPU: single spikes -> 8-bit synapse -> exponent shift ->
Lava's one-step delay -> the fixed-point neuron (`loihi_kernels`), spikes and voltages out.

The reference chain (`neuromem.neurons.loihi`: `unary_spikes`, `QuantizedDense`, `shift_activation`,
`delay_one_step`, `loihi_sequence`) computes every activation as a float64 tensor so that its gradient is
float64 (autograd gives a tensor's gradient its dtype). Here the forward keeps what is exact in float32 in float32
(binary spikes; the synaptic sums, integers below 2**24 for fan-in < 2**16; the shifted, delayed activations;
voltages below 2**23), without the passes of the separate steps (the delay is an offset in one buffer, the shift
in place), and the backward computes the same float64 values as the chain's backward, in the same operations:
the neuron's gradient, the delay and shift (exact), then dL/dx = G W and dL/dW = G^T x as
`loihi._IntegerLinear` does them (one float64 matmul over all T*batch rows, the last step's zero; the weight
gradient by the sparse scatter or the dense matmul, decided on the same density). So spikes and voltages equal
the reference's bit for bit and every gradient equals the chain's bit for bit.

Spikes a layer of this path produced are remembered as binary (`remember_binary`): the next such layer takes them
as they are instead of thresholding them again.
"""

from __future__ import annotations

import weakref

import torch

from neuromem.neurons.functional import buffers, loihi_kernels, sparse

_binary: dict[int, tuple] = {}


def remember_binary(spikes: torch.Tensor) -> None:
    """Record that `spikes` holds only 0 and 1 (while it lives and is not modified in place)."""
    key = id(spikes)

    def forget(ref, key=key):
        if _binary.get(key, (None,))[0] is ref:
            del _binary[key]

    _binary[key] = (weakref.ref(spikes, forget), spikes._version)


def known_binary(inputs: torch.Tensor) -> bool:
    entry = _binary.get(id(inputs))
    return entry is not None and entry[0]() is inputs and entry[1] == inputs._version


def density_limit(outputs: int) -> float:
    """The sparse synapses' density limit for a layer of `outputs` neurons (as `sparse_input_linear`'s)."""
    if outputs < sparse.SPARSE_NARROW_OUTPUTS:
        return min(sparse.SPARSE_DENSITY_LIMIT, sparse.SPARSE_NARROW_DENSITY_LIMIT)
    return sparse.SPARSE_DENSITY_LIMIT


def applies(inputs: torch.Tensor, in_features: int) -> bool:
    """CPU, numba, (T, batch, ...) float inputs of `in_features` per step below the float32-exact fan-in, no autocast."""
    return (
        loihi_kernels.kernel is not None and sparse._numba is not None
        and inputs.device.type == "cpu" and inputs.dtype in (torch.float32, torch.float64)
        and inputs.dim() >= 3 and inputs.shape[0] > 0 and inputs.shape[1] > 0
        and inputs[0, 0].numel() == in_features and in_features < (1 << 16)
        and not torch.is_autocast_enabled("cpu")
    )


class _LoihiLinearLayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs, weight, recurrent_weight, p, weight_exp, recurrent_exp, out_dtype, binary):
        # inputs (T, batch, ...) counts; weight (out, in) float64 integers; recurrent_weight (out, out) or None
        ctx.set_materialize_grads(False)
        steps, batch = inputs.shape[:2]
        outputs, features = weight.shape
        rows = steps * batch
        x = inputs.detach().reshape(rows, features)
        spikes32 = x.contiguous() if binary and x.dtype == torch.float32 else (x > 0).to(torch.float32)
        compressed = sparse._compress(spikes32, density_limit(outputs))
        weight32 = weight.detach().to(torch.float32)
        drive = buffers.empty((steps, batch, outputs), torch.float32)
        drive[0].zero_()
        if steps > 1:  # step t receives the sums of step t - 1 (Lava's Dense delivers one step late)
            sums, previous_rows = drive[1:].view(-1, outputs), (steps - 1) * batch
            if compressed is not None:
                row_starts, indices, values = compressed
                sparse._scatter_linear(row_starts.numpy()[: previous_rows + 1], indices, values, sums.numpy(),
                                       weight32.t().contiguous().numpy(), weight32.new_zeros(outputs).numpy(), False)
            else:
                torch.mm(spikes32[:previous_rows], weight32.t(), out=sums)
            if weight_exp > 0:  # exact in float32: a power of two
                sums.mul_(float(1 << weight_exp))
            elif weight_exp < 0:
                sums.div_(float(1 << -weight_exp)).floor_()
        zeros = torch.zeros(batch, outputs, dtype=torch.float64)
        spikes, voltages, _, (tensors, info) = loihi_kernels.sequence_forward(
            drive, recurrent_weight, (zeros, zeros, zeros), p, recurrent_exp, out_dtype)
        ctx.info, ctx.weight_exp, ctx.input_shape, ctx.input_dtype = info, weight_exp, inputs.shape, inputs.dtype
        ctx.compressed = compressed
        ctx.save_for_backward(*tensors, weight, spikes32 if compressed is None else None)
        return spikes, voltages

    @staticmethod
    def backward(ctx, grad_spikes, grad_voltages):
        pre, spikes, recurrent_weight, spikes0, weight, spikes32 = ctx.saved_tensors
        steps, batch, outputs = pre.shape
        rows = steps * batch
        # dL/d(drive) of step t in slot t; slot t + 1 is then the synapse's step-t gradient (the delay), the last zero
        slots = buffers.empty((steps + 1, batch, outputs), torch.float64)
        slots[steps].zero_()
        _, grad_recurrent = loihi_kernels.sequence_backward(
            (pre, spikes, recurrent_weight, spikes0), ctx.info, grad_spikes, grad_voltages, ctx.needs_input_grad[2],
            slots[:steps])
        grad = slots[1:].view(rows, outputs)
        if grad.data_ptr() % buffers.ALIGNMENT:  # BLAS sums as it did on the chain's own (aligned) gradient
            grad = grad.clone()
        if ctx.weight_exp > 0:  # the shift's gradient, exact
            grad.mul_(float(1 << ctx.weight_exp))
        elif ctx.weight_exp < 0:
            grad.div_(float(1 << -ctx.weight_exp))
        grad_inputs = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_inputs = (grad @ weight.detach()).to(ctx.input_dtype).view(ctx.input_shape)
        if ctx.needs_input_grad[1]:
            if ctx.compressed is None:
                grad_weight = grad.t().mm(spikes32.to(torch.float64))
            else:
                row_starts, indices, values = ctx.compressed
                grad_weight_t = grad.new_zeros(weight.shape[1], weight.shape[0])
                sparse._scatter_linear(row_starts.numpy(), indices, values.astype("float64"), grad.numpy(),
                                       grad_weight_t.numpy(), grad.new_zeros(weight.shape[0]).numpy(), True)
                grad_weight = grad_weight_t.t().contiguous()
        ctx.compressed = None
        return grad_inputs, grad_weight, grad_recurrent, None, None, None, None, None


def loihi_linear_layer(inputs, weight, recurrent_weight, p, weight_exp: int, recurrent_exp: int, out_dtype):
    """inputs (T, batch, ...) spikes or counts (counts > 1 taken as one spike, gradient straight through), weight
    (out, in) float64 integers, recurrent_weight (out, out) float64 integers or None -> spikes and voltages
    (T, batch, out) in `out_dtype`, the values of `LoihiLinear`'s reference chain (callers check `applies`)."""
    spikes, voltages = _LoihiLinearLayer.apply(
        inputs, weight, recurrent_weight, p, int(weight_exp), int(recurrent_exp), out_dtype, known_binary(inputs))
    remember_binary(spikes)
    return spikes, voltages
