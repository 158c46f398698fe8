"""Loihi 2 layers: fixed-point CUBA-LIF neurons behind integer 8-bit weights.

`LoihiLinear` trains with autograd (straight-through quantization, surrogate
spikes) and runs exactly the arithmetic Lava's `Loihi2SimCfg(select_tag=
'fixed_pt')` runs, so in eval its spike rasters equal Lava's bit for bit (see
`neuromem.neurons.functional.loihi`). Every layer adds Lava's one-step
synaptic delay: layer l's spikes at step t reach layer l+1 at step t+1.

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
from neuromem.neurons.layers import SpikingLayer


class QuantizedDense(nn.Module):
    """Float weights in [-1, 1) seen through Loihi's 8-bit mixed-sign synapse and shared exponent."""

    def __init__(self, in_features: int, out_features: int, weight_exp: int, init_scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.uniform_(self.weight, -init_scale, init_scale)
        self.weight_exp = weight_exp

    def integer_weight(self) -> torch.Tensor:
        return quantize_weight(self.weight)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        """Binary spikes (..., in) -> the integer activation Lava's Dense accumulates and shifts."""
        accumulated = spikes.to(torch.float64) @ self.integer_weight().to(torch.float64).t()
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
        loihi_params = LoihiParameters(**params)
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

    def run(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs (T, batch, in) binary spikes -> (spikes, voltages), each (T, batch, out), float64."""
        activations = delay_one_step(self.project(inputs))
        recurrent = quantize_weight(self.recurrent).to(torch.float64) if self.recurrent is not None else None
        spikes, voltages, _ = loihi_sequence(activations, self.parameters_, recurrent, self.recurrent_exp)
        return spikes, voltages

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Spikes in the input's dtype (0/1 are exact in any float type), so the layer drops into float32 models."""
        return self.run(inputs)[0].to(inputs.dtype)


class LoihiReadout(LoihiLinear):
    """Non-firing integrating readout: forward returns voltages (T, batch, classes); decide by the last one."""

    def __init__(self, in_features: int, out_features: int, du: int = 4095, dv: int = 16, **params) -> None:
        params.setdefault("vth", MAX_VTH)
        super().__init__(in_features, out_features, recurrent=False, du=du, dv=dv, **params)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Voltages in the input's dtype (|v| < 2**23: exact in float32 too)."""
        return self.run(inputs)[1].to(inputs.dtype)

    @staticmethod
    def decide(voltages: torch.Tensor) -> torch.Tensor:
        """Class per sample: argmax of the final readout voltage (ties -> lowest index, as numpy)."""
        return voltages[-1].argmax(dim=-1)
