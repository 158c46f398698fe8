"""`neuromem evaluate` on finished tri-modal cells: zero-shot image <-> audio retrieval, and robustness /
completion of the audio stream.

The network is rebuilt from the cell's config (preset, schedule, memory, options) and its saved weights.
Every cell gets the "zero-shot" row: image -> audio and audio -> image Recall@1 / MRR on the test split (all six
directions' Recall@1 beside them), with `held_out` naming the pair its training never saw together
("image-audio" for `--trimodal-schedule zero-shot`; "" when it trained on every pair, the reference). The
perturbations of `neuromem.study.perturb` apply to the event-based sense, the spoken digit's cochlear spike
counts (before they are pooled into the network's spectrogram); images and text are not events and stay
clean. Per level: fused and audio-alone digit accuracy, audio -> image / text and image -> audio Recall@1.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from neuromem.errors import NeuromemError

ZERO_SHOT = "zero-shot"
PERTURBED_DIRECTIONS = [("audio", "image"), ("audio", "text"), ("image", "audio")]


def rebuild(config, checkpoint: Path):
    """The cell's TriModalModel with its trained weights, in eval mode on the CPU."""
    from neuromem.dense.trimodal import build_model
    from neuromem.study.store import read_checkpoint_file

    from neuromem.study.evaluate import load_saved_state

    saved = read_checkpoint_file(checkpoint)
    state = (saved.get("state_dict") or {}).get("trimodal") if isinstance(saved, dict) else None
    if not state:
        raise NeuromemError(f"{checkpoint} holds no tri-modal weights (trained before tri-modal cells kept them); "
                            "re-train it with `neuromem ablate ... --rerun stale`")
    options = dict(config.task_options)
    model = build_model(config.memory, options.get("preset", "small"), config.seed, dict(config.memory_options),
                        options.get("network_options"))
    load_saved_state(model, saved, "trimodal", checkpoint)
    return model.eval()


def evaluate_trimodal_cell(config, checkpoint: Path, data_root: Path, evaluations: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of `neuromem evaluate` for one tri-modal cell: the zero-shot row, then one per (evaluation, level)."""
    from neuromem.data import load_split
    from neuromem.dense.data import pair_trimodal
    from neuromem.dense.trimodal import HELD_OUT, evaluate_retrieval
    from neuromem.study.evaluate import _seed
    from neuromem.study.perturb import EVALUATIONS

    torch.set_num_threads(config.threads)
    model = rebuild(config, checkpoint)
    net_config = model.network.config
    shd = load_split("shd", data_root, "test")
    counts, labels = np.asarray(shd.inputs), np.asarray(shd.labels)

    def scores(audio_counts: np.ndarray, directions=None) -> dict[str, float]:
        # the pairing (image, text per spoken digit) depends on the seed and labels only: perturbed audio keeps it
        data = pair_trimodal(audio_counts, labels, "test", net_config.audio_freq, net_config.audio_time,
                             net_config.text_seq_len, config.seed)
        return evaluate_retrieval(model, data, seed=config.seed, directions=directions)

    schedule = dict(config.task_options).get("schedule", "joint")
    clean = scores(counts)
    zero: dict[str, Any] = {"held_out": "-".join(HELD_OUT.get(schedule, ())), "schedule": schedule,
                            "accuracy": clean["test_accuracy"]}
    for source, target in itertools.permutations(("text", "image", "audio"), 2):
        zero[f"{source}_to_{target}_recall@1"] = clean[f"retrieval_{source}_to_{target}_recall@1"]
    for source, target in (("image", "audio"), ("audio", "image")):
        zero[f"{source}_to_{target}_mrr"] = clean[f"retrieval_{source}_to_{target}_mrr"]
    rows = [{"evaluation": ZERO_SHOT, "level": 0.0, "metrics": zero}]
    for name in evaluations:
        spec = EVALUATIONS[name]
        for level in spec.levels:
            perturbed = spec.make(level)(counts, np.random.default_rng(_seed(config, name, level)))
            result = scores(perturbed, PERTURBED_DIRECTIONS)
            metrics = {"accuracy": result["test_accuracy"], "accuracy_audio": result["test_accuracy_audio"]}
            metrics.update({f"{s}_to_{t}_recall@1": result[f"retrieval_{s}_to_{t}_recall@1"] for s, t in PERTURBED_DIRECTIONS})
            rows.append({"evaluation": name, "level": float(level), "metrics": metrics})
    return rows
