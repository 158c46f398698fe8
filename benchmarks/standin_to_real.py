"""Stand-in to real: train on a synthetic speech stand-in, test on real recordings.

    python -m benchmarks.standin_to_real --train-root /tmp/si/EN --real-root /tmp/fsdd/R
        [--memory hopfield] [--epochs N] [--seed 0] [--threads 1] [--out result.json]

One network (`neuromem.train.trainer`'s own build, training loop and defaults:
Adam, one-cycle schedule, batch 64, the data set's binning; `--epochs`
defaults to SHD's registry default, 8) is trained on the training split of
`--train-root` (a speech stand-in: `neuromem data synth --kind speech`), then
evaluated on
- the stand-in's test split (its own unseen synthetic speakers), and
- every recording under `--real-root` (both splits of a `neuromem data convert`
  root, e.g. the Free Spoken Digit Dataset's speakers), overall and per speaker.

When the stand-in has more classes than the real data (20 with German), the
real recordings are scored with the argmax over the real data's classes only
(reported as `real_classes`). Prints one JSON object (and writes it to
`--out`); same arguments, same data -> same numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from neuromem.data.registry import get_dataset
from neuromem.train.config import CellConfig
from neuromem.train.tasks import TASKS, default_epochs
from neuromem.train.trainer import EVAL_BATCH, ProgressSink, SplitData, _build, _load, _num_classes, _train

DATASET = "shd"


@torch.no_grad()
def predict(network, split: SplitData, classes: np.ndarray | None = None) -> np.ndarray:
    """Class predictions of one split (argmax over `classes` only when given)."""
    network.eval()
    network.memory.reset_memory()
    out = []
    for start in range(0, len(split.labels), EVAL_BATCH):
        x, _ = split.take(np.arange(start, min(start + EVAL_BATCH, len(split.labels))))
        logits = network({split.name: x}).logits[split.name]
        if classes is not None:
            out.append(classes[logits[:, torch.from_numpy(classes)].argmax(-1).numpy()])
        else:
            out.append(logits.argmax(-1).numpy())
    network.memory.reset_memory()
    return np.concatenate(out)


def speakers_of(root: Path, split: str) -> np.ndarray:
    data_set = get_dataset(DATASET)
    ids = data_set.speakers(root, split)
    names = data_set.speaker_names(root)
    return np.array([names[i] if names else str(i) for i in ids]) if ids is not None else np.array(["?"])


def run(train_root: Path, real_root: Path, memory: str = "hopfield", epochs: int | None = None, seed: int = 0,
        threads: int = 1) -> dict:
    config = CellConfig(modality=DATASET, memory=memory, seed=seed, threads=threads,
                        epochs=epochs if epochs is not None else default_epochs(DATASET))
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    task = TASKS[DATASET]
    started = time.perf_counter()
    train = _load(task, config, train_root, "train")
    standin_test = _load(task, config, train_root, "test")[DATASET]
    real = [_load(task, config, real_root, split)[DATASET] for split in ("train", "test")]
    classes = _num_classes(task, train)
    network = _build(config, [DATASET], train, classes)
    _train(network, train, config, np.random.default_rng(config.seed), ProgressSink(), DATASET)
    trained = time.perf_counter() - started

    real_labels = np.concatenate([r.labels for r in real])
    real_classes = np.unique(real_labels)
    restrict = real_classes if classes[DATASET] > len(real_classes) else None
    real_pred = np.concatenate([predict(network, r, restrict) for r in real])
    real_speakers = np.concatenate([speakers_of(real_root, split) for split in ("train", "test")])
    per_speaker = {str(s): round(float((real_pred[real_speakers == s] == real_labels[real_speakers == s]).mean()), 4)
                   for s in sorted(set(real_speakers.tolist()))}
    confusion = np.zeros((len(real_classes), len(real_classes)), dtype=int)
    for truth, guess in zip(real_labels, real_pred):
        confusion[truth, guess] += 1
    return {
        "train_root": str(train_root), "real_root": str(real_root), "memory": memory, "epochs": config.epochs,
        "seed": seed, "classes": classes[DATASET], "real_classes": len(real_classes),
        "standin_train_samples": len(train[DATASET].labels), "standin_test_samples": len(standin_test.labels),
        "real_samples": len(real_labels),
        "standin_train_accuracy": round(float((predict(network, train[DATASET]) == train[DATASET].labels).mean()), 4),
        "standin_test_accuracy": round(float((predict(network, standin_test) == standin_test.labels).mean()), 4),
        "real_accuracy": round(float((real_pred == real_labels).mean()), 4),
        "real_accuracy_per_speaker": per_speaker,
        "real_confusion": confusion.tolist(),  # rows: true digit, columns: predicted digit
        "train_seconds": round(trained, 1), "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-root", type=Path, required=True, help="a speech stand-in root (trained on its train split)")
    parser.add_argument("--real-root", type=Path, required=True, help="a converted root of real recordings (both splits tested)")
    parser.add_argument("--memory", default="hopfield")
    parser.add_argument("--epochs", type=int, default=None, help="default: the data set's own (SHD: 8)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = run(args.train_root, args.real_root, args.memory, args.epochs, args.seed, args.threads)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    main()
