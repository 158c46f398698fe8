"""Tri-modal cells through `neuromem evaluate`: the zero-shot protocol and perturbed audio."""

from __future__ import annotations

import json

import pytest

from neuromem.dense.trimodal import trained_pairs
from neuromem.train.config import CellConfig

TINY = dict(latent_dim=16, num_layers=1, num_heads=2, text_embed_dim=16, text_seq_len=24, image_size=8, patch_size=4,
            image_channels=1, audio_widths=(8, 8), audio_freq=16, audio_time=16, modality_memory_size=4,
            memory_size=8, fusion_hidden=32, dropout=0.0)


def test_zero_shot_schedule_never_aligns_image_with_audio():
    assert ("image", "audio") not in trained_pairs("zero-shot")
    assert trained_pairs("zero-shot") == [("text", "image"), ("text", "audio")]
    assert ("image", "audio") in trained_pairs("joint")


@pytest.fixture(scope="module")
def store(tiny_data, tmp_path_factory):
    from neuromem.study.store import ResultStore
    from neuromem.train.trainer import run_cell

    store = ResultStore(tmp_path_factory.mktemp("trimodal"))
    for schedule in ("zero-shot", "joint"):
        config = CellConfig(modality="trimodal", memory="hopfield", neuron="dense", epochs=1, max_train_samples=40,
                            task_options=(("network_options", TINY), ("preset", "small"), ("schedule", schedule)))
        outcome = run_cell(config, tiny_data)
        assert "trimodal" in outcome.state  # the weights evaluate rebuilds the network from
        assert outcome.metrics.get("held_out_pair", "") == ("image-audio" if schedule == "zero-shot" else "")
        store.record(config, {**outcome.metrics, "provenance": {}}, "ok", outcome.representations, outcome.state)
    return store


def test_evaluate_reports_zero_shot_recall_and_perturbed_audio(store, tiny_data):
    from neuromem.study.evaluate import evaluate_store, load_evaluations
    from neuromem.study.perturb import EVALUATIONS

    assert evaluate_store(store, tiny_data, ["dropout"], allow_stale=True) == 2
    rows = load_evaluations(store)
    zero = {r["schedule"]: r for r in rows if r["evaluation"] == "zero-shot"}
    assert zero["zero-shot"]["held_out"] == "image-audio" and zero["joint"]["held_out"] == ""
    for row in zero.values():
        for key in ("image_to_audio_recall@1", "audio_to_image_recall@1", "image_to_audio_mrr", "accuracy"):
            assert 0.0 <= row[key] <= 1.0
    dropout = [r for r in rows if r["evaluation"] == "dropout"]
    assert sorted({r["level"] for r in dropout}) == list(EVALUATIONS["dropout"].levels)
    assert all("audio_to_image_recall@1" in r and 0 <= r["accuracy_audio"] <= 1 for r in dropout)
    evaluate_store(store, tiny_data, ["dropout"], allow_stale=True)  # same cell, same numbers
    assert json.dumps(load_evaluations(store), sort_keys=True) == json.dumps(rows, sort_keys=True)
