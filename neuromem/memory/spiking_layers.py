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


def lateral_inhibition(layer: nn.Module, strength: float) -> None:
    """Fix `layer`'s recurrent weight to -strength between different neurons, 0 onto themselves (not trained)."""
    recurrent = layer.recurrent
    weight = recurrent.weight if isinstance(recurrent, nn.Module) else recurrent
    size = weight.shape[0]
    with torch.no_grad():
        weight.copy_(-strength * (1.0 - torch.eye(size, dtype=weight.dtype)))
    weight.requires_grad_(False)
