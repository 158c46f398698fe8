"""On-disk cache of binned tensors, keyed by source-file identity and binning parameters.

An entry is a folder <cache_dir>/<modality>-<split>-<key>/ with the split's
counts as sparse rows (offsets.npy, index.u16, counts.u8: `sparse_counts`;
memory-mapped on load), labels.npy and meta.json. It is built in a temporary
folder and renamed into place, so readers never see half an entry and two
processes binning the same data at once both end with one complete entry.

The cache is bounded: after an entry is built, the least recently used entries
are removed until the total is under NEUROMEM_CACHE_MAX_BYTES (default 2 GiB).
`neuromem data cache` shows it, `neuromem data cache --clear` empties it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from neuromem.data.sparse_counts import BYTES_PER_BIN, COUNT_DTYPE, INDEX_DTYPE, SparseCounts
from neuromem.errors import NeuromemError

CACHE_FORMAT_VERSION = 2  # 2: sparse rows (sparse_counts); 1 held dense uint8 frames
DEFAULT_MAX_BYTES = 2 * 1024**3
MAX_BYTES_ENV = "NEUROMEM_CACHE_MAX_BYTES"


def file_identity(paths: Iterable[Path]) -> list[list]:
    """(absolute path, size, mtime_ns) of each source file: rewritten files get a new key."""
    identity = []
    for path in paths:
        try:
            stat = os.stat(path)
        except OSError as error:
            kind = "a broken link" if Path(path).is_symlink() else "unreadable"
            raise NeuromemError(f"{path} is {kind} ({error.strerror or error}); data files must be regular, "
                                "readable files (move it out of the data root)") from None
        identity.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return identity


def cache_key(identity: list, params: dict) -> str:
    blob = json.dumps({"version": CACHE_FORMAT_VERSION, "sources": identity, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_entry(entry: Path) -> tuple[SparseCounts, np.ndarray, dict] | None:
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        offsets = np.load(entry / "offsets.npy")
        labels = np.load(entry / "labels.npy")
        sample_shape = tuple(int(n) for n in meta["sample_shape"])
        nonzero = int(offsets[-1]) if len(offsets) else -1
        index, counts = (_read_raw(entry / name, dtype, nonzero)
                         for name, dtype in (("index.u16", INDEX_DTYPE), ("counts.u8", COUNT_DTYPE)))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None  # a damaged entry is rebuilt rather than trusted
    if offsets.ndim != 1 or len(offsets) != labels.shape[0] + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
        return None
    try:
        os.utime(entry)  # last use, for least-recently-used eviction
    except OSError:
        pass
    return SparseCounts(offsets, index, counts, sample_shape), labels, meta


def _read_raw(path: Path, dtype, length: int) -> np.ndarray:
    """A flat array of `length` items written by `SparseWriter`, memory-mapped (an empty one read plainly)."""
    if length < 0 or path.stat().st_size != length * np.dtype(dtype).itemsize:
        raise ValueError(f"{path} does not hold {length} items")
    return np.zeros(0, dtype=dtype) if length == 0 else np.memmap(path, dtype=dtype, mode="r", shape=(length,))


class SparseWriter:
    """Appends one sample's non-zero bins at a time to an entry being built (see `sparse_counts`)."""

    def __init__(self, folder: Path, samples: int, limit: Callable[[int, int], None]):
        self.offsets = np.zeros(samples + 1, dtype=np.int64)
        self.written = 0  # samples so far
        self._limit = limit  # limit(bytes so far, samples so far): raises when the entry would not fit
        self._index = open(folder / "index.u16", "wb")
        self._counts = open(folder / "counts.u8", "wb")

    @property
    def nbytes(self) -> int:
        return int(self.offsets[self.written]) * BYTES_PER_BIN + self.offsets.nbytes

    def append(self, index: np.ndarray, counts: np.ndarray) -> None:
        self._index.write(np.ascontiguousarray(index, dtype=INDEX_DTYPE).tobytes())
        self._counts.write(np.ascontiguousarray(counts, dtype=COUNT_DTYPE).tobytes())
        self.offsets[self.written + 1] = self.offsets[self.written] + len(index)
        self.written += 1
        if self.written % 256 == 0 or self.written == len(self.offsets) - 1:
            self._limit(self.nbytes, self.written)

    def close(self, folder: Path) -> None:
        for handle in (self._index, self._counts):
            handle.close()
        np.save(folder / "offsets.npy", self.offsets)


def build_entry(entry: Path, samples: int, labels: np.ndarray, fill: Callable[[SparseWriter], dict],
                meta: dict, limit: Callable[[int, int], None] = lambda nbytes, samples: None) -> None:
    """Create the entry: `fill(writer)` appends every sample's non-zero bins in order and returns extra
    metadata; `limit(bytes, samples)` is asked as it grows and may refuse (an exception) before the disk fills."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        writer = SparseWriter(tmp, samples, limit)
        try:
            meta = {**meta, **fill(writer)}
        finally:
            writer.close(tmp)
        if writer.written != samples:
            raise ValueError(f"the entry was given {writer.written} of {samples} samples")
        meta["stored_bytes"] = writer.nbytes
        np.save(tmp / "labels.npy", np.asarray(labels, dtype=np.int64))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
        try:
            os.rename(tmp, entry)
        except OSError:
            if not (entry / "meta.json").is_file():  # not a lost race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    evict(entry.parent, max_cache_bytes(), keep=entry)


def max_cache_bytes() -> int:
    """The size cap: $NEUROMEM_CACHE_MAX_BYTES (bytes, or with a K/M/G/T suffix), else 2 GiB."""
    text = os.environ.get(MAX_BYTES_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_BYTES
    from neuromem.bounds import parse_size

    return parse_size(text, MAX_BYTES_ENV, allow_zero=True, example="500M, 2G")


def _tree_bytes(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def cache_entries(cache_dir: Path) -> list[tuple[Path, int, float]]:
    """(entry, bytes, last use) of every complete entry, least recently used first."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return []
    entries = []
    for entry in cache_dir.iterdir():
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        try:
            last_used = entry.stat().st_mtime
        except OSError:
            continue
        entries.append((entry, _tree_bytes(entry), last_used))
    return sorted(entries, key=lambda item: item[2])


def evict(cache_dir: Path, max_bytes: int, keep: Path | None = None) -> list[Path]:
    """Remove least recently used entries until the cache holds at most `max_bytes` (never `keep`).
    Unfinished temporary folders of processes that are gone for a day are removed too."""
    removed = []
    cache_dir = Path(cache_dir)
    if cache_dir.is_dir():
        for tmp in cache_dir.glob(".tmp-*"):
            try:
                if time.time() - tmp.stat().st_mtime > 86400:
                    shutil.rmtree(tmp, ignore_errors=True)
            except OSError:
                pass
    entries = cache_entries(cache_dir)
    total = sum(size for _, size, _ in entries)
    for entry, size, _ in entries:
        if total <= max_bytes:
            break
        if keep is not None and entry == keep:
            continue
        shutil.rmtree(entry, ignore_errors=True)  # a reader's memory map stays valid until it closes
        total -= size
        removed.append(entry)
    return removed


def clear(cache_dir: Path) -> tuple[int, int]:
    """Remove every entry; (entries, bytes) removed."""
    entries = cache_entries(cache_dir)
    for entry, _, _ in entries:
        shutil.rmtree(entry, ignore_errors=True)
    for tmp in Path(cache_dir).glob(".tmp-*") if Path(cache_dir).is_dir() else []:
        shutil.rmtree(tmp, ignore_errors=True)
    return len(entries), sum(size for _, size, _ in entries)


def root_fingerprint(root: str | os.PathLike) -> str:
    """Identity of a data root: its resolved path and the relative path, size and mtime of every data file
    under it (dot-files, and the folders of neuromem runs kept inside it, aside), 16 hex digits. Other data, or the
    same files changed, give another value."""
    resolved = Path(root).expanduser().resolve()
    rows = []
    for folder, dirs, files in os.walk(resolved):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if folder != str(resolved) and "results.sqlite" in files:
            dirs[:] = []  # a neuromem run's --out inside the data root: its own files are not the data
            continue
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            rows.append(f"{os.path.relpath(path, resolved)}\t{stat.st_size}\t{stat.st_mtime_ns}")
    return hashlib.sha256(f"{resolved}\0{chr(10).join(rows)}".encode()).hexdigest()[:16]
