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
from dataclasses import dataclass, field
from typing import Iterable
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


READ_CHUNK = 4096  # samples read from an HDF5 split at a time: SSC's training split holds ~1.2 GB of events


@dataclass
class HeidelbergFile:
    """One split of a Heidelberg spiking data set (SHD, SSC): its labels, speakers and class names in memory, its
    spikes read from the file a chunk of samples at a time (`events(i)` in order reads each chunk once), so a
    split of any size costs one chunk of memory."""

    path: Path
    labels: np.ndarray  # int64 (N,)
    speakers: np.ndarray | None
    keys: list[str]  # extra/keys: the class names, label -> word
    _chunk: tuple[int, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.labels)

    def chunk(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """spikes/times (float16 s) and spikes/units (uint16) of samples start..stop-1, object arrays."""
        with h5py.File(self.path, "r") as file:
            return file["spikes/times"][start:stop], file["spikes/units"][start:stop]

    @property
    def times(self) -> np.ndarray:  # the whole split: small sets and tests
        return self.chunk(0, len(self))[0]

    @property
    def units(self) -> np.ndarray:
        return self.chunk(0, len(self))[1]

    def events(self, index: int) -> np.ndarray:
        """Sample `index` as tonic's SHD / SSC do it: t in µs, x = channel, constant polarity."""
        start = index - index % READ_CHUNK
        if self._chunk is None or self._chunk[0] != start:
            self._chunk = (start, *self.chunk(start, min(start + READ_CHUNK, len(self))))
        _, times, units = self._chunk
        return shd_events(times[index - start], units[index - start])


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
        if path.is_dir():
            raise NeuromemError(f"{path} is a folder, not a {name} HDF5 file (expected {expected})")
        if path.is_symlink():
            raise NeuromemError(f"{path} is a link that leads to no file (dangling, or a loop); expected {expected}")
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
            _check_heidelberg_kinds(path, file)
            n = (file["spikes/times"].shape[0], file["spikes/units"].shape[0])
            labels = _integer_labels(path, np.asarray(file["labels"][()]))
            speakers = np.asarray(file["extra/speaker"][()]) if "extra/speaker" in file else None
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in file["extra/keys"][()]] if "extra/keys" in file else []
            if not (n[0] == n[1] == len(labels)):
                raise NeuromemError(f"{path}: spikes/times ({n[0]}), spikes/units ({n[1]}) and labels ({len(labels)}) "
                                    "must have one entry per sample")
            if len(labels) == 0:
                raise NeuromemError(f"{path} holds no samples (empty split); {_fix_hint(root)}")
            if labels.min() < 0 or labels.max() >= num_classes:
                raise NeuromemError(f"{path}: labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
            events = 0
            for start in range(0, len(labels), READ_CHUNK):  # checked a chunk at a time: memory of one chunk
                stop = min(start + READ_CHUNK, len(labels))
                events += _check_heidelberg_spikes(path, file["spikes/times"][start:stop],
                                                   file["spikes/units"][start:stop], start, channels)
    except NeuromemError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise NeuromemError(f"{path} is not a readable {name} HDF5 file (truncated or corrupt?): {reason}; {_fix_hint(Path(root))}") from None
    if events == 0:
        import sys

        print(f"warning: {path}: every one of its {len(labels)} samples holds 0 events (an empty split; "
              "a network trained on it sees no input)", file=sys.stderr)
    return HeidelbergFile(path, labels, speakers, keys)


def _check_heidelberg_spikes(path: Path, times: np.ndarray, units: np.ndarray, offset: int, channels: int) -> int:
    """The events of samples offset.. (one chunk) checked; returns how many there are."""
    events = 0
    for index, (t, u) in enumerate(zip(times, units), start=offset):
        if len(t) != len(u):
            raise NeuromemError(f"{path}: sample {index} has {len(t)} spike times but {len(u)} units; they must match")
        if not len(u):
            continue
        events += len(u)
        if u.dtype.kind == "f" and not np.array_equal(u, np.floor(u)):
            raise NeuromemError(f"{path}: sample {index} has a fractional unit ({u[u != np.floor(u)][0]}); "
                                f"spikes/units must hold integer channels 0..{channels - 1}")
        if u.min() < 0 or u.max() >= channels:
            bad = u.min() if u.min() < 0 else u.max()
            raise NeuromemError(f"{path}: sample {index} has unit {bad:g}; valid units are 0..{channels - 1}")
        if not np.isfinite(t).all() or t.min() < 0:
            bad = t[~np.isfinite(t)][0] if not np.isfinite(t).all() else t.min()
            raise NeuromemError(f"{path}: sample {index} has spike time {bad}; spikes/times must hold finite "
                                "times in seconds, >= 0")
    return events


def _check_heidelberg_kinds(path: Path, file) -> None:
    """spikes/times and spikes/units: one array per sample (variable-length, or padded 2-D) of numbers;
    labels one number per sample. Checked on the declared types, before anything is read."""
    for key, kinds, valid in (("spikes/times", "fiu", "finite times in seconds"), ("spikes/units", "iuf", "integer channels")):
        dataset = file[key]
        if not isinstance(dataset, h5py.Dataset):
            raise NeuromemError(f"{path}: {key} is a group; valid: a dataset of one array of {valid} per sample")
        base = h5py.check_vlen_dtype(dataset.dtype)
        dtype = base if base is not None else dataset.dtype
        shape_ok = dataset.ndim == 1 if base is not None else dataset.ndim == 2
        if not shape_ok or dtype.kind not in kinds:
            raise NeuromemError(f"{path}: {key} is {'variable-length ' if base is not None else ''}{dtype} of shape "
                                f"{dataset.shape}; valid: one array of {valid} per sample (variable-length, or 2-D padded)")
    labels = file["labels"]
    if not isinstance(labels, h5py.Dataset) or labels.ndim != 1 or labels.dtype.kind not in "iuf":
        shown = f"{labels.dtype} of shape {labels.shape}" if isinstance(labels, h5py.Dataset) else "a group"
        raise NeuromemError(f"{path}: labels is {shown}; valid: a 1-D array of one integer class per sample")


def _integer_labels(path: Path, labels: np.ndarray) -> np.ndarray:
    if labels.dtype.kind == "f" and not (np.isfinite(labels).all() and np.array_equal(labels, np.floor(labels))):
        bad = labels[~np.isfinite(labels) | (labels != np.floor(labels))][0]
        raise NeuromemError(f"{path}: labels hold {bad}, not an integer; valid: one integer class per sample")
    return labels.astype(np.int64)


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
    write_heidelberg_stream(path, len(labels), zip(times, units, labels, speakers), keys)


def write_heidelberg_stream(path: str | os.PathLike, n: int, samples: Iterable[tuple[np.ndarray, np.ndarray, int, int]],
                            keys: list[str]) -> int:
    """Write one split of `n` samples, each (times s, units, label, speaker) as `samples` yields it, in the SHD /
    SSC layout: one sample in memory at a time (a split of SSC's real size holds ~10 GB of events); the file
    appears atomically, and a run that stops leaves no file. Returns the number of events written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    labels, speakers = np.zeros(n, np.uint8), np.zeros(n, np.uint16)
    try:
        # track_times=False keeps HDF5 object headers free of wall-clock times: same seed, same bytes
        with h5py.File(tmp, "w", track_order=False) as file:
            spikes = file.create_group("spikes", track_order=False)
            t_ds = spikes.create_dataset("times", (n,), dtype=h5py.vlen_dtype(np.float16), track_times=False)
            u_ds = spikes.create_dataset("units", (n,), dtype=h5py.vlen_dtype(np.uint16), track_times=False)
            count = events = 0
            for i, (t, u, label, speaker) in enumerate(samples):
                if i >= n:
                    raise ValueError(f"{path}: more than the {n} samples announced")
                t_ds[i] = np.asarray(t, dtype=np.float16)
                u_ds[i] = np.asarray(u, dtype=np.uint16)
                labels[i], speakers[i] = label, speaker
                count, events = i + 1, events + len(t)
            if count != n:
                raise ValueError(f"{path}: {count} samples written, {n} announced")
            file.create_dataset("labels", data=labels, track_times=False)
            extra = file.create_group("extra")
            extra.create_dataset("keys", data=np.array([k.encode() for k in keys]), track_times=False)
            extra.create_dataset("speaker", data=speakers, track_times=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return events


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
    _warn_extra_class_folders(split_dir)
    files, labels = [], []
    for digit in range(NMNIST_CLASSES):
        digit_files = sorted((split_dir / str(digit)).glob("*.bin"))
        files += digit_files
        labels += [digit] * len(digit_files)
    if not files:
        raise NeuromemError(f"{split_dir} holds no .bin files in digit folders 0..9 (empty split); {_fix_hint(root)}")
    return files, np.asarray(labels, dtype=np.int64)


_WARNED_EXTRA_FOLDERS: set[tuple[str, tuple[str, ...]]] = set()


def _warn_extra_class_folders(split_dir: Path) -> None:
    """Folders beside the digit folders (Train/12, Train/seven) hold no class N-MNIST has: their files are not
    read. Said once per process in a warning line naming them and the valid class folders."""
    import sys

    digits = {str(digit) for digit in range(NMNIST_CLASSES)}
    try:
        extra = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in digits)
    except OSError:
        return
    key = (str(split_dir.resolve()), tuple(extra))
    if not extra or key in _WARNED_EXTRA_FOLDERS:
        return
    _WARNED_EXTRA_FOLDERS.add(key)
    shown = ", ".join(extra[:10]) + (f" and {len(extra) - 10} more" if len(extra) > 10 else "")
    print(f"warning: {split_dir}: folder(s) {shown} are not N-MNIST class folders, so their files are not read; "
          f"valid class folders: 0..{NMNIST_CLASSES - 1}", file=sys.stderr)


def read_nmnist_events(path: str | os.PathLike) -> np.ndarray:
    import stat

    path = Path(path)
    try:
        info = path.stat()  # follows links: a link to a regular file is read; a dangling one is named
    except OSError as error:
        kind = "a broken link" if path.is_symlink() else "unreadable"
        raise NeuromemError(f"{path} is {kind} ({error.strerror or error}); N-MNIST samples must be regular .bin files") from None
    if not stat.S_ISREG(info.st_mode):
        kind = ("a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode)
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "a socket or other special file")
        raise NeuromemError(f"{path} is {kind}, not a .bin file; N-MNIST samples must be regular files "
                            "(move it out of the digit folder)")
    size = info.st_size
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
