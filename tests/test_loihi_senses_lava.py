"""Cells of two senses on Loihi: a joint cell (two front ends, one shared spiking memory, a readout each) and a
parallel pair export as one file holding each sense's chain (sense/<name>), and each runs bit-exact on Lava."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

from neuromem.errors import NeuromemError
from neuromem.export.hardware import lava_available, verify_on_lava
from neuromem.export.lava import export_lava, model_from_lava, senses_record
from neuromem.export.model import LoihiSenses, binary_time_major

SHAPES = {"nmnist": (2, 34, 34), "shd": (700,)}  # the data sets' own shapes: the loader rebuilds the cell with them


def _checkpoint(tmp_path, modality: str, memory: str, options: tuple, steps: int = 10):
    """A tiny Loihi cell of two senses, trained two batches, saved as a grid cell's model.pt; (path, networks)."""
    from neuromem.models import build_network
    from neuromem.train.config import CellConfig

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    groups = [tuple(SHAPES)] if modality == "joint" else [(s,) for s in SHAPES]
    inputs = {s: (rng.random((8, steps, *shape)) < 0.15).astype(np.float32) for s, shape in SHAPES.items()}
    labels = torch.as_tensor(rng.integers(0, 10, 8))
    states, networks = {}, {}
    for group in groups:
        net = build_network({s: SHAPES[s] for s in group}, {s: 10 for s in group}, memory, hidden=12, neuron="loihi",
                            memory_options=dict(options))
        optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
        for _ in range(2):
            out = net({s: torch.as_tensor(inputs[s]) for s in group})
            loss = sum(torch.nn.functional.cross_entropy(out.logits[s], labels) for s in group)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        states["+".join(group)] = net.state_dict()
        networks.update({s: net.eval() for s in group})
    config = CellConfig(modality=modality, memory=memory, hidden=12, neuron="loihi", memory_options=options, epochs=0)
    path = tmp_path / "model.pt"
    torch.save({"config": config.to_dict(), "state_dict": states}, path)
    return path, networks, inputs


@pytest.mark.parametrize("modality,memory,options", [
    ("joint", "hopfield-spiking", (("dim", 8), ("num_patterns", 4), ("relay", 4))),
    ("parallel", "hgrn-spiking", (("dim", 8),)),
])
def test_cell_of_two_senses_is_one_file_of_a_chain_per_sense(tmp_path, modality, memory, options):
    from neuromem.export.cli import load_for_export

    path, networks, inputs = _checkpoint(tmp_path, modality, memory, options)
    model, name, _ = load_for_export(path)
    assert isinstance(model, LoihiSenses) and model.senses == ("nmnist", "shd") and name == modality
    assert model.shared == (modality == "joint") and model.concept_labels
    net_file = export_lava(model, tmp_path / "cell.h5", dataset=name, time_bins=None)
    record = senses_record(net_file)
    assert record["senses"] == ["nmnist", "shd"] and record["shared_memory"] == (modality == "joint")
    with h5py.File(net_file) as handle:
        assert "layer" not in handle and sorted(handle["sense"]) == ["nmnist", "shd"]
        weights = {s: [handle[f"sense/{s}/layer/{k}/weight"][()] for k in sorted(handle[f"sense/{s}/layer"], key=int)
                       if k != "0"] for s in SHAPES}
    # the memory's layers after each sense's own ones (nmnist: 3 front-end layers, shd: 2, then its query):
    # in a joint cell the shared ones hold the same weights in both chains, in a parallel pair their own
    shared = [np.array_equal(a, b) for a, b in zip(weights["nmnist"][4:-1], weights["shd"][3:-1])]
    assert len(shared) >= 1 and all(shared) == (modality == "joint")
    with pytest.raises(NeuromemError, match="one chain per sense \\(nmnist, shd\\); name one"):
        model_from_lava(net_file)
    with pytest.raises(NeuromemError, match="no chain of sense 'ssc'; its senses: nmnist, shd"):
        model_from_lava(net_file, "ssc")
    one = export_lava(model.chains["shd"], tmp_path / "one.h5", dataset="shd")
    assert senses_record(one) is None
    with pytest.raises(NeuromemError, match="no chain of sense 'shd'; it holds one chain: give no sense"):
        model_from_lava(one, "shd")
    for sense, net in networks.items():
        chain = model_from_lava(net_file, sense)
        with torch.no_grad():
            cell = net({sense: torch.as_tensor(inputs[sense])}).logits[sense].argmax(-1)
            assert torch.equal(chain.predict(binary_time_major(inputs[sense])), cell)


@pytest.mark.skipif(not lava_available(), reason="Lava environment missing (make lava)")
def test_joint_cell_runs_bit_exact_on_lava_sense_by_sense(tmp_path):
    from neuromem.export.cli import load_for_export

    path, _, inputs = _checkpoint(tmp_path, "joint", "hopfield-spiking", (("dim", 8), ("num_patterns", 4)), steps=8)
    model, name, _ = load_for_export(path)
    net_file = export_lava(model, tmp_path / "cell.h5", dataset=name)
    for sense in SHAPES:
        report = verify_on_lava(net_file, inputs[sense][:3], np.zeros(3, dtype=np.int64), record_voltages=True,
                                workers=1, parallel=3, sense=sense)
        assert report.mismatches == 0 and report.voltages_equal and report.predictions_equal
        assert sum(report.spikes_per_layer[:-1]) > 0
        assert json.loads(h5py.File(net_file).attrs["neuromem_data"])["dataset"] is None


@pytest.mark.skipif(not lava_available(), reason="Lava environment missing (make lava)")
def test_cli_exports_and_verifies_each_sense_on_its_own_test_samples(tmp_path, tiny_data):
    import typer
    from typer.testing import CliRunner

    from neuromem.export.cli import register

    path, _, _ = _checkpoint(tmp_path, "joint", "hgrn-spiking", (("dim", 8),), steps=6)
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    net_file = tmp_path / "joint.h5"
    result = runner.invoke(app, ["export", str(path), "--to", "lava", "--out", str(net_file)])
    assert result.exit_code == 0, result.output
    assert "a 'joint' cell: one chain per sense" in result.output and "  shd: 700 -> " in result.output
    common = ["--data-root", str(tiny_data), "--samples", "2", "--workers", "1"]
    result = runner.invoke(app, ["hw", "verify", str(net_file), *common, "--json", str(tmp_path / "v.json")])
    assert result.exit_code == 0, result.output
    for sense, steps in (("nmnist", "30"), ("shd", "100")):  # each sense's own test samples and time bins
        assert f"sense {sense}:\ndata: {sense} test, 2 samples (labels as concepts)" in result.output
        assert f"2 samples x {steps} steps" in result.output
    assert result.output.count("spike rasters identical: yes; readout voltages identical: yes") == 2
    assert set(json.loads((tmp_path / "v.json").read_text())) == {"nmnist", "shd"}
    result = runner.invoke(app, ["hw", "run", str(net_file), *common])
    assert result.exit_code == 0, result.output
    assert "sense nmnist: Lava accuracy on 2 test samples" in result.output and "sense shd: Lava" in result.output
