"""`neuromem ablate` end to end on tiny data: outputs, resume, determinism, bad input."""

from __future__ import annotations

import csv
import json
import sqlite3

import pytest

from conftest import run_cli

FAST = ["--epochs", "1", "--hidden", "32", "--batch-size", "16"]


def test_ablate_writes_results_and_resumes(tiny_data, tmp_path):
    out = tmp_path / "run"
    first = run_cli("ablate", "--modality", "shd,nmnist", "--memory", "hopfield", "--data-root", str(tiny_data),
                    "--out", str(out), *FAST)
    assert first.returncode == 0, first.stderr
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert {(r["modality"], r["memory"], r["seed"]) for r in rows} == {("shd", "hopfield", "0"), ("nmnist", "hopfield", "0")}
    for column in ("test_accuracy", "train_accuracy", "activation_sparsity", "epochs", "wall_seconds", "status"):
        assert column in rows[0]
    for row in rows:
        assert row["status"] == "ok"
        assert 0.0 <= float(row["test_accuracy"]) <= 1.0
        assert 0.0 < float(row["activation_sparsity"]) < 1.0
    results = json.loads((out / "results.json").read_text())
    assert results["data"] == "synthetic"
    assert "| hopfield |" in (out / "report.md").read_text()
    for row in rows:
        cell = out / "cells" / row["cell_id"]
        assert (cell / "model.pt").exists() and (cell / "representations.npz").exists()

    second = run_cli("ablate", "--modality", "shd,nmnist", "--memory", "hopfield", "--data-root", str(tiny_data),
                     "--out", str(out), *FAST)
    assert second.returncode == 0, second.stderr
    assert "2 already finished, 0 to run" in second.stderr
    assert list(csv.DictReader((out / "results.csv").open())) == rows


def test_same_seed_same_numbers(tiny_data, tmp_path):
    from neuromem.train import CellConfig, run_cell

    config = CellConfig(modality="shd", memory="hopfield", epochs=1, hidden=16, batch_size=16)
    first, second = run_cell(config, tiny_data), run_cell(config, tiny_data)
    strip = lambda m: {k: v for k, v in m.items() if k != "wall_seconds"}  # noqa: E731
    assert strip(first.metrics) == strip(second.metrics)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--modality", "eeg", "--memory", "hopfield"], "--modality eeg is not known; valid: shd, nmnist"),
        (["--modality", "shd", "--memory", "lstm"], "--memory lstm is not known; valid: hopfield"),
        (["--modality", "shd", "--memory", "hopfield", "--memory-option", "beta"], "expected key=value"),
        (["--modality", "shd", "--memory", "hopfield", "--memory-option", "colour=3"], "--memory-option for 'hopfield'"),
        (["--modality", "shd", "--memory", "hopfield-spiking", "--neuron-option", "colour=3"],
         "--neuron-option colour=3: neuron 'lif' has no parameter 'colour'; valid: beta, threshold, reset,"),
        (["--modality", "shd", "--memory", "hopfield-spiking", "--neuron-option", "reset=half"],
         "--neuron-option reset=half: neuron 'lif' parameter reset must be one of subtract, zero, got \"half\""),
        (["--modality", "shd", "--memory", "hopfield-spiking", "--memory-option", "neuron_params=1"],
         "neuron_params is the network's, not the memory's; give --neuron-option KEY=VALUE"),
        (["--modality", "shd", "--memory", "hopfield", "--dense", "--neuron-option", "reset=zero"],
         "--neuron-option reset=zero: neuron parameters apply to spiking neurons; --dense trains ReLU layers"),
    ],
)
def test_bad_flags_get_one_line_errors(tiny_data, tmp_path, args, message):
    result = run_cli("ablate", *args, "--data-root", str(tiny_data), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_data_root_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(missing),
                     "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert str(missing) in result.stderr and "Traceback" not in result.stderr


def test_corrupt_data_file_is_named(tiny_data, tmp_path):
    import shutil

    root = tmp_path / "corrupt"
    shutil.copytree(tiny_data, root)
    (root / "SHD" / "shd_test.h5").write_bytes(b"not an hdf5 file")
    result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(root),
                     "--out", str(tmp_path / "o"), *FAST)
    assert result.returncode == 2
    assert "shd_test.h5" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_out_is_named(tiny_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(tiny_data),
                     "--out", str(blocker / "sub"))
    assert result.returncode == 2
    assert "--out" in result.stderr and "Traceback" not in result.stderr


def test_store_rows_are_complete_cells(tiny_data, tmp_path):
    out = tmp_path / "run"
    result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield", "--seeds", "2", "--data-root",
                     str(tiny_data), "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(out / "results.sqlite") as db:
        ids = [row[0] for row in db.execute("SELECT cell_id FROM cells WHERE status = 'ok'")]
    assert len(ids) == 2
    assert all((out / "cells" / i / "cell.json").exists() for i in ids)


def test_folder_written_by_another_tool_trains_unchanged(tmp_path):
    """Real layouts written by an independent writer (not neuromem's synth) train and evaluate as they are."""
    import numpy as np

    from conftest import write_nmnist_bin, write_shd_h5

    rng = np.random.default_rng(7)
    root = tmp_path / "other-tool"
    for split, per_class in (("train", 3), ("test", 2)):
        labels = np.repeat(np.arange(20), per_class)
        # each word drives its own band of channels, so the task is learnable
        units = [np.clip(rng.normal(30 * label + 50, 8, 400), 0, 699).astype(np.uint16) for label in labels]
        times = [np.sort(rng.uniform(0, 1.0, 400)).astype(np.float16) for _ in labels]
        write_shd_h5(root / "SHD" / f"shd_{split}.h5", times, units, labels)
        for digit in range(10):
            for sample in range(per_class):
                x, y = rng.integers(0, 34, 500), rng.integers(0, 34, 500)
                p, t = rng.integers(0, 2, 500), np.sort(rng.integers(0, 300_000, 500))
                folder = "Train" if split == "train" else "Test"
                write_nmnist_bin(root / "NMNIST" / folder / str(digit) / f"{sample:05d}.bin", x, y, p, t)
    out = tmp_path / "run"
    result = run_cli("ablate", "--modality", "shd,nmnist", "--memory", "hopfield", "--data-root", str(root),
                     "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["data"] == "real"
    assert {row["modality"] for row in results["cells"] if row["status"] == "ok"} == {"shd", "nmnist"}


def test_neuron_options_join_a_cells_identity_only_when_given():
    from neuromem.train import CellConfig

    plain = CellConfig(modality="shd", memory="hopfield-spiking")
    assert "neuron_options" not in plain.to_dict()  # cells trained before the field existed keep their ids
    assert plain.cell_id == CellConfig.from_dict(plain.to_dict()).cell_id
    zero = CellConfig(modality="shd", memory="hopfield-spiking", neuron_options=(("reset", "zero"),))
    assert zero.to_dict()["neuron_options"] == {"reset": "zero"} and zero.variant == "reset=zero"
    assert zero.cell_id != plain.cell_id and CellConfig.from_dict(json.loads(json.dumps(zero.to_dict()))) == zero


def test_neuron_option_is_a_sweep_axis(tiny_data, tmp_path):
    result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield-spiking", "--data-root", str(tiny_data),
                     "--neuron-option", "reset=zero,subtract", "--dry-run", "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert "variant='reset=zero'" in result.stdout and "variant='reset=subtract'" in result.stdout
