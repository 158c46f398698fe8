"""What a memory can do, measured on finished cells: capacity, retention, interference / continual learning
and few-shot learning (`neuromem evaluate RUN --capacity --retention --interference --few-shot`).

One file per suite, each behind one entry of `SUITES`: `run(CellContext) -> (rows, notes)`, a row being
{curve, level, metrics} with the curve's main number in metrics["value"]; a suite that does not apply to a
cell raises `NotApplicable` with the reason. Rows go into the store's `suite_results` table, one row per
(cell, suite, curve, level), all rows of a (cell, suite) in one transaction: a re-run skips the (cell, suite)
pairs already there. Every draw is seeded by (cell seed, suite, curve, level): same cell, same curves.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from neuromem.study.suites.context import CellContext, NotApplicable, SuiteOptions

SCHEMA = """
CREATE TABLE IF NOT EXISTS suite_results (
    cell_id TEXT NOT NULL,
    suite TEXT NOT NULL,
    curve TEXT NOT NULL,
    level REAL NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (cell_id, suite, curve, level)
);
"""


@dataclass(frozen=True)
class Suite:
    name: str
    flag: str
    title: str
    run: Callable[[CellContext], tuple[list[dict[str, Any]], list[str]]]
    value_name: Callable[[str], str]  # what metrics["value"] is, per curve
    level_name: Callable[[str], str]  # the x axis of a curve
    about: str  # one paragraph for the report: what the curves mean
    summary_keys: tuple[str, ...] = ()  # further metrics the report's table shows (at the last level)
    log_x: Callable[[str], bool] = lambda curve: False


def _suites() -> dict[str, Suite]:
    from neuromem.study.suites import capacity, few_shot, interference, retention

    return {s.name: s for s in (
        Suite("capacity", "--capacity", "Capacity", capacity.run,
              lambda c: "N-way accuracy (nearest class mean)" if c == "n-way" else "stored patterns retrieved",
              lambda c: "number of classes N" if c == "n-way" else "load P / d (stored patterns per dimension)",
              "n-way: the trained network frozen as the feature space, N random classes of the cell's own data, "
              "a nearest-class-mean classifier (cosine) from up to 50 training samples per class, tested on their "
              "test samples (dotted: chance). patterns: for memories that declare an associative recall, P random "
              "patterns of the memory's own trained norm stored, cued with noise of the given fraction of their "
              "norm, retrieved by the memory's own rule (one run); correct when nearest to the cued pattern and at most half as "
              "far from it as the cue. "
              "theory_load: Ramsauer et al. 2020, Theorem 3 (p = 0.001) at the memory's beta and pattern norm, "
              "a lower bound on what is stored; empty where its condition fails.",
              ("theory_load",), log_x=lambda c: c != "n-way"),
        Suite("retention", "--retention", "Retention", retention.run, lambda c: "test accuracy",
              lambda c: f"delay of {c} after the sample (multiples of its length in bins)",
              "Each test sample followed by silence or by unstructured Poisson background (the test set's mean "
              "rate per bin and cell) before the readout. neuromem's readouts pool the memory's output over the "
              "whole sequence in a fixed number of windows, so this measures how the trained code survives being "
              "squeezed into the early windows and followed by nothing (or noise), not the decay of a held state."),
        Suite("interference", "--interference", "Interference and continual learning", interference.run,
              lambda c: "accuracy on task 1", lambda c: "after task (1, 2)",
              "A fresh copy of the cell's network (same config and seed) trained on task 1, then task 2, no replay. "
              "class-incremental: concepts (digits) 0-4 then 5-9, one head; domain-incremental: where a data set "
              "declares domains (SHD: English then German digits), labelled by concept. forgetting = task-1 "
              "accuracy after task 1 minus after task 2; average over the tasks trained; dashed / "
              "*_without_writes: a memory that writes at test time, reset before every batch.",
              ("average_accuracy", "forgetting", "forgetting_without_writes")),
        Suite("few-shot", "--few-shot", "Few-shot", few_shot.run, lambda c: "k-shot accuracy (nearest prototype)",
              lambda c: "shots per class k",
              "Nearest prototype (cosine class mean) on the frozen network's memory representations; "
              "held-out classes: the interference suite's copy after task 1, on the classes it never trained "
              "on (all-way); trained classes: the cell itself, for reference. Mean over seeded episodes "
              "(results.json has the std over episodes)."),
    )}


SUITE_NAMES = ("capacity", "retention", "interference", "few-shot")


def suites() -> dict[str, Suite]:
    return _suites()


def _done(store, cell_id: str) -> set[str]:
    from neuromem.study.evaluate import _connect

    db = _connect(store, SCHEMA)
    try:
        return {r[0] for r in db.execute("SELECT DISTINCT suite FROM suite_results WHERE cell_id = ?", (cell_id,))}
    finally:
        db.close()


def load_suite_rows(store) -> list[dict[str, Any]]:
    """Every stored suite row: cell_id, suite, curve, level and its metrics."""
    from neuromem.study.evaluate import read_table

    rows = read_table(store, "suite_results", "cell_id, suite, curve, level, metrics")
    return [{"cell_id": c, "suite": s, "curve": cv, "level": lvl, **json.loads(m)} for c, s, cv, lvl, m in rows]


def run_suites(store, data_root: Path, names: Sequence[str], options: SuiteOptions = SuiteOptions(),
               on_cell: Callable[[str, str | None, Any, str | None], None] = lambda *a: None,
               allow_stale: bool = False, device: "torch.device | str" = "cpu") -> int:
    """Run the named suites on every usable finished cell, skipping (cell, suite) pairs already stored; the cells'
    networks (and the copies the suites train) run on `device`, in the precision each cell was trained in.
    on_cell(cell_id, suite, rows or None, note) reports each; returns how many (cell, suite) pairs hold rows
    now (computed here or before)."""
    from neuromem.precision import autocast
    from neuromem.study.evaluate import CELL_ERRORS, cell_failure, usable_cells, write_rows

    registry = suites()
    count = 0
    for row, config, checkpoint in usable_cells(store, data_root, lambda c, _, why: on_cell(c, None, None, why),
                                                allow_stale):
        cell_id = row["cell_id"]
        done = _done(store, cell_id)
        todo = [n for n in names if n not in done]
        count += len(names) - len(todo)
        for name in names:
            if name in done:
                on_cell(cell_id, name, None, "already in the store (kept)")
        if not todo:
            continue
        try:
            ctx = CellContext(config, checkpoint, data_root, options, device)
        except CELL_ERRORS as error:
            on_cell(cell_id, None, None, cell_failure(error, checkpoint))
            continue
        for name in todo:
            started = time.perf_counter()
            try:
                with autocast(config.precision, ctx.device):
                    rows, notes = registry[name].run(ctx)
            except NotApplicable as reason:
                on_cell(cell_id, name, None, f"not applicable: {reason}")
                continue
            except CELL_ERRORS as error:
                on_cell(cell_id, name, None, cell_failure(error, checkpoint))
                continue
            write_rows(store, "INSERT OR REPLACE INTO suite_results VALUES (?, ?, ?, ?, ?)",
                       [(cell_id, name, r["curve"], r["level"], json.dumps(r["metrics"])) for r in rows], SCHEMA)
            count += 1
            on_cell(cell_id, name, rows, "; ".join([*notes, f"{time.perf_counter() - started:.1f} s"]))
    return count


__all__ = ["SUITE_NAMES", "Suite", "SuiteOptions", "suites", "run_suites", "load_suite_rows", "NotApplicable"]
