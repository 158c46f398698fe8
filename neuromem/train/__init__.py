"""Training cells, the ablation grid, its results store and reports."""

from neuromem.train.config import CellConfig
from neuromem.train.trainer import CellOutcome, run_cell

__all__ = ["CellConfig", "CellOutcome", "run_cell"]
