"""On-disk cache of binned tensors, keyed by source-file identity and binning parameters.

An entry is a folder <cache_dir>/<modality>-<split>-<key>/ with inputs.npy
(memory-mapped on load), labels.npy and meta.json. It is built in a temporary
folder and renamed into place, so readers never see half an entry and two
processes binning the same data at once both end with one complete entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

CACHE_FORMAT_VERSION = 1


def file_identity(paths: Iterable[Path]) -> list[list]:
    """(absolute path, size, mtime_ns) of each source file: rewritten files get a new key."""
    identity = []
    for path in paths:
        stat = os.stat(path)
        identity.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return identity


def cache_key(identity: list, params: dict) -> str:
    blob = json.dumps({"version": CACHE_FORMAT_VERSION, "sources": identity, "params": params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def load_entry(entry: Path) -> tuple[np.ndarray, np.ndarray, dict] | None:
    meta_path = entry / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        inputs = np.load(entry / "inputs.npy", mmap_mode="r")
        labels = np.load(entry / "labels.npy")
    except (OSError, ValueError):
        return None  # a damaged entry is rebuilt rather than trusted
    if inputs.shape[0] != labels.shape[0]:
        return None
    return inputs, labels, meta


def build_entry(entry: Path, shape: tuple[int, ...], labels: np.ndarray, fill: Callable[[np.ndarray], dict],
                meta: dict) -> None:
    """Create the entry: `fill(inputs_memmap)` writes the binned samples and returns extra metadata."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.parent / f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        inputs = np.lib.format.open_memmap(tmp / "inputs.npy", mode="w+", dtype=np.uint8, shape=shape)
        meta = {**meta, **fill(inputs)}
        inputs.flush()
        del inputs
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
