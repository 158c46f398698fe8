"""neuromem: memory in spiking neural networks across senses."""

__version__ = "0.1.0"
