"""Data layer: the registered event data sets (SHD, N-MNIST, SSC) in their real on-disk formats, an
embedded synthetic default, binning with tonic, an on-disk cache of binned tensors, and encoders.

Names are loaded on first use, so `import neuromem.data.<module>` runs only what that module needs
(and no module of this package imports the package itself back). No exported name may also be a
submodule's name: once that submodule is imported, the package attribute would be the module.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "BinnedDataset": "neuromem.data.dataset", "load_split": "neuromem.data.dataset",
    "RateEncoder": "neuromem.data.encoders", "LatencyEncoder": "neuromem.data.encoders",
    "DeltaEncoder": "neuromem.data.encoders", "fetch": "neuromem.data.download",
    "MARKER_NAME": "neuromem.data.paths", "default_cache_dir": "neuromem.data.paths",
    "default_embedded_root": "neuromem.data.paths", "neuromem_home": "neuromem.data.paths",
    "resolve_data_root": "neuromem.data.roots", "synthesize": "neuromem.data.embedded",
    "DatasetSpec": "neuromem.data.specs", "ModalitySpec": "neuromem.data.specs",
    "DATASET_SPECS": "neuromem.data.registry", "get_spec": "neuromem.data.registry",
    "get_dataset": "neuromem.data.registry", "dataset_names": "neuromem.data.registry",
    "EventDataset": "neuromem.data.base", "register_dataset": "neuromem.data.base",
}
_ALIASES = {"MODALITY_SPECS": "DATASET_SPECS"}  # old names

__all__ = [*_EXPORTS, *_ALIASES]


def __getattr__(name: str):
    target = _ALIASES.get(name, name)
    if target not in _EXPORTS:
        raise AttributeError(f"module 'neuromem.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[target]), target)
    globals()[name] = value
    return value
