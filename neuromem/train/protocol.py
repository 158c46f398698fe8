"""Evaluation protocols: which samples a cell trains on and which it is tested on.

- the data set's own split (a cell's `fold` is ""): train on "train", test on "test". For SHD that
  is the published split, whose test speakers are not among the training speakers; for recordings
  converted with `neuromem data convert`'s default rule, test speakers are seen speakers;
- leave one speaker out (`--cv speakers`, fold "speaker=NAME"): both splits are pooled; NAME's
  samples are the test set (a voice never heard); of every other speaker, a fixed 10% (at least one)
  of each word's samples are held out as the *seen-speaker* test set (new recordings of known voices) and
  the rest is trained on. The seen set of a speaker is the same in every fold and for every seed,
  so the gap between the two accuracies is paired within each fold.

Every auditory table says which protocol it is (`describe`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuromem.errors import NeuromemError

SEEN_FRACTION = 0.1
PROTOCOLS = ("speakers",)  # --cv values


@dataclass(frozen=True)
class Selection:
    """Rows of each split (pooled order: split by split, rows within a split) for one role."""

    rows: dict[str, np.ndarray]  # split -> row indices

    def count(self) -> int:
        return int(sum(len(r) for r in self.rows.values()))


def _speakers_by_split(dataset, root: Path) -> dict[str, np.ndarray]:
    found = {}
    for split in ("train", "test"):
        speakers = dataset.speakers(root, split)
        if speakers is None:
            raise NeuromemError(f"--cv speakers: {dataset.name} under {root} records no speakers "
                                f"({dataset.layout(split)} names none); leave --cv out to use the data set's own split")
        found[split] = np.asarray(speakers, dtype=np.int64)
    return found


def _name(dataset, root: Path, speaker: int) -> str:
    names = dataset.speaker_names(root)
    return names[speaker] if names is not None and 0 <= speaker < len(names) else str(speaker)


def speaker_folds(dataset, root: Path) -> list[str]:
    """One fold per speaker found in either split: ["speaker=NAME", ...] in speaker-id order."""
    found = _speakers_by_split(dataset, root)
    ids = sorted({int(s) for speakers in found.values() for s in speakers})
    if len(ids) < 2:
        raise NeuromemError(f"--cv speakers: {dataset.name} under {root} has {len(ids)} speaker; "
                            "leaving one out needs at least 2")
    return [f"speaker={_name(dataset, root, s)}" for s in ids]


def fold_rows(dataset, root: Path, fold: str, labels: dict[str, np.ndarray]) -> dict[str, Selection]:
    """{"train", "seen", "test"} -> rows of each split, for one fold. `labels`: split -> labels (stratifies
    the seen-speaker set)."""
    kind, _, value = fold.partition("=")
    if kind != "speaker" or not value:
        raise NeuromemError(f"fold {fold!r} is not known; valid: speaker=NAME (`--cv speakers`)")
    found = _speakers_by_split(dataset, root)
    ids = sorted({int(s) for speakers in found.values() for s in speakers})
    by_name = {_name(dataset, root, s): s for s in ids}
    if value not in by_name:
        raise NeuromemError(f"fold {fold!r}: no speaker {value!r} in {dataset.name} under {root}; "
                            f"valid: {', '.join(by_name)}")
    held_out = by_name[value]
    # pooled: split by split, rows within a split; the seen set is chosen over the pool
    split_of = np.concatenate([np.full(len(found[split]), i) for i, split in enumerate(("train", "test"))])
    row_of = np.concatenate([np.arange(len(found[split])) for split in ("train", "test")])
    speakers = np.concatenate([found[split] for split in ("train", "test")])
    pooled_labels = np.concatenate([np.asarray(labels[split], dtype=np.int64) for split in ("train", "test")])
    seen = np.zeros(len(speakers), dtype=bool)
    for speaker in ids:
        if speaker == held_out:
            continue
        for label in np.unique(pooled_labels):
            members = np.flatnonzero((speakers == speaker) & (pooled_labels == label))
            take = max(1, int(round(SEEN_FRACTION * len(members)))) if len(members) >= 2 else 0
            # fixed by (speaker, label) alone: the same seen set in every fold and for every seed
            seen[np.random.default_rng([7, speaker, int(label)]).permutation(members)[:take]] = True
    masks = {"test": speakers == held_out, "seen": seen & (speakers != held_out), "train": ~seen & (speakers != held_out)}
    roles = {role: {split: row_of[mask & (split_of == i)] for i, split in enumerate(("train", "test"))}
             for role, mask in masks.items()}
    selections = {role: Selection(rows) for role, rows in roles.items()}
    for role, selection in selections.items():
        if selection.count() == 0:
            raise NeuromemError(f"fold {fold!r}: its {role} set is empty; every speaker needs samples of several words")
    return selections


def describe(fold: str) -> str:
    """The protocol of a cell, for tables."""
    return "leave one speaker out" if fold.startswith("speaker=") else "the data set's own split"
