"""The hostile-input review, second round (../shared/reviews/hostile-input-review-2.md): each test names
its case id. As in the first round, most cases call `neuromem.cli.main()` (the console entry point's
error path) in this process, so that faults can be injected and the file stays fast; a few run the real
entry point in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from test_hostile_inputs import main_in_process, one_error_line

TINY = ["--epochs", "1", "--max-train-samples", "32", "--threads", "1", "--hidden", "16", "--batch-size", "16"]


@pytest.fixture(scope="module")
def loihi_checkpoint(tmp_path_factory) -> Path:
    """A bare Loihi network checkpoint (no training: seconds)."""
    from neuromem.export.model import LoihiNetwork, LoihiNetworkConfig, save_checkpoint

    torch.manual_seed(4)
    net = LoihiNetwork(LoihiNetworkConfig(30, (12, 10), (False, True), 3, hidden={"vth": 1024}))
    return save_checkpoint(net, tmp_path_factory.mktemp("loihi") / "model.pt")


@pytest.fixture(scope="module")
def one_cell_run(tiny_data, tmp_path_factory) -> Path:
    """One finished SHD hopfield cell, trained once in this process."""
    from neuromem.cli import main

    out = tmp_path_factory.mktemp("one") / "run"
    argv = sys.argv
    sys.argv = ["neuromem", "ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(tiny_data),
                "--out", str(out), *TINY]
    try:
        main()
    finally:
        sys.argv = argv
    return out


def _copy_run(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


# ---- DATA-LOSS


def test_o_foreign_out_is_refused_and_left_alone(monkeypatch, capsys, tiny_data, tmp_path):
    out = tmp_path / "foreign"
    (out / "cells" / ".old.backup").mkdir(parents=True)
    (out / "cells" / ".old.backup" / "thesis.tex").write_text("years of work")
    (out / "report.md").write_text("mine")
    (out / "results.csv").write_text("a,b\n")
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(out), *TINY)
    assert code == 2
    line = one_error_line(err)
    assert str(out) in line and "did not write" in line and "report.md" in line
    assert (out / "cells" / ".old.backup" / "thesis.tex").read_text() == "years of work"
    assert (out / "report.md").read_text() == "mine" and (out / "results.csv").read_text() == "a,b\n"
    assert sorted(p.name for p in out.iterdir()) == ["cells", "report.md", "results.csv"]


def test_o_foreign_dot_folders_in_a_store_are_never_removed(monkeypatch, capsys, tiny_data, tmp_path, one_cell_run):
    out = _copy_run(one_cell_run, tmp_path / "o")
    (out / "cells" / ".old.backup").mkdir()
    (out / "cells" / ".old.backup" / "thesis.tex").write_text("years of work")
    cell = next(p.name for p in (out / "cells").iterdir() if not p.name.startswith("."))
    staging = out / "cells" / f".{cell}.ab12cd_9"  # a killed run's staging folder: removed
    staging.mkdir()
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(out), *TINY)
    assert code == 0, err
    assert (out / "cells" / ".old.backup" / "thesis.tex").read_text() == "years of work"
    assert not staging.exists()


def test_s8_ablate_a_planted_link_is_removed_not_followed(tmp_path):
    from neuromem.train.config import CellConfig
    from neuromem.study.store import ResultStore

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("x")
    store = ResultStore(tmp_path / "o")
    config = CellConfig("shd", "hopfield")
    (tmp_path / "o" / "cells").mkdir()
    os.symlink(victim, store.cell_dir(config.cell_id))
    store.record(config, {"test_accuracy": 0.5}, state={"w": torch.zeros(1)})
    assert (victim / "keep").read_text() == "x"
    assert sorted(p.name for p in (tmp_path / "o" / "cells").iterdir()) == [config.cell_id]
    assert (store.cell_dir(config.cell_id) / "model.pt").is_file()


def test_x_out_eq_in_export_refused(monkeypatch, capsys, loihi_checkpoint, tmp_path):
    import shutil

    cell = tmp_path / "cell"
    cell.mkdir()
    checkpoint = cell / "model.pt"
    shutil.copy(loihi_checkpoint, checkpoint)
    before = checkpoint.read_bytes()
    for source in (checkpoint, cell):
        code, _, err = main_in_process(monkeypatch, capsys, "export", str(source), "--to", "lava", "--out", str(checkpoint))
        assert code == 2
        line = one_error_line(err)
        assert str(checkpoint) in line and "is the input" in line
    link = tmp_path / "link.pt"
    os.symlink(checkpoint, link)
    code, _, err = main_in_process(monkeypatch, capsys, "export", str(checkpoint), "--to", "nir", "--out", str(link))
    assert code == 2 and "is the input" in one_error_line(err)
    assert checkpoint.read_bytes() == before


@pytest.mark.parametrize("signum", [
    pytest.param(signal.SIGTERM, id="SIG-export-TERM-existing+SIG-export-TERM-new"),
    pytest.param(signal.SIGINT, id="SIG-export-INT-new+existing"),
])
def test_sig_export_keeps_the_previous_file_whole(monkeypatch, capsys, loihi_checkpoint, tmp_path, signum):
    """SIG-export-TERM-existing, SIG-export-TERM-new, SIG-export-INT-new."""
    import h5py

    import neuromem.export.lava as lava

    existing, new = tmp_path / "net.h5", tmp_path / "new.h5"
    code, _, err = main_in_process(monkeypatch, capsys, "export", str(loihi_checkpoint), "--to", "lava", "--out", str(existing))
    assert code == 0, err
    good = existing.read_bytes()
    real = lava.export_lava

    def interrupted(model, path, **kwargs):
        with h5py.File(path, "w") as handle:  # half a network on disk, then the signal
            handle.create_group("layer")
            handle.flush()
            os.kill(os.getpid(), signum)
        pytest.fail("not interrupted")

    monkeypatch.setattr(lava, "export_lava", interrupted)
    for out in (existing, new):
        code, _, err = main_in_process(monkeypatch, capsys, "export", str(loihi_checkpoint), "--to", "lava", "--out", str(out))
        assert code == 128 + signum, err
        assert "interrupted" in one_error_line(err) and "internal error" not in err
    assert existing.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.h5"]  # no new file, no temporary file
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handlers are put back
    monkeypatch.setattr(lava, "export_lava", real)


def test_export_write_failure_keeps_the_previous_file(monkeypatch, capsys, loihi_checkpoint, tmp_path):
    import errno

    import neuromem.export.lava as lava

    out = tmp_path / "net.h5"
    assert main_in_process(monkeypatch, capsys, "export", str(loihi_checkpoint), "--to", "lava", "--out", str(out))[0] == 0
    good = out.read_bytes()

    def full(model, path, **kwargs):
        Path(path).write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(lava, "export_lava", full)
    code, _, err = main_in_process(monkeypatch, capsys, "export", str(loihi_checkpoint), "--to", "lava", "--out", str(out))
    assert code == 2 and "No space left on device" in one_error_line(err) and "kept" in err
    assert out.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["net.h5"]


# ---- bad data files (scripts/mkdata.py's variants, made here from the tiny data set)


def _shd_root(tiny_data: Path, where: Path, raw=None, times=None, units=None, labels=None,
              tdtype=np.float32, udtype=np.uint16) -> Path:
    """A data root whose SHD test split is the tiny one and whose train split is written here."""
    import shutil

    import h5py

    with h5py.File(tiny_data / "SHD" / "shd_train.h5") as f:
        T, U, L = list(f["spikes/times"][()]), list(f["spikes/units"][()]), f["labels"][()]
    (where / "SHD").mkdir(parents=True)
    shutil.copy(tiny_data / "SHD" / "shd_test.h5", where / "SHD" / "shd_test.h5")
    with h5py.File(where / "SHD" / "shd_train.h5", "w") as f:
        if raw is not None:
            raw(f, T, U, L)
            return where
        times = T if times is None else times(T)
        units = U if units is None else units(U)
        labels = L if labels is None else labels(L)
        n = len(labels)
        td = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(tdtype))
        ud = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(udtype))
        for i in range(n):
            td[i], ud[i] = np.asarray(times[i], tdtype), np.asarray(units[i], udtype)
        f.create_dataset("labels", data=labels)
    return where


def _neg_unit(U):
    U = [u.astype(np.int16) for u in U]
    U[3][0] = -1
    return U


def _unit700(U):
    U = [u.copy() for u in U]
    U[3][0] = 700
    return U


def _neg_times(T):
    T = [t.astype(np.float32) for t in T]
    for t in T:
        t[: len(t) // 2] *= -1
        t[0] = -0.5
    return T


def _scalar(f, T, U, L):
    f.create_dataset("spikes/times", data=1.5)
    f.create_dataset("spikes/units", data=1.5)
    f.create_dataset("labels", data=3)


def _strings(f, T, U, L):
    f.create_dataset("spikes/times", data=np.array([b"abc"] * len(L)))
    f.create_dataset("spikes/units", data=np.array([b"xyz"] * len(L)))
    f.create_dataset("labels", data=L)


@pytest.mark.parametrize("case, variant, named", [
    ("D-shd_labels200", dict(labels=lambda L: np.where(np.arange(len(L)) == 5, 200, L).astype(np.uint8)),
     "labels must lie in 0..19, found 0..200"),
    ("D-shd_units700", dict(units=_unit700), "sample 3 has unit 700; valid units are 0..699"),
    ("D-shd_units_neg", dict(units=_neg_unit, udtype=np.int16), "sample 3 has unit -1; valid units are 0..699"),
    ("D-shd_times_neg", dict(times=_neg_times), "spike time -0.5"),
    ("D-shd_times_nan", dict(times=lambda T: [np.full(len(t), np.nan, np.float32) for t in T]), "spike time nan"),
    ("D-shd_labels_float", dict(labels=lambda L: L.astype(np.float64) + 0.7), "not an integer"),
    ("D-shd_labels_2d", dict(labels=lambda L: np.stack([L, L], 1)), "labels is"),
    ("D-shd_scalar", dict(raw=_scalar), "spikes/times is float64 of shape ()"),
    ("D-shd_strings", dict(raw=_strings), "spikes/times is |S3"),
    ("D-shd_units_float", dict(units=lambda U: [u.astype(np.float32) + 0.5 for u in U], udtype=np.float32),
     "fractional unit"),
])
def test_bad_shd_files_are_named(monkeypatch, capsys, tiny_data, tmp_path, case, variant, named):
    import neuromem.train.grid as grid

    monkeypatch.setattr(grid, "run_cell", lambda *a, **k: pytest.fail("trained on bad data"))
    root = _shd_root(tiny_data, tmp_path / "data", **variant)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(root), "--out", str(tmp_path / "o"), *TINY)
    assert code == 2, case
    line = one_error_line(err)
    assert str(root / "SHD" / "shd_train.h5") in line and named in line, line
    assert "internal error" not in line


def test_d_shd_empty_samples_warned(tiny_data, tmp_path, capsys):
    from neuromem.data.formats import read_shd

    root = _shd_root(tiny_data, tmp_path / "data", times=lambda T: [np.zeros(0)] * len(T),
                     units=lambda U: [np.zeros(0)] * len(U))
    read_shd(root, "train")
    err = capsys.readouterr().err
    assert "warning:" in err and "0 events" in err and "shd_train.h5" in err
    read_shd(tiny_data, "train")  # real events: no warning
    assert "warning" not in capsys.readouterr().err


def _nmnist_root(tiny_data: Path, where: Path, plant) -> Path:
    import shutil

    shutil.copytree(tiny_data / "NMNIST", where / "NMNIST")
    victim = sorted((where / "NMNIST" / "Train" / "3").glob("*.bin"))[0]
    victim.unlink()
    plant(victim)
    return victim


@pytest.mark.parametrize("case, plant, kind", [
    ("D-nm_fifo", os.mkfifo, "is a FIFO"),
    ("D-nm_bindir", lambda p: p.mkdir(), "is a directory"),
    ("D-nm_brokenlink", lambda p: os.symlink("/nonexistent/x.bin", p), "is a broken link"),
    ("D-nm_devzero", lambda p: os.symlink("/dev/zero", p), "is a device"),
])
def test_nmnist_special_files_are_refused_without_blocking(monkeypatch, capsys, tiny_data, tmp_path, case, plant, kind):
    victim = _nmnist_root(tiny_data, tmp_path / "data", plant)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "nmnist", "--memory", "hopfield",
                                   "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "o"), *TINY)
    assert code == 2, (case, err)
    line = one_error_line(err)
    assert str(victim) in line and kind in line and "regular" in line


# ---- HANG and RESOURCE: bounds before work


def _ablate(monkeypatch, capsys, tiny_data, tmp_path, *extra, modality="shd", memory="hopfield"):
    return main_in_process(monkeypatch, capsys, "ablate", "--modality", modality, "--memory", memory,
                           "--data-root", str(tiny_data), "--out", str(tmp_path / "o"), *extra)


def _no_training(monkeypatch):
    import neuromem.train.grid as grid

    monkeypatch.setattr(grid, "run_cell", lambda *a, **k: pytest.fail("a cell was trained"))


@pytest.mark.parametrize("case, option, named", [
    ("N-steps-huge", "steps=1000000000", "steps must be an integer in 1..1000, got 1000000000"),
    ("N-steps-neg", "steps=-5", "steps must be a positive integer, got -5"),
    ("N-patterns-huge", "num_patterns=30000000", "num_patterns=30000000 needs an estimated"),
    ("N-dim-huge", "dim=100000000", "dim=100000000 needs an estimated"),
    ("N-time-bins-huge", "time_bins=1000000000", "time_bins=1000000000 needs an estimated"),
])
def test_memory_option_bounds_before_any_probe(monkeypatch, capsys, tiny_data, tmp_path, case, option, named):
    import resource

    import neuromem.cli as cli

    monkeypatch.setattr(cli, "_probe_memory", lambda *a: pytest.fail("probed with an unbounded option"))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, "--memory-option", option, "--dry-run")
    assert code == 2, case
    line = one_error_line(err)
    assert named in line, line
    if "estimated" in line:
        assert "the limit is" in line and "NEUROMEM_MEMORY_LIMIT" in line
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KB: nothing big allocated


@pytest.mark.parametrize("memory, option", [("ttt", "feedback_steps=1000000000"), ("ttt", "grad_steps=1000000000"),
                                            ("hgrn", "layers=100000"), ("hgrn", "readout_windows=1000000000")])
def test_other_modules_pass_counts_are_bounded(monkeypatch, capsys, tiny_data, tmp_path, memory, option):
    import neuromem.cli as cli

    monkeypatch.setattr(cli, "_probe_memory", lambda *a: pytest.fail("probed with an unbounded option"))
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, "--memory-option", option, "--dry-run", memory=memory)
    assert code == 2 and f"{option.split('=')[0]} must be an integer in 1..1000" in one_error_line(err)


def test_probes_run_with_the_smallest_pass_counts(monkeypatch, capsys, tiny_data, tmp_path):
    import neuromem.cli as cli

    probed = []
    monkeypatch.setattr(cli, "_probe_memory", lambda name, options: probed.append(options))
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, "--memory-option", "steps=1000",
                           "--memory-option", "dim=64", "--dry-run")
    assert code == 0, err
    assert probed and all(p.get("steps", 2) <= 2 for p in probed) and {"steps": 2, "dim": 64} in probed


def test_n_deep_json_option(monkeypatch, capsys, tiny_data, tmp_path):
    deep = "[" * 50_000 + "]" * 50_000
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, "--memory-option", f"dim={deep}", "--dry-run")
    assert code == 2
    line = one_error_line(err)
    assert "nests deeper" in line and "internal error" not in line and len(line) < 300


@pytest.mark.parametrize("case, extra, named", [
    ("N-hidden-1e6", ["--hidden", "1000000"], "--hidden 1000000"),
    ("N-hidden-1e8", ["--hidden", "100000000"], "--hidden 100000000"),
])
def test_cli_sizes_checked_against_a_memory_estimate(monkeypatch, capsys, tiny_data, tmp_path, case, extra, named):
    _no_training(monkeypatch)
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY[:-4], "--batch-size", "16", *extra)
    assert code == 2, case
    line = one_error_line(err)
    assert named in line and "needs an estimated" in line and "the limit is" in line


def test_memory_limit_env_is_the_limit(monkeypatch, capsys, tiny_data, tmp_path):
    _no_training(monkeypatch)
    monkeypatch.setenv("NEUROMEM_MEMORY_LIMIT", "1M")
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY, "--hidden", "64", "--dry-run")
    assert code == 2 and "the limit is 1.0 MB ($NEUROMEM_MEMORY_LIMIT)" in one_error_line(err)
    monkeypatch.setenv("NEUROMEM_MEMORY_LIMIT", "lots")
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY, "--dry-run")
    assert code == 2 and "NEUROMEM_MEMORY_LIMIT='lots' is not a size" in one_error_line(err)


def test_n_tb_100000_binning_bounded_before_writing(monkeypatch, capsys, tiny_data, tmp_path):
    _no_training(monkeypatch)
    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, "--epochs", "1", "--hidden", "8",
                           "--batch-size", "1", "--time-bins", "100000")
    assert code == 2
    line = one_error_line(err)
    assert "binning shd train into 100000 time bins would" in line and "the bound is" in line
    cache = tmp_path / "home"
    leftovers = [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []
    assert sum(p.stat().st_size for p in leftovers) < 1_000_000, leftovers


def test_k_cache_labels200_are_checked_against_the_data_set(tiny_data, tmp_path, monkeypatch):
    from neuromem.data import load_split

    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    first = load_split("shd", tiny_data, "train")
    entry = Path(first.meta["cache_entry"])
    labels = np.load(entry / "labels.npy")
    np.save(entry / "labels.npy", np.full_like(labels, 200))
    again = load_split("shd", tiny_data, "train")
    assert again.meta["cache_hit"] is False and np.array_equal(np.asarray(again.labels), labels)


def test_r_address_with_local_executor_refused(monkeypatch, capsys, tiny_data, tmp_path):
    _no_training(monkeypatch)
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY, "--address", "127.0.0.1:1")
    assert code == 2 and "--address applies to --executor ray only" in one_error_line(err)


class _FakeRay:
    """Enough of Ray's API to see what neuromem asks of it (a real cluster takes seconds to start)."""

    def __init__(self, cpus: float) -> None:
        self.cpus, self.inits = cpus, []

    def is_initialized(self):
        return False

    def init(self, **kwargs):
        self.inits.append(kwargs)

    def cluster_resources(self):
        return {"CPU": self.cpus}

    def remote(self, **kwargs):
        pytest.fail("a task was submitted")

    def shutdown(self):
        pass


def test_r_addr_port1_fails_fast_in_one_line(monkeypatch, capsys, tiny_data, tmp_path):
    import time

    fake = _FakeRay(2)
    monkeypatch.setitem(sys.modules, "ray", fake)
    started = time.monotonic()
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY, "--executor", "ray", "--address", "127.0.0.1:1")
    assert code == 2 and time.monotonic() - started < 30
    line = one_error_line(err)
    assert "--address '127.0.0.1:1': could not connect to a Ray cluster" in line and "refused" in line.lower()
    assert fake.inits == []  # Ray's own minutes of retries never start


def test_r_cpus_per_cell_beyond_the_cluster_refused(monkeypatch, capsys, tiny_data, tmp_path):
    fake = _FakeRay(2)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setenv("RAY_gcs_rpc_server_reconnect_timeout_s", "30")  # put back after the test
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY, "--executor", "ray",
                           "--cpus-per-cell", "1000000000")
    assert code == 2
    line = one_error_line(err)
    assert "--cpus-per-cell 1e+09 is more than the Ray cluster has (2 CPUs)" in line


# ---- hw verify / hw run on the data the network was trained on (item 5), forged networks (H-*)


def _ten_class_root(tiny_data: Path, where: Path) -> Path:
    """The tiny SHD data with classes 0..9 only: a network trained on it has 10 outputs."""
    import h5py

    for split in ("train", "test"):
        with h5py.File(tiny_data / "SHD" / f"shd_{split}.h5") as f:
            keep = np.flatnonzero(f["labels"][()] < 10)
            T, U = f["spikes/times"][()][keep], f["spikes/units"][()][keep]
            L = f["labels"][()][keep]
        from conftest import write_shd_h5

        write_shd_h5(where / "SHD" / f"shd_{split}.h5", list(T), list(U), L)
    return where


@pytest.fixture(scope="module")
def loihi_export(tiny_data, tmp_path_factory) -> dict:
    """A Loihi grid cell trained on a 10-class data root, exported to Lava (the export records its data)."""
    from neuromem.cli import main

    base = tmp_path_factory.mktemp("loihi-cell")
    root = _ten_class_root(tiny_data, base / "ten")
    out, net = base / "run", base / "net.h5"
    argv = sys.argv
    try:
        for args in (["ablate", "--modality", "shd", "--memory", "hopfield-spiking", "--neuron", "loihi",
                      "--data-root", str(root), "--out", str(out), *TINY],
                     ["export", str(out), "--to", "lava", "--out", str(net)]):
            sys.argv = ["neuromem", *args]
            try:
                main()
            except SystemExit as exit_:
                assert exit_.code in (0, None), args
    finally:
        sys.argv = argv
    return {"root": root, "run": out, "net": net}


def test_export_records_the_training_data(loihi_export):
    import h5py

    from neuromem.data.cache import root_fingerprint

    with h5py.File(loihi_export["net"]) as f:
        recorded = json.loads(f.attrs["neuromem_data"])
    assert recorded["dataset"] == "shd" and recorded["data_root"] == str(loihi_export["root"].resolve())
    assert recorded["data_fingerprint"] == root_fingerprint(loihi_export["root"])


def _fake_lava(monkeypatch, seen: dict):
    """verify/run without starting Lava: the inputs they would feed it are recorded."""
    import neuromem.export.hardware as hardware

    def verify(net, inputs, labels=None, **kwargs):
        seen["inputs"], seen["labels"] = inputs, labels
        raise SystemExit(0)

    def run(net, inputs, *args, **kwargs):
        seen["inputs"] = inputs
        raise SystemExit(0)

    monkeypatch.setattr(hardware, "verify_on_lava", verify)
    monkeypatch.setattr(hardware, "run_lava_split", run)


@pytest.mark.parametrize("command", ["verify", "run"])
def test_hw_uses_the_training_root_unasked_and_says_so(monkeypatch, capsys, loihi_export, tiny_data, command):
    seen: dict = {}
    _fake_lava(monkeypatch, seen)
    code, out, err = main_in_process(monkeypatch, capsys, "hw", command, str(loihi_export["net"]), "--samples", "4")
    assert code == 0, err
    assert f"at {loihi_export['root'].resolve()} (the root it was trained on, recorded in the export)" in out
    assert "data: shd test, 4 samples" in out
    assert seen["inputs"].shape[0] == 4


@pytest.mark.parametrize("command", ["verify", "run"])
def test_hw_other_root_with_more_classes_refused(monkeypatch, capsys, loihi_export, tiny_data, command):
    seen: dict = {}
    _fake_lava(monkeypatch, seen)
    code, _, err = main_in_process(monkeypatch, capsys, "hw", command, str(loihi_export["net"]), "--data-root",
                                   str(tiny_data), "--samples", "40")
    assert code == 2 and not seen
    line = one_error_line(err)
    assert "has 10 output classes" in line and "labels up to 19" in line and str(tiny_data) in line


def test_hw_missing_training_root_named(monkeypatch, capsys, loihi_export, tmp_path):
    import shutil

    import h5py

    net = tmp_path / "net.h5"
    shutil.copy(loihi_export["net"], net)
    with h5py.File(net, "r+") as f:
        recorded = json.loads(f.attrs["neuromem_data"])
        f.attrs["neuromem_data"] = json.dumps({**recorded, "data_root": str(tmp_path / "gone")})
    code, _, err = main_in_process(monkeypatch, capsys, "hw", "verify", str(net), "--samples", "2")
    assert code == 2
    line = one_error_line(err)
    assert str(tmp_path / "gone") in line and "--data-root" in line


def test_x_out_eq_in_verify_json_refused(monkeypatch, capsys, loihi_export):
    net = loihi_export["net"]
    before = net.read_bytes()
    code, _, err = main_in_process(monkeypatch, capsys, "hw", "verify", str(net), "--json", str(net))
    assert code == 2 and "is the input" in one_error_line(err)
    assert net.read_bytes() == before


def _forge(source: Path, target: Path, edit) -> Path:
    import shutil

    import h5py

    shutil.copy(source, target)
    with h5py.File(target, "r+") as f:
        edit(f)
    return target


def _replace(f, key, value, **kwargs):
    del f[key]
    f.create_dataset(key, data=value, **kwargs)


def _edit_weight(f, change):
    _replace(f, "layer/1/weight", change(f["layer/1/weight"][()]))


def _zero_out(f):
    last = str(max(int(k) for k in f["layer"].keys()))
    _replace(f, f"layer/{last}/weight", f[f"layer/{last}/weight"][()][:0])


def _hugedims(f):
    del f["layer/1/weight"]
    f.create_dataset("layer/1/weight", shape=(16, 200_000_000), dtype=np.int32, chunks=(16, 1_000_000), fillvalue=0)


@pytest.mark.parametrize("case, edit, named", [
    ("H-tb_abc", lambda f: f.attrs.__setitem__("neuromem_data", json.dumps({"dataset": "shd", "time_bins": "abc"})),
     'time_bins is "abc"'),
    ("H-ds_list", lambda f: f.attrs.__setitem__("neuromem_data", json.dumps(["shd", 5])), "is a list"),
    ("H-ds_nope", lambda f: f.attrs.__setitem__("neuromem_data", json.dumps({"dataset": "nope", "time_bins": None})),
     "names data set 'nope'; valid data sets:"),
    ("H-tb_huge", lambda f: f.attrs.__setitem__("neuromem_data", json.dumps({**json.loads(f.attrs["neuromem_data"]),
                                                                               "time_bins": 1000000})),
     "into 1000000 time bins would"),
    ("H-zero_out", _zero_out, "weight is (0,"),
    ("H-hugeinput", lambda f: _replace(f, "layer/0/shape", np.array([50_000_000])), "declares shape [50000000]"),
    ("H-hugedims", _hugedims, "declares shape (16, 200000000)"),
    ("H-recurrent-shape", lambda f: _replace(f, next(f"layer/{k}/recurrentWeight" for k in f["layer"]
                                                     if "recurrentWeight" in f[f"layer/{k}"]), np.zeros((3, 5), np.int32)),
     "recurrentWeight is (3, 5)"),
    ("H-wrongshape", lambda f: _replace(f, "layer/1/weight", np.zeros((16, 600), np.int32)),
     "the input layer declares 700 inputs, but layer 1's weight takes 600; valid: the same number"),
    ("H-int8range", lambda f: _edit_weight(f, lambda w: w.__setitem__((0, 0), 100000) or w),
     "weights are not 8-bit mixed-sign Loihi weights (even integers in [-256, 254])"),
    ("H-float_weights", lambda f: _edit_weight(f, lambda w: w.astype(np.float64) + 0.5),
     "weights are not 8-bit mixed-sign Loihi weights (even integers in [-256, 254])"),
    ("H-weight_string", lambda f: _replace(f, "layer/1/weight", np.array([b"abc"] * 3)),
     "layer 1's weight is of type |S3; valid: an array of integers"),
    ("H-neg_thresh", lambda f: _replace(f, "layer/1/neuron/vThMant", -5),
     "layer 1: Loihi vth must be an integer in [1, 131071], got -5"),
    ("H-nan_decay", lambda f: _replace(f, "layer/1/neuron/iDecay", np.float64("nan")),
     "layer/1/neuron/iDecay is nan (float64); valid: an integer"),
    ("H-only_input", lambda f: [f["layer"].__delitem__(k) for k in list(f["layer"].keys()) if k != "0"], "no dense layers"),
    ("H-nir-to-verify", lambda f: (f.__delitem__("layer"), f.create_group("node"), f.attrs.__setitem__("version", "1.0")),
     "no 'layer' group, so not a netx network description"),
])
def test_forged_networks_named_before_allocating(monkeypatch, capsys, loihi_export, tmp_path, case, edit, named):
    import resource

    seen: dict = {}
    _fake_lava(monkeypatch, seen)
    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    net = _forge(loihi_export["net"], tmp_path / "forged.h5", edit)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for command in ("verify", "run"):
        code, _, err = main_in_process(monkeypatch, capsys, "hw", command, str(net), "--samples", "2")
        assert code == 2, (case, err)
        line = one_error_line(err)
        assert named in line and (str(net) in line or "binning" in line), line
        assert "internal error" not in line and "Warning" not in err
    assert not seen
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 300_000  # KB


# ---- store integrity (S*, E-other, RO-evaluate) and runs that did nothing


def _rows(out: Path) -> list[tuple]:
    db = sqlite3.connect(out / "results.sqlite")
    try:
        return db.execute("SELECT cell_id, config, metrics, status, finished_at FROM cells").fetchall()
    finally:
        db.close()


def _execute(out: Path, sql: str, *args) -> None:
    db = sqlite3.connect(out / "results.sqlite")
    with db:
        db.execute(sql, args)
    db.close()


def _fake_evaluate_cell(monkeypatch, loaded: list):
    import neuromem.study.evaluate as evaluate

    def fake(config, checkpoint, data_root, evaluations, device="cpu"):
        loaded.append(Path(checkpoint))
        return [{"evaluation": evaluations[0], "level": 0.0, "metrics": {"accuracy": 0.5}}]

    monkeypatch.setattr(evaluate, "evaluate_cell", fake)


def test_s3_eval_path_traversal_row_is_ignored(monkeypatch, capsys, one_cell_run, tmp_path):
    import shutil

    out = _copy_run(one_cell_run, tmp_path / "w" / "o")
    cell, config, metrics, status, finished = _rows(out)[0]
    victim = tmp_path / "victim"
    shutil.copytree(out / "cells" / cell, victim)
    _execute(out, "INSERT INTO cells VALUES (?, ?, ?, ?, ?)", "../../victim", config, metrics, status, finished)
    loaded: list = []
    _fake_evaluate_cell(monkeypatch, loaded)
    code, _, err = main_in_process(monkeypatch, capsys, "evaluate", str(out), "--robustness", "noise")
    assert code == 0, err
    assert loaded == [out / "cells" / cell / "model.pt"]
    assert "row '../../victim' ignored: cell id '../../victim' is not a plain name" in err
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))
    assert code == 0 and "victim" not in (out / "results.csv").read_text()


def test_s3_s16_reprice_rows_that_are_not_their_cell_are_never_repriced(monkeypatch, capsys, one_cell_run, tmp_path):
    """S3: a row whose cell id leads out of the run is ignored (the cell beside it is re-priced); S16: a row
    whose config no longer matches its id is not re-priced, and a run that re-priced nothing fails."""
    import shutil

    out = _copy_run(one_cell_run, tmp_path / "w" / "o")
    cell, config, metrics, status, finished = _rows(out)[0]
    victim = tmp_path / "victim"
    shutil.copytree(out / "cells" / cell, victim)
    victim_json = (victim / "cell.json").read_text()
    _execute(out, "INSERT INTO cells VALUES (?, ?, ?, ?, ?)", "../../victim", config, metrics, status, finished)
    code, _, err = main_in_process(monkeypatch, capsys, "reprice", str(out), "--profile", "loihi")
    assert code == 0, err
    assert "row '../../victim' ignored: cell id '../../victim' is not a plain name" in err and "re-priced 1 cells" in err
    assert (victim / "cell.json").read_text() == victim_json
    assert json.loads(dict((r[0], r[1]) for r in _rows(out))[cell])["energy_profile"] == "loihi"

    out = _copy_run(one_cell_run, tmp_path / "o16")
    edited = {**json.loads(config), "hidden": 999}
    _execute(out, "UPDATE cells SET config = ?", json.dumps(edited))
    before = (out / "cells" / cell / "cell.json").read_text()
    code, _, err = main_in_process(monkeypatch, capsys, "reprice", str(out), "--profile", "loihi")
    assert code == 2
    assert "does not end in its config's digest" in err and "re-priced 0 cells" in err
    assert "nothing re-priced" in one_error_line(err)
    assert json.loads(_rows(out)[0][1])["energy_profile"] == "horowitz-45nm"
    assert (out / "cells" / cell / "cell.json").read_text() == before


@pytest.mark.parametrize("case, column, value, named", [
    ("S9-report", "metrics", "not json{", "not JSON"),
    ("S15-report", "metrics", "[]", "metrics are a list"),
    ("S11-report", "config", "SEED_ABC", 'config seed is "abc"; valid: int'),
    ("S10-report", "config", "EXTRA_KEY", "does not end in its config's digest"),
])
def test_damaged_rows_are_named_not_tracebacks(monkeypatch, capsys, one_cell_run, tmp_path, case, column, value, named):
    out = _copy_run(one_cell_run, tmp_path / "o")
    cell, config, *_ = _rows(out)[0]
    if value == "SEED_ABC":
        value = json.dumps({**json.loads(config), "seed": "abc"})
    if value == "EXTRA_KEY":  # the key added by hand: the id no longer matches
        value = json.dumps({**json.loads(config), "foo": 1})
    _execute(out, f"UPDATE cells SET {column} = ?", value)
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))
    assert code == 0, (case, err)
    assert f"row '{cell}' ignored" in err and named in err and "internal error" not in err


def test_s10_report_and_s10_ablate_newer_versions_config_keys_are_tolerated(monkeypatch, capsys, one_cell_run, tiny_data, tmp_path):
    """A store written by a newer neuromem: its configs carry a key this version lacks, and ids of their digests."""
    from neuromem.train.config import stored_digest

    out = _copy_run(one_cell_run, tmp_path / "o")
    cell, config, metrics, status, finished = _rows(out)[0]
    newer = {**json.loads(config), "foo": 1}
    new_id = cell[:-8] + stored_digest(newer)[:8]
    _execute(out, "INSERT INTO cells VALUES (?, ?, ?, ?, ?)", new_id, json.dumps(newer), metrics, status, finished)
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))
    assert code == 0, err
    assert "note: config keys this version does not know were ignored (foo)" in err and "ignored:" not in err
    assert new_id in (out / "results.csv").read_text()
    _no_training(monkeypatch)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(out), *TINY)
    assert code == 0, err  # S10-ablate: resumes into that store
    assert "already finished" in err


@pytest.mark.parametrize("case, break_it, named", [
    ("S7-eval", lambda cell: (cell / "model.pt").unlink(), "no model.pt"),
    ("S5-eval", lambda cell: torch.save({"config": {}, "state_dict": {"nope": {}}}, cell / "model.pt"),
     "does not hold this cell's weights (KeyError"),
    ("S4-eval", lambda cell: torch.save({"config": {}, "state_dict": {"shd": {"w": torch.zeros(2)}}}, cell / "model.pt"),
     "saved weights do not fit"),
])
def test_evaluate_that_did_nothing_fails(monkeypatch, capsys, one_cell_run, tmp_path, case, break_it, named):
    out = _copy_run(one_cell_run, tmp_path / "o")
    break_it(next((out / "cells").iterdir()))
    code, _, err = main_in_process(monkeypatch, capsys, "evaluate", str(out), "--robustness", "noise")
    assert code == 2, (case, err)
    assert named in err and "evaluated 0 cells" in err
    assert "no cell of" in one_error_line(err)


def test_evaluate_names_a_failure_after_loading_as_neuromems_not_the_checkpoints(monkeypatch, capsys, one_cell_run,
                                                                                   tmp_path):
    """Weights that loaded are not blamed for an error raised while evaluating them."""
    import neuromem.study.evaluate as evaluate

    out = _copy_run(one_cell_run, tmp_path / "o")

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")
    monkeypatch.setattr(evaluate, "_curves", broken)
    code, _, err = main_in_process(monkeypatch, capsys, "evaluate", str(out), "--robustness", "noise")
    assert code == 2, err
    err = " ".join(err.split())  # the console folds long lines
    assert "failed inside neuromem (TypeError: unsupported operand)" in err and "a bug" in err
    assert "does not hold" not in err and "do not fit" not in err


def test_e_other_report_other_tools_sqlite_is_never_changed(monkeypatch, capsys, tmp_path):
    out = tmp_path / "othertool"
    out.mkdir()
    db = sqlite3.connect(out / "results.sqlite")
    db.execute("CREATE TABLE cells (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO cells VALUES (1, 'x')")
    db.commit()
    db.close()
    before = (out / "results.sqlite").read_bytes()
    for args in (["report", str(out)], ["reprice", str(out), "--profile", "loihi"],
                 ["evaluate", str(out), "--robustness", "noise"]):
        code, _, err = main_in_process(monkeypatch, capsys, *args)
        assert code == 2, args
        line = one_error_line(err)
        assert "not a neuromem results store" in line and "left unchanged" in line
    assert (out / "results.sqlite").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["results.sqlite"]


def test_ro_evaluate_refused_before_any_cell(monkeypatch, capsys, one_cell_run, tmp_path):
    out = _copy_run(one_cell_run, tmp_path / "o")
    loaded: list = []
    _fake_evaluate_cell(monkeypatch, loaded)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(out) in str(p) and mode & os.W_OK
                        else real_access(p, mode, **k))  # a read-only mount (root ignores file modes)
    code, _, err = main_in_process(monkeypatch, capsys, "evaluate", str(out), "--robustness", "noise")
    assert code == 2 and loaded == []
    assert "cannot write the results store (read-only)" in one_error_line(err)


def test_s18_claims_file_is_named(monkeypatch, capsys, tiny_data, tmp_path):
    from neuromem.study.store import ResultStore

    out = tmp_path / "o"
    ResultStore(out)
    (out / ".claims").write_text("in the way")
    _no_training(monkeypatch)
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY)
    assert code == 2
    line = one_error_line(err)
    assert str(out / ".claims") in line and "move that file away" in line


@pytest.mark.parametrize("case, text, named", [
    ("S1-engram", '{"config": [1, 2], "metrics": "x"}', "config is a list, metrics is a str"),
    ("S2-engram", "[]", "not a neuromem cell description (list)"),
])
def test_engram_damaged_cell_json(monkeypatch, capsys, one_cell_run, tmp_path, case, text, named):
    out = _copy_run(one_cell_run, tmp_path / "o")
    cell_json = next((out / "cells").iterdir()) / "cell.json"
    cell_json.write_text(text)
    code, _, err = main_in_process(monkeypatch, capsys, "engram", str(out), "--out", str(tmp_path / "e.html"))
    assert code == 2, case
    line = one_error_line(err)
    assert str(cell_json) in line and named in line
    assert not (tmp_path / "e.html").exists()


def test_s1_export_reads_the_checkpoint_not_cell_json(monkeypatch, capsys, one_cell_run, tmp_path):
    """export reads model.pt only: a damaged cell.json beside it changes nothing (the usual refusal of a
    memory that cannot run on Loihi, naming the checkpoint)."""
    out = _copy_run(one_cell_run, tmp_path / "o")
    cell = next((out / "cells").iterdir())
    (cell / "cell.json").write_text('{"config": [1, 2], "metrics": "x"}')
    for source in (out, cell):
        code, _, err = main_in_process(monkeypatch, capsys, "export", str(source), "--to", "lava",
                                       "--out", str(tmp_path / "S1.h5"))
        assert code == 2
        line = one_error_line(err)
        assert str(cell / "model.pt") in line and "cannot run on Loihi" in line and "hopfield-spiking" in line
    assert not (tmp_path / "S1.h5").exists()


def test_g_same_run_twice_and_g_maxpairs0(monkeypatch, capsys, one_cell_run, tmp_path):
    code, _, err = main_in_process(monkeypatch, capsys, "engram", str(one_cell_run), str(one_cell_run) + "/",
                                   "--out", str(tmp_path / "e.html"))
    assert code == 2 and "is given twice" in one_error_line(err)
    code, _, err = main_in_process(monkeypatch, capsys, "engram", str(one_cell_run), "--max-pairs-per-digit", "0",
                                   "--out", str(tmp_path / "e.html"))
    assert code == 2 and "--max-pairs-per-digit '0'" in one_error_line(err) and "greater than or equal to 1" in err


# ---- numbers that make nothing


def test_n_lr_inf_refused(monkeypatch, capsys, tiny_data, tmp_path):
    _no_training(monkeypatch)
    for value in ("inf", "nan"):
        code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY, "--learning-rate", value)
        assert code == 2 and "--learning-rate" in one_error_line(err) and "finite" in one_error_line(err)


def test_non_finite_weights_make_a_failed_cell(monkeypatch, tiny_data):
    import neuromem.train.grid as grid
    from neuromem.train.config import CellConfig

    class Outcome:
        metrics, representations = {"test_accuracy": 0.05}, {}
        state = {"shd": {"front.weight": torch.tensor([1.0, float("nan")]), "step": torch.tensor(3)}}

    monkeypatch.setattr(grid, "run_cell", lambda *a, **k: Outcome())
    result = grid.execute_cell(CellConfig("shd", "hopfield").to_dict(), str(tiny_data))
    assert result["status"] == "failed"
    assert "non-finite" in result["metrics"]["error"] and "shd.front.weight" in result["metrics"]["error"]


@pytest.mark.parametrize("case, flag", [("B-threads-neg", ["--threads", "-3"]), ("B-reps-neg", ["--repetitions", "-1"]),
                                        ("B-reps-0", ["--repetitions", "0"]), ("B-block-neg", ["--block", "-5"])])
def test_bench_counts_must_be_positive(monkeypatch, capsys, case, flag):
    import neuromem.bench.core_speed as core_speed

    monkeypatch.setattr(core_speed, "run_benchmark", lambda *a, **k: pytest.fail("benchmark ran"))
    code, _, err = main_in_process(monkeypatch, capsys, "bench", "--quick", "--configs", "shd-feedforward",
                                   "--no-memory", *flag)
    assert code == 2, case
    assert flag[0] in one_error_line(err)


def test_b_data_missing_bench_where_everything_failed_exits_non_zero(monkeypatch, capsys):
    import neuromem.bench.core_speed as core_speed

    class Failed:
        error = "NeuromemError: data root /nonexistent/root does not exist"

    monkeypatch.setattr(core_speed, "run_benchmark", lambda *a, **k: ([Failed(), Failed()], "| table |"))
    code, out, err = main_in_process(monkeypatch, capsys, "bench", "--quick", "--configs", "shd-feedforward",
                                     "--no-memory", "--inputs", "data", "--data", "/nonexistent/root")
    assert code == 2 and "| table |" in out
    assert "every configuration failed" in one_error_line(err) and "/nonexistent/root" in err


# ---- synthesized data, --out inside the data root


def test_y_seed_neg_refused_and_nothing_created(monkeypatch, capsys, tmp_path):
    root = tmp_path / "y1"
    code, _, err = main_in_process(monkeypatch, capsys, "data", "synth", "--root", str(root), "--modality", "shd",
                                   "--shd-train", "1", "--shd-test", "1", "--seed", "-1")
    assert code == 2
    assert "--seed must be an integer >= 0, got -1" in one_error_line(err)
    assert not root.exists()


def test_sig_synth_int_leaves_a_folder_that_says_so(monkeypatch, capsys, tmp_path):
    import neuromem.data.embedded as embedded

    root = tmp_path / "synint"
    calls = []
    real_asdict = embedded.asdict

    def interrupted_second(config):  # called after each data set is written: the 2nd is interrupted
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_asdict(config)

    monkeypatch.setattr(embedded, "asdict", interrupted_second)
    args = ["data", "synth", "--root", str(root), "--modality", "shd,nmnist", "--shd-train", "1", "--shd-test", "1",
            "--nmnist-train", "1", "--nmnist-test", "1"]
    code, _, err = main_in_process(monkeypatch, capsys, *args)
    assert code == 130 and "interrupted" in one_error_line(err)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(root), "--out", str(tmp_path / "o"), *TINY)
    assert code == 2 and "left incomplete by an interrupted `neuromem data synth`" in one_error_line(err)
    monkeypatch.setattr(embedded, "asdict", real_asdict)
    code, _, err = main_in_process(monkeypatch, capsys, *args)  # the same synth finishes it
    assert code == 0, err
    assert (root / "NEUROMEM_SYNTHETIC.json").is_file() and not (root / ".NEUROMEM_SYNTHETIC.partial").exists()


def test_o_in_dataroot_run_keeps_the_data_fingerprint(monkeypatch, capsys, tiny_data, tmp_path):
    import shutil

    from neuromem.data.cache import root_fingerprint

    root = tmp_path / "inroot"
    shutil.copytree(tiny_data, root)
    before = root_fingerprint(root)
    out = root / "run"
    for attempt in range(2):
        code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                       "--data-root", str(root), "--out", str(out), *TINY)
        assert code == 0, err
    assert "1 already finished, 0 to run" in err
    assert root_fingerprint(root) == before


# ---- interrupts through the real entry point (item 6)


def _ctrl_c_as_in_a_terminal() -> None:
    """preexec_fn: the child takes Ctrl-C (a job a non-interactive shell starts in the background inherits SIGINT
    ignored, and Python keeps it ignored, so the signal tests would only see a finished run)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_sig_ablate_interrupted_through_the_entry_point(tiny_data, tmp_path, signum):
    import time

    out = tmp_path / "o"
    process = subprocess.Popen([sys.executable, "-m", "neuromem", "ablate", "--modality", "shd,nmnist", "--memory",
                                "hopfield", "--data-root", str(tiny_data), "--out", str(out), *TINY],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
                               preexec_fn=_ctrl_c_as_in_a_terminal)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if (out / "cells").is_dir() and any(not p.name.startswith(".") for p in (out / "cells").iterdir()):
            break
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert process.returncode in (2, 128 + signum), err
    line = one_error_line(err)
    assert "interrupted" in line and "Traceback" not in err
    assert not [p for p in (out / "cells").iterdir() if p.name.startswith(".")]  # no staging folder left
    db = sqlite3.connect(out / "results.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert {row[0] for row in db.execute("SELECT status FROM cells")} <= {"ok"}
    db.close()


# ---- messages that mislead (item 7)


def test_summary_table_shows_whole_cell_names_on_80_columns(monkeypatch, capsys, one_cell_run):
    import neuromem.cli as cli
    from neuromem.study.store import ResultStore

    monkeypatch.setenv("COLUMNS", "80")
    capsys.readouterr()
    cli._print_summary(ResultStore(one_cell_run))
    out = capsys.readouterr().out
    cell = _rows(one_cell_run)[0][0]
    assert cell in out and max(len(line) for line in out.splitlines()) <= 80


def test_report_provenance_and_one_seed_comparisons(monkeypatch, capsys, one_cell_run, tmp_path):
    """Several memories have several fingerprints: none is stale. One seed: no table of n/a rows."""
    out = _copy_run(one_cell_run, tmp_path / "o")
    cell, config, metrics, status, finished = _rows(out)[0]
    from neuromem.train.config import CellConfig
    from neuromem.train.provenance import current_provenance

    other = CellConfig.from_dict({**json.loads(config), "memory": "scl"})
    other_metrics = {**json.loads(metrics), "provenance": current_provenance("scl")}
    _execute(out, "INSERT INTO cells VALUES (?, ?, ?, ?, ?)", other.cell_id, json.dumps(other.to_dict(), sort_keys=True),
             json.dumps(other_metrics), "ok", finished)
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))
    assert code == 0, err
    report = (out / "report.md").read_text()
    assert "--rerun stale" not in report and "hopfield, " in report and "scl, " in report
    assert "a paired comparison needs at least 2 seeds" in report and "n/a (n < 2)" not in report
    stale = {**json.loads(metrics), "provenance": {**current_provenance("hopfield"), "code_fingerprint": "0" * 16}}
    _execute(out, "UPDATE cells SET metrics = ? WHERE cell_id = ?", json.dumps(stale), cell)
    assert main_in_process(monkeypatch, capsys, "report", str(out))[0] == 0
    assert "1 cells were computed with model code that has changed since (hopfield: 1)" in (out / "report.md").read_text()


@pytest.mark.parametrize("case, plant, named", [
    ("D-shd_h5dir", lambda p: p.mkdir(), "is a folder, not a SHD HDF5 file"),
    ("D-shd_symloop", lambda p: os.symlink(p.name, p), "is a link that leads to no file"),
    ("D-shd_zero", lambda p: p.write_bytes(b""), "is not a readable SHD HDF5 file (truncated or corrupt?)"),
])
def test_shd_file_that_is_not_a_file_is_named_as_such(monkeypatch, capsys, tiny_data, tmp_path, case, plant, named):
    import shutil

    root = tmp_path / "data"
    (root / "SHD").mkdir(parents=True)
    shutil.copy(tiny_data / "SHD" / "shd_test.h5", root / "SHD" / "shd_test.h5")
    plant(root / "SHD" / "shd_train.h5")
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(root), "--out", str(tmp_path / "o"), *TINY)
    assert code == 2, case
    line = one_error_line(err)
    assert str(root / "SHD" / "shd_train.h5") in line and named in line


def test_n_long_modality_is_not_echoed_whole(monkeypatch, capsys):
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "x" * 100_000, "--memory", "hopfield",
                                   "--dry-run")
    assert code == 2
    line = one_error_line(err)
    assert "(100000 characters)" in line and "valid: shd" in line and len(line) < 400


def test_out_with_only_hidden_files_is_fine(monkeypatch, capsys, tiny_data, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / ".DS_Store").write_bytes(b"\0")
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY)
    assert code == 0, err


def test_engram_out_onto_the_runs_own_files_refused(monkeypatch, capsys, one_cell_run, tmp_path):
    out = _copy_run(one_cell_run, tmp_path / "o")
    store = (out / "results.sqlite").read_bytes()
    for target in (out / "results.sqlite", out / "results.json", next((out / "cells").iterdir()) / "cell.json"):
        code, _, err = main_in_process(monkeypatch, capsys, "engram", str(out), "--out", str(target))
        assert code == 2, target
        assert "would overwrite a file of the input run" in one_error_line(err)
    assert (out / "results.sqlite").read_bytes() == store


def test_v_home_file_names_neuromem_home(monkeypatch, capsys, tmp_path):
    home = tmp_path / "homefile"
    home.write_text("not a folder")
    monkeypatch.setenv("NEUROMEM_HOME", str(home))
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--out", str(tmp_path / "o"), *TINY)
    assert code == 2
    line = one_error_line(err)
    assert "Not a directory" in line and "NEUROMEM_HOME" in line


def test_y_synth_0_names_the_flag(monkeypatch, capsys, tmp_path):
    code, _, err = main_in_process(monkeypatch, capsys, "data", "synth", "--root", str(tmp_path / "y0"),
                                   "--modality", "shd", "--shd-train", "0")
    assert code == 2 and "--shd-train (shd_train_per_class, samples per class) must be >= 1, got 0" in one_error_line(err)


def test_s13_report_store_that_is_a_folder_is_named_as_such(monkeypatch, capsys, tmp_path):
    (tmp_path / "run" / "results.sqlite").mkdir(parents=True)
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(tmp_path / "run"))
    assert code == 2 and "is a folder, not a results store" in one_error_line(err)


# ---- the rest of the review's cases, each by its id (most behaved well in the review: kept so)


def _fixed2d(f, T, U, L):  # padded 2-D arrays (not variable-length), as some converters write
    rng = np.random.default_rng(0)
    f.create_dataset("spikes/times", data=rng.random((len(L), 50)).astype(np.float32))
    f.create_dataset("spikes/units", data=rng.integers(0, 700, (len(L), 50)).astype(np.uint16))
    f.create_dataset("labels", data=L)


def test_d_shd_fixed2d_padded_layout_is_read(tiny_data, tmp_path, monkeypatch):
    from neuromem.data import load_split
    from neuromem.data.registry import get_dataset

    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    root = _shd_root(tiny_data, tmp_path / "data", raw=_fixed2d)
    source = get_dataset("shd").read(root, "train")
    assert len(source.labels) == 120 and len(source.events(0)) == 50
    data = load_split("shd", root, "train")
    assert len(data) == 120 and int(np.asarray(data.inputs[0]).sum()) > 0


@pytest.mark.parametrize("case, plant, named", [
    ("D-nm_3byte", lambda p: p.write_bytes(b"\x01\x02\x03"),
     "is truncated or corrupt: N-MNIST .bin files hold 5-byte (40-bit) records, but it has 3 bytes"),
    ("D-nm_x34", lambda p: p.write_bytes(bytes([34, 5, 0x00, 0x00, 0x10]) * 4),
     "event coordinates reach x=34, y=5; valid N-MNIST coordinates are 0..33"),
])
def test_bad_nmnist_records_are_named(monkeypatch, capsys, tiny_data, tmp_path, case, plant, named):
    _no_training(monkeypatch)
    victim = _nmnist_root(tiny_data, tmp_path / "data", plant)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "nmnist", "--memory", "hopfield",
                                   "--data-root", str(tmp_path / "data"), "--out", str(tmp_path / "o"), *TINY)
    assert code == 2, case
    line = one_error_line(err)
    assert str(victim) in line and named in line


def test_d_nm_extraclass_folders_are_named_in_a_warning(monkeypatch, capsys, tiny_data, tmp_path):
    """Train/12 and Train/seven hold no N-MNIST class: one warning line names them and the valid class folders
    (the ten digits are still read; nothing else is)."""
    import shutil

    from neuromem.data import load_split

    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    root = tmp_path / "data"
    shutil.copytree(tiny_data / "NMNIST", root / "NMNIST")
    for extra in ("12", "seven"):
        shutil.copytree(root / "NMNIST" / "Train" / "3", root / "NMNIST" / "Train" / extra)
    (root / "NMNIST" / "Train" / ".hidden").mkdir()
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "nmnist", "--memory", "hopfield",
                                   "--data-root", str(root), "--out", str(tmp_path / "o"), "--dry-run")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, err
    assert str(root / "NMNIST" / "Train") in warnings[0] and "12, seven" in warnings[0]
    assert "valid class folders: 0..9" in warnings[0] and ".hidden" not in warnings[0]
    data = load_split("nmnist", root, "train")
    assert len(data) == 80 and set(np.asarray(data.labels).tolist()) == set(range(10))
    assert "warning" not in capsys.readouterr().err  # said once per process


def test_d_nm_oneclass_split_of_one_digit_is_read(monkeypatch, tiny_data, tmp_path):
    """Only Train/0: a valid (if poor) training split, read as 8 samples of digit 0."""
    import shutil

    from neuromem.data import load_split

    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    root = tmp_path / "data"
    shutil.copytree(tiny_data / "NMNIST", root / "NMNIST")
    for folder in (root / "NMNIST" / "Train").iterdir():
        if folder.name != "0":
            shutil.rmtree(folder)
    data = load_split("nmnist", root, "train")
    assert len(data) == 8 and set(np.asarray(data.labels).tolist()) == {0}


def test_s6_report_store_with_a_renamed_column(monkeypatch, capsys, one_cell_run, tmp_path):
    out = _copy_run(one_cell_run, tmp_path / "o")
    _execute(out, "ALTER TABLE cells RENAME COLUMN metrics TO m2")
    before = (out / "results.sqlite").read_bytes()
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))
    assert code == 2
    line = one_error_line(err)
    assert str(out / "results.sqlite") in line and "columns cell_id, config, m2" in line and "valid: cell_id" in line
    assert (out / "results.sqlite").read_bytes() == before


def test_s7_report_rebuilt_from_the_store_without_cell_folders(monkeypatch, capsys, one_cell_run, tmp_path):
    import shutil

    out = _copy_run(one_cell_run, tmp_path / "o")
    cell = _rows(out)[0][0]
    shutil.rmtree(out / "cells")
    (out / "results.csv").unlink()
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))
    assert code == 0, err
    assert cell in (out / "results.csv").read_text()


def test_s17_report_unknown_status_is_noted_and_counted_failed(monkeypatch, capsys, one_cell_run, tmp_path):
    out = _copy_run(one_cell_run, tmp_path / "o")
    _execute(out, "UPDATE cells SET status = 'weird'")
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))
    assert code == 0, err
    assert "note: status 'weird' is not one neuromem writes (valid: ok, failed)" in err
    assert "Cells finished: 0; failed: 1" in (out / "report.md").read_text()


@pytest.mark.parametrize("case, args", [
    ("E-empty-report", ["report"]),
    ("E-empty-eval", ["evaluate", "--robustness", "noise"]),
    ("E-empty-reprice", ["reprice", "--profile", "loihi"]),
])
def test_empty_folder_is_not_a_run(monkeypatch, capsys, tmp_path, case, args):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = main_in_process(monkeypatch, capsys, args[0], str(empty), *args[1:])
    assert code == 2, case
    assert f"{empty}: no results.sqlite there; give the --out folder" in one_error_line(err)
    assert list(empty.iterdir()) == []


def _hold_claim(path: Path) -> subprocess.Popen:
    """Another live process holding a cell's claim (as a running ablate does), until killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, os, sys, time\n"
                               f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
                               "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_e_inprog_report_and_e_inprog_eval_during_a_run(monkeypatch, capsys, one_cell_run, tmp_path):
    """A run still training another cell (its claim held, its staging folder there): report and evaluate work on
    the finished cells and leave the run's own files alone."""
    out = _copy_run(one_cell_run, tmp_path / "o")
    cell = _rows(out)[0][0]
    other = cell.replace("-s0-", "-s1-")
    staging = out / "cells" / f".{other}.k2j4h_x"
    staging.mkdir()
    (staging / "model.pt").write_bytes(b"half")
    holder = _hold_claim(out / ".claims" / f"{other}.lock")
    try:
        code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))  # E-inprog-report
        assert code == 0, err
        assert cell in (out / "results.csv").read_text()
        loaded: list = []
        _fake_evaluate_cell(monkeypatch, loaded)
        code, _, err = main_in_process(monkeypatch, capsys, "evaluate", str(out), "--robustness", "noise")  # E-inprog-eval
        assert code == 0, err
        assert loaded == [out / "cells" / cell / "model.pt"] and "evaluated 1 cells" in err
        assert (staging / "model.pt").read_bytes() == b"half" and holder.poll() is None
    finally:
        holder.kill()
        holder.wait()


def _evaluate_in_child(out: str, queue) -> None:
    """`neuromem evaluate OUT --robustness noise,dropout` in a forked process, each cell's evaluation stubbed to
    take a while (the store's writes are the point, and the two runs overlap)."""
    import io
    import time

    import neuromem.study.evaluate as evaluate
    from neuromem.cli import main

    def evaluate_cell(config, checkpoint, data_root, evaluations, device="cpu"):
        time.sleep(0.3)
        return [{"evaluation": e, "level": level, "metrics": {"accuracy": 0.5}} for e in evaluations for level in (0.0, 0.5)]

    evaluate.evaluate_cell = evaluate_cell
    sys.stdout = sys.stderr = captured = io.StringIO()
    sys.argv = ["neuromem", "evaluate", out, "--robustness", "noise,dropout"]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    queue.put((code, captured.getvalue()))


def test_e_conc_eval_two_evaluations_at_once(one_cell_run, tmp_path):
    """Two `neuromem evaluate` of one run at once: both succeed, every curve is stored once, the store stays whole."""
    import multiprocessing

    out, cells = _two_cell_run(one_cell_run, tmp_path / "o")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    runs = [context.Process(target=_evaluate_in_child, args=(str(out), queue)) for _ in range(2)]
    for run in runs:
        run.start()
    results = [queue.get(timeout=300) for _ in runs]
    for run in runs:
        run.join()
    for code, err in results:
        assert code == 0 and "evaluated 2 cells" in err and "Traceback" not in err, err
    db = sqlite3.connect(out / "results.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT cell_id, evaluation, level FROM evaluations").fetchall()
    finally:
        db.close()
    assert sorted(rows) == sorted((c, e, level) for c in cells for e in ("noise", "dropout") for level in (0.0, 0.5))


def _read_only(monkeypatch, run: Path) -> None:
    """`run` as on a read-only mount (root ignores file modes, so os.access is told)."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **k: False if str(run) in str(p) and mode & os.W_OK
                        else real_access(p, mode, **k))


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("case, args", [
    ("RO-report", ["report"]),
    ("RO-reprice", ["reprice", "--profile", "loihi"]),
])
def test_read_only_run_named_as_such(monkeypatch, capsys, one_cell_run, tmp_path, case, args):
    out = _copy_run(one_cell_run, tmp_path / "o")
    before = _snapshot(out)
    _read_only(monkeypatch, out)
    code, _, err = main_in_process(monkeypatch, capsys, args[0], str(out), *args[1:])
    assert code == 2, case
    line = one_error_line(err)
    assert str(out / "results.sqlite") in line and "(read-only)" in line and "copy the run to a writable folder" in line
    assert _snapshot(out) == before


def _fake_nmnist_run(where: Path, seed: int = 0) -> Path:
    """A run folder with one N-MNIST hopfield cell (its config and test-split representations; no store):
    the other half of an engram comparison with one_cell_run's SHD cell."""
    rng = np.random.default_rng(seed)
    cell = where / "cells" / "nmnist-hopfield-s0-00000000"
    cell.mkdir(parents=True)
    config = {"modality": "nmnist", "memory": "hopfield", "seed": 0, "hidden": 16, "neuron": "lif",
              "memory_options": {}}
    (cell / "cell.json").write_text(json.dumps({"config": config, "metrics": {"test_accuracy": 0.5}}))
    digits = np.repeat(np.arange(10), 4)
    np.savez(cell / "representations.npz", **{"nmnist/representations": rng.random((40, 16)),
                                               "nmnist/labels": digits, "nmnist/digits": digits})
    return where


def test_ro_engram_reads_a_read_only_run(monkeypatch, capsys, one_cell_run, tmp_path):
    out = _copy_run(one_cell_run, tmp_path / "o")
    other = _fake_nmnist_run(tmp_path / "nm")
    before = _snapshot(out), _snapshot(other)
    _read_only(monkeypatch, out)
    code, _, err = main_in_process(monkeypatch, capsys, "engram", str(out), str(other),
                                   "--out", str(tmp_path / "eng" / "e.html"))
    assert code == 0, err
    assert (tmp_path / "eng" / "e.html").is_file()
    after = _snapshot(out), _snapshot(other)
    for b, a in zip(before, after):  # a reader of a WAL store makes SQLite's -shm/-wal where it may (not on a read-only mount)
        changed = {k for k in set(a) | set(b) if a.get(k, 1) != b.get(k, 2)}
        assert changed <= {"results.sqlite-shm", "results.sqlite-wal"} and not a.get("results.sqlite-wal"), changed


def _two_cell_run(one_cell_run: Path, to: Path) -> tuple[Path, list[str]]:
    """one_cell_run with a second finished cell (seed 1: the same weights under another config)."""
    import shutil

    from neuromem.train.config import CellConfig

    out = _copy_run(one_cell_run, to)
    cell, config, metrics, status, finished = _rows(out)[0]
    second = CellConfig.from_dict({**json.loads(config), "seed": 1})
    shutil.copytree(out / "cells" / cell, out / "cells" / second.cell_id)
    _execute(out, "INSERT INTO cells VALUES (?, ?, ?, ?, ?)", second.cell_id,
             json.dumps(second.to_dict(), sort_keys=True), metrics, status, finished)
    return out, sorted([cell, second.cell_id])


@pytest.mark.parametrize("case, signum", [("SIG-eval-TERM", signal.SIGTERM), ("SIG-eval-INT", signal.SIGINT)])
def test_evaluate_interrupted_keeps_what_it_finished(monkeypatch, capsys, one_cell_run, tmp_path, case, signum,
                                                     request):
    import neuromem.study.evaluate as evaluate

    # Ctrl-C as in a terminal: a job a non-interactive shell starts in the background inherits SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))

    out, cells = _two_cell_run(one_cell_run, tmp_path / "o")
    calls = []

    def fake(config, checkpoint, data_root, evaluations, device="cpu"):
        calls.append(checkpoint)
        if len(calls) == 2:
            os.kill(os.getpid(), signum)
            time.sleep(5)
            pytest.fail("not interrupted")
        return [{"evaluation": evaluations[0], "level": 0.0, "metrics": {"accuracy": 0.5}}]

    import time

    monkeypatch.setattr(evaluate, "evaluate_cell", fake)
    code, _, err = main_in_process(monkeypatch, capsys, "evaluate", str(out), "--robustness", "noise")
    assert code == 128 + signum, (case, err)
    line = one_error_line(err)
    assert "interrupted" in line and "internal error" not in line
    db = sqlite3.connect(out / "results.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert [r[0] for r in db.execute("SELECT cell_id FROM evaluations")] == [cells[0]]
    finally:
        db.close()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))  # the report rebuilds from what was kept
    assert code == 0, err


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


@pytest.mark.parametrize("case, signum, to_group", [
    ("SIG-workers-INT", signal.SIGINT, True),  # Ctrl-C in a terminal: the run and its workers at once
    ("workers-TERM-parent", signal.SIGTERM, False),  # `kill PID`: the parent alone; it ends its workers itself
])
def test_sig_workers_interrupted(tiny_data, tmp_path, case, signum, to_group):
    """An ablate with --workers interrupted while its workers run: it ends at once in one line, with no worker's
    traceback, does not finish the grid, and leaves no process behind."""
    import time

    out = tmp_path / "o"
    process = subprocess.Popen([sys.executable, "-m", "neuromem", "ablate", "--modality", "shd,nmnist", "--memory",
                                "hopfield,scl", "--seeds", "2", "--workers", "2", "--data-root", str(tiny_data),
                                "--out", str(out), *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None and len(_group_members(process.pid)) < 3:
            time.sleep(0.05)  # the workers have started
        time.sleep(1.0)
        if to_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        started = time.monotonic()
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    if process.returncode == 0:
        pytest.skip("the run finished before the signal")
    assert time.monotonic() - started < 30, err
    assert process.returncode in (2, 128 + signum), (case, err)
    assert "interrupted" in one_error_line(err) and "Traceback" not in err and "KeyboardInterrupt" not in err
    finished = [p for p in (out / "cells").iterdir() if not p.name.startswith(".")] if (out / "cells").is_dir() else []
    assert len(finished) < 8
    deadline = time.monotonic() + 15
    while _group_members(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _group_members(process.pid) == []


def test_x_nir_as_ckpt_is_not_a_checkpoint(monkeypatch, capsys, tmp_path):
    garbage = tmp_path / "garbage.nir"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    code, _, err = main_in_process(monkeypatch, capsys, "export", str(garbage), "--to", "lava",
                                   "--out", str(tmp_path / "g.h5"))
    assert code == 2
    line = one_error_line(err)
    assert str(garbage) in line and "cannot read checkpoint" in line and "valid: a model.pt neuromem wrote" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.nir"]


# ---- environment variables (V-*)


@pytest.mark.parametrize("case, env, args, named", [
    ("V-home-file-dr", {"NEUROMEM_HOME": "FILE"}, ["ablate", "--modality", "shd", "--memory", "hopfield",
                                                    "--data-root", "TINY", "--out", "OUT", *TINY],
     "set NEUROMEM_HOME to a writable folder"),
    ("V-cache--1", {"NEUROMEM_CACHE_MAX_BYTES": "-1"}, ["data", "cache"], "$NEUROMEM_CACHE_MAX_BYTES='-1' is not a size"),
    ("V-cache-abc", {"NEUROMEM_CACHE_MAX_BYTES": "abc"}, ["data", "cache"], "$NEUROMEM_CACHE_MAX_BYTES='abc' is not a size"),
    ("V-cache-nan", {"NEUROMEM_CACHE_MAX_BYTES": "nan"}, ["data", "cache"], "$NEUROMEM_CACHE_MAX_BYTES='nan' is not a size"),
    ("V-tier-bogus", {"NEUROMEM_CPU_TIER": "bogus"}, ["memories"],
     "NEUROMEM_CPU_TIER='bogus' is not a CPU tier; choose one of: tuned, portable"),
    ("V-data-missing", {"NEUROMEM_DATA": "/nonexistent"}, ["ablate", "--modality", "shd", "--memory", "hopfield",
                                                           "--out", "OUT", *TINY],
     "$NEUROMEM_DATA points to /nonexistent, which does not exist"),
])
def test_bad_environment_variables_are_named(monkeypatch, capsys, tiny_data, tmp_path, case, env, args, named):
    _no_training(monkeypatch)
    home_file = tmp_path / "homefile"
    home_file.write_text("not a folder")
    for key, value in env.items():
        monkeypatch.setenv(key, str(home_file) if value == "FILE" else value)
    args = [str(tiny_data) if a == "TINY" else str(tmp_path / "o") if a == "OUT" else a for a in args]
    code, _, err = main_in_process(monkeypatch, capsys, *args)
    assert code == 2, (case, err)
    line = one_error_line(err)
    assert named in line, line
    assert not (tmp_path / "o").exists()  # refused before any work: no --out folder left behind


@pytest.mark.parametrize("case, env", [("V-home-proc", {"NEUROMEM_HOME": "/proc/nope"}),
                                        ("V-tier-case", {"NEUROMEM_CPU_TIER": " Portable "})])
def test_harmless_environment_values_are_fine(monkeypatch, capsys, tmp_path, case, env):
    from neuromem import cpu_tier

    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code, out, err = main_in_process(monkeypatch, capsys, "data", "cache")
    assert code == 0, (case, err)
    assert "0 entries" in " ".join((out + err).split())
    assert cpu_tier.requested() == ("portable" if case == "V-tier-case" else "tuned")


def test_v_cache_0_keeps_only_the_newest_entry(monkeypatch, tiny_data, tmp_path):
    from neuromem.data import load_split

    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEUROMEM_CACHE_MAX_BYTES", "0")
    train = load_split("shd", tiny_data, "train")
    test = load_split("shd", tiny_data, "test")
    assert len(train) == 120 and len(test) == 60 and int(np.asarray(train.inputs[0]).sum()) > 0
    entries = [p for p in (tmp_path / "home" / "cache").iterdir() if not p.name.startswith(".")]
    assert [p.name.split("-")[1] for p in entries] == ["test"]


def _fake_lava_python(where: Path, message: str) -> Path:
    script = where / "python3"
    script.write_text(f"#!/bin/sh\necho {message!r} >&2\nexit 1\n")
    script.chmod(0o755)
    return script


@pytest.mark.parametrize("case, command, lava, named", [
    ("V-lava-false", "verify", "/bin/false", "Lava run failed ($NEUROMEM_LAVA_PYTHON=/bin/false): exit code 1"),
    ("V-lava-nolava", "run", "NOLAVA", "ModuleNotFoundError: No module named 'lava'"),
    ("V-lava-dir", "run", "DIR", "is not an executable"),
])
def test_lava_interpreter_that_cannot_run_is_named(monkeypatch, capsys, loihi_export, tmp_path, case, command, lava, named):
    if lava == "NOLAVA":
        lava = str(_fake_lava_python(tmp_path, "ModuleNotFoundError: No module named 'lava'"))
    elif lava == "DIR":
        lava = str(tmp_path)
    monkeypatch.setenv("NEUROMEM_LAVA_PYTHON", lava)
    code, _, err = main_in_process(monkeypatch, capsys, "hw", command, str(loihi_export["net"]), "--samples", "2")
    assert code == 2, (case, err)
    line = one_error_line(err)
    assert named in line and lava in line


# ---- numbers on the command line (N-*), --out paths (O-*), Ray (R-*)


@pytest.mark.parametrize("case, args, named", [
    ("N-hidden0", ["--hidden", "0"], "--hidden '0' is not valid in '0'; expected positive integers"),
    ("N-tb0", ["--time-bins", "0"], "--time-bins '0' is not valid in '0'; expected positive integers"),
    ("N-seeds0", ["--seeds", "0"], "--seeds '0': Input should be greater than or equal to 1"),
    ("N-seedsneg", ["--seeds", "-1"], "--seeds '-1': Input should be greater than or equal to 1"),
    ("N-beta-inf", ["--memory-option", "beta=inf"], "beta must be a number, got \"inf\" (default 4.0)"),
    ("N-beta-nan", ["--memory-option", "beta=NaN"], "beta must be a number, got NaN (default 4.0)"),
    ("N-neuron-option-nan", ["--neuron-option", "threshold=NaN"],
     "--neuron-option threshold=NaN: neuron 'lif' parameter threshold must be finite, got NaN (default 1.0)"),
    ("N-neuron-option-inf", ["--neuron-option", "threshold=inf"],
     "--neuron-option threshold=inf: neuron 'lif' parameter threshold must be a number, got \"inf\" (default 1.0)"),
    ("N-neuron-option-list", ["--neuron-option", "reset=[1]"],
     "--neuron-option reset=[1]: neuron 'lif' parameter reset must be one of subtract, zero, got [1]"),
    ("N-trimodal-preset", ["--modality", "trimodal", "--preset", "huge"],
     "--preset 'huge' is not known; valid: small, default, large"),
    ("N-preset-nontri", ["--preset", "small"], "--preset applies to --modality trimodal only"),
])
def test_cli_numbers_refused_in_one_line(monkeypatch, capsys, tiny_data, tmp_path, case, args, named):
    _no_training(monkeypatch)
    modality = [] if "--modality" in args else ["--modality", "shd"]
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", *modality, "--memory", "hopfield", *args,
                                   "--data-root", str(tiny_data), "--out", str(tmp_path / "o"), "--dry-run")
    assert code == 2, (case, err)
    assert named in one_error_line(err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("case, counts", [
    ("N-mts-1e30", ["--max-train-samples", str(10**30), "--batch-size", "64"]),  # the whole split
    ("N-bs-1e20", ["--max-train-samples", "32", "--batch-size", str(10**20)]),  # one batch of the 32 samples
])
def test_counts_beyond_the_data_are_fine(monkeypatch, capsys, tiny_data, tmp_path, case, counts):
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(tmp_path / "o"), "--epochs", "1",
                                   "--hidden", "8", "--threads", "1", *counts)
    assert code == 0, (case, err)
    (cell,) = _rows(tmp_path / "o")
    assert cell[3] == "ok"


def test_n_bs_1e20_memory_estimate_counts_the_samples_a_batch_can_hold(monkeypatch, capsys, tiny_data, tmp_path):
    """Without --max-train-samples a batch may be the whole split: --batch-size 1e20 is then refused up front."""
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(tmp_path / "o"), "--hidden", "16",
                                   "--batch-size", str(10**20), "--dry-run")
    assert code == 2 and "needs an estimated" in one_error_line(err) and "--batch-size 100000000000000000000" in err


def test_n_loihi_hopfield_is_a_valid_combination(monkeypatch, capsys, tiny_data, tmp_path):
    code, out, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                     "--neuron", "loihi", "--data-root", str(tiny_data), "--out", str(tmp_path / "o"),
                                     *TINY, "--dry-run")
    assert code == 0, err
    assert "modality=shd memory=hopfield variant='neuron=loihi" in out


@pytest.mark.parametrize("case, out", [
    ("O-long-component", "out/" + "a" * 300),
    ("O-long-path", "out/" + "/".join(["b" * 200] * 25)),
])
def test_out_path_too_long_is_named(monkeypatch, capsys, tiny_data, tmp_path, case, out):
    _no_training(monkeypatch)
    monkeypatch.chdir(tmp_path)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", out, *TINY)
    assert code == 2, case
    line = one_error_line(err)
    assert "--out" in line and "File name too long" in line and len(line) < 400  # the path is not echoed whole
    assert not (tmp_path / "out").exists()


def test_o_unicode_out_path(monkeypatch, capsys, one_cell_run, tiny_data, tmp_path):
    out = _copy_run(one_cell_run, tmp_path / "ünï cødé 名前 ✓" / "run one")
    _no_training(monkeypatch)
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--data-root", str(tiny_data), "--out", str(out), *TINY)
    assert code == 0, err
    assert "1 already finished, 0 to run" in err
    code, _, err = main_in_process(monkeypatch, capsys, "report", str(out))
    assert code == 0 and str(out / "report.md") in err.replace("\n", "")


def test_o_dryrun_root_slash_is_checked_not_walked(monkeypatch, capsys):
    import neuromem.data.cache as cache

    monkeypatch.setattr(cache, "root_fingerprint", lambda root: pytest.fail(f"{root} walked for a fingerprint"))
    code, _, err = main_in_process(monkeypatch, capsys, "ablate", "--modality", "shd", "--memory", "hopfield",
                                   "--dry-run", "--data-root", "/")
    assert code == 2
    assert "missing SHD file /SHD/shd_train.h5" in one_error_line(err)


def test_r_addr_garbage_named(monkeypatch, capsys, tiny_data, tmp_path):
    try:
        import ray  # noqa: F401  (the real one: its own address check, no cluster started)
    except ImportError:
        class _Garbage(_FakeRay):
            def init(self, **kwargs):
                raise ValueError(f"Invalid address format: {kwargs['address']}")

        monkeypatch.setitem(sys.modules, "ray", _Garbage(2))
    _no_training(monkeypatch)
    code, _, err = _ablate(monkeypatch, capsys, tiny_data, tmp_path, *TINY, "--executor", "ray", "--address", "foo")
    assert code == 2
    assert "--address 'foo': could not connect to a Ray cluster (Invalid address format: foo)" in one_error_line(err)


# ---- hw verify / hw run flags (H-*), data synth flags (Y-*)


@pytest.mark.parametrize("case, command, args, named", [
    ("H-samples-neg", "run", ["--samples", "-3"], "--samples must be >= 1, got -3"),
    ("H-split-bogus", "run", ["--split", "valid"], "--split 'valid' is not a split of shd; valid: train, test"),
    ("H-json-proc", "verify", ["--json", "/proc/x/v.json"], "--json /proc/x/v.json: cannot write there"),
])
def test_hw_flags_refused_in_one_line(monkeypatch, capsys, loihi_export, case, command, args, named):
    seen: dict = {}
    _fake_lava(monkeypatch, seen)
    code, _, err = main_in_process(monkeypatch, capsys, "hw", command, str(loihi_export["net"]), *args)
    assert code == 2, (case, err)
    assert named in one_error_line(err) and not seen


def test_h_parallel_huge_is_capped(monkeypatch, capsys, loihi_export):
    import neuromem.export.hardware as hardware

    seen: dict = {}

    def run(net, inputs, record_voltages, workers, parallel, sense=None):
        seen.update(samples=len(inputs), workers=workers, parallel=parallel)
        raise SystemExit(0)

    monkeypatch.setattr(hardware, "run_lava_split", run)
    code, _, err = main_in_process(monkeypatch, capsys, "hw", "run", str(loihi_export["net"]), "--samples", "2",
                                   "--parallel", "100000")
    assert code == 0, err
    assert seen["samples"] == 2 and seen["workers"] <= 2  # the Lava side runs min(parallel, samples) copies


def test_h_ds_mismatch_refused(monkeypatch, capsys, loihi_export, tiny_data, tmp_path):
    seen: dict = {}
    _fake_lava(monkeypatch, seen)
    net = _forge(loihi_export["net"], tmp_path / "ds_nmnist.h5", lambda f: f.attrs.__setitem__(
        "neuromem_data", json.dumps({**json.loads(f.attrs["neuromem_data"]), "dataset": "nmnist"})))
    code, _, err = main_in_process(monkeypatch, capsys, "hw", "verify", str(net), "--data-root", str(tiny_data),
                                   "--samples", "2")
    assert code == 2 and not seen
    line = one_error_line(err)
    assert str(net) in line and "takes inputs of shape (700,)" in line and "nmnist samples" in line


@pytest.mark.parametrize("case, args, named", [
    ("Y-kind-bogus", ["--modality", "shd", "--kind", "bogus"], "--kind 'bogus' has no stand-in for shd; valid kinds"),
    ("Y-kind-nonshared", ["--kind", "speech"], "--kind 'speech' has no stand-in for nmnist; valid kinds for nmnist"),
    ("Y-size-bad", ["--size", "shd.train=1e3"], "--size 'shd.train=1e3': expected DATASET.SPLIT=N"),
    ("Y-size-nope", ["--size", "nope.train=3"], "unknown data set 'nope'; valid data sets: shd, nmnist"),
])
def test_data_synth_flags_refused_in_one_line(monkeypatch, capsys, tmp_path, case, args, named):
    root = tmp_path / "y"
    code, _, err = main_in_process(monkeypatch, capsys, "data", "synth", "--root", str(root), *args)
    assert code == 2, (case, err)
    assert named in one_error_line(err)
    assert not root.exists()


# ---- peak memory of the real entry point on the RESOURCE cases (Done when: no command exceeds 2 GB)


PEAK_LIMIT_KB = 2 * 1024 * 1024  # 2 GB, as ru_maxrss counts (KiB on Linux)


_MEASURE_EACH = """
import io, json, os, sys

from neuromem.cli import main

def peak_kb():
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1])

results = {}
for case, (args, home) in json.loads(sys.argv[1]).items():
    os.environ["NEUROMEM_HOME"] = home
    try:  # the peak resident size starts again from here (Linux >= 4.0); else it is the peak so far, an upper bound
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        fresh = True
    except OSError:
        fresh = False
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    sys.argv = ["neuromem", *args]
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    results[case] = [code, sys.stderr.getvalue(), peak_kb(), fresh]
sys.__stdout__.write(json.dumps(results))
"""


@pytest.fixture(scope="module")
def resource_runs(tiny_data, loihi_export, tmp_path_factory) -> dict[str, tuple[int, str, int]]:
    """Each RESOURCE case of the review through neuromem's console entry point (`neuromem.cli.main`, what the
    `neuromem` script calls) in one fresh interpreter, one case after another, each with a fresh NEUROMEM_HOME:
    case -> (exit code, stderr, peak resident KiB during that case). One interpreter start (most of the
    cost) for all; the process's own peak, from wait4's rusage, bounds them all as well ("all")."""
    import shutil

    import h5py

    base = tmp_path_factory.mktemp("resource")
    nets = {}
    for name, edit in (("hugeinput", lambda f: _replace(f, "layer/0/shape", np.array([50_000_000]))),
                       ("tb_huge", lambda f: f.attrs.__setitem__("neuromem_data", json.dumps(
                           {**json.loads(f.attrs["neuromem_data"]), "time_bins": 1000000})))):
        shutil.copy(loihi_export["net"], base / f"{name}.h5")
        with h5py.File(base / f"{name}.h5", "r+") as f:
            edit(f)
        nets[name] = str(base / f"{name}.h5")
    review_a = ["--epochs", "1", "--max-train-samples", "64", "--hidden", "16", "--batch-size", "16", "--threads", "1"]
    shd = ["ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(tiny_data)]
    cases = {
        "N-patterns-huge": [*shd, "--out", str(base / "o1"), "--memory-option", "num_patterns=30000000", "--dry-run"],
        "N-dim-huge": [*shd, "--out", str(base / "o2"), "--memory-option", "dim=100000000", "--dry-run"],
        "N-hidden-1e6": [*shd, "--out", str(base / "o3"), *review_a, "--hidden", "1000000"],
        "N-tb-100000": [*shd, "--out", str(base / "o4"), *review_a, "--time-bins", "100000"],
        "N-tb-100000-binning": [*shd, "--out", str(base / "o5"), "--epochs", "1", "--hidden", "8", "--batch-size", "1",
                                "--threads", "1", "--time-bins", "100000"],  # past the estimate: the binning's own bound
        "H-hugeinput": ["hw", "run", nets["hugeinput"], "--samples", "2"],
        "H-tb_huge": ["hw", "verify", nets["tb_huge"], "--samples", "2"],
    }
    plan = {case: (args, str(base / f"home-{case}")) for case, args in cases.items()}
    with open(base / "stderr", "w+") as err:
        process = subprocess.Popen([sys.executable, "-c", _MEASURE_EACH, json.dumps(plan)], stdout=subprocess.PIPE,
                                   stderr=err, text=True)
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        err.seek(0)
        assert process.returncode == 0, err.read()
    results = {case: tuple(result) for case, result in json.loads(out).items()}
    return {**results, "all": (2, "error: (every case above, one process)", usage.ru_maxrss, False)}


@pytest.mark.parametrize("case, named", [
    ("N-patterns-huge", "num_patterns=30000000 needs an estimated"),
    ("N-dim-huge", "dim=100000000 needs an estimated"),
    ("N-hidden-1e6", "--hidden 1000000"),
    ("N-tb-100000", "--time-bins 100000"),
    ("N-tb-100000-binning", "binning shd train into 100000 time bins would"),
    ("H-hugeinput", "declares shape [50000000]"),
    ("H-tb_huge", "into 1000000 time bins would"),
    ("all", "every case above"),
])
def test_resource_cases_peak_memory_of_the_entry_point(resource_runs, case, named):
    code, err, peak_kb, _ = resource_runs[case]
    assert code == 2, (case, err)
    line = one_error_line(err)
    assert named in line and "internal error" not in line, line
    assert peak_kb < PEAK_LIMIT_KB, f"{case}: peak resident memory {peak_kb / 1024**2:.2f} GB"


# ---- every case of the review is a test


REVIEW_CASES = """
    D-shd_labels200 D-shd_units700 D-shd_units_neg D-shd_times_neg D-shd_times_nan D-shd_labels_float
    D-shd_labels_2d D-shd_empty_samples D-shd_scalar D-shd_fixed2d D-shd_h5dir D-shd_zero D-shd_symloop
    D-nm_bindir D-nm_3byte D-nm_x34 D-nm_extraclass D-nm_oneclass D-nm_fifo D-nm_devzero S1-engram S1-export
    S2-engram S3-eval S3/S16-reprice S4-eval S5-eval S6-report S7-report S7-eval S8-ablate S9-report S10-report
    S10-ablate S11-report S13-report S15-report S17-report S18-claims-file O-foreign K-cache-labels200
    E-empty-report E-empty-eval E-other-report E-inprog-report E-inprog-eval E-conc-eval RO-report RO-evaluate
    RO-reprice RO-engram SIG-eval-TERM SIG-eval-INT SIG-export-TERM-new SIG-export-TERM-existing
    SIG-export-INT-new SIG-synth-INT SIG-workers-INT X-out-eq-in X-nir-as-ckpt V-home-file V-home-file-dr
    V-home-proc V-cache--1 V-cache-abc V-cache-nan V-cache-0 V-tier-bogus V-tier-case V-data-missing V-lava-false
    V-lava-nolava V-lava-dir N-hidden0 N-tb0 N-seeds0 N-seedsneg N-beta-inf N-beta-nan N-steps-huge N-steps-neg
    N-dim-huge N-patterns-huge N-hidden-1e8 N-hidden-1e6 N-tb-100000 N-lr-inf N-mts-1e30 N-bs-1e20 N-deep-json
    N-long-modality N-loihi-hopfield N-trimodal-preset N-preset-nontri O-long-component O-long-path O-unicode
    O-in-dataroot O-dryrun-root-slash R-addr-port1 R-addr-garbage R-address-with-local H-wrongshape H-int8range
    H-tb_abc H-ds_nope H-ds_list H-zero_out H-neg_thresh H-nan_decay H-float_weights H-only_input H-weight_string
    H-hugeinput H-tb_huge H-nir-to-verify H-samples-neg H-split-bogus H-json-proc H-parallel-huge H-ds-mismatch
    Y-synth-0 Y-seed-neg Y-kind-bogus Y-kind-nonshared Y-size-bad Y-size-nope B-threads-neg B-reps-neg
    B-data-missing G-maxpairs0 G-same-run-twice
""".split()  # the 132 listed in ../shared/reviews/hostile-input-review-2.md (not in the repository, so copied here)


def _words(text: str) -> str:
    """A case id or test id as lowercase words joined by '_' (S3/S16-reprice -> _s3_s16_reprice_)."""
    import re

    return "_" + "_".join(w for w in re.split(r"[^0-9a-z]+", text.lower()) if w) + "_"


def test_every_review_case_is_a_test(request):
    """Each of the 132 ids names a test of this file (in its function name or its parameter id), so a dropped
    case fails here. The module is collected again, so a -k selection does not hide tests."""
    assert len(REVIEW_CASES) == 132 and len(set(REVIEW_CASES)) == 132
    items = request.node.parent.collect()
    names = [_words(item.name) for item in items
             if isinstance(item, pytest.Function) and item.originalname != "test_every_review_case_is_a_test"]
    assert len(names) > 132
    missing = [case for case in REVIEW_CASES if not any(_words(case) in name for name in names)]
    assert missing == [], f"review cases without a test: {missing}"
