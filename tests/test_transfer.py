"""Transfer (`neuromem ablate --init-from CELL [--freeze PART]`) and the per-epoch learning curve."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import run_cli
from neuromem.train.config import CellConfig
from neuromem.train.transfer import FREEZE_PARTS, plan_transfer, source_cell

TINY = dict(epochs=2, hidden=8, max_train_samples=24, batch_size=8)


def test_cell_ids_without_transfer_are_the_ones_of_before():
    plain = CellConfig(modality="shd", memory="hopfield")
    assert "init_from" not in plain.to_dict() and "freeze" not in plain.to_dict()
    # ids computed by neuromem before the transfer fields existed
    assert plain.cell_id == "shd-hopfield-s0-1824f8c4"
    assert CellConfig(modality="joint", memory="cmhan", seed=2, epochs=3,
                      memory_options=(("coupling", 0),)).cell_id == "joint-cmhan-s2-20fc8ddb"


def test_plan_swaps_the_sense_and_names_what_does_not_fit():
    target = {"front_ends.shd.w": torch.Size([4, 700]), "memory.queries.shd.0.weight": torch.Size([6, 4]),
              "memory.patterns": torch.Size([3, 6]), "readouts.shd.weight": torch.Size([20, 6])}
    source = {"front_ends.nmnist.conv": torch.Size([4, 2, 5, 5]), "memory.queries.nmnist.0.weight": torch.Size([6, 4]),
              "memory.patterns": torch.Size([3, 6]), "readouts.nmnist.weight": torch.Size([10, 6])}
    plan = plan_transfer(target, source, ("shd",), ("nmnist",))
    assert plan.matched == {"memory.queries.shd.0.weight": "memory.queries.nmnist.0.weight",
                            "memory.patterns": "memory.patterns"}
    line = plan.line()
    assert "\n" not in line and "front_ends.shd.w (4x700): the source has none" in line
    assert "readouts.shd.weight (20x6) vs source readouts.nmnist.weight (10x6)" in line


@pytest.fixture(scope="module")
def source(tiny_data, tmp_path_factory):
    """A tiny N-MNIST hopfield cell in a store, as `--init-from` finds it."""
    from neuromem.study.store import ResultStore
    from neuromem.train.trainer import run_cell

    config = CellConfig(modality="nmnist", memory="hopfield", **TINY)
    outcome = run_cell(config, tiny_data)
    store = ResultStore(tmp_path_factory.mktemp("source"))
    store.record(config, outcome.metrics, "ok", outcome.representations, outcome.state)
    return store.cell_dir(config.cell_id), outcome


def test_transfer_starts_from_the_source_and_freezes_the_chosen_part(tiny_data, source):
    from neuromem.train.trainer import run_cell

    folder, source_outcome = source
    origin = source_cell(folder)
    assert origin[1] == folder.name and len(origin[2]) == 16
    plain = CellConfig(modality="shd", memory="hopfield", **TINY)
    frozen = replace(plain, init_from=origin, freeze="memory")
    tuned = replace(plain, init_from=origin)
    assert len({plain.cell_id, frozen.cell_id, tuned.cell_id}) == 3  # the source and the freeze are identity
    assert frozen.variant == f"hidden=8 init_from={folder.name} freeze=memory"
    assert CellConfig.from_dict(json.loads(json.dumps(frozen.to_dict()))) == frozen

    weights = source_outcome.state["nmnist"]
    outcome = run_cell(frozen, tiny_data)
    state = outcome.state["shd"]
    for name in ("memory.patterns", "memory.queries.shd.0.weight"):  # kept as the source's, exactly
        assert torch.equal(state[name], weights[name.replace(".shd.", ".nmnist.")])
    assert outcome.metrics["transfer_frozen"] == outcome.metrics["transfer_matched"] > 0
    line = outcome.metrics["transfer_not_transferred"]
    assert "front_ends.shd.layers.0.synapse.weight (8x700): the source has none" in line
    assert "readouts.shd.weight (20x" in line and "vs source readouts.nmnist.weight (10x" in line

    moved = run_cell(tuned, tiny_data).state["shd"]  # not frozen: it starts there and trains on
    assert not torch.equal(moved["memory.patterns"], weights["memory.patterns"])
    assert outcome.metrics["learning_curve_shd"][-1] == outcome.metrics["test_accuracy_shd"]
    assert len(outcome.metrics["learning_curve"]) == TINY["epochs"]


def test_learning_curve_leaves_training_as_it_was(tiny_data):
    """Evaluating after each epoch must not change one weight of the trained network."""
    from neuromem.train import trainer
    from neuromem.train.tasks import TASKS

    config = CellConfig(modality="joint", memory="cmhan", **TINY)
    task = TASKS["joint"]
    train, test = trainer._load(task, config, tiny_data, "train"), trainer._load(task, config, tiny_data, "test")
    states, points = [], []
    for with_curve in (False, True):
        torch.manual_seed(0)
        network = trainer._build(config, list(task.datasets), train, trainer._num_classes(task, train))
        curve = {d: [] for d in task.datasets}
        hook = (lambda epoch: trainer._learning_curve_point(network, list(task.datasets), test, curve)) if with_curve else None
        trainer._train(network, train, config, np.random.default_rng(0), trainer.ProgressSink(), "joint", hook)
        states.append(network.state_dict())
        points.append(curve)
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert [len(v) for v in points[1].values()] == [TINY["epochs"] - 1] * 2


@pytest.mark.parametrize("args, message", [
    (["--freeze", "memory"], "--freeze memory needs --init-from CELL"),
    (["--init-from", "SOURCE", "--freeze", "readout"], "--freeze 'readout' is not known; valid: " + ", ".join(FREEZE_PARTS)),
    (["--init-from", "NOWHERE"], "not a cell (no model.pt there)"),
])
def test_bad_transfer_flags_are_one_line(tiny_data, tmp_path, source, args, message):
    given = [str(source[0]) if a == "SOURCE" else str(tmp_path) if a == "NOWHERE" else a for a in args]
    result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(tiny_data),
                     "--out", str(tmp_path / "out"), "--dry-run", *given)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
