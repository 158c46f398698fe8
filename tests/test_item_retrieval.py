"""Item-level cross-modal retrieval: fixed item pairs, the metrics, post-hoc alignment, and the store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import run_cli
from neuromem.metrics.retrieval import item_retrieval_metrics
from neuromem.study.item_retrieval import cca, procrustes
from neuromem.train.config import CellConfig
from neuromem.train.pairing import item_pairs, item_partners


def test_item_pairs_are_seeded_one_to_one_within_a_concept():
    labels_a = np.array([0, 0, 0, 1, 1, 2])
    labels_b = np.array([1, 0, 0, 1, 2, 2, 1])
    partners = item_partners(labels_a, labels_b, seed=3)
    assert (labels_b[partners] == labels_a).all()
    assert np.array_equal(partners, item_partners(labels_a, labels_b, seed=3))
    rows_a, rows_b = item_pairs(labels_a, labels_b, seed=3)
    assert (labels_a[rows_a] == labels_b[rows_b]).all() and len(set(rows_b)) == len(rows_b) == 5  # 2 + 2 + 1
    assert np.array_equal(partners[rows_a], rows_b)  # the evaluated pairs are the ones trained on
    assert any(not np.array_equal(item_partners(labels_a, labels_b, seed=s), partners) for s in range(4, 12))


def test_item_metrics_count_only_the_partner():
    x = np.eye(6)
    x[0, 1] = x[1, 0] = 0.5  # rows 0 and 1 are each other's second best
    assert item_retrieval_metrics(x, x)["recall@1"] == 1.0
    swapped = x[[1, 0, 2, 3, 4, 5]]  # rows 0 and 1 find each other's partner
    scores = item_retrieval_metrics(x, swapped, ks=(1, 2))
    assert scores["recall@1"] == pytest.approx(4 / 6) and scores["recall@2"] == 1.0
    assert scores["mrr"] == pytest.approx((4 + 0.5 + 0.5) / 6)


@pytest.mark.parametrize("fit", [procrustes, cca])
def test_post_hoc_alignment_recovers_a_hidden_rotation(fit):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 8))
    rotation, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    y = x @ rotation + 0.01 * rng.normal(size=(200, 8)) + 3.0
    map_x, map_y = fit(x, y)
    assert item_retrieval_metrics(map_x(x), map_y(y))["recall@1"] > 0.95
    assert item_retrieval_metrics(x, y)["recall@1"] < 0.5  # unaligned


TINY = dict(epochs=1, hidden=8, max_train_samples=30, batch_size=8)


def test_item_retrieval_of_joint_and_parallel_cells_goes_into_the_store(tiny_data, tmp_path):
    from neuromem.study.evaluate import load_evaluations
    from neuromem.study.item_retrieval import EVALUATION, evaluate_items
    from neuromem.study.store import ResultStore
    from neuromem.train.trainer import run_cell

    store = ResultStore(tmp_path / "run")
    joint = CellConfig(modality="joint", memory="cmhan", pairing="item", **TINY)
    parallel = CellConfig(modality="parallel", memory="hopfield", **TINY)
    assert joint.cell_id != CellConfig(modality="joint", memory="cmhan", **TINY).cell_id
    assert "pairing" not in CellConfig(modality="joint", memory="cmhan").to_dict()
    for config in (joint, parallel):
        outcome = run_cell(config, tiny_data)
        store.record(config, {**outcome.metrics, "provenance": {}}, "ok", outcome.representations, outcome.state)
    seen = {}
    assert evaluate_items(store, tiny_data, lambda cell, metrics, why: seen.setdefault(cell, metrics),
                          allow_stale=True) == 2
    rows = {r["cell_id"]: r for r in load_evaluations(store) if r["evaluation"] == EVALUATION}
    item = rows[joint.cell_id]
    assert 0 < item["pairs"] <= 30 and item["chance_item_recall@1"] == 1 / item["pairs"] and item["pairing"] == "item"
    for key in ("item_nmnist_to_shd_recall@1", "item_shd_to_nmnist_mrr", "item_nmnist_to_shd_ndcg@10",
                "class_nmnist_to_shd_recall@1"):
        assert 0.0 <= item[key] <= 1.0, key
    aligned = rows[parallel.cell_id]
    for key in ("item_procrustes_nmnist_to_shd_recall@1", "item_cca_shd_to_nmnist_recall@1",
                "class_procrustes_nmnist_to_shd_recall@1"):
        assert 0.0 <= aligned[key] <= 1.0, key
    evaluate_items(store, tiny_data, allow_stale=True)  # same cell, same numbers
    again = {r["cell_id"]: r for r in load_evaluations(store) if r["evaluation"] == EVALUATION}
    assert json.dumps(again, sort_keys=True) == json.dumps(rows, sort_keys=True)


@pytest.mark.parametrize("args, message", [
    (["--modality", "joint", "--pairing", "episode"], "--pairing 'episode' is not known; valid: class, item"),
    (["--modality", "shd", "--pairing", "item"], "--pairing item applies to cells training two senses together"),
])
def test_bad_pairing_is_one_line(tiny_data, tmp_path, args, message):
    result = run_cli("ablate", "--memory", "cmhan", "--data-root", str(tiny_data), "--out", str(tmp_path / "o"),
                     "--dry-run", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
