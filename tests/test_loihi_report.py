"""A Loihi grid's costs as a researcher reads them: results.csv carries the chip's energy and cores for
the cells that run on Loihi (and nothing for the others), and the report sets the chip's energy beside
the 45 nm estimate and the trained ANN twin of the same graph."""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import run_cli

FAST = ["--modality", "shd", "--memory", "hopfield-spiking", "--epochs", "1", "--hidden", "16", "--batch-size", "16",
        "--max-train-samples", "32", "--threads", "1", "--memory-option", "dim=8", "--memory-option", "num_patterns=6"]


def _rows(out: Path) -> dict[str, dict]:
    with open(out / "results.csv", newline="") as f:
        return {r["neuron"]: r for r in csv.DictReader(f)}


def test_loihi_grid_has_chip_costs_and_the_report_pairs_the_trained_twin(tiny_data, tmp_path):
    out = tmp_path / "run"
    loihi = run_cli("ablate", *FAST, "--neuron", "loihi", "--data-root", str(tiny_data), "--out", str(out))
    assert loihi.returncode == 0, loihi.stderr
    row = _rows(out)["loihi"]
    assert float(row["loihi_energy_pj_per_sample"]) > 0 and int(row["loihi_cores"]) >= 5
    assert int(row["loihi_neurons"]) > 0 and float(row["loihi_synaptic_ops_per_sample"]) > 0
    report = (out / "report.md").read_text()
    section = report[report.index("## Loihi:"):]
    assert "Davies" in section and "per-core limits" in section
    assert "not trained" in section
    assert "`neuromem ablate --modality shd --memory hopfield-spiking --dense --epochs 1 --hidden 16" in section

    twin = run_cli("ablate", *FAST, "--dense", "--data-root", str(tiny_data), "--out", str(out))
    assert twin.returncode == 0, twin.stderr
    rows = _rows(out)
    assert rows["dense"]["loihi_energy_pj_per_sample"] == ""  # a ReLU network has no chip to price
    section = (out / "report.md").read_text().split("## Loihi:")[1]
    header = next(l for l in section.splitlines() if l.startswith("| modality"))
    line = next(l for l in section.splitlines() if l.startswith("| shd | shd | hopfield-spiking"))
    twin_accuracy = f"{100 * float(rows['dense']['test_accuracy']):.2f}"
    column = [c.strip() for c in header.split("|")].index("trained ANN twin: test accuracy")
    assert line.split("|")[column].strip() == twin_accuracy
    assert "not trained" not in line
