"""The 26 failing cases of the hostile-input review (each test names its case id), kept fixed.

Usage errors, security and the concurrency test run the real entry point (`python -m neuromem`)
in a subprocess; the rest call `neuromem.cli.main()` (the same error path) in this process, so
that faults can be injected (a full disk, a read-only file system) and the file stays fast.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest


TINY = ["--epochs", "1", "--max-train-samples", "32", "--threads", "1", "--hidden", "16", "--batch-size", "16"]
GRID = ["--modality", "shd,nmnist", "--memory", "hopfield,scl"]


def one_error_line(err: str) -> str:
    """The run's single `error:` line (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def main_in_process(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """neuromem's console entry point, called here: (exit code, stdout, stderr)."""
    from neuromem.cli import main

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["neuromem", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class _Evil:
    """Unpickling this runs `touch <marker>`: what an attacker would put in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def evil_checkpoint(tmp_path_factory) -> tuple[Path, Path]:
    import torch

    folder = tmp_path_factory.mktemp("evil")
    marker, checkpoint = folder / "PWNED", folder / "evil.pt"
    torch.save({"config": {"memory": "hopfield"}, "state_dict": _Evil(marker)}, checkpoint)
    assert checkpoint.is_file() and not marker.exists()
    return checkpoint, marker


@pytest.fixture(scope="module")
def entry_point_runs(evil_checkpoint) -> dict[str, subprocess.CompletedProcess]:
    """The entry-point cases, started together (each is an interpreter start, most of their cost)."""
    checkpoint, _ = evil_checkpoint
    cases = {
        "c05": ["ablate", "--modality", "shd", "--memory", "hopfield", "--epochs", "0"],
        "x13": ["export", str(checkpoint), "--to", "lava", "--out", str(checkpoint.parent / "evil.h5")],
    }
    started = {case: subprocess.Popen([sys.executable, "-m", "neuromem", *args], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env=dict(os.environ))
               for case, args in cases.items()}
    results = {}
    for case, process in started.items():
        out, err = process.communicate(timeout=300)
        results[case] = subprocess.CompletedProcess(cases[case], process.returncode, out, err)
    return results


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory) -> Path:
    """The 4-cell grid, run once in this process (the reference for resumes and concurrent runs)."""
    from neuromem.cli import main

    out = tmp_path_factory.mktemp("finished") / "run"
    argv = sys.argv
    sys.argv = ["neuromem", "ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *TINY]
    try:
        main()
    finally:
        sys.argv = argv
    assert len(list((out / "cells").iterdir())) == 4
    return out


def _metrics(out: Path) -> dict[str, dict]:
    db = sqlite3.connect(out / "results.sqlite")
    rows = db.execute("SELECT cell_id, status, metrics FROM cells").fetchall()
    db.close()
    strip = lambda m: {k: v for k, v in json.loads(m).items() if k not in ("wall_seconds", "provenance")}  # noqa: E731
    return {cell: {"status": status, **strip(metrics)} for cell, status, metrics in rows}


# ---- usage errors raised by typer itself: one line, exit 2, through the real entry point


def test_c05_epochs_zero_entry_point(entry_point_runs):
    result = entry_point_runs["c05"]
    assert result.returncode == 2
    line = one_error_line(result.stderr)
    assert "--epochs" in line and "'0'" in line and ">= 1" in line.replace("greater than or equal to", ">=")
    assert len(result.stderr.strip().splitlines()) == 1


def test_c13_unknown_command(monkeypatch, capsys):
    code, _, err = main_in_process(monkeypatch, capsys, "frobnicate")
    assert code == 2
    line = one_error_line(err)
    assert "frobnicate" in line and "valid:" in line and "ablate" in line


def test_c14_bare_neuromem_prints_help(monkeypatch, capsys):
    code, out, err = main_in_process(monkeypatch, capsys)
    assert code in (0, 2)
    assert "Traceback" not in out + err
    assert "ablate" in out + err and "Usage" in out + err


@pytest.mark.parametrize("case, args, named", [
    ("c06", ["ablate", "--modality", "shd", "--memory", "hopfield", "--learning-rate", "-1"], "--learning-rate"),
    ("c15", ["ablate", "--modality", "shd", "--memory", "hopfield", "--learning-rate", "nan"], "--learning-rate"),
    ("c10", ["ablate", "--memory", "hopfield"], "--modality"),
    ("c11", ["ablate", "--modality", "shd", "--memory", "hopfield", "--bogus", "1"], "--bogus"),
    ("c12", ["ablate", "--modality", "shd", "--memory", "hopfield", "--epochs", "abc"], "--epochs"),
    ("e05", ["engram"], "run_dirs"),
])
def test_usage_errors_are_one_line(monkeypatch, capsys, case, args, named):
    code, _, err = main_in_process(monkeypatch, capsys, *args)
    assert code == 2, (case, err)
    line = one_error_line(err)
    assert named in line.lower() or named in line, (case, line)
    assert len(err.strip().splitlines()) == 1


# ---- memory options: checked before training; a failed cell fails the run


def test_c07_negative_dim_is_named(monkeypatch, capsys, tiny_data, tmp_path):
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--memory-option", "hopfield.dim=-3", "--data-root", str(tiny_data),
                                   "--out", str(tmp_path / "o"), *TINY)
    assert code == 2
    assert "dim must be a positive integer, got -3" in one_error_line(err)


def test_c20_dim_zero_rejected_before_training(monkeypatch, capsys, tiny_data, tmp_path):
    import neuromem.train.grid as grid

    monkeypatch.setattr(grid, "run_cell", lambda *a, **k: pytest.fail("training started"))
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--memory-option", "dim=0", "--data-root", str(tiny_data),
                                   "--out", str(tmp_path / "o"), *TINY)
    assert code == 2
    assert "dim must be a positive integer, got 0" in one_error_line(err)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--memory-option", "dim=abc", "--data-root", str(tiny_data), "--out", str(tmp_path / "o"))
    assert code == 2 and "dim must be an integer" in one_error_line(err)


def test_c20_a_failed_cell_makes_the_run_fail(monkeypatch, capsys, tiny_data, tmp_path):
    import neuromem.train.grid as grid

    def broken(config, *args, **kwargs):
        raise RuntimeError("cannot reshape tensor of 0 elements")

    monkeypatch.setattr(grid, "run_cell", broken)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd,nmnist", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(tmp_path / "o"), *TINY)
    assert code == 1
    assert "2 of 2 cells failed" in one_error_line(err)


# ---- the results store


def test_a01_corrupt_results_store(monkeypatch, capsys, tiny_data, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.sqlite").write_bytes(os.urandom(4096))
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(out), *TINY)
    assert code == 2
    line = one_error_line(err)
    assert "results.sqlite" in line and "not a readable results store" in line and "move it away" in line


def test_a02_truncated_results_store(monkeypatch, capsys, tiny_data, tmp_path, finished_run):
    out = tmp_path / "o"
    shutil.copytree(finished_run, out)
    store = out / "results.sqlite"
    store.write_bytes(store.read_bytes()[: len(store.read_bytes()) // 3])
    for side in ("results.sqlite-wal", "results.sqlite-shm"):
        (out / side).unlink(missing_ok=True)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", *GRID, "--data-root", str(tiny_data),
                                   "--out", str(out), *TINY)
    assert code == 2
    assert "results.sqlite" in one_error_line(err) and "choose another --out" in one_error_line(err)


def _race(out: str, rounds: int, queue) -> None:
    import torch

    from neuromem.train.config import CellConfig
    from neuromem.study.store import ResultStore

    store, config = ResultStore(Path(out)), CellConfig(modality="shd", memory="hopfield")
    try:
        for i in range(rounds):
            store.record(config, {"round": i}, "ok", {"shd/representations": torch.zeros(2, 2).numpy()},
                         {"w": torch.zeros(3)})
        queue.put("ok")
    except Exception as error:  # reported to the test
        queue.put(f"{type(error).__name__}: {error}")


def test_cc3_same_cell_saved_by_two_processes(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_race, args=(str(tmp_path), 40, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join()
    assert outcomes == ["ok", "ok"]
    from neuromem.train.config import CellConfig

    cell_id = CellConfig(modality="shd", memory="hopfield").cell_id
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == [cell_id]
    assert {"cell.json", "model.pt", "representations.npz"} <= {p.name for p in (tmp_path / "cells" / cell_id).iterdir()}


def test_cc3_failed_row_never_replaces_an_ok_row(tmp_path):
    from neuromem.train.config import CellConfig
    from neuromem.study.store import ResultStore

    store, config = ResultStore(tmp_path), CellConfig(modality="shd", memory="hopfield")
    store.record(config, {"test_accuracy": 0.5}, "ok", {}, {})
    store.record(config, {"error": "RuntimeError: boom"}, "failed")
    [row] = store.rows()
    assert row["status"] == "ok" and row["metrics"] == {"test_accuracy": 0.5}


def _hold_claim(out: str, cell_id: str, ready) -> None:
    from neuromem.study.store import ResultStore

    assert ResultStore(Path(out)).claim(cell_id) is not None
    ready.set()
    import time

    time.sleep(120)  # killed long before


def test_claims_of_a_killed_run_are_taken_over(tmp_path):
    import signal

    from neuromem.study.store import ResultStore

    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold_claim, args=(str(tmp_path), "shd-hopfield-s0-0", ready))
    holder.start()
    assert ready.wait(60)
    store = ResultStore(tmp_path)
    assert store.claim("shd-hopfield-s0-0") is None  # a live run holds it
    assert store.claim_owner("shd-hopfield-s0-0") == str(holder.pid)
    os.kill(holder.pid, signal.SIGKILL)
    holder.join()
    claim = store.claim("shd-hopfield-s0-0")
    assert claim is not None
    claim.release()


def test_concurrent_runs_train_each_cell_once(tiny_data, tmp_path, finished_run):
    out = tmp_path / "shared"
    args = [sys.executable, "-m", "neuromem", "ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *TINY]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [run.communicate(timeout=600) + (run.returncode,) for run in runs]
    assert [code for _, _, code in results] == [0, 0], results
    trained = [line for _, err, _ in results for line in err.splitlines() if line.startswith("✓")]
    by_other = [line for _, err, _ in results for line in err.splitlines() if "finished by another run" in line]
    assert len(trained) == 4 and len({line.split(":")[0] for line in trained}) == 4, results
    assert len(by_other) == 4
    assert _metrics(out) == _metrics(finished_run)  # 4 ok rows, the numbers of a single run
    assert all(row["status"] == "ok" for row in _metrics(out).values())


def test_k9s_orphaned_staging_folder(monkeypatch, capsys, tiny_data, tmp_path, finished_run):
    out = tmp_path / "o"
    shutil.copytree(finished_run, out)
    cells = sorted(p.name for p in (out / "cells").iterdir())
    # what a kill -9 during a cell save leaves: cell.json and a cut-off npz in cells/.<cell>.<random>/
    orphan = out / "cells" / f".{cells[0]}.qgf96y9y"
    orphan.mkdir()
    shutil.copy(out / "cells" / cells[0] / "cell.json", orphan)
    (orphan / "representations.npz").write_bytes((out / "cells" / cells[0] / "representations.npz").read_bytes()[:100])
    # a complete cell folder whose row was never written (killed between rename and row)
    shutil.copytree(out / "cells" / cells[1], out / "cells" / "shd-hopfield-s9-00000000")

    code, out_text, err = main_in_process(monkeypatch, capsys, "engram", str(out), "--out", str(tmp_path / "e.html"),
                                          "--permutations", "3")
    assert code == 0, err
    document = json.loads((tmp_path / "engram.json").read_text())
    assert sorted(c["cell"].split("/")[1] for c in document["cells"]) == cells
    code, _, err = main_in_process(monkeypatch, capsys, "export", str(out), "--to", "lava", "--out", str(tmp_path / "n.h5"))
    assert code == 2 and "holds 4 cells" in one_error_line(err) and ".shd" not in err and "s9-" not in err

    code, _, err = main_in_process(monkeypatch, capsys, "ablate", *GRID, "--data-root", str(tiny_data), "--out", str(out), *TINY)
    assert code == 0, err
    assert "4 already finished, 0 to run" in err
    assert not orphan.exists()
    assert not [p for p in (out / "cells").iterdir() if p.name.startswith(".")]


def test_w01_other_data_root_is_another_cell(monkeypatch, capsys, tiny_data, tmp_path, finished_run):
    out = tmp_path / "o"
    shutil.copytree(finished_run, out)
    other = tmp_path / "other-data"
    shutil.copytree(tiny_data, other)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(other), "--out", str(out), *TINY)
    assert code == 0, err
    assert "1 cells: 0 already finished, 1 to run" in err
    results = json.loads((out / "results.json").read_text())
    assert str(tiny_data) in results["data_root"] and str(other) in results["data_root"]
    assert len(list((out / "cells").iterdir())) == 5


def test_z01_disk_full_while_saving(monkeypatch, capsys, tiny_data, tmp_path):
    import torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "o"
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(out), *TINY)
    assert code == 2
    line = one_error_line(err)
    assert "No space left on device" in line and "re-run" in line
    assert not list((out / "cells").iterdir())  # no cell folder, no staging folder
    assert sqlite3.connect(out / "results.sqlite").execute("SELECT COUNT(*) FROM cells").fetchone() == (0,)


def test_z02_torch_save_fails_mid_grid(monkeypatch, capsys, tiny_data, tmp_path):
    import torch

    real_save, calls = torch.save, []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 983616 vs 983568")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(torch, "save", second_fails)
    out = tmp_path / "o"
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd,nmnist", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(out), *TINY)
    assert code == 2
    assert "is the disk full?" in one_error_line(err)
    assert [p.name.startswith(".") for p in (out / "cells").iterdir()] == [False]  # the first cell, nothing else
    assert [row["status"] for row in _metrics(out).values()] == ["ok"]


# ---- writes the user asks for, checked before the work


def test_e07_engram_out_read_only_checked_first(monkeypatch, capsys, finished_run, tmp_path):
    import neuromem.engram.report as report

    monkeypatch.setattr(report, "build_report", lambda *a, **k: pytest.fail("statistics computed first"))

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, _, err = main_in_process(monkeypatch, capsys, "engram", str(finished_run), "--out", str(tmp_path / "r.html"))
    assert code == 2
    assert "--out" in one_error_line(err) and "Read-only file system" in one_error_line(err)


def test_e08_truncated_representations(monkeypatch, capsys, finished_run, tmp_path):
    out = tmp_path / "o"
    shutil.copytree(finished_run, out)
    npz = next((out / "cells").iterdir()) / "representations.npz"
    npz.write_bytes(npz.read_bytes()[:300])
    code, _, err = main_in_process(monkeypatch, capsys, "engram", str(out), "--out", str(tmp_path / "r.html"))
    assert code == 2
    assert str(npz) in one_error_line(err) and "truncated or damaged" in one_error_line(err)


@pytest.mark.parametrize("case, to, where", [
    ("x08", "nir", "/proc/neuromem-missing/net.nir"),
    ("x09", "nir", "DIRECTORY"),
    ("x10", "lava", "/proc/neuromem-missing/net.h5"),
])
def test_export_out_checked_first(monkeypatch, capsys, tmp_path, case, to, where):
    import neuromem.export.cli as export_cli

    monkeypatch.setattr(export_cli, "load_for_export", lambda *a: pytest.fail("checkpoint read before --out checked"))
    out = str(tmp_path) if where == "DIRECTORY" else where
    code, _, err = main_in_process(monkeypatch, capsys, "export", str(tmp_path / "m.pt"), "--to", to, "--out", out)
    assert code == 2, case
    line = one_error_line(err)
    assert "--out" in line and out in line
    assert ("is a directory" in line) if where == "DIRECTORY" else ("cannot write there" in line)


def test_z07_export_onto_read_only_file_system(monkeypatch, capsys, tmp_path):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    code, _, err = main_in_process(monkeypatch, capsys, "export", str(tmp_path / "m.pt"), "--to", "lava",
                                   "--out", str(tmp_path / "net.h5"))
    assert code == 2 and "Read-only file system" in one_error_line(err)


def test_ht02_training_out_checked_before_training(monkeypatch, capsys, tiny_data):
    """`hw train --out` where that command exists; Loihi models trained by `ablate` otherwise: either way
    an unwritable --out is refused before any training."""
    import neuromem.export.model as model
    import neuromem.train.grid as grid

    if hasattr(model, "train_loihi_model"):
        monkeypatch.setattr(model, "train_loihi_model", lambda *a, **k: pytest.fail("trained before --out was checked"))
    monkeypatch.setattr(grid, "run_cell", lambda *a, **k: pytest.fail("trained before --out was checked"))
    code, _, err = main_in_process(monkeypatch, capsys, "hw", "train", "--data-root", str(tiny_data),
                                   "--out", "/proc/neuromem-missing/loihi.pt", "--epochs", "1")
    if "No such command 'train'" in err:
        code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                       "--data-root", str(tiny_data), "--out", "/proc/neuromem-missing/run", *TINY)
    assert code == 2 and "/proc/neuromem-missing/" in one_error_line(err) and "cannot write there" in err


# ---- security


def test_x13_malicious_checkpoint_runs_nothing(entry_point_runs, evil_checkpoint):
    _, marker = evil_checkpoint
    result = entry_point_runs["x13"]
    assert not marker.exists(), "the crafted checkpoint ran code"
    assert result.returncode == 2
    assert "refused" in one_error_line(result.stderr) and "posix.system" in result.stderr


# ---- smaller: umask, bounded cache, collapsed representations


def test_result_files_follow_the_umask(finished_run):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("results.csv", "results.json", "report.md"):
        assert (finished_run / name).stat().st_mode & 0o777 == 0o666 & ~mask
    for cell in (finished_run / "cells").iterdir():
        assert cell.stat().st_mode & 0o777 == 0o777 & ~mask


def test_binned_cache_is_bounded_least_recently_used_first(tmp_path, monkeypatch, capsys):
    from neuromem.data.cache import cache_entries, evict

    cache = tmp_path / "cache"
    for i, age in enumerate((300, 100, 200)):  # entry 0 least recently used, then 2, then 1
        entry = cache / f"shd-train-{i}"
        entry.mkdir(parents=True)
        (entry / "inputs.npy").write_bytes(b"x" * 1000)
        os.utime(entry, (1e9 - age, 1e9 - age))
    assert evict(cache, 2000) == [cache / "shd-train-0"]
    assert [e.name for e, _, _ in cache_entries(cache)] == ["shd-train-2", "shd-train-1"]

    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path))
    code, out, _ = main_in_process(monkeypatch, capsys, "data", "cache")
    assert code == 0 and "2 entries" in out
    code, out, _ = main_in_process(monkeypatch, capsys, "data", "cache", "--clear")
    assert code == 0 and "removed 2 entries" in out and cache_entries(cache) == []
    monkeypatch.setenv("NEUROMEM_CACHE_MAX_BYTES", "lots")
    code, _, err = main_in_process(monkeypatch, capsys, "data", "cache")
    assert code == 2 and "NEUROMEM_CACHE_MAX_BYTES" in one_error_line(err)


def test_new_cache_entry_evicts_older_ones_beyond_the_cap(tiny_data, tmp_path, monkeypatch):
    from neuromem.data import load_split
    from neuromem.data.cache import cache_entries

    monkeypatch.setenv("NEUROMEM_CACHE_MAX_BYTES", "1")
    load_split("shd", tiny_data, "test", time_bins=5, cache_dir=tmp_path)
    load_split("shd", tiny_data, "test", time_bins=6, cache_dir=tmp_path)
    [(entry, _, _)] = cache_entries(tmp_path)  # the new entry is kept, the older one evicted
    assert json.loads((entry / "meta.json").read_text())["time_bins"] == 6


def test_engram_warns_about_constant_representations():
    import numpy as np

    from neuromem.engram.report import constant_warning
    from neuromem.engram.runs import ModalityEngrams

    class Cell:
        label = "run/nmnist-hopfield-s0"

    digits = np.arange(40) % 10
    constant = ModalityEngrams("nmnist", np.ones((40, 8)), digits, digits, Cell())
    assert "constant" in constant_warning(constant)
    nearly = ModalityEngrams("nmnist", 1 + 1e-6 * np.random.default_rng(0).normal(size=(40, 8)), digits, digits, Cell())
    assert "nearly constant" in constant_warning(nearly)
    varied = ModalityEngrams("nmnist", np.random.default_rng(0).normal(size=(40, 8)), digits, digits, Cell())
    assert constant_warning(varied) is None
