"""Training cells and the ablation grid (config, sweep, grid, trainer, tasks, protocol, provenance);
the results store, reports, evaluations and re-pricing are the study layer, `neuromem.study`."""

from __future__ import annotations

import importlib

# Loaded on first use, so `neuromem.train.cli` (registered at every CLI start) does not
# pull in torch and the data layer before a command needs them.
_EXPORTS = {"CellConfig": "neuromem.train.config", "CellOutcome": "neuromem.train.trainer",
            "run_cell": "neuromem.train.trainer"}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'neuromem.train' has no attribute {name!r}")
