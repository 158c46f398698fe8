"""A non-spiking reference for the leave-one-speaker-out protocol (datasets/speakers.md): a small CNN
(3 conv blocks, batch norm, dropout) on either log-mel spectrograms of the recordings or the cochlea's
spike counts of a converted root, each time-normalized to 48 windows of the word, with per-utterance or
per-speaker normalization of every channel. It asks whether the gap between seen and unseen speakers is
the spiking network's or the data's.

    python datasets/probes/speaker_probe.py mel   ../shared/data/fsdd-dev/recordings utterance
    python datasets/probes/speaker_probe.py spikes R speaker

Normalizations: utterance (each recording's channels to zero mean, unit std), speaker (the same over all
of a speaker's recordings: unlabelled, per-speaker mean and variance normalization), speaker-mean (mean
only), none. Seed 0, 1 thread; prints each fold and the mean ± std over folds.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

WINDOWS = 48


def _windows(matrix: np.ndarray) -> np.ndarray:
    return matrix[:, np.linspace(0, matrix.shape[1] - 1, WINDOWS).round().astype(int)]


def log_mel(folder: Path):
    import librosa

    for path in sorted(folder.glob("*.wav")):
        label, speaker, _ = path.stem.split("_")
        audio, rate = librosa.load(path, sr=8000)
        audio, _ = librosa.effects.trim(audio, top_db=30)
        mel = librosa.feature.melspectrogram(y=audio, sr=rate, n_fft=256, hop_length=64, n_mels=40, fmax=4000)
        yield _windows(np.log(mel + 1e-6)), int(label), speaker


def spike_counts(root: Path, pool: int = 10):
    import h5py

    for split in ("train", "test"):
        with h5py.File(root / "SHD" / f"shd_{split}.h5", "r") as file:
            for times, units, label, speaker in zip(file["spikes/times"][()], file["spikes/units"][()],
                                                    file["labels"][()], file["extra/speaker"][()]):
                times = times.astype(float)
                start, span = times.min(), max(times.max() - times.min(), 1e-3)
                window = np.minimum(((times - start) / span * WINDOWS).astype(int), WINDOWS - 1)
                counts = np.zeros((700 // pool, WINDOWS))
                np.add.at(counts, (units.astype(int) // pool, window), 1)
                yield np.log1p(counts), int(label), str(speaker)


def normalize(x: np.ndarray, speakers: np.ndarray, how: str) -> np.ndarray:
    if how == "utterance":
        return (x - x.mean(2, keepdims=True)) / (x.std(2, keepdims=True) + 1e-5)
    for speaker in np.unique(speakers) if how.startswith("speaker") else []:
        rows = speakers == speaker
        x[rows] -= x[rows].mean(axis=(0, 2), keepdims=True)
        if how == "speaker":
            x[rows] /= x[rows].std(axis=(0, 2), keepdims=True) + 1e-5
    return x


def network(channels: int) -> nn.Module:
    def block(a, b):
        return [nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU()]
    return nn.Sequential(*block(1, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 64),
                         nn.AdaptiveAvgPool2d((2, 4)), nn.Flatten(), nn.Dropout(0.3), nn.Linear(512, 10))


def main(kind: str, source: str, how: str, epochs: int = 20) -> None:
    torch.set_num_threads(1)
    rows = list((log_mel if kind == "mel" else spike_counts)(Path(source)))
    x = np.stack([r[0] for r in rows])
    labels = torch.tensor([r[1] for r in rows])
    speakers = np.array([r[2] for r in rows])
    x = torch.tensor(normalize(x, speakers, how), dtype=torch.float32)[:, None]
    accuracies = []
    for held_out in np.unique(speakers):
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        train, test = np.flatnonzero(speakers != held_out), np.flatnonzero(speakers == held_out)
        model = network(x.shape[2])
        optimizer = torch.optim.AdamW(model.parameters(), 2e-3, weight_decay=1e-2)
        for _ in range(epochs):
            model.train()
            order = rng.permutation(train)
            for start in range(0, len(order), 64):
                batch = order[start:start + 64]
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[batch]), labels[batch]).backward()
                optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracies.append((model(x[test]).argmax(1) == labels[test]).float().mean().item())
        print(f"{held_out}: {accuracies[-1]:.3f}", flush=True)
    print(f"{kind} {how}: unseen speaker {np.mean(accuracies):.3f} ± {np.std(accuracies, ddof=1):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "utterance")
