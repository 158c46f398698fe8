"""Spiking Heidelberg Digits (Cramer et al. 2020): 700 cochlear channels, 20 spoken digits (EN 0-9, DE 10-19)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tonic

from neuromem.data import formats
from neuromem.data.base import NUM_CONCEPTS, Download, EventDataset, EventSource, StandIn, register_dataset
from neuromem.data.specs import DatasetSpec
from neuromem.data.synth import speech
from neuromem.data.synth.shd import SHDSynthConfig, write_shd

LAYOUT = "ROOT/SHD/shd_train.h5 and shd_test.h5"


@register_dataset
class SHD(EventDataset):
    spec = DatasetSpec(
        name="shd",
        num_classes=formats.SHD_CLASSES,
        input_shape=(formats.SHD_CHANNELS,),
        sensor_size=(formats.SHD_CHANNELS, 1, 1),
        time_bins=100,
        window_us=1_400_000,  # 100 bins of 14 ms; SHD words last <= ~1.4 s
        folder="SHD",
        description="Spiking Heidelberg Digits: 700 cochlear channels, 20 spoken digits (EN 0-9, DE 10-19)",
        # on the speech stand-in 5 epochs left scl / cmhan at 0.96 train accuracy, 8 reach 0.99 (datasets/README.md)
        epochs=8,
    )
    front_end = "audio"
    stand_ins = {"template": StandIn("template", "phoneme-built spectro-temporal templates (neuromem.data.synth.shd)",
                                     SHDSynthConfig, write_shd),
                 "speech": speech.STAND_IN}
    default_stand_in = "template"

    def files(self, root: Path, split: str) -> list[Path]:
        return [formats.require_file(root, formats.shd_path(root, split), "SHD", LAYOUT)]

    def read(self, root: Path, split: str) -> EventSource:
        shd = formats.read_shd(root, split)
        return EventSource(shd.labels, shd.events)

    def layout(self, split: str) -> str:
        return f"SHD/shd_{split}.h5"

    def speakers(self, root: Path, split: str) -> np.ndarray | None:
        (path,) = self.files(root, split)
        return formats.read_heidelberg_speakers(path)

    def speaker_names(self, root: Path) -> list[str] | None:
        from neuromem.data.convert import speaker_names  # recordings converted by `neuromem data convert`

        return speaker_names(root)

    def fetched(self, root: Path) -> list[Path]:
        return [formats.shd_path(root, split) for split in self.spec.splits]

    def downloads(self, root: Path) -> list[Download]:
        base = tonic.datasets.SHD.base_url
        by_hand = (f"download {base}shd_train.h5.zip and shd_test.h5.zip by hand and unzip them to "
                   f"{formats.shd_path(root, 'train')} and {formats.shd_path(root, 'test')}")
        return [Download(split, base + (tonic.datasets.SHD.train_zip if split == "train" else tonic.datasets.SHD.test_zip),
                         lambda train=(split == "train"): tonic.datasets.SHD(save_to=str(root), train=train), by_hand)
                for split in self.spec.splits]

    def concepts(self, labels: np.ndarray) -> np.ndarray:
        # labels 0-9 are the English digits, 10-19 the German ones in the same order
        return np.asarray(labels, dtype=np.int64) % NUM_CONCEPTS

    def domains(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        labels = np.asarray(labels)
        return {"English": labels < NUM_CONCEPTS, "German": labels >= NUM_CONCEPTS}
