"""What each modality looks like once binned: a small frozen record per data set."""

from __future__ import annotations

from dataclasses import dataclass

from neuromem.errors import NeuromemError


@dataclass(frozen=True)
class ModalitySpec:
    name: str
    num_classes: int
    input_shape: tuple[int, ...]  # per time bin, after binning
    sensor_size: tuple[int, int, int]  # tonic's (x, y, polarity) convention
    time_bins: int  # default number of bins
    window_us: int  # default binning window from t = 0; later events are dropped
    folder: str  # sub-folder of a tonic `save_to` root
    description: str


MODALITY_SPECS: dict[str, ModalitySpec] = {
    "shd": ModalitySpec(
        name="shd",
        num_classes=20,
        input_shape=(700,),
        sensor_size=(700, 1, 1),
        time_bins=100,
        window_us=1_400_000,  # 100 bins of 14 ms; SHD words last <= ~1.4 s
        folder="SHD",
        description="Spiking Heidelberg Digits: 700 cochlear channels, 20 spoken digits (EN 0-9, DE 10-19)",
    ),
    "nmnist": ModalitySpec(
        name="nmnist",
        num_classes=10,
        input_shape=(2, 34, 34),
        sensor_size=(34, 34, 2),
        time_bins=30,
        window_us=315_000,  # 30 bins of 10.5 ms; three saccades of 105 ms each
        folder="NMNIST",
        description="N-MNIST: event-camera digits, 2 polarities x 34 x 34, three saccades",
    ),
}

SPLITS = ("train", "test")


def get_spec(modality: str) -> ModalitySpec:
    try:
        return MODALITY_SPECS[modality]
    except KeyError:
        valid = ", ".join(MODALITY_SPECS)
        raise NeuromemError(f"unknown modality {modality!r}; valid modalities: {valid}") from None


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise NeuromemError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    return split
