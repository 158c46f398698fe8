"""Robustness and pattern-completion curves of finished cells, from their saved weights.

Each finished cell's `model.pt` is read with `torch.load(weights_only=True)`, its networks are
rebuilt exactly as the trainer built them, and its test split is evaluated under each
perturbation of `neuromem.study.perturb` at increasing levels: every data set perturbed alone,
accuracy per data set and their mean (as `test_accuracy`); for cells holding two senses, the
cross-modal recall@1 of a perturbed cue against the clean target's test representations. Each sample's
perturbation is seeded by (cell seed, evaluation, level, its position in the split): same cell, same curve. The
test split is perturbed batch by batch as it is read (`PerturbedSplit`), never dense as a whole.

Results go into the store's `evaluations` table (one row per cell, evaluation and level), from
which the report draws its curves.
"""

from __future__ import annotations

import importlib
import itertools
import json
import sqlite3
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from neuromem.errors import NeuromemError
from neuromem.train.config import CellConfig
from neuromem.study.perturb import EVALUATIONS

SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    cell_id TEXT NOT NULL,
    evaluation TEXT NOT NULL,
    level REAL NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (cell_id, evaluation, level)
);
"""


def _connect(store, schema: str = SCHEMA) -> sqlite3.Connection:
    db = sqlite3.connect(store.path, timeout=30)
    db.executescript(schema)
    return db


def read_table(store, table: str, columns: str) -> list[tuple]:
    """`columns` of every row of a table beside the store's cells, ordered by them ([] where the store or
    the table is absent)."""
    if not Path(store.path).is_file():
        return []
    db = sqlite3.connect(store.path, timeout=30)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if table not in tables:
            return []
        return db.execute(f"SELECT {columns} FROM {table} ORDER BY {columns}").fetchall()
    finally:
        db.close()


def load_evaluations(store) -> list[dict[str, Any]]:
    """Every stored evaluation row: cell_id, evaluation, kind, level, metrics (empty if none)."""
    rows = read_table(store, "evaluations", "cell_id, evaluation, level, metrics")
    return [{"cell_id": c, "evaluation": e, "kind": EVALUATIONS[e].kind if e in EVALUATIONS else "?", "level": lvl,
             **json.loads(m)} for c, e, lvl, m in rows]


def _seed(config: CellConfig, evaluation: str, level: float) -> int:
    return zlib.crc32(f"{config.seed}/{evaluation}/{level!r}".encode())


def load_cell(config: CellConfig, checkpoint: Path, data_root: Path, device: torch.device | str = "cpu"):
    """A finished cell rebuilt from its saved weights: (task, train splits, test splits, {group: network in
    eval mode, on `device`}), exactly as the trainer built them (the trainer's evaluations move each batch to
    the network's device and return CPU arrays)."""
    from neuromem.study.store import read_checkpoint_file
    from neuromem.train import trainer
    from neuromem.train.tasks import TASKS

    task = TASKS.get(config.modality)
    if task is None:
        raise NeuromemError(f"{config.modality} cells have no spiking test inputs to perturb")
    torch.set_num_threads(config.threads)
    saved = read_checkpoint_file(checkpoint)
    train, test = trainer._load(task, config, data_root, "train"), trainer._load(task, config, data_root, "test")
    classes = trainer._num_classes(task, train)
    networks = {}
    for group in trainer._groups(task):
        network = trainer._build(config, group, train, classes)
        load_saved_state(network, saved, "+".join(group), checkpoint)
        network.to(device).eval()
        networks[tuple(group)] = network
    return task, train, test, networks


def load_saved_state(network: torch.nn.Module, saved: Any, key: str, checkpoint: Path) -> None:
    """The weights saved under state_dict[key] into `network`; a checkpoint that lacks them, or whose weights do
    not fit the network built today, is one line naming the file (errors later, in evaluation, are not the
    checkpoint's)."""
    try:
        state = saved["state_dict"][key]
    except (KeyError, TypeError, IndexError) as error:
        raise NeuromemError(f"{checkpoint} does not hold this cell's weights ({type(error).__name__}: "
                            f"{' '.join(str(error).split())[:120]}); re-train it") from None
    try:
        network.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as error:
        raise NeuromemError(f"{checkpoint}: saved weights do not fit the network built today "
                            f"({' '.join(str(error).split())[:200]}); re-train it") from None


def evaluate_cell(config: CellConfig, checkpoint: Path, data_root: Path, evaluations: Sequence[str],
                  device: torch.device | str = "cpu") -> list[dict[str, Any]]:
    """Curves of one finished cell: one dict per (evaluation, level); its networks run on `device`, in the
    precision they were trained in (`neuromem.precision`); the perturbations are drawn on the CPU."""
    from neuromem.train.tasks import EXTERNAL_EVALUATORS

    if config.modality in EXTERNAL_EVALUATORS:  # a task trained by its own runner is evaluated by its own code
        module_name, _, function_name = EXTERNAL_EVALUATORS[config.modality].partition(":")
        return getattr(importlib.import_module(module_name), function_name)(config, checkpoint, data_root, evaluations)
    from neuromem.precision import autocast

    task, train, test, networks = load_cell(config, checkpoint, data_root, device)
    with autocast(config.precision, device):
        return _curves(config, task, test, networks, evaluations)


def _curves(config: CellConfig, task, test, networks, evaluations: Sequence[str]) -> list[dict[str, Any]]:
    from neuromem.study.perturbed_split import PerturbedSplit
    from neuromem.train import trainer

    clean = {d: trainer._evaluate(net, test[d])["representations"] for group, net in networks.items() for d in group}
    results = []
    for name in evaluations:
        spec = EVALUATIONS[name]
        for level in spec.levels:
            seed, perturb = _seed(config, name, level), spec.make(level)
            metrics: dict[str, Any] = {}
            for group, network in networks.items():
                # each data set its own draws (a joint cell's senses are not perturbed alike)
                perturbed = {d: PerturbedSplit.of(test[d], perturb, zlib.crc32(f"{seed}/{d}".encode())) for d in group}
                for d in group:
                    predictions = trainer._evaluate(network, perturbed[d])["predictions"]
                    metrics[f"accuracy_{d}"] = float((predictions == test[d].labels).mean())
                for cue, target in itertools.permutations(group, 2):
                    scores = trainer._cross_modal_retrieval(network, perturbed[cue], target, clean[target], test[target].labels)
                    metrics.update({k.removeprefix("retrieval_"): v for k, v in scores.items() if k.endswith("recall@1")})
            metrics["accuracy"] = float(np.mean([metrics[f"accuracy_{d}"] for d in task.datasets]))
            results.append({"evaluation": name, "level": float(level), "metrics": metrics})
    return results


def usable_cells(store, data_root: Path, on_cell: Callable[[str, Any, str | None], None], allow_stale: bool = False
                 ) -> Iterator[tuple[dict[str, Any], CellConfig, Path]]:
    """The finished cells of the store whose saved weights can be evaluated on `data_root`: (row, config,
    model.pt path); each other one is passed to on_cell(cell_id, None, why). Stale cells (model code changed
    since training) are skipped unless `allow_stale`."""
    from neuromem.data.cache import root_fingerprint

    from neuromem.train.provenance import current_provenance, stale_reason

    fingerprint = root_fingerprint(data_root)
    for row in store.rows():
        if row["status"] != "ok":
            continue
        config = CellConfig.from_dict(row["config"])
        checkpoint = store.cell_dir(row["cell_id"]) / "model.pt"
        if config.data_fingerprint and config.data_fingerprint != fingerprint:
            on_cell(row["cell_id"], None, f"trained on other data (fingerprint {config.data_fingerprint}, {data_root} is {fingerprint})")
            continue
        if not checkpoint.is_file():
            on_cell(row["cell_id"], None, "no model.pt")
            continue
        stale = stale_reason(row["metrics"].get("provenance"), current_provenance(config.memory))
        if stale and not allow_stale:  # rebuilt from today's code, the saved weights may not fit (or mean something else)
            on_cell(row["cell_id"], None, f"stale ({stale}); re-train it with `neuromem ablate ... --rerun stale`")
            continue
        yield row, config, checkpoint


CELL_ERRORS = (NeuromemError, RuntimeError, KeyError, TypeError, AttributeError, ValueError, IndexError)


def cell_failure(error: BaseException, checkpoint: Path) -> str:
    """One line for an error from rebuilding or evaluating a cell (one of CELL_ERRORS). A checkpoint's own
    problems are NeuromemErrors raised where it is read (`load_saved_state`); anything else happened while
    evaluating a network that loaded, so it is named as neuromem's failure, not the cell's files'."""
    if isinstance(error, NeuromemError):
        return str(error)
    return (f"evaluating the weights of {checkpoint} failed inside neuromem ({type(error).__name__}: "
            f"{' '.join(str(error).split())[:160]}); a bug, not the cell's files: please report it")


def write_rows(store, statement: str, rows: list[tuple], schema: str = SCHEMA) -> None:
    """Rows into a table beside the store's cells (created by `schema`), in one transaction (a damaged or
    locked store is one line)."""
    try:
        db = _connect(store, schema)
        try:
            with db:
                db.executemany(statement, rows)
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        from neuromem.study.store import _unreadable

        raise _unreadable(Path(store.path), error) from None


def evaluate_store(store, data_root: Path, evaluations: Sequence[str],
                   on_cell: Callable[[str, list[dict[str, Any]] | None, str | None], None] = lambda *a: None,
                   allow_stale: bool = False, device: torch.device | str = "cpu") -> int:
    """Evaluate every finished cell of the store (its networks on `device`); returns how many cells were
    evaluated. Stale cells (model code changed since training) are skipped unless `allow_stale`."""
    count = 0
    for row, config, checkpoint in usable_cells(store, data_root, on_cell, allow_stale):
        try:
            results = evaluate_cell(config, checkpoint, data_root, evaluations, device)
        except CELL_ERRORS as error:
            on_cell(row["cell_id"], None, cell_failure(error, checkpoint))
            continue
        write_rows(store, "INSERT OR REPLACE INTO evaluations VALUES (?, ?, ?, ?)",
                   [(row["cell_id"], r["evaluation"], r["level"], json.dumps(r["metrics"])) for r in results])
        count += 1
        on_cell(row["cell_id"], results, None)
    return count


def parse_evaluations(text: str | None, flag: str, valid: Sequence[str]) -> list[str]:
    if not text:
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        raise NeuromemError(f"{flag} {', '.join(unknown) or repr(text)} is not known; valid: {', '.join(valid)}")
    return list(dict.fromkeys(names))
