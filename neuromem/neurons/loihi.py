"""Loihi 2 layers: fixed-point CUBA-LIF neurons behind integer 8-bit weights.

`LoihiLinear` trains with autograd (straight-through quantization, surrogate
spikes) and runs exactly the arithmetic Lava's `Loihi2SimCfg(select_tag=
'fixed_pt')` runs, so in eval its spike rasters equal Lava's bit for bit (see
`neuromem.neurons.functional.loihi`). Every layer adds Lava's one-step
synaptic delay: layer l's spikes at step t reach layer l+1 at step t+1.

`LoihiConv2d` is the same neuron behind an 8-bit convolution (on Lava: a
`Sparse` process holding the unrolled kernel). Every layer sees its input as
single spikes (Lava's Dense/Sparse take unary spikes): event counts > 1 are
clipped to 1 in the forward pass, with the gradient passed straight through.

`LoihiReadout` is a `LoihiLinear` whose neurons never fire (threshold at the
17-bit maximum, which the saturating voltage can pass only at its very top):
it integrates its input and the class decision is the argmax of the readout
voltage at the last time step (`decide`), which on the chip is one read of
`v` per sample. Spike counts are not used.
"""

from __future__ import annotations

import torch
from torch import nn

from neuromem.neurons.functional.loihi import (
    MAX_VTH,
    LoihiParameters,
    delay_one_step,
    loihi_sequence,
    quantize_weight,
    shift_activation,
)
from neuromem.neurons.functional.neuron import fast_path_enabled
from neuromem.neurons.functional import loihi_layer, sparse
from neuromem.neurons.functional.sparse import sparse_input_conv2d, sparse_input_linear
from neuromem.neurons.layers import SpikingLayer
from neuromem.neurons.synapses import TiedTransposedLinear

# Neuron settings of the front ends and memories the ablation grid trains with neuron "loihi":
# current keeps 7/8 per step, voltage 15/16, threshold 1024 << 6 (at the default initialisation
# about 5-15% of neurons fire per step on 5% input activity, so no layer starts silent);
# the readout integrates without firing (see LoihiReadout).
HIDDEN_DEFAULTS = {"du": 511, "dv": 256, "vth": 1024}
READOUT_DEFAULTS = {"du": 4095, "dv": 16}
# readout voltage units -> logits for the loss (training only: a positive scale leaves the chip's argmax
# unchanged). At 1 / 2**16 the untrained readout's logits were large (first-epoch loss ~6-7 on SHD) and the
# spiking cells learned slowly; 4x smaller measured best (SHD embedded, 2000 samples, 2 epochs, seed 0:
# hopfield-spiking 0.245 -> 0.692 test, scl-spiking 0.375 -> 0.615, front end + readout alone 0.595 -> 0.738)
LOGIT_SCALE = 1.0 / (256 * 1024)


class _UnarySpikes(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inputs):
        ctx.dtype = inputs.dtype
        return (inputs > 0).to(inputs.dtype)

    @staticmethod
    def backward(ctx, grad):
        return grad.to(ctx.dtype)


def unary_spikes(inputs: torch.Tensor) -> torch.Tensor:
    """Counts -> single spikes (x > 0); the gradient passes straight through.

    The reference path (`reference_core()`): the straight-through form x + ((x > 0) - x).detach() in
    float64. The fast path: (x > 0) in one pass, in the input's float dtype (0 and 1 are exact in any, and the
    synapses take them to float64 where their sums need it): the same values for every count below 2**53."""
    if not fast_path_enabled() or inputs.dtype not in (torch.float32, torch.float64):
        x = inputs.to(torch.float64)
        return x + ((x > 0).to(torch.float64) - x).detach()
    if not inputs.requires_grad:
        return (inputs > 0).to(inputs.dtype)
    return _UnarySpikes.apply(inputs)


# Below this fan-in every partial sum of an 8-bit synapse's products (|w| <= 256, binary spikes) is an integer
# below 2**24, so float32 holds every sum exactly, in any order
_FLOAT32_EXACT_FAN_IN = 1 << 16


class _IntegerLinear(torch.autograd.Function):
    """Binary spikes (rows, in) times integer weights (out, in) -> float64 (rows, out): the sums in float32
    (exact, see `_FLOAT32_EXACT_FAN_IN`; over the spiking inputs only where they are sparse), the backward in
    float64 exactly as `sparse_input_linear`'s on float64 spikes (the same products, the same order)."""

    @staticmethod
    def forward(ctx, spikes, weight):
        ctx.dtype = spikes.dtype
        spikes32 = spikes.detach().to(torch.float32).contiguous()
        out = sparse_input_linear(spikes32, weight.detach().to(torch.float32)).to(torch.float64)
        ctx.save_for_backward(spikes32 if ctx.needs_input_grad[1] else None, weight)
        return out

    @staticmethod
    def backward(ctx, grad):
        spikes32, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_spikes = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_spikes = (grad @ weight.detach()).to(ctx.dtype)
        if ctx.needs_input_grad[1]:
            limit = sparse.SPARSE_DENSITY_LIMIT
            if weight.shape[0] < sparse.SPARSE_NARROW_OUTPUTS:
                limit = min(limit, sparse.SPARSE_NARROW_DENSITY_LIMIT)
            compressed = sparse._compress(spikes32, limit) if sparse._kernels_apply(spikes32, spikes32) else None
            if compressed is None:
                grad_weight = grad.t().mm(spikes32.to(torch.float64))
            else:
                row_starts, indices, values = compressed
                grad_weight_t = grad.new_zeros(weight.shape[1], weight.shape[0])
                sparse._scatter_linear(row_starts.numpy(), indices, values.astype("float64"), grad.numpy(),
                                       grad_weight_t.numpy(), grad.new_zeros(weight.shape[0]).numpy(), True)
                grad_weight = grad_weight_t.t().contiguous()
        return grad_spikes, grad_weight


def _integer_linear(spikes: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Binary spikes (rows, in) times integer weights (out, in), as float64: sums of integers, exact in any
    order and, below `_FLOAT32_EXACT_FAN_IN`, in float32, so the fast path (`_IntegerLinear`, sums over the
    spiking inputs where they are sparse) gives the float64 matmul's values bit for bit (its weight gradient:
    to rounding). The reference path: the float64 matmul."""
    if fast_path_enabled() and spikes.dim() == 2 and weight.shape[1] < _FLOAT32_EXACT_FAN_IN:
        if not torch.is_grad_enabled() or not (spikes.requires_grad or weight.requires_grad):
            return sparse_input_linear(spikes.to(torch.float32), weight.to(torch.float32)).to(torch.float64)
        return _IntegerLinear.apply(spikes, weight.to(torch.float64))
    spikes, weight = spikes.to(torch.float64), weight.to(torch.float64)
    if fast_path_enabled() and spikes.dim() == 2:
        return sparse_input_linear(spikes, weight)
    return spikes @ weight.t()


class QuantizedDense(nn.Linear):
    """Float weights in [-1, 1) seen through Loihi's 8-bit mixed-sign synapse and shared exponent.

    An `nn.Linear` without bias (so operation counters see it as the layer's synapse); also takes
    frames (rows, C, H, W) with C*H*W = in_features, flattened in (C, H, W) order."""

    def __init__(self, in_features: int, out_features: int, weight_exp: int, init_scale: float) -> None:
        super().__init__(in_features, out_features, bias=False)
        with torch.no_grad():
            nn.init.uniform_(self.weight, -init_scale, init_scale)
        self.weight_exp = weight_exp

    def integer_weight(self) -> torch.Tensor:
        return quantize_weight(self.weight)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        """Binary spikes (..., in) -> the integer activation Lava's Dense accumulates and shifts."""
        if spikes.dim() == 4 and spikes[0].numel() == self.in_features:
            spikes = spikes.flatten(1)
        return shift_activation(_integer_linear(spikes, self.integer_weight()), self.weight_exp)

    def transposed(self, rows: int | None = None, extra: torch.Tensor | None = None) -> "TransposedQuantizedDense":
        return TransposedQuantizedDense(self, rows, extra)


class TransposedQuantizedDense(TiedTransposedLinear):
    """The transpose of another `QuantizedDense`'s integer weights (`TiedTransposedLinear`: tied, optionally
    its first `rows` rows only plus trained columns of its own), in fixed point.

    On Lava this is a Dense process with weights `integer_weight()` and the source's exponent."""

    def __init__(self, source: QuantizedDense, rows: int | None = None, extra: torch.Tensor | None = None) -> None:
        super().__init__(source, rows, extra)
        self.weight_exp = source.weight_exp

    def integer_weight(self) -> torch.Tensor:
        return quantize_weight(self.weight)  # elementwise: the tied part is the source's integers, transposed

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        return shift_activation(_integer_linear(spikes, self.integer_weight()), self.weight_exp)


class QuantizedConv2d(nn.Conv2d):
    """An 8-bit mixed-sign convolution (no bias) with a shared exponent, on frames (rows, C, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 weight_exp: int, init_scale: float) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        with torch.no_grad():
            nn.init.uniform_(self.weight, -init_scale, init_scale)
        self.weight_exp = weight_exp

    def integer_weight(self) -> torch.Tensor:
        return quantize_weight(self.weight)

    def forward(self, spikes: torch.Tensor, chunk_frames: int | None = None) -> torch.Tensor:
        weight = self.integer_weight().to(torch.float64)
        frames = spikes.to(torch.float64)
        if fast_path_enabled():  # the sparse scatter where the spikes are sparse: the same integer sums
            accumulated = sparse_input_conv2d(frames, weight, None, self.stride[0], self.padding[0],
                                              chunk_frames=chunk_frames)
        else:
            chunks = frames.split(chunk_frames) if chunk_frames else (frames,)
            accumulated = torch.cat([
                nn.functional.conv2d(c, weight, None, self.stride, self.padding) for c in chunks
            ])
        return shift_activation(accumulated, self.weight_exp)


class LoihiLinear(SpikingLayer):
    """Dense synapse + Loihi CUBA-LIF neurons; optional all-to-all recurrent Dense.

    Keyword parameters are `LoihiParameters` fields (du, dv, vth, bias_mant,
    bias_exp, weight_exp, surrogate, surrogate_slope) plus `init_scale` (the
    feed-forward weights start uniform in +-init_scale, in units where 1.0 is
    the largest Loihi weight) and `recurrent_exp` (the recurrent Dense's exponent).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        recurrent: bool = False,
        init_scale: float | None = None,
        recurrent_exp: int | None = None,
        **params,
    ) -> None:
        loihi_params = LoihiParameters(**{**HIDDEN_DEFAULTS, **params})
        super().__init__(loihi_params, out_features if recurrent else None)
        scale = init_scale if init_scale is not None else min(1.0, 4.0 / in_features**0.5)
        self.synapse = QuantizedDense(in_features, out_features, loihi_params.weight_exp, scale)
        self.in_features, self.out_features = in_features, out_features
        self.recurrent_exp = loihi_params.weight_exp if recurrent_exp is None else int(recurrent_exp)

    @property
    def neuron(self) -> LoihiParameters:
        return self.parameters_

    def integer_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(feed-forward (out, in), recurrent (out, out) or None) as Lava receives them."""
        recurrent = quantize_weight(self.recurrent) if self.recurrent is not None else None
        return self.synapse.integer_weight(), recurrent

    def run(self, inputs: torch.Tensor, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (T, batch, in) spikes (counts are clipped to 1) -> (spikes, voltages), each (T, batch, out), in
        `dtype` (0/1 and voltages below 2**23: exact in float32 too). On the CPU fast path the whole layer is one
        node (`functional/loihi_layer.py`: the same values and gradients as the chain below, fewer passes)."""
        recurrent = quantize_weight(self.recurrent).to(torch.float64) if self.recurrent is not None else None
        synapse = self.synapse
        # a synapse with hooks (operation counters) is called as a module, in the chain
        hooked = bool(synapse._forward_pre_hooks or synapse._forward_hooks)
        if fast_path_enabled() and not hooked and not getattr(synapse, "temporal", False) and \
                loihi_layer.applies(inputs, self.in_features):
            return loihi_layer.loihi_linear_layer(inputs, synapse.integer_weight().to(torch.float64), recurrent,
                                                  self.parameters_, synapse.weight_exp, self.recurrent_exp, dtype)
        activations = delay_one_step(self.project(unary_spikes(inputs)))
        spikes, voltages, _ = loihi_sequence(activations, self.parameters_, recurrent, self.recurrent_exp)
        return spikes.to(dtype), voltages.to(dtype)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Spikes in the input's dtype (0/1 are exact in any float type), so the layer drops into float32 models."""
        return self.run(inputs, inputs.dtype)[0]


class LoihiConv2d(SpikingLayer):
    """8-bit convolution + Loihi CUBA-LIF neurons, one neuron per output position and channel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 init_scale: float | None = None, **params) -> None:
        loihi_params = LoihiParameters(**{**HIDDEN_DEFAULTS, **params})
        super().__init__(loihi_params)
        fan_in = in_channels * kernel_size * kernel_size
        scale = init_scale if init_scale is not None else min(1.0, 4.0 / fan_in**0.5)
        self.synapse = QuantizedConv2d(in_channels, out_channels, kernel_size, stride, padding, loihi_params.weight_exp, scale)

    @property
    def neuron(self) -> LoihiParameters:
        return self.parameters_

    def run(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (T, batch, C, H, W) -> (spikes, voltages), each (T, batch, C', H', W'), float64."""
        activations = delay_one_step(self.project(unary_spikes(inputs)))
        spikes, voltages, _ = loihi_sequence(activations, self.parameters_)
        return spikes, voltages

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.run(inputs)[0].to(inputs.dtype)


class LoihiReadout(LoihiLinear):
    """Non-firing integrating readout: forward returns voltages (T, batch, classes); decide by the last one."""

    def __init__(self, in_features: int, out_features: int, du: int = READOUT_DEFAULTS["du"],
                 dv: int = READOUT_DEFAULTS["dv"], **params) -> None:
        params.setdefault("vth", MAX_VTH)
        super().__init__(in_features, out_features, recurrent=False, du=du, dv=dv, **params)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Voltages in the input's dtype (|v| < 2**23: exact in float32 too)."""
        return self.run(inputs, inputs.dtype)[1]

    @staticmethod
    def decide(voltages: torch.Tensor) -> torch.Tensor:
        """Class per sample: argmax of the final readout voltage (ties -> lowest index, as numpy)."""
        return voltages[-1].argmax(dim=-1)


class LoihiSpikeReadout(LoihiReadout):
    """The ablation grid's Loihi readout: a memory's output spike train (T, batch, in) -> logits
    (batch, classes), the final readout voltage times `LOGIT_SCALE` (argmax: the chip's decision)."""

    reads_spikes = True

    def __init__(self, in_features: int, out_features: int, **params) -> None:
        super().__init__(in_features, out_features, **params)
        self.logit_scale = LOGIT_SCALE

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # the last step in float64 times the scale, as before the voltages came in the input's dtype
        return (self.run(inputs, inputs.dtype)[1][-1].to(torch.float64) * self.logit_scale).to(inputs.dtype)
