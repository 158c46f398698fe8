"""Engram alignment across senses: do visual and auditory memories of the same digit align?"""

from neuromem.engram.alignment import (
    AlignmentResult,
    align,
    class_means,
    cosine_matrix,
    linear_cka,
    canonical_correlations,
    pair_by_digit,
    rdm,
    spearman,
)
from neuromem.engram.runs import Cell, Comparison, ModalityEngrams, load_run, plan_comparisons

__all__ = [
    "AlignmentResult",
    "align",
    "class_means",
    "cosine_matrix",
    "linear_cka",
    "canonical_correlations",
    "pair_by_digit",
    "rdm",
    "spearman",
    "Cell",
    "Comparison",
    "ModalityEngrams",
    "load_run",
    "plan_comparisons",
]
