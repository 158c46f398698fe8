"""Spiking neurons: pure step/sequence functions in `functional`, thin modules here."""

from neuromem.neurons.functional.lif import CUBAParameters, LIFParameters, cuba_sequence, lif_sequence
from neuromem.neurons.functional.surrogate import heaviside_surrogate
from neuromem.neurons.layers import SpikingConv2d, SpikingLayer, SpikingLinear

__all__ = [
    "LIFParameters",
    "CUBAParameters",
    "lif_sequence",
    "cuba_sequence",
    "heaviside_surrogate",
    "SpikingLayer",
    "SpikingLinear",
    "SpikingConv2d",
]
