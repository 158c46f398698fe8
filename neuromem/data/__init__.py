"""Data layer: SHD and N-MNIST in their real on-disk formats, an embedded synthetic default,
binning with tonic, an on-disk cache of binned tensors, and encoders for dense inputs."""

from neuromem.data.dataset import BinnedDataset, load_split
from neuromem.data.encoders import DeltaEncoder, LatencyEncoder, RateEncoder
from neuromem.data.fetch import fetch
from neuromem.data.roots import MARKER_NAME, default_cache_dir, default_embedded_root, neuromem_home, resolve_data_root
from neuromem.data.specs import MODALITY_SPECS, ModalitySpec, get_spec
from neuromem.data.synth import synthesize

__all__ = [
    "BinnedDataset", "load_split", "RateEncoder", "LatencyEncoder", "DeltaEncoder", "fetch", "MARKER_NAME",
    "default_cache_dir", "default_embedded_root", "neuromem_home", "resolve_data_root", "MODALITY_SPECS",
    "ModalitySpec", "get_spec", "synthesize",
]
