"""Spiking Speech Commands (Cramer et al. 2020): 700 cochlear channels, 35 spoken command words.

SSC is Google's Speech Commands v0.02 put through the same cochlea model as SHD
and published in the same HDF5 layout (ROOT/SSC/ssc_{train,valid,test}.h5,
75,466 / 9,981 / 20,382 samples), so it shares SHD's reader and front end.

Labels: the files' `extra/keys` hold the label -> word table. neuromem's label i
always means CLASS_NAMES[i] (alphabetical): a file whose keys are the same 35
words in another order has its labels renumbered on reading, one with other
words is refused, so the concept map below can never be applied to the wrong
word. Concepts: the ten digit words zero..nine are digit concepts 0-9 (SHD's
and N-MNIST's); the other 25 words name no shared concept (NO_CONCEPT).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tonic

from neuromem.data import formats
from neuromem.data.base import NO_CONCEPT, Download, EventDataset, EventSource, StandIn, register_dataset
from neuromem.data.specs import DatasetSpec
from neuromem.data.synth.ssc import SSCSynthConfig, ssc_path, write_ssc
from neuromem.errors import NeuromemError

CLASS_NAMES = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go", "happy",
    "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop",
    "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
CONCEPTS = np.array([DIGITS.index(word) if word in DIGITS else NO_CONCEPT for word in CLASS_NAMES], dtype=np.int64)
LAYOUT = "ROOT/SSC/ssc_train.h5, ssc_valid.h5 and ssc_test.h5"


def class_order(path: Path, keys: list[str]) -> np.ndarray | None:
    """file label -> neuromem label, when the file lists the 35 words in another order; None when it agrees."""
    words = [key.strip().lower() for key in keys]
    if not words or tuple(words) == CLASS_NAMES:
        return None
    if sorted(words) != sorted(CLASS_NAMES):
        extra = sorted(set(words) - set(CLASS_NAMES))[:3]
        raise NeuromemError(f"{path}: extra/keys are not SSC's 35 words (unexpected: {', '.join(extra) or 'duplicates'}); "
                            f"valid words: {', '.join(CLASS_NAMES)}")
    return np.array([CLASS_NAMES.index(word) for word in words], dtype=np.int64)


@register_dataset
class SSC(EventDataset):
    spec = DatasetSpec(
        name="ssc",
        num_classes=len(CLASS_NAMES),
        input_shape=(formats.SHD_CHANNELS,),
        sensor_size=(formats.SHD_CHANNELS, 1, 1),
        time_bins=100,
        window_us=1_000_000,  # 100 bins of 10 ms; Speech Commands clips last 1 s
        folder="SSC",
        description="Spiking Speech Commands: 700 cochlear channels, 35 spoken commands (digits zero..nine among them)",
        splits=("train", "valid", "test"),
    )
    front_end = "audio"
    stand_ins = {"template": StandIn("template", "the SHD stand-in's phoneme templates, speaking the 35 words "
                                     "(neuromem.data.synth.ssc)", SSCSynthConfig, write_ssc)}
    default_stand_in = "template"

    def files(self, root: Path, split: str) -> list[Path]:
        return [formats.require_file(root, ssc_path(root, split), "SSC", LAYOUT)]

    def read(self, root: Path, split: str) -> EventSource:
        data = formats.read_heidelberg(root, ssc_path(root, split), "SSC", len(CLASS_NAMES), LAYOUT)
        order = class_order(data.path, data.keys)
        return EventSource(data.labels if order is None else order[data.labels], data.events)

    def speakers(self, root: Path, split: str) -> np.ndarray | None:
        (path,) = self.files(root, split)
        return formats.read_heidelberg_speakers(path)

    def layout(self, split: str) -> str:
        return f"SSC/ssc_{split}.h5"

    def fetched(self, root: Path) -> list[Path]:
        return [ssc_path(root, split) for split in self.spec.splits]

    def downloads(self, root: Path) -> list[Download]:
        base = tonic.datasets.SSC.base_url
        by_hand = (f"download {base}ssc_train.h5.zip, ssc_valid.h5.zip and ssc_test.h5.zip by hand and unzip them "
                   f"into {Path(root) / 'SSC'}")
        return [Download(split, f"{base}ssc_{split}.h5.zip",
                         lambda split=split: tonic.datasets.SSC(save_to=str(root), split=split), by_hand)
                for split in self.spec.splits]

    def concepts(self, labels: np.ndarray) -> np.ndarray:
        return CONCEPTS[np.asarray(labels, dtype=np.int64)]
