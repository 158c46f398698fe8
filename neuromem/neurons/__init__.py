"""Spiking neurons: one file per model (`models`) and per surrogate (`surrogates`), the
sequence functions generated from them in `functional`, thin modules here."""

from neuromem.neurons.functional.lif import CUBAParameters, LIFParameters, cuba_sequence, lif_sequence
from neuromem.neurons.functional.neuron import neuron_sequence
from neuromem.neurons.functional.surrogate import heaviside_surrogate
from neuromem.neurons.layers import SpikingConv2d, SpikingLayer, SpikingLinear
from neuromem.neurons.models import get_neuron, neuron_names, register_neuron
from neuromem.neurons.models.alif import ALIFParameters
from neuromem.neurons.surrogates import get_surrogate, register_surrogate, surrogate_names

__all__ = [
    "LIFParameters",
    "CUBAParameters",
    "ALIFParameters",
    "lif_sequence",
    "cuba_sequence",
    "neuron_sequence",
    "heaviside_surrogate",
    "SpikingLayer",
    "SpikingLinear",
    "SpikingConv2d",
    "get_neuron",
    "neuron_names",
    "register_neuron",
    "get_surrogate",
    "register_surrogate",
    "surrogate_names",
]
