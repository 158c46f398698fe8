"""What a data set looks like once binned: a small frozen record per data set (held by its registry entry)."""

from __future__ import annotations

from dataclasses import dataclass

from neuromem.errors import NeuromemError

SPLITS = ("train", "test")  # the splits every data set has; some publish more (SSC: valid)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    num_classes: int
    input_shape: tuple[int, ...]  # per time bin, after binning
    sensor_size: tuple[int, int, int]  # tonic's (x, y, polarity) convention
    time_bins: int  # default number of bins
    window_us: int  # default binning window from t = 0; later events are dropped
    folder: str  # sub-folder of a tonic `save_to` root
    description: str
    splits: tuple[str, ...] = SPLITS  # the published splits; training and testing use "train" and "test"
    epochs: int = 5  # default training epochs of a cell on this data set alone (`ablate --epochs` overrides)

    def __post_init__(self) -> None:
        if not set(SPLITS) <= set(self.splits):
            raise ValueError(f"data set {self.name!r}: splits {self.splits} must include {', '.join(SPLITS)}")

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise NeuromemError(f"unknown split {split!r} for {self.name}; valid splits: {', '.join(self.splits)}")
        return split


ModalitySpec = DatasetSpec  # the old name: "modality" now means a task (--modality), not a data set


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise NeuromemError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split
