"""Building blocks the spiking memory modules share: layers of the network's neuron model,
fixed lateral inhibition, and a layer whose synapse is the transpose of another's."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def layer_kinds(neuron: str):
    """The front ends' layer factories for `neuron` (imported late: the models package imports memories)."""
    from neuromem.models.frontends import layer_kinds as kinds

    try:
        return kinds(neuron)
    except KeyError as error:
        raise ValueError(str(error.args[0])) from None


class TransposedLinear(nn.Linear):
    """A linear synapse whose weight is the transpose of another linear synapse's (tied: no weight of its
    own), with its own bias where the source layer kind has one."""

    def __init__(self, source: nn.Linear, bias: bool) -> None:
        super().__init__(1, 1, bias=False)
        del self.weight
        object.__setattr__(self, "_source", source)  # not a submodule: the source is registered where it lives
        self.in_features, self.out_features = source.out_features, source.in_features
        self.bias = nn.Parameter(torch.zeros(source.in_features)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        return self._source.weight.t()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return F.linear(inputs.flatten(1) if inputs.dim() > 2 else inputs, self.weight, self.bias)


def tie_transposed(layer: nn.Module, source: nn.Module) -> None:
    """Make `layer`'s synapse the transpose of `source`'s (Loihi synapses know their own transposed form)."""
    transposed = getattr(source.synapse, "transposed", None)
    layer.synapse = transposed() if transposed is not None else TransposedLinear(source.synapse, layer.synapse.bias is not None)


def init_for_rate(layer: nn.Module, input_rate: float, gain: float = 1.0) -> None:
    """Initialise `layer`'s feed-forward weights (uniform, zero mean) so that the per-step synaptic drive of
    inputs spiking at `input_rate` (fraction of the layer's inputs active per step) has standard deviation
    `gain` in the layer's weight units: std(w) = gain / sqrt(fan_in * input_rate). Drive then does not
    shrink with fan-in or input sparsity, so layers stacked on sparse spike trains do not start silent
    (at gain 1, about 10-20% of lif or loihi neurons fire per step, for any fan-in and input rate).
    Loihi weights stay within the 8-bit range (|w| < 1); a bias, if any, starts at 0."""
    synapse = layer.synapse
    fan_in = synapse.weight.shape[1]
    bound = min(1.0 - 1.0 / 128, gain * 3.0**0.5 / (fan_in * input_rate) ** 0.5)  # uniform(-b, b): std b/sqrt(3)
    with torch.no_grad():
        synapse.weight.uniform_(-bound, bound)
        if getattr(synapse, "bias", None) is not None:
            synapse.bias.zero_()


def lateral_inhibition(layer: nn.Module, strength: float) -> None:
    """Fix `layer`'s recurrent weight to -strength between different neurons, 0 onto themselves (not trained)."""
    recurrent = layer.recurrent
    weight = recurrent.weight if isinstance(recurrent, nn.Module) else recurrent
    size = weight.shape[0]
    with torch.no_grad():
        weight.copy_(-strength * (1.0 - torch.eye(size, dtype=weight.dtype)))
    weight.requires_grad_(False)
