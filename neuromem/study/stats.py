"""Statistics over seeds: mean, sample standard deviation, Student-t 95% intervals, and paired
comparisons of two configurations over matched seeds (paired t-test, scipy.stats.ttest_rel).

Seed k fixes a cell's training subset, initialization and batch order, so seed k of two
configurations on one modality saw the same data: their per-seed differences are paired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
PAIRED_TEST = "paired t-test, two-sided (scipy.stats.ttest_rel), on per-seed differences"


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); nan for n = 1
    ci_low: float  # Student-t interval of the mean, n - 1 degrees of freedom; nan for n = 1
    ci_high: float


def t_interval(mean: float, std: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    if n < 2 or not math.isfinite(std):
        return float("nan"), float("nan")
    half = float(scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return mean - half, mean + half


def summarize(values: Sequence[float]) -> Summary:
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return Summary(0, float("nan"), float("nan"), float("nan"), float("nan"))
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if data.size > 1 else float("nan")
    return Summary(int(data.size), mean, std, *t_interval(mean, std, int(data.size)))


@dataclass(frozen=True)
class PairedComparison:
    n: int  # matched seeds
    seeds: tuple[int, ...]
    mean_difference: float  # mean over seeds of (a - b)
    std_difference: float
    ci_low: float
    ci_high: float
    t: float  # nan where undefined (n < 2 or identical differences)
    p: float
    test: str = PAIRED_TEST


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> PairedComparison:
    """Compare configuration a with b over the seeds both have."""
    seeds = tuple(sorted(set(a) & set(b)))
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=float)
    summary = summarize(diffs)
    t = p = float("nan")
    if summary.n >= 2 and summary.std > 0:
        result = scipy_stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds])
        t, p = float(result.statistic), float(result.pvalue)
    return PairedComparison(summary.n, seeds, summary.mean, summary.std, summary.ci_low, summary.ci_high, t, p)
