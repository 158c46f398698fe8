"""results.csv, results.json and report.md, regenerated from the store after every cell."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from neuromem.train.store import ResultStore, atomic_write_text

# leading columns, in this order; every other metric follows alphabetically
LEADING_COLUMNS = [
    "cell_id", "modality", "memory", "neuron", "seed", "status",
    "test_accuracy", "train_accuracy", "activation_sparsity",
    "synops_per_sample", "dense_macs_per_sample", "energy_pj_per_sample", "ann_energy_pj_per_sample", "energy_ratio",
    "epochs", "wall_seconds",
]
HIDDEN_METRICS = {"traceback"}
VISUAL, AUDITORY = "nmnist", "shd"


def flat_rows(store: ResultStore) -> list[dict[str, Any]]:
    rows = []
    for record in store.rows():
        config, metrics = record["config"], record["metrics"]
        row = {"cell_id": record["cell_id"], "status": record["status"]}
        row.update({k: config[k] for k in ("modality", "memory", "neuron", "seed", "epochs")})
        row.update({k: v for k, v in metrics.items() if k not in HIDDEN_METRICS})
        rows.append(row)
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    present = {k for row in rows for k in row}
    lead = [c for c in LEADING_COLUMNS if c in present or c in LEADING_COLUMNS[:9]]
    return lead + sorted(present - set(lead))


def _mean_std(values: list[float]) -> str:
    if not values:
        return ""
    if len(values) == 1:
        return f"{100 * values[0]:.2f}"
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values, ddof=1):.2f}"


def _accuracy_table(rows: list[dict[str, Any]]) -> str:
    """memory x modality, mean ± std of test accuracy over seeds, and the visual - auditory gap."""
    ok = [r for r in rows if r["status"] == "ok"]
    variants = sorted({(r["memory"], r["neuron"]) for r in ok})
    modalities = sorted({r["modality"] for r in ok})
    cells: dict[tuple, list[float]] = defaultdict(list)
    per_sense: dict[tuple, list[float]] = defaultdict(list)
    for r in ok:
        cells[(r["memory"], r["neuron"], r["modality"])].append(r["test_accuracy"])
        for sense in (VISUAL, AUDITORY):
            if f"test_accuracy_{sense}" in r:
                per_sense[(r["memory"], r["neuron"], sense)].append(r[f"test_accuracy_{sense}"])
    header = ["memory", "neuron", *modalities, "visual − auditory (points)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for memory, neuron in variants:
        visual, auditory = per_sense.get((memory, neuron, VISUAL)), per_sense.get((memory, neuron, AUDITORY))
        gap = f"{100 * (np.mean(visual) - np.mean(auditory)):+.2f}" if visual and auditory else ""
        values = [_mean_std(cells.get((memory, neuron, m), [])) for m in modalities]
        lines.append("| " + " | ".join([memory, neuron, *values, gap]) + " |")
    return "\n".join(lines)


def _cost_table(rows: list[dict[str, Any]]) -> str:
    keys = ["activation_sparsity", "synops_per_sample", "energy_pj_per_sample", "ann_energy_pj_per_sample", "energy_ratio"]
    ok = [r for r in rows if r["status"] == "ok"]
    present = [k for k in keys if any(k in r for r in ok)]
    header = ["cell", *present]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in ok:
        lines.append("| " + " | ".join([r["cell_id"], *(_fmt(r.get(k)) for k in present)]) + " |")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def write_reports(store: ResultStore) -> dict[str, Path]:
    rows = flat_rows(store)
    info = store.run_info()
    out = store.out_dir
    columns = _columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "results.csv", buffer.getvalue())
    atomic_write_text(out / "results.json", json.dumps({**info, "cells": rows}, indent=2, default=float))
    failed = [r for r in rows if r["status"] != "ok"]
    report = [
        "# neuromem ablation report",
        "",
        f"Data: **{info.get('data', '?')}** ({info.get('data_root', '?')}). Cells finished: "
        f"{len(rows) - len(failed)}; failed: {len(failed)}.",
        "",
        "## Test accuracy (%), mean ± std over seeds",
        "",
        _accuracy_table(rows),
        "",
        "## Cost",
        "",
        _cost_table(rows),
        "",
    ]
    if failed:
        report += ["## Failed cells", ""] + [f"- `{r['cell_id']}`: {r.get('error', '')}" for r in failed] + [""]
    atomic_write_text(out / "report.md", "\n".join(report))
    return {"csv": out / "results.csv", "json": out / "results.json", "report": out / "report.md"}
