"""A cell of two senses (joint: two front ends, one shared spiking memory, a readout each) as one NIR graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuromem.errors import NeuromemError

nir = pytest.importorskip("nir")

SHAPES = {"nmnist": (2, 34, 34), "shd": (700,)}  # the data sets' own shapes: the loader rebuilds the cell with them


def _joint_checkpoint(tmp_path, steps=12):
    """A tiny joint hopfield-spiking cell (zero reset), trained two batches, saved as a grid cell's model.pt."""
    from neuromem.models import build_network
    from neuromem.train.config import CellConfig

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    options, neuron = (("dim", 8), ("relay", 6)), (("reset", "zero"),)
    net = build_network(SHAPES, {s: 10 for s in SHAPES}, "hopfield-spiking", hidden=12,
                        memory_options=dict(options), neuron_params=dict(neuron))
    inputs = {s: (rng.random((8, steps, *shape)) < 0.15).astype(np.float32) for s, shape in SHAPES.items()}
    labels = torch.as_tensor(rng.integers(0, 10, 8))
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
    for _ in range(2):
        out = net({s: torch.as_tensor(x) for s, x in inputs.items()})
        loss = sum(torch.nn.functional.cross_entropy(out.logits[s], labels) for s in SHAPES)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    config = CellConfig(modality="joint", memory="hopfield-spiking", hidden=12, memory_options=options,
                        neuron_options=neuron, epochs=0)
    path = tmp_path / "model.pt"
    torch.save({"config": config.to_dict(), "state_dict": {"nmnist+shd": net.state_dict()}}, path)
    return path, net.eval(), inputs


def test_joint_cell_is_one_graph_with_an_input_per_sense_and_each_path_is_neuromems_run(tmp_path):
    import json

    from neuromem.export.nir import SenseChains, build_graph, load_for_nir, sense_graph, write_nir
    from neuromem.export.nir.cell import import_cell
    from neuromem.export.nir.importer import from_nir

    path, net, inputs = _joint_checkpoint(tmp_path)
    model, modality, _ = load_for_nir(path)
    assert isinstance(model, SenseChains) and model.shared and model.senses == ("nmnist", "shd") and modality == "joint"
    graph = build_graph(model).graph
    assert sorted(k for k, n in graph.nodes.items() if isinstance(n, nir.Input)) == ["nmnist", "shd"]
    assert sorted(k for k, n in graph.nodes.items() if isinstance(n, nir.Output)) == ["nmnist.output", "shd.output"]
    # the shared memory's patterns and retrieval are written once per sense path, with the same weights
    same = json.loads(graph.metadata["neuromem"])["same_weights"]
    assert len(same) == 2 and all(len(group) == 2 for group in same)
    for group in same:
        a, b = (graph.nodes[f"{name}.linear"].weight for name in group)
        assert np.array_equal(a, b)
    for sense in SHAPES:
        chain = model.chains[sense]
        x = torch.as_tensor(inputs[sense]).transpose(0, 1)
        cell_spikes, _ = chain.run(x)
        with torch.no_grad():
            ours, voltages = from_nir(sense_graph(graph, sense)).spiking_outputs(x)
        assert all(s.sum() > 0 for s in cell_spikes[:-1]), sense
        assert all(torch.equal(a.float(), b.float()) for a, b in zip(cell_spikes, ours)), sense
        # neuromem's per-sense run (that sense alone through the shared memory) decides as the graph's path does
        net.memory.reset_memory()
        logits = net({sense: torch.as_tensor(inputs[sense])}).logits[sense]
        assert torch.equal(voltages[-1].argmax(-1), logits.argmax(-1)), sense
    written = write_nir(path, tmp_path / "joint.nir")
    with pytest.raises(NeuromemError, match="one-input graphs"):
        import_cell(written, tmp_path / "imported", dataset="shd")


def test_joint_compare_reports_each_sense_on_its_own_samples(tmp_path):
    pytest.importorskip("norse")
    from neuromem.export.nir import load_for_nir, nir_agreement

    path, _, inputs = _joint_checkpoint(tmp_path)
    model, _, _ = load_for_nir(path)
    labels = {"nmnist": np.arange(8) % 10, "shd": np.arange(8) % 20}  # SHD's 20 classes: concepts 0..9 twice
    report = nir_agreement(model, inputs, simulators=("norse",), labels=labels)
    assert list(report.senses) == ["nmnist", "shd"]
    lines = report.lines()
    assert lines[0].startswith("sense nmnist (Input 'nmnist'") and any(l.startswith("sense shd") for l in lines)
    for sense, own in report.senses.items():
        assert own.samples == 8 and own.decisions_vs_cell == 1.0 and sum(own.cell_mismatches) == 0, lines
        (norse,) = own.simulators
        assert norse.refused is None and norse.decisions_equal == 1.0, lines


def test_parallel_cell_is_one_graph_of_two_separate_networks(tmp_path):
    from neuromem.export.nir import SenseChains, build_graph, load_for_nir
    from neuromem.models import build_network
    from neuromem.train.config import CellConfig

    options = (("dim", 8), ("relay", 6))
    states = {s: build_network({s: shape}, {s: 10}, "hopfield-spiking", hidden=12, memory_options=dict(options)
                               ).state_dict() for s, shape in SHAPES.items()}
    config = CellConfig(modality="parallel", memory="hopfield-spiking", hidden=12, memory_options=options, epochs=0)
    torch.save({"config": config.to_dict(), "state_dict": states}, tmp_path / "model.pt")
    model, _, _ = load_for_nir(tmp_path / "model.pt")
    assert isinstance(model, SenseChains) and not model.shared
    graph = build_graph(model).graph
    assert sorted(k for k, n in graph.nodes.items() if isinstance(n, nir.Input)) == ["nmnist", "shd"]
    import json

    assert json.loads(graph.metadata["neuromem"])["same_weights"] == []
