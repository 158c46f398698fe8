"""Engram alignment across senses: do visual and auditory memories of the same digit align?"""

from __future__ import annotations

import importlib

# Loaded on first use, so registering `neuromem engram` at CLI start does not import scipy.
_EXPORTS = {
    **{name: "neuromem.engram.alignment" for name in (
        "AlignmentResult", "align", "class_means", "cosine_matrix", "linear_cka", "canonical_correlations",
        "pair_by_digit", "rdm", "spearman")},
    **{name: "neuromem.engram.runs" for name in ("Cell", "Comparison", "ModalityEngrams", "load_run",
                                                 "plan_comparisons")},
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'neuromem.engram' has no attribute {name!r}")
