"""The ablation grid: identical numbers across executors, and a kill -9 loses only running cells."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import run_cli

FAST = ["--epochs", "1", "--hidden", "24", "--batch-size", "16", "--max-train-samples", "48"]
GRID = ["--modality", "shd,joint", "--memory", "hopfield,scl"]


def _table(out) -> dict[str, dict]:
    """cell -> metrics without wall-clock time: what must match between runs."""
    results = json.loads((out / "results.json").read_text())
    skip = {"wall_seconds", "finished_at"}
    return {row["cell_id"]: {k: v for k, v in row.items() if k not in skip} for row in results["cells"]}


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    result = run_cli("ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    return _table(out)


def test_grid_cells_all_finish(uninterrupted):
    assert len(uninterrupted) == 4
    assert all(row["status"] == "ok" for row in uninterrupted.values())


def test_kill_minus_nine_then_resume_gives_the_same_table(tiny_data, tmp_path, uninterrupted):
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "neuromem", "ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *FAST]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    store = out / "results.sqlite"
    deadline = time.time() + 300
    finished = 0
    while time.time() < deadline and process.poll() is None:  # wait for the first finished cell
        if store.exists():
            with sqlite3.connect(store) as db:
                try:
                    finished = db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
                except sqlite3.OperationalError:
                    finished = 0
            if finished:
                break
        time.sleep(0.2)
    assert process.poll() is None, "the grid finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    with sqlite3.connect(store) as db:
        kept = db.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
    assert 1 <= kept < 4

    resumed = run_cli("ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *FAST)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{kept} already finished, {4 - kept} to run" in resumed.stderr
    resumed_table = _table(out)
    differing = {(cell, key, row.get(key), uninterrupted[cell].get(key)) for cell, row in resumed_table.items()
                 for key in row if row.get(key) != uninterrupted[cell].get(key)}
    assert not differing


def test_worker_processes_give_identical_numbers(tiny_data, tmp_path, uninterrupted):
    out = tmp_path / "workers"
    result = run_cli("ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *FAST, "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert _table(out) == uninterrupted


def test_ray_gives_identical_numbers(tiny_data, tmp_path, uninterrupted):
    pytest.importorskip("ray")
    out = tmp_path / "ray"
    result = run_cli("ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *FAST, "--executor", "ray",
                     env={"RAY_USAGE_STATS_ENABLED": "0"})
    assert result.returncode == 0, result.stderr
    assert _table(out) == uninterrupted


def _sigint_handler_of_worker(_) -> str:
    import signal

    return "ignored" if signal.getsignal(signal.SIGINT) == signal.SIG_IGN else "python's"


def test_grid_workers_are_born_ignoring_sigint_and_the_parent_is_not_changed():
    """An interrupt to the process group is the parent's to handle (it ends the workers); a worker still importing
    torch when it came printed a traceback of its own (seen once in the suite)."""
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor

    from neuromem.train.grid import _workers_ignore_sigint

    before = signal.getsignal(signal.SIGINT)
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    try:
        with _workers_ignore_sigint():
            futures = [pool.submit(_sigint_handler_of_worker, i) for i in range(2)]
        assert [f.result() for f in futures] == ["ignored", "ignored"]
    finally:
        pool.shutdown()
    assert signal.getsignal(signal.SIGINT) is before
