"""The embedded default data: SHD-like and N-MNIST-like recordings written in the real formats."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Iterable

from neuromem.data.roots import MARKER_NAME, read_marker
from neuromem.data.specs import get_spec
from neuromem.data.synth.nmnist import NMNISTSynthConfig, write_nmnist
from neuromem.data.synth.shd import SHDSynthConfig, write_shd
from neuromem.errors import NeuromemError

GENERATOR = "neuromem.data.synth"
GENERATOR_VERSION = 2  # bump whenever the generated data change: the embedded default is then rewritten


def synthesize(root: str | os.PathLike, seed: int = 0, modalities: Iterable[str] = ("shd", "nmnist"),
               shd_train_per_class: int | None = None, shd_test_per_class: int | None = None,
               nmnist_train_per_class: int | None = None, nmnist_test_per_class: int | None = None) -> dict:
    """Write the embedded default under `root` (a tonic `save_to` root) and the synthetic marker.

    Same seed and sizes -> byte-identical files. Returns the marker's content
    (sizes, event counts, seconds per modality).
    """
    modalities = [get_spec(m).name for m in modalities]
    if not modalities:
        raise NeuromemError("synthesize needs at least one modality; valid modalities: shd, nmnist")
    sizes = {"shd_train_per_class": shd_train_per_class, "shd_test_per_class": shd_test_per_class,
             "nmnist_train_per_class": nmnist_train_per_class, "nmnist_test_per_class": nmnist_test_per_class}
    for name, value in sizes.items():
        if value is not None and value < 1:
            raise NeuromemError(f"{name} must be >= 1, got {value}")
    shd_cfg = replace(SHDSynthConfig(), **{k: v for k, v in (("train_per_class", shd_train_per_class),
                                                             ("test_per_class", shd_test_per_class)) if v is not None})
    nmnist_cfg = replace(NMNISTSynthConfig(), **{k: v for k, v in (("train_per_class", nmnist_train_per_class),
                                                                   ("test_per_class", nmnist_test_per_class)) if v is not None})
    root = Path(root).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NeuromemError(f"cannot create data root {root}: {error.strerror}") from None
    if any(root.iterdir()) and read_marker(root) is None and ((root / "SHD").exists() or (root / "NMNIST").exists()):
        raise NeuromemError(f"{root} already holds data without the synthetic marker ({MARKER_NAME}), probably real data; "
                            "synthesize into another folder")

    previous = read_marker(root) or {}
    marker = {"generator": GENERATOR, "version": GENERATOR_VERSION, "seed": seed, "modalities": {}}
    if previous.get("seed") == seed and previous.get("version") == GENERATOR_VERSION:
        marker["modalities"] = {k: v for k, v in previous.get("modalities", {}).items() if k not in modalities}
    for modality in modalities:
        started = time.perf_counter()
        if modality == "shd":
            counts = write_shd(root, seed, shd_cfg)
            config = asdict(shd_cfg)
        else:
            counts = write_nmnist(root, seed, nmnist_cfg)
            config = asdict(nmnist_cfg)
        marker["modalities"][modality] = {"config": config, "splits": counts,
                                          "seconds": round(time.perf_counter() - started, 2)}
    marker["complete"] = True
    # seconds vary run to run: keep them out of the marker file so the folder is byte-identical per seed
    stored = {**marker, "modalities": {m: {k: v for k, v in info.items() if k != "seconds"}
                                       for m, info in marker["modalities"].items()}}
    tmp = root / f".{MARKER_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, root / MARKER_NAME)
    return marker


__all__ = ["synthesize", "SHDSynthConfig", "NMNISTSynthConfig", "GENERATOR_VERSION"]
