"""The study's table on the chip, read from a tiny synthetic store (no training): one row per sense of a joint
cell, operation counts per inference as columns, the Loihi 1 profile named (Loihi 2's per-op energies are not
published), activation sparsity, the trained ANN twin's accuracy and energy, and the ratio beside the study's 603x."""

from __future__ import annotations

from pathlib import Path

from neuromem.study.report import write_reports
from neuromem.study.store import ResultStore
from neuromem.train.config import CellConfig


def _chip(sense: str, scale: float) -> dict:
    """A sense's chip costs as the trainer records them (`<metric>_<sense>`)."""
    return {f"loihi_energy_pj_per_sample_{sense}": 2e6 * scale, f"loihi_synaptic_ops_per_sample_{sense}": 80_000 * scale,
            f"loihi_neuron_updates_per_sample_{sense}": 12_345.0, f"loihi_spikes_per_sample_{sense}": 678.0 * scale,
            f"loihi_cores_{sense}": 3, f"loihi_neurons_{sense}": 500, f"loihi_synapses_{sense}": 9000,
            f"loihi_energy_assumptions_{sense}": ["synaptic ops: Davies et al. 2018: 23.6 pJ"]}


def _table(report: str) -> tuple[list[str], list[list[str]]]:
    section = report[report.index("## Loihi"):]
    lines = [l for l in section.splitlines() if l.startswith("|")]
    cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]
    return cells(lines[0]), [cells(l) for l in lines[2:]]


def test_chip_table_has_a_row_per_sense_operation_counts_the_twin_and_the_ratio(tmp_path: Path):
    store = ResultStore(tmp_path / "run")
    joint = {"test_accuracy": 0.9, "test_accuracy_nmnist": 0.95, "test_accuracy_shd": 0.85,
             "activation_sparsity_nmnist": 0.96, "activation_sparsity_shd": 0.97, **_chip("nmnist", 1.0),
             **_chip("shd", 2.0), "ann_energy_pj_per_sample_nmnist": 5e6, "ann_energy_pj_per_sample_shd": 7e6}
    store.record(CellConfig("joint", "hopfield-spiking", neuron="loihi"), joint)
    store.record(CellConfig("joint", "hopfield-spiking", neuron="dense"),
                 {"test_accuracy": 0.92, "test_accuracy_nmnist": 0.97, "test_accuracy_shd": 0.87,
                  "ann_energy_pj_per_sample_nmnist": 6e6, "ann_energy_pj_per_sample_shd": 8e6})
    single = {"test_accuracy": 0.94, "test_accuracy_nmnist": 0.94, "activation_sparsity": 0.9,
              "activation_sparsity_nmnist": 0.9, "ann_energy_pj_per_sample_nmnist": 4e6, **_chip("nmnist", 0.5)}
    single.update({k.removesuffix("_nmnist"): v for k, v in _chip("nmnist", 0.5).items()})  # the plain copy of one sense
    store.record(CellConfig("nmnist", "scl-spiking", neuron="loihi"), single)
    report = Path(write_reports(store, figures=False)["report"]).read_text()

    section = report[report.index("## Loihi"):]
    assert "Loihi 1's measured per-operation energies" in section and "not published" in section and "603x" in section
    header, rows = _table(report)
    for column in ("sense", "activation sparsity", "synaptic ops/inference", "neuron updates/inference",
                   "trained ANN twin: test accuracy", "ANN twin energy, uJ/inference (dense MACs)", "ANN / Loihi energy"):
        assert column in header, column
    at = {name: header.index(name) for name in header}
    by = {(r[at["modality"]], r[at["sense"]], r[at["memory"]]): r for r in rows}
    assert sorted(by) == [("joint", "nmnist", "hopfield-spiking"), ("joint", "shd", "hopfield-spiking"),
                          ("nmnist", "nmnist", "scl-spiking")]  # one row per sense, the single cell once
    shd = by[("joint", "shd", "hopfield-spiking")]
    assert shd[at["test accuracy"]] == "85.00" and shd[at["activation sparsity"]] == "0.97"
    assert shd[at["synaptic ops/inference"]] == "160,000" and shd[at["neuron updates/inference"]] == "12,345"
    assert shd[at["Loihi energy, uJ/inference (Loihi 1 per-op figures)"]] == "4.00"
    assert shd[at["trained ANN twin: test accuracy"]] == "87.00"  # the trained twin's sense, not the cell's
    assert shd[at["ANN twin energy, uJ/inference (dense MACs)"]] == "8.00"
    assert shd[at["ANN / Loihi energy"]] == "2x" and shd[at["the study's ratio"]] == "603x"
    nmnist = by[("joint", "nmnist", "hopfield-spiking")]
    assert nmnist[at["ANN / Loihi energy"]] == "3x" and nmnist[at["trained ANN twin: test accuracy"]] == "97.00"
    alone = by[("nmnist", "nmnist", "scl-spiking")]  # no twin trained: the untrained graph's dense MACs, said so
    assert alone[at["trained ANN twin: test accuracy"]] == "not trained"
    assert alone[at["ANN twin energy, uJ/inference (dense MACs)"]] == "4.00 (untrained graph)"
    assert alone[at["ANN / Loihi energy"]] == "4x"
    assert "`neuromem ablate --modality nmnist --memory scl-spiking --dense" in section
    assert "Davies et al. 2018: 23.6 pJ" in section


def test_a_joint_loihi_cell_records_each_senses_chain_costs():
    """The trainer's accounting of a joint scl-spiking cell on Loihi: each sense's chain (its front end, the shared
    memory's layers, its readout) run alone, recorded as `<metric>_<sense>`, no plain (one-sense) keys."""
    import numpy as np
    import torch

    from neuromem.models import build_network
    from neuromem.train.trainer import SplitData, _account

    shapes, rng = {"nmnist": (2, 34, 34), "shd": (700,)}, np.random.default_rng(0)
    torch.manual_seed(0)
    kwargs = dict(hidden=12, memory_options={"dim": 8})
    network = build_network(shapes, {s: 10 for s in shapes}, "scl-spiking", neuron="loihi", **kwargs).eval()
    twin = build_network(shapes, {s: 10 for s in shapes}, "scl-spiking", neuron="dense", **kwargs).eval()
    test = {s: SplitData(s, (rng.random((4, 6, *shape)) < 0.2).astype(np.float32), np.arange(4), np.arange(4), shape)
            for s, shape in shapes.items()}
    merged = _account(network, twin, list(shapes), test)
    for sense, shape in shapes.items():
        assert merged[f"loihi_energy_pj_per_sample_{sense}"] > 0 and merged[f"loihi_synaptic_ops_per_sample_{sense}"] > 0
        neurons = merged[f"loihi_neurons_{sense}"]
        assert merged[f"loihi_neuron_updates_per_sample_{sense}"] == neurons * 6  # every neuron, every step
    assert merged["loihi_neurons_nmnist"] != merged["loihi_neurons_shd"]  # each sense's own front end
    assert "loihi_energy_pj_per_sample" not in merged
    # a parallel pair: each network a group of one sense, the cell two senses: per-sense keys only, no plain copy
    # of whichever sense came last; a cell of one sense keeps the plain names too
    alone = build_network({"shd": shapes["shd"]}, {"shd": 10}, "scl-spiking", neuron="loihi", **kwargs).eval()
    dense = build_network({"shd": shapes["shd"]}, {"shd": 10}, "scl-spiking", neuron="dense", **kwargs).eval()
    pair = _account(alone, dense, ["shd"], test, one_sense=False)
    assert pair["loihi_energy_pj_per_sample_shd"] > 0 and "loihi_energy_pj_per_sample" not in pair
    single = _account(alone, dense, ["shd"], test, one_sense=True)
    assert single["loihi_energy_pj_per_sample"] == single["loihi_energy_pj_per_sample_shd"] > 0
