"""The results store of an ablation run: SQLite in the output folder, one row per finished cell.

A row is written in one transaction only after the cell's artifacts are in
place (written to a temporary folder and renamed), so a crash or `kill -9`
loses at most the cells that were still running, and a re-run skips every
cell that has a row.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from neuromem.train.config import CellConfig

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    status TEXT NOT NULL,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


class ResultStore:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / "results.sqlite"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    # run-level facts (data source, data root)
    def set_run_info(self, **info: str) -> None:
        with self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO run VALUES (?, ?)", [(k, str(v)) for k, v in info.items()])

    def run_info(self) -> dict[str, str]:
        with self._connect() as db:
            return dict(db.execute("SELECT key, value FROM run").fetchall())

    def finished_ids(self) -> set[str]:
        with self._connect() as db:
            return {row[0] for row in db.execute("SELECT cell_id FROM cells WHERE status = 'ok'")}

    def rows(self) -> list[dict[str, Any]]:
        with self._connect() as db:
            rows = db.execute("SELECT cell_id, config, metrics, status, finished_at FROM cells ORDER BY cell_id").fetchall()
        return [
            {"cell_id": c, "config": json.loads(cfg), "metrics": json.loads(m), "status": s, "finished_at": t}
            for c, cfg, m, s, t in rows
        ]

    def cell_dir(self, cell_id: str) -> Path:
        return self.out_dir / "cells" / cell_id

    def record(
        self,
        config: CellConfig,
        metrics: dict[str, Any],
        status: str = "ok",
        representations: dict[str, np.ndarray] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Write the cell's artifacts atomically, then its row."""
        if status == "ok":
            self._write_artifacts(config, metrics, representations or {}, state or {})
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO cells VALUES (?, ?, ?, ?, ?)",
                (config.cell_id, json.dumps(config.to_dict(), sort_keys=True), json.dumps(metrics), status, time.time()),
            )

    def _write_artifacts(self, config, metrics, representations, state) -> None:
        final = self.cell_dir(config.cell_id)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{config.cell_id}."))
        try:
            (staging / "cell.json").write_text(json.dumps({"config": config.to_dict(), "metrics": metrics}, indent=2))
            buffer = io.BytesIO()
            np.savez(buffer, **representations)
            (staging / "representations.npz").write_bytes(buffer.getvalue())
            torch.save({"config": config.to_dict(), "state_dict": state}, staging / "model.pt")
            if final.exists():  # left by an interrupted earlier attempt without a row
                shutil.rmtree(final)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise


def configs_to_run(store: ResultStore, configs: Iterable[CellConfig]) -> list[CellConfig]:
    done = store.finished_ids()
    return [c for c in configs if c.cell_id not in done]
