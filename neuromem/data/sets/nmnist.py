"""N-MNIST (Orchard et al. 2015): event-camera digits, 2 polarities x 34 x 34, three saccades."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tonic

from neuromem.data import formats
from neuromem.data.base import Download, EventDataset, EventSource, StandIn, register_dataset
from neuromem.data.specs import DatasetSpec
from neuromem.data.synth.nmnist import NMNISTSynthConfig, write_nmnist


@register_dataset
class NMNIST(EventDataset):
    spec = DatasetSpec(
        name="nmnist",
        num_classes=formats.NMNIST_CLASSES,
        input_shape=(2, formats.NMNIST_SIZE, formats.NMNIST_SIZE),
        sensor_size=(formats.NMNIST_SIZE, formats.NMNIST_SIZE, 2),
        time_bins=30,
        window_us=315_000,  # 30 bins of 10.5 ms; three saccades of 105 ms each
        folder="NMNIST",
        description="N-MNIST: event-camera digits, 2 polarities x 34 x 34, three saccades",
    )
    front_end = "visual"
    stand_ins = {"template": StandIn("template", "scikit-learn's handwritten digits seen by a simulated saccading "
                                     "event camera (neuromem.data.synth.nmnist)", NMNISTSynthConfig, write_nmnist)}
    default_stand_in = "template"

    def files(self, root: Path, split: str) -> list[Path]:
        return formats.list_nmnist(root, split)[0]

    def read(self, root: Path, split: str) -> EventSource:
        files, labels = formats.list_nmnist(root, split)
        return EventSource(labels, lambda i: formats.read_nmnist_events(files[i]))

    def layout(self, split: str) -> str:
        return f"NMNIST/{formats.NMNIST_SPLIT_FOLDERS[split]}/<digit>/*.bin"

    def fetched(self, root: Path) -> list[Path]:
        return [formats.nmnist_split_dir(root, split) for split in self.spec.splits]

    def downloads(self, root: Path) -> list[Download]:
        by_hand = (f"download N-MNIST's train.zip and test.zip by hand (https://www.garrickorchard.com/datasets/n-mnist) "
                   f"and unzip them so that {Path(root) / 'NMNIST' / 'Train' / '<digit>' / '*.bin'} and "
                   f"{Path(root) / 'NMNIST' / 'Test' / '<digit>' / '*.bin'} exist")
        return [Download(split, tonic.datasets.NMNIST.train_url if split == "train" else tonic.datasets.NMNIST.test_url,
                         lambda train=(split == "train"): tonic.datasets.NMNIST(save_to=str(root), train=train), by_hand)
                for split in self.spec.splits]

    def concepts(self, labels: np.ndarray) -> np.ndarray:
        return np.array(labels, dtype=np.int64)  # the labels are the digits
