"""The engram alignment report: one self-contained HTML file plus engram.json."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neuromem.engram.alignment import AlignmentResult, align, class_means  # noqa: E402
from neuromem.engram.runs import Cell, Comparison, load_run, plan_comparisons  # noqa: E402
from neuromem.errors import NeuromemError  # noqa: E402

ENERGY_KEYS = ("energy_pj_per_sample", "ann_energy_pj_per_sample", "energy_ratio")


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _heatmap(axis, matrix, classes, title, cmap="viridis", xlabel="", ylabel=""):
    image = axis.imshow(np.asarray(matrix), cmap=cmap)
    axis.set_xticks(range(len(classes)), classes)
    axis.set_yticks(range(len(classes)), classes)
    axis.set_title(title, fontsize=10)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.figure.colorbar(image, ax=axis, fraction=0.046)


def similarity_figure(comparison: Comparison, result: AlignmentResult) -> str:
    a, b = comparison.first.modality, comparison.second.modality
    panels = 3 if result.class_cosine is not None else 2
    figure, axes = plt.subplots(1, panels, figsize=(4.3 * panels, 3.8))
    _heatmap(axes[0], result.within_similarity[a], result.classes, f"{a} x {a} cosine")
    _heatmap(axes[1], result.within_similarity[b], result.classes, f"{b} x {b} cosine")
    if result.class_cosine is not None:
        _heatmap(axes[2], result.class_cosine, result.classes, f"{a} (rows) x {b} (columns) cosine", "magma")
    figure.tight_layout()
    return _png(figure)


def rdm_figure(comparison: Comparison, result: AlignmentResult) -> str:
    figure, axes = plt.subplots(1, 2, figsize=(8.6, 3.8))
    for axis, modality in zip(axes, (comparison.first.modality, comparison.second.modality)):
        _heatmap(axis, result.rdms[modality], result.classes, f"RDM {modality} (1 - Pearson r)", "cividis")
    figure.suptitle(f"RSA Spearman r = {result.rsa['spearman_r']:.3f} (p = {result.rsa['p_value']:.3g})", fontsize=10)
    return _png(figure)


def _project(points: np.ndarray) -> np.ndarray:
    centred = points - points.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    basis = vt[:2].T
    projected = centred @ basis
    return projected if projected.shape[1] == 2 else np.pad(projected, ((0, 0), (0, 2 - projected.shape[1])))


def projection_figure(comparison: Comparison, result: AlignmentResult) -> str:
    """PCA of both modalities' class-mean engrams (one space when dimensions agree)."""
    classes = np.array(result.classes)
    first, second = comparison.first, comparison.second
    means_a = class_means(first.representations, first.digits, classes)
    means_b = class_means(second.representations, second.digits, classes)
    shared = means_a.shape[1] == means_b.shape[1]
    colours = plt.cm.tab10(np.arange(len(classes)) % 10)
    figure, axes = plt.subplots(1, 1 if shared else 2, figsize=(5.5 if shared else 9, 4.5), squeeze=False)
    if shared:
        projected = _project(np.vstack([means_a, means_b]))
        groups = [(axes[0, 0], projected[: len(classes)], first.modality, "o"),
                  (axes[0, 0], projected[len(classes):], second.modality, "^")]
        for c in range(len(classes)):
            axes[0, 0].plot(*zip(projected[c], projected[len(classes) + c]), color=colours[c], lw=0.8, alpha=0.6)
        axes[0, 0].set_title("class engrams, joint PCA (lines join the same digit)", fontsize=10)
    else:
        groups = [(axes[0, 0], _project(means_a), first.modality, "o"), (axes[0, 1], _project(means_b), second.modality, "^")]
        axes[0, 0].set_title(f"{first.modality} engrams (own PCA)", fontsize=10)
        axes[0, 1].set_title(f"{second.modality} engrams (own PCA; spaces differ)", fontsize=10)
    for axis, points, modality, marker in groups:
        axis.scatter(points[:, 0], points[:, 1], c=colours, marker=marker, s=70, edgecolors="k", label=modality)
        for c, (x, y) in zip(classes, points):
            axis.annotate(str(c), (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        axis.set_xlabel("PC 1")
        axis.set_ylabel("PC 2")
        axis.legend(fontsize=8)
    return _png(figure)


# spread across samples below this fraction of the values' size: the engrams carry (almost) no information
CONSTANT_SPREAD = 1e-3


def constant_warning(engrams) -> str | None:
    """A warning when one modality's representations are constant across samples, or nearly so (a collapsed
    model): every alignment statistic is then at chance (e.g. 0.000 with p = 1) and says nothing."""
    reps = np.asarray(engrams.representations, dtype=np.float64)
    spread = float(np.sqrt(np.mean(reps.var(axis=0)))) if reps.size else 0.0
    scale = float(np.sqrt(np.mean(reps**2))) if reps.size else 0.0
    if spread > CONSTANT_SPREAD * scale and spread > 1e-12:
        return None
    what = "constant" if spread <= 1e-12 else "nearly constant"
    return (f"{engrams.cell.label}: the {engrams.modality} representations are {what} across its {len(reps)} samples "
            f"(spread {spread:.3g} vs size {scale:.3g}); the model has collapsed, so the statistics for it are "
            "meaningless; train longer or on more samples")


def _layer_sparsity(cell: Cell) -> dict[str, float]:
    metrics = cell.metrics
    if isinstance(metrics.get("layer_sparsity"), dict):
        return {k: float(v) for k, v in metrics["layer_sparsity"].items() if v is not None}
    accounting = metrics.get("accounting")
    if isinstance(accounting, dict):
        return {
            layer["name"]: float(layer["activation_sparsity"])
            for layer in accounting.get("layers", [])
            if layer.get("activation_sparsity") is not None
        }
    return {}


def sparsity_figure(cells: list[Cell]) -> str | None:
    series = {cell.label: _layer_sparsity(cell) for cell in cells}
    series = {label: values for label, values in series.items() if values}
    if not series:
        return None
    rows = sum(1 for _ in series)
    figure, axes = plt.subplots(rows, 1, figsize=(9, 1.2 + 0.35 * max(len(v) for v in series.values()) * rows), squeeze=False)
    for axis, (label, values) in zip(axes[:, 0], series.items()):
        names = list(values)
        axis.barh(names, [values[n] for n in names], color="#3b7dd8")
        axis.set_xlim(0, 1)
        axis.invert_yaxis()
        axis.set_title(f"activation sparsity per layer: {label}", fontsize=10)
        for y, name in enumerate(names):
            axis.text(min(values[name], 0.98), y, f" {values[name]:.3f}", va="center", ha="right", fontsize=8, color="white")
    figure.tight_layout()
    return _png(figure)


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def energy_figure(cells: list[Cell]) -> str | None:
    rows = [
        (cell.label, float(cell.metrics["energy_pj_per_sample"]), float(cell.metrics["ann_energy_pj_per_sample"]))
        for cell in cells
        if all(_positive_number(cell.metrics.get(k)) for k in ENERGY_KEYS[:2])
    ]
    if not rows:
        return None
    figure, axis = plt.subplots(figsize=(max(5, 2.2 * len(rows)), 4))
    x = np.arange(len(rows))
    spiking = [r[1] for r in rows]
    ann = [r[2] for r in rows]
    axis.bar(x - 0.2, spiking, 0.4, label="spiking", color="#2a9d8f")
    axis.bar(x + 0.2, ann, 0.4, label="ANN-equivalent", color="#e76f51")
    for xi, s, a in zip(x, spiking, ann):
        ratio = a / s if s > 0 else math.nan
        axis.text(xi, max(s, a) * 2.2, f"ratio {ratio:.1f}x", ha="center", fontsize=9)
    axis.set_yscale("log")
    axis.set_ylim(min(spiking + ann) / 5, max(spiking + ann) * 5)
    for xi, s, a in zip(x, spiking, ann):
        axis.text(xi - 0.2, s, f"{s:,.3g} pJ", ha="center", va="bottom", fontsize=7)
        axis.text(xi + 0.2, a, f"{a:,.3g} pJ", ha="center", va="bottom", fontsize=7)
    axis.set_xticks(x, [r[0] for r in rows], rotation=15, fontsize=8)
    axis.set_ylabel("energy per inference (pJ, log)")
    axis.set_title("energy per inference (measured counts x per-op energies)", fontsize=10)
    axis.legend(fontsize=8, loc="center right")
    return _png(figure)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _cell_summary(cell: Cell) -> dict[str, Any]:
    keep = {
        k: v
        for k, v in cell.metrics.items()
        if isinstance(v, (int, float, str)) or k in ("energy_assumptions",)
    }
    return {"cell": cell.label, "config": cell.config, "metrics": keep, "layer_sparsity": _layer_sparsity(cell)}


def _result_dict(comparison: Comparison, result: AlignmentResult) -> dict[str, Any]:
    return {
        "label": comparison.label,
        "kind": comparison.kind,
        "cells": [cell.label for cell in comparison.cells],
        "modalities": [comparison.first.modality, comparison.second.modality],
        "memory": sorted({str(cell.config.get("memory")) for cell in comparison.cells}),
        "samples": {comparison.first.modality: len(comparison.first.digits), comparison.second.modality: len(comparison.second.digits)},
        "dimensions": {
            comparison.first.modality: int(comparison.first.representations.shape[1]),
            comparison.second.modality: int(comparison.second.representations.shape[1]),
        },
        "classes": result.classes,
        "n_pairs": result.n_pairs,
        "permutations": result.permutations,
        "cosine": result.cosine,
        "cka": result.cka,
        "rsa": result.rsa,
        "cca": result.cca,
        "class_cosine": result.class_cosine,
        "within_similarity": result.within_similarity,
        "rdms": result.rdms,
    }


STYLE = """
body{font-family:system-ui,sans-serif;max-width:1150px;margin:24px auto;color:#222;padding:0 12px}
table{border-collapse:collapse;margin:8px 0 16px;display:block;overflow-x:auto;max-width:100%}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:right}
th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}img{max-width:100%;display:block;margin:8px 0}
.note{color:#555;font-size:13px}.warning{color:#a4262c;font-size:14px}pre{background:#f7f7f7;padding:8px;font-size:12px;white-space:pre-wrap}
section{border-top:2px solid #ddd;margin-top:18px}
"""

# sets data-figures on <body> once every figure has decoded, for headless checks
CHECK_SCRIPT = """
window.addEventListener('load',function(){var imgs=document.images,ok=0;
for(var i=0;i<imgs.length;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++;}
document.body.setAttribute('data-figures',ok+'/'+imgs.length);});
"""


def _with_chance(measure: dict[str, Any], key: str) -> str:
    return f"{measure[key]:.4g} (chance {measure['null_mean']:.3g})"


def _summary_table(results: list[dict[str, Any]]) -> str:
    head = (
        "<tr><th>comparison</th><th>kind</th><th>memory</th><th>pairs</th><th>cosine match &minus; non-match</th>"
        "<th>p</th><th>per-sample cosine match / non-match</th><th>linear CKA</th><th>p</th><th>RSA r</th><th>p</th><th>CCA mean r</th><th>p</th></tr>"
    )
    rows = []
    for r in results:
        cosine = r["cosine"] or {}
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{_fmt(v)}</td>"
                for v in (
                    r["label"], r["kind"], ", ".join(r["memory"]), r["n_pairs"],
                    _with_chance(cosine, "difference") if cosine else "n/a (spaces differ)", cosine.get("p_value", "n/a"),
                    f"{cosine['per_sample_matching']:.3g} / {cosine['per_sample_non_matching']:.3g}" if cosine else "n/a",
                    _with_chance(r["cka"], "linear_cka"), r["cka"]["p_value"],
                    _with_chance(r["rsa"], "spearman_r"), r["rsa"]["p_value"],
                    _with_chance(r["cca"], "mean_canonical_correlation"), r["cca"]["p_value"],
                )
            )
            + "</tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


def _cells_table(cells: list[Cell]) -> str:
    keys = ["test_accuracy", "activation_sparsity", "synops_per_sample", "dense_macs_per_sample", *ENERGY_KEYS]
    head = "<tr><th>cell</th><th>modality</th><th>memory</th><th>seed</th>" + "".join(f"<th>{k}</th>" for k in keys) + "</tr>"
    rows = []
    for cell in cells:
        values = [cell.label, cell.config.get("modality"), cell.config.get("memory"), cell.config.get("seed")]
        values += [cell.metrics.get(k, "") for k in keys]
        rows.append("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in values) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _assumptions(cells: list[Cell]) -> str:
    blocks = []
    for cell in cells:
        lines = cell.metrics.get("energy_assumptions")
        if isinstance(lines, list) and lines:
            blocks.append(f"<p class='note'>{html.escape(cell.label)}</p><pre>{html.escape(chr(10).join(map(str, lines)))}</pre>")
    if not blocks:
        return "<p class='note'>The runs saved no energy assumptions (metrics.energy_assumptions); energy numbers are shown as saved.</p>"
    return "".join(blocks)


def build_report(
    run_dirs: list[Path],
    out: Path,
    permutations: int = 1000,
    seed: int = 0,
    max_pairs_per_digit: int | None = 50,
    device: str = "cpu",
) -> dict[str, Any]:
    """Write `out` (HTML) and engram.json beside it; return the JSON document."""
    if not run_dirs:
        raise NeuromemError("no RUN_DIR given; the engram report needs at least one run directory")
    if permutations < 1:
        raise NeuromemError(f"--permutations must be >= 1, got {permutations}")
    cells = [cell for run_dir in run_dirs for cell in load_run(Path(run_dir))]
    comparisons, unpaired = plan_comparisons(cells)
    results, sections = [], []
    for comparison in comparisons:
        first, second = comparison.first, comparison.second
        result = align(
            first.modality, first.representations, first.digits,
            second.modality, second.representations, second.digits,
            permutations=permutations, seed=seed, max_pairs_per_digit=max_pairs_per_digit, device=device,
        )
        entry = _result_dict(comparison, result)
        entry["warnings"] = [w for engrams in (first, second) if (w := constant_warning(engrams)) is not None]
        results.append(entry)
        figures = [
            ("class x class similarity", similarity_figure(comparison, result)),
            ("representational dissimilarity matrices", rdm_figure(comparison, result)),
            ("2-D projection of both modalities' engrams", projection_figure(comparison, result)),
        ]
        sparsity = sparsity_figure(comparison.cells)
        if sparsity:
            figures.append(("activation sparsity per layer", sparsity))
        energy = energy_figure(comparison.cells)
        if energy:
            figures.append(("energy per inference", energy))
        body = "".join(
            f"<h3>{html.escape(title)}</h3><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
            for title, data in figures
        )
        kind_note = (
            "<p class='note'>Separately trained networks: their coordinates are not shared, so cosine and the joint "
            "PCA only show chance-level correspondence; CKA, RSA and CCA do not depend on shared coordinates.</p>"
            if comparison.kind == "parallel"
            else "<p class='note'>One network with both modalities: cosine compares engrams in its shared memory space.</p>"
        )
        warning_note = "".join(f"<p class='warning'><b>warning:</b> {html.escape(w)}</p>" for w in entry["warnings"])
        sections.append(
            f"<section><h2>{html.escape(comparison.label)} ({comparison.kind})</h2>{warning_note}{kind_note}"
            f"{_summary_table([entry])}{_cells_table(comparison.cells)}"
            f"<h3>energy assumptions</h3>{_assumptions(comparison.cells)}{body}</section>"
        )
    document = {
        "settings": {"permutations": permutations, "seed": seed, "max_pairs_per_digit": max_pairs_per_digit},
        "runs": [str(Path(r)) for r in run_dirs],
        "comparisons": results,
        "cells": [_cell_summary(cell) for cell in cells],
        "unpaired_cells": [cell.label for cell in unpaired],
        "warnings": [w for entry in results for w in entry["warnings"]],
    }
    warnings_html = "".join(f"<p class='warning'><b>warning:</b> {html.escape(w)}</p>" for w in document["warnings"])
    unpaired_note = (
        f"<p class='note'>Not compared (no partner with the other modality, same memory, seed, neuron and options): "
        f"{html.escape(', '.join(c.label for c in unpaired))}</p>" if unpaired else ""
    )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>neuromem engram report</title>"
        f"<style>{STYLE}</style></head><body><h1>Cross-modal engram alignment</h1>"
        "<p class='note'>Engrams are memory-layer representations on the test split: per sample, and per digit as the "
        "class mean. Cosine: mean similarity of matching minus non-matching digits' class means (only when both "
        "modalities share one space). CKA and CCA use digit-matched sample pairs (k-th sample of a digit in one modality "
        "with the k-th in the other); CCA after PCA to 3 components per modality. RSA: Spearman r between the two "
        "modalities' class RDMs. p-values: permutation tests in which the digit labels of one modality are permuted (for paired samples, whole digits are re-paired); each value is shown with its chance level (the mean under that null), "
        f"{permutations} permutations, seed {seed}.</p>"
        f"<h2>Summary</h2>{warnings_html}{_summary_table(results)}{unpaired_note}{''.join(sections)}"
        f"<script>{CHECK_SCRIPT}</script></body></html>"
    )
    out = Path(out)
    # strict JSON: non-finite numbers (e.g. a baseline cell's missing energy) become null
    numbers = json.dumps(_finite(document), indent=2, default=_json_default, allow_nan=False)
    from neuromem.study.store import atomic_write_text  # whole file or the old one: never half a report

    atomic_write_text(out, page)
    atomic_write_text(out.parent / "engram.json", numbers)
    return document


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, np.generic):
        return _finite(value.item())
    return value


def _json_default(value: Any):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
