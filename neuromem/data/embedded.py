"""The embedded default: every registered data set's stand-in, written in its real format, plus the marker.

`synthesize` writes the stand-ins a root asks for and the synthetic marker
(NEUROMEM_SYNTHETIC.json: generator, version, seed, and per data set its
stand-in kind, config and counts). Same seed and sizes -> byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import os
import time
from dataclasses import asdict, fields, is_dataclass, replace
from pathlib import Path
from typing import Iterable, Mapping

from neuromem.data.paths import MARKER_NAME, PARTIAL_NAME, read_marker
from neuromem.data.registry import dataset_names, get_dataset, registered
from neuromem.errors import NeuromemError

GENERATOR = "neuromem.data.synth"
GENERATOR_VERSION = 2  # bump whenever the generated data change: the embedded default is then rewritten


def _parse(field, text: str):
    """One `--option` value as the field's type, read off its default: a number, a word, or a comma list of them."""
    default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
    if isinstance(default, tuple):
        items = [item.strip() for item in text.split(",")]
        kind = type(default[0]) if default else str
        values = tuple(kind(item) if kind is not str else item for item in items)
        if default and all(isinstance(d, (int, float)) for d in default) and len(values) != len(default):
            raise ValueError(f"expected {len(default)} comma-separated numbers")
        return values
    if isinstance(default, bool):
        if text.strip().lower() not in ("true", "false", "1", "0"):
            raise ValueError("expected true or false")
        return text.strip().lower() in ("true", "1")
    return type(default)(text.strip())


def with_options(config, options: Mapping[str, str], what: str):
    """`config` (a stand-in's frozen dataclass) with fields set from `--option key=value` text; an unknown
    key or a value of the wrong type: one line naming the key and the valid ones."""
    if not options:
        return config
    known = {f.name: f for f in fields(config)} if is_dataclass(config) else {}
    overrides = {}
    for key, text in options.items():
        if key not in known:
            raise NeuromemError(f"--option {key}: {what} has no such setting; valid keys: {', '.join(sorted(known))}")
        default = getattr(config, key)
        try:
            overrides[key] = _parse(known[key], text)
        except (TypeError, ValueError) as error:
            shown = ",".join(str(v) for v in default) if isinstance(default, tuple) else default
            raise NeuromemError(f"--option {key}={text}: {error} (the default is {key}={shown}); "
                                f"valid keys: {', '.join(sorted(known))}") from None
    return replace(config, **overrides)


def _config(data_set, kind: str | None, sizes: Mapping[str, int | None], options: Mapping[str, str] | None = None):
    """The stand-in's default config with the `<split>_per_class` sizes given for this data set and the
    `--option` settings (field=value text)."""
    stand_in = data_set.stand_in(kind)
    config = with_options(stand_in.config(), options or {}, f"the {stand_in.kind!r} stand-in of {data_set.name}")
    names = {f.name for f in fields(config)} if is_dataclass(config) else set()
    overrides = {}
    for split in data_set.spec.splits:
        value = sizes.get(f"{data_set.name}_{split}_per_class")
        if value is None:
            continue
        if value < 1:
            flag = (f"--{data_set.name}-{split}" if data_set.name in ("shd", "nmnist") and split in ("train", "test")
                    else f"--size {data_set.name}.{split}=N")
            raise NeuromemError(f"{flag} ({data_set.name}_{split}_per_class, samples per class) must be >= 1, got {value}")
        if f"{split}_per_class" not in names:
            raise NeuromemError(f"the {stand_in.kind!r} stand-in of {data_set.name} has no {split}_per_class size")
        overrides[f"{split}_per_class"] = value
    return stand_in, replace(config, **overrides) if overrides else config


def synthesize(root: str | os.PathLike, seed: int = 0, datasets: Iterable[str] | None = None,
               kinds: Mapping[str, str] | None = None, *, modalities: Iterable[str] | None = None,
               options: Mapping[str, str] | None = None, **sizes: int | None) -> dict:
    """Write stand-ins under `root` (a tonic `save_to` root) and the synthetic marker.

    datasets: names (default: every registered data set; `modalities` is the old
    name); kinds: data set -> stand-in kind (default: each one's default_stand_in);
    sizes: `<dataset>_<split>_per_class=N` (e.g. shd_train_per_class=10); options: field -> value text
    set on each chosen stand-in's config (`--option`, e.g. {"languages": "en"}).
    Returns the marker's content (with seconds per data set).
    """
    names = list(datasets if datasets is not None else modalities if modalities is not None else dataset_names())
    if not names:
        raise NeuromemError(f"synthesize needs at least one data set; valid data sets: {', '.join(dataset_names())}")
    data_sets = [get_dataset(name) for name in names]
    known = {f"{d}_{s}_per_class" for d, entry in registered().items() for s in entry.spec.splits}
    unknown = sorted(set(sizes) - known)
    if unknown:
        raise NeuromemError(f"unknown size {unknown[0]!r}; valid sizes: {', '.join(sorted(known))}")
    plans = [(data_set, *_config(data_set, (kinds or {}).get(data_set.name), sizes, options)) for data_set in data_sets]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise NeuromemError(f"--seed must be an integer >= 0, got {seed!r}")
    own_marker = [stand_in.kind for _, stand_in, _ in plans if stand_in.writes_marker]
    if own_marker:
        if len(plans) > 1:
            raise NeuromemError(f"the {own_marker[0]!r} stand-in writes a folder of its own; synthesize it alone "
                                "(one data set, e.g. `--modality shd`)")
        _, stand_in, config = plans[0]
        return stand_in.write(Path(root).expanduser(), seed, config)
    root = Path(root).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        from neuromem.data.paths import default_embedded_root

        hint = ("; it is under $NEUROMEM_HOME: set NEUROMEM_HOME to a writable folder"
                if root == default_embedded_root() else "")
        raise NeuromemError(f"cannot create data root {root}: {error.strerror}{hint}") from None
    partial = root / PARTIAL_NAME
    if read_marker(root) is None and not partial.exists() and any((root / entry.spec.folder).exists()
                                                                  for entry in registered().values()):
        raise NeuromemError(f"{root} already holds data without the synthetic marker ({MARKER_NAME}), probably real data; "
                            "synthesize into another folder")

    previous = read_marker(root) or {}
    partial.touch()  # until the marker is written: an interrupted synth leaves a folder that says so
    marker = {"generator": GENERATOR, "version": GENERATOR_VERSION, "seed": seed, "modalities": {}}
    if (previous.get("generator"), previous.get("seed"), previous.get("version")) == (GENERATOR, seed, GENERATOR_VERSION):
        marker["modalities"] = {k: v for k, v in previous.get("modalities", {}).items() if k not in names}
    for data_set, stand_in, config in plans:
        started = time.perf_counter()
        counts = stand_in.write(root, seed, config)
        marker["modalities"][data_set.name] = {"kind": stand_in.kind, "config": asdict(config), "splits": counts,
                                               "seconds": round(time.perf_counter() - started, 2)}
    marker["complete"] = True
    # seconds vary run to run: keep them out of the marker file so the folder is byte-identical per seed
    stored = {**marker, "modalities": {m: {k: v for k, v in info.items() if k != "seconds"}
                                       for m, info in marker["modalities"].items()}}
    tmp = root / f".{MARKER_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, root / MARKER_NAME)
    partial.unlink(missing_ok=True)
    return marker


def missing_from(marker: dict | None) -> list[str]:
    """The registered data sets an embedded-default marker lacks (all of them if it is stale)."""
    if marker is None or (marker.get("generator"), marker.get("version"), marker.get("seed")) != (GENERATOR, GENERATOR_VERSION, 0):
        return dataset_names()
    return [name for name in dataset_names() if name not in marker.get("modalities", {})]
