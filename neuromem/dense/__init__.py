"""Dense (non-spiking) paths: the tri-modal text/image/audio memory network with test-time-training memories."""

from neuromem.dense.network import (
    COMPONENT_BUDGET,
    MODALITIES,
    PRESET_KEYWORDS,
    PRESET_TARGETS,
    PRESETS,
    Fusion,
    MultiModalConfig,
    MultiModalMemoryNetwork,
    count_parameters,
    preset,
)
from neuromem.dense.trimodal import TriModalRecipe, evaluate_retrieval, run_trimodal_cell, train_trimodal

__all__ = [
    "COMPONENT_BUDGET", "MODALITIES", "PRESET_KEYWORDS", "PRESET_TARGETS", "PRESETS", "Fusion", "MultiModalConfig",
    "MultiModalMemoryNetwork", "TriModalRecipe", "count_parameters", "evaluate_retrieval", "preset",
    "run_trimodal_cell", "train_trimodal",
]  # fmt: skip
