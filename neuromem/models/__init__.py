"""Network builders: spiking front ends, the memory network, dense (ANN) twins."""

from neuromem.models.frontends import build_front_end, layer_kinds
from neuromem.models.network import MemoryNetwork, NetworkOutput, build_network

__all__ = ["MemoryNetwork", "NetworkOutput", "build_network", "build_front_end", "layer_kinds"]
