"""The real on-disk formats of the event data sets: writers, and readers built on tonic / h5py.

Layouts under a tonic `save_to` root:
  ROOT/SHD/shd_{train,test}.h5         HDF5 as published by Cramer et al. (2020)
  ROOT/SSC/ssc_{train,valid,test}.h5   the same HDF5 layout (Spiking Speech Commands, same paper)
  ROOT/NMNIST/{Train,Test}/<digit>/*.bin  40-bit event records as published by Orchard et al. (2015)

Reading goes through tonic (`tonic.io.read_mnist_file`) and h5py with tonic's
SHD conventions (times in µs, a constant polarity), so a folder of real data
and the synthetic default are read by the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import tonic
from tonic.datasets.hsd import HSD
from tonic.datasets.nmnist import NMNIST
from tonic.io import make_structured_array

from neuromem.data.paths import fix_hint as _fix_hint
from neuromem.errors import NeuromemError

SHD_CHANNELS = 700
SHD_CLASSES = 20
NMNIST_SIZE = 34
NMNIST_CLASSES = 10
NMNIST_SPLIT_FOLDERS = {"train": "Train", "test": "Test"}
_MAX_TIMESTAMP_US = 2**23 - 1  # 23-bit timestamps in a .bin record, no overflow events written


# ---------------------------------------------------------------------------- SHD / SSC (Heidelberg HDF5)


def shd_path(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / "SHD" / f"shd_{split}.h5"


@dataclass
class HeidelbergFile:
    """One split of a Heidelberg spiking data set (SHD, SSC) held as the raw vlen arrays."""

    path: Path
    times: np.ndarray  # object array of float16 arrays, seconds
    units: np.ndarray  # object array of uint16 arrays, channel 0..699
    labels: np.ndarray  # int64 (N,)
    speakers: np.ndarray | None
    keys: list[str]  # extra/keys: the class names, label -> word

    def __len__(self) -> int:
        return len(self.labels)

    def events(self, index: int) -> np.ndarray:
        """Sample `index` as tonic's SHD / SSC do it: t in µs, x = channel, constant polarity."""
        return shd_events(self.times[index], self.units[index])


SHDFile = HeidelbergFile


def shd_events(times_s: np.ndarray, units: np.ndarray) -> np.ndarray:
    # float64 before scaling, as tonic.datasets.SHD does, to keep µs exact-ish from float16
    return make_structured_array(np.asarray(times_s).astype(np.float64) * 1e6, np.asarray(units), 1, dtype=HSD.dtype)


def read_shd(root: str | os.PathLike, split: str) -> HeidelbergFile:
    return read_heidelberg(root, shd_path(root, split), "SHD", SHD_CLASSES, "ROOT/SHD/shd_train.h5 and shd_test.h5")


def require_file(root: str | os.PathLike, path: Path, name: str, expected: str) -> Path:
    """`path`, or the one-line error naming the missing file, the expected layout and how to get it."""
    if not path.is_file():
        if not Path(root).is_dir():
            raise NeuromemError(f"data root {root} does not exist; {_fix_hint(root)}")
        raise NeuromemError(f"missing {name} file {path} (expected {expected}); {_fix_hint(root)}")
    return path


def read_heidelberg(root: str | os.PathLike, path: Path, name: str, num_classes: int, expected: str,
                    channels: int = SHD_CHANNELS) -> HeidelbergFile:
    """Read and check one split in the Heidelberg layout (spikes/times, spikes/units, labels, extra/...)."""
    require_file(root, path, name, expected)
    try:
        with h5py.File(path, "r") as file:
            missing = [key for key in ("spikes/times", "spikes/units", "labels") if key not in file]
            if missing:
                raise NeuromemError(
                    f"{path} is not an {name} file: missing dataset(s) {', '.join(missing)} "
                    "(valid: spikes/times, spikes/units, labels, extra/keys, extra/speaker)"
                )
            times = file["spikes/times"][()]
            units = file["spikes/units"][()]
            labels = np.asarray(file["labels"][()]).astype(np.int64)
            speakers = np.asarray(file["extra/speaker"][()]) if "extra/speaker" in file else None
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in file["extra/keys"][()]] if "extra/keys" in file else []
    except NeuromemError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise NeuromemError(f"{path} is not a readable {name} HDF5 file (truncated or corrupt?): {reason}; {_fix_hint(Path(root))}") from None
    if not (len(times) == len(units) == len(labels)):
        raise NeuromemError(f"{path}: spikes/times ({len(times)}), spikes/units ({len(units)}) and labels ({len(labels)}) must have one entry per sample")
    if len(labels) == 0:
        raise NeuromemError(f"{path} holds no samples (empty split); {_fix_hint(root)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise NeuromemError(f"{path}: labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    for index, (t, u) in enumerate(zip(times, units)):
        if len(t) != len(u):
            raise NeuromemError(f"{path}: sample {index} has {len(t)} spike times but {len(u)} units; they must match")
        if len(u) and int(u.max()) >= channels:
            raise NeuromemError(f"{path}: sample {index} has unit {int(u.max())}; valid units are 0..{channels - 1}")
    return HeidelbergFile(path, times, units, labels, speakers, keys)


def read_heidelberg_speakers(path: Path) -> np.ndarray | None:
    """extra/speaker of a Heidelberg file (one int per sample), without reading the spikes; None if absent."""
    try:
        with h5py.File(path, "r") as file:
            if "extra/speaker" not in file:
                return None
            speakers = file["extra/speaker"]
            if speakers.ndim != 1 or speakers.shape[0] != file["labels"].shape[0] or speakers.dtype.kind not in "iu":
                raise NeuromemError(f"{path}: extra/speaker must hold one integer per sample (labels: "
                                    f"{file['labels'].shape[0]}), found {speakers.dtype} {speakers.shape}")
            return np.asarray(speakers[()]).astype(np.int64)
    except (OSError, KeyError) as error:
        raise NeuromemError(f"{path} is not a readable HDF5 file: {error}") from None


def write_heidelberg(path: str | os.PathLike, times: list[np.ndarray], units: list[np.ndarray], labels: np.ndarray,
                     speakers: np.ndarray, keys: list[str]) -> None:
    """Write one split in the published SHD / SSC layout; the file appears atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # track_times=False keeps HDF5 object headers free of wall-clock times: same seed, same bytes
    with h5py.File(tmp, "w", track_order=False) as file:
        spikes = file.create_group("spikes", track_order=False)
        n = len(labels)
        t_ds = spikes.create_dataset("times", (n,), dtype=h5py.vlen_dtype(np.float16), track_times=False)
        u_ds = spikes.create_dataset("units", (n,), dtype=h5py.vlen_dtype(np.uint16), track_times=False)
        for i in range(n):
            t_ds[i] = np.asarray(times[i], dtype=np.float16)
            u_ds[i] = np.asarray(units[i], dtype=np.uint16)
        file.create_dataset("labels", data=np.asarray(labels, dtype=np.uint8), track_times=False)
        extra = file.create_group("extra")
        extra.create_dataset("keys", data=np.array([k.encode() for k in keys]), track_times=False)
        extra.create_dataset("speaker", data=np.asarray(speakers, dtype=np.uint16), track_times=False)
    os.replace(tmp, path)


write_shd = write_heidelberg


# ---------------------------------------------------------------------------- N-MNIST


def nmnist_split_dir(root: str | os.PathLike, split: str) -> Path:
    return Path(root) / "NMNIST" / NMNIST_SPLIT_FOLDERS[split]


def list_nmnist(root: str | os.PathLike, split: str) -> tuple[list[Path], np.ndarray]:
    """The .bin files of one split and their labels (the digit folder), in a stable order.

    tonic's NMNIST class insists on the original zip and >= 10,000 files, so the
    listing is done here; each file is still read by `tonic.io.read_mnist_file`.
    """
    split_dir = nmnist_split_dir(root, split)
    if not split_dir.is_dir():
        if not Path(root).is_dir():
            raise NeuromemError(f"data root {root} does not exist; {_fix_hint(root)}")
        raise NeuromemError(f"missing N-MNIST folder {split_dir} (expected ROOT/NMNIST/Train/<digit>/*.bin and ROOT/NMNIST/Test/<digit>/*.bin); {_fix_hint(root)}")
    files, labels = [], []
    for digit in range(NMNIST_CLASSES):
        digit_files = sorted((split_dir / str(digit)).glob("*.bin"))
        files += digit_files
        labels += [digit] * len(digit_files)
    if not files:
        raise NeuromemError(f"{split_dir} holds no .bin files in digit folders 0..9 (empty split); {_fix_hint(root)}")
    return files, np.asarray(labels, dtype=np.int64)


def read_nmnist_events(path: str | os.PathLike) -> np.ndarray:
    path = Path(path)
    size = path.stat().st_size
    if size % 5:
        raise NeuromemError(f"{path} is truncated or corrupt: N-MNIST .bin files hold 5-byte (40-bit) records, but it has {size} bytes")
    events = tonic.io.read_mnist_file(str(path), dtype=NMNIST.dtype)
    if len(events) and (events["x"].max() >= NMNIST_SIZE or events["y"].max() >= NMNIST_SIZE):
        raise NeuromemError(
            f"{path} is corrupt: event coordinates reach x={events['x'].max()}, y={events['y'].max()}; "
            f"valid N-MNIST coordinates are 0..{NMNIST_SIZE - 1}"
        )
    return events


def pack_nmnist(x: np.ndarray, y: np.ndarray, t_us: np.ndarray, p: np.ndarray) -> bytes:
    """Events -> 40-bit records: x (8 bits), y (8), polarity (1), timestamp in µs (23)."""
    t_us = np.asarray(t_us, dtype=np.int64)
    if len(t_us) and (t_us.min() < 0 or t_us.max() > _MAX_TIMESTAMP_US):
        raise ValueError(f"timestamps must lie in 0..{_MAX_TIMESTAMP_US} µs")
    records = np.empty((len(t_us), 5), dtype=np.uint8)
    records[:, 0] = x
    records[:, 1] = y
    records[:, 2] = ((np.asarray(p, dtype=np.int64) & 1) << 7) | ((t_us >> 16) & 0x7F)
    records[:, 3] = (t_us >> 8) & 0xFF
    records[:, 4] = t_us & 0xFF
    return records.tobytes()


def write_nmnist_file(path: str | os.PathLike, x, y, t_us, p) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(pack_nmnist(x, y, t_us, p))
    os.replace(tmp, path)
