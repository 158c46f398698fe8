"""Figures of an ablation report (matplotlib, headless): accuracy per configuration with error
bars, accuracy against energy per cell with the Pareto front, one curve figure per evaluation.
Each figure is written as a PNG under <out>/figures/ and returned as (title, path)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from neuromem.study.store import atomic_write_bytes

FIGURES_DIR = "figures"


def _save(figure, path: Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def accuracy_figure(groups, path: Path) -> Path | None:
    """Test accuracy per (memory, variant), one panel per modality; error bars: std over seeds."""
    modalities = sorted({g.modality for g in groups})
    if not modalities:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, len(modalities), figsize=(max(4.5, 2.2 + 0.9 * max(
        sum(g.modality == m for g in groups) for m in modalities)) * len(modalities) ** 0.8, 4), squeeze=False)
    for ax, modality in zip(axes[0], modalities):
        mine = [g for g in groups if g.modality == modality]
        summaries = [g.summary("test_accuracy") for g in mine]
        means = [100 * s.mean for s in summaries]
        errors = [100 * s.std if s.n > 1 else 0.0 for s in summaries]
        ax.bar(range(len(mine)), means, yerr=errors, capsize=4, color="#4c78a8")
        ax.set_xticks(range(len(mine)), [f"{g.memory}\n{g.variant}\nn={s.n}" for g, s in zip(mine, summaries)], fontsize=7)
        ax.set_title(modality)
        ax.set_ylabel("test accuracy (%), mean ± std over seeds")
        ax.set_ylim(0, 100)
    figure.suptitle("Test accuracy per memory and variant")
    return _save(figure, path)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats (lower energy and higher accuracy, one strictly)."""
    front = []
    for i, (energy, accuracy) in enumerate(points):
        dominated = any(e <= energy and a >= accuracy and (e < energy or a > accuracy) for j, (e, a) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def pareto_figure(groups, path: Path) -> Path | None:
    cells = [(g, r) for g in groups for r in g.rows
             if isinstance(r.get("energy_pj_per_sample"), (int, float)) and r["energy_pj_per_sample"] > 0]
    if not cells:
        return None
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(6.5, 4.5))
    colours = plt.get_cmap("tab10")
    labels = sorted({f"{g.modality} {g.label}" for g, _ in cells})
    for index, label in enumerate(labels):
        mine = [(r["energy_pj_per_sample"], 100 * r["test_accuracy"]) for g, r in cells if f"{g.modality} {g.label}" == label]
        ax.scatter(*zip(*mine), label=label, color=colours(index % 10), s=24)
    for style, modality in zip(("--", ":", "-.", (0, (5, 1))) * 4, sorted({g.modality for g, _ in cells})):
        # one front per modality: accuracies of different tasks are not comparable
        points = [(r["energy_pj_per_sample"], 100 * r["test_accuracy"]) for g, r in cells if g.modality == modality]
        front = pareto_front(points)
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="k", ls=style, lw=1,
                label=f"Pareto front ({modality})")
    ax.set_xscale("log")
    ax.set_xlabel(f"energy per sample (pJ, {cells[0][1].get('energy_profile', '?')})")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy against energy, one point per cell, Pareto front per modality")
    ax.legend(fontsize=7, loc="best")
    return _save(figure, path)


def evaluation_figure(name: str, level_name: str, curves: dict[str, dict[float, list[float]]], path: Path,
                      recall: dict[str, dict[float, list[float]]] | None = None) -> Path:
    """Accuracy (and recall@1 where present) against the perturbation level, one line per configuration."""
    plt = _pyplot()
    panels = 2 if recall else 1
    figure, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 4.2), squeeze=False)
    for ax, (title, data) in zip(axes[0], [("test accuracy (%)", curves), ("cross-modal recall@1 (%)", recall or {})]):
        for label, by_level in sorted(data.items()):
            levels = sorted(by_level)
            means = [100 * np.mean(by_level[lvl]) for lvl in levels]
            errors = [100 * np.std(by_level[lvl], ddof=1) if len(by_level[lvl]) > 1 else 0.0 for lvl in levels]
            n = min(len(v) for v in by_level.values())
            ax.errorbar(levels, means, yerr=errors, marker="o", capsize=3, label=f"{label} (n={n})")
        ax.set_xlabel(level_name)
        ax.set_ylabel(f"{title}, mean ± std over seeds")
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
    figure.suptitle(f"{name}")
    return _save(figure, path)


def write_figures(out: Path, groups, evaluation_rows: list[dict[str, Any]]) -> list[tuple[str, Path]]:
    from neuromem.study.perturb import EVALUATIONS

    folder = Path(out) / FIGURES_DIR
    made = []
    for title, path in (("Test accuracy per memory × modality", accuracy_figure(groups, folder / "accuracy.png")),
                        ("Accuracy against energy (Pareto front)", pareto_figure(groups, folder / "pareto.png"))):
        if path is not None:
            made.append((title, path))
    label_of = {r["cell_id"]: f"{g.modality} {g.label}" for g in groups for r in g.rows}
    by_evaluation: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in evaluation_rows:
        if row["cell_id"] in label_of:
            by_evaluation[row["evaluation"]].append(row)
    for name, rows in sorted(by_evaluation.items()):
        curves: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        recall: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in rows:
            curves[label_of[row["cell_id"]]][row["level"]].append(row["accuracy"])
            for key, value in row.items():
                if key.endswith("recall@1"):
                    recall[f"{label_of[row['cell_id']]} {key.removesuffix('_recall@1').replace('_', ' ')}"][row["level"]].append(value)
        spec = EVALUATIONS.get(name)
        kind = spec.kind if spec else "evaluation"
        path = evaluation_figure(f"{kind}: {name}", spec.level_name if spec else "level", curves,
                                 folder / f"{kind}-{name}.png", recall or None)
        made.append((f"{kind.capitalize()}: {name}", path))
    return made
