"""One registry entry per data set, as tonic does it: a thin class over its files.

An entry (a subclass of `EventDataset`, registered with `register_dataset`)
holds everything the rest of neuromem needs to know about one data set:

- `spec`: sensor size, classes, default time span and bins (`DatasetSpec`);
- `files(root, split)`: the files whose identity keys the binned cache
  (raising the one-line "missing file, here is how to get it" error);
- `read(root, split)`: labels and a per-sample event reader (tonic's
  structured arrays: t in µs, x, y, p);
- `downloads(root)`: how tonic (or a URL) fetches the real data, and how to
  place the files by hand when that fails;
- `stand_ins`: synthetic stand-ins written in the real format, by kind
  (`neuromem data synth --kind KIND`);
- `front_end`: which front-end network reads it (a name in
  `neuromem.models.frontends.FRONT_ENDS`: "audio", "visual", ...);
- `concepts(labels)`: label -> shared concept id (digits 0-9), or
  `NO_CONCEPT` for a class that names no shared concept; joint tasks and
  the engram report compare data sets through these ids.

The trainer, tasks, engram report and exporters look data sets up here and
never ask for one by name. This module holds the classes and the table; the
entries shipped with neuromem live in `neuromem.data.sets` (one file each)
and `neuromem.data.registry` is the lookup that loads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from neuromem.data.specs import DatasetSpec
from neuromem.errors import NeuromemError

NO_CONCEPT = -1  # the concept id of a class that names none of the shared concepts
NUM_CONCEPTS = 10  # the shared concepts: the digits 0-9


@dataclass(frozen=True)
class EventSource:
    """One split as read from its files: labels (N,) int64, and sample i's events on demand."""

    labels: np.ndarray
    events: Callable[[int], np.ndarray]


@dataclass(frozen=True)
class Download:
    """One file set of a real data set: where it comes from, how to get it, and the manual fallback."""

    what: str  # which part, e.g. "train"
    url: str
    run: Callable[[], Any]  # downloads (tonic's downloader, or urllib) and unpacks into the root
    by_hand: str  # one sentence: what to download and where to put it


@dataclass(frozen=True)
class StandIn:
    """A synthetic stand-in written in the data set's real on-disk format.

    `config()` gives the generator's default settings (a frozen dataclass with a
    `<split>_per_class` field per split); `write(root, seed, config)` writes the
    files and returns {split: {"samples": n, "events": n}}. Same seed and config,
    same bytes. A generator that keeps its own marker (a cached build, say) sets
    `writes_marker`: `write` then returns that marker and runs on its own.
    """

    kind: str
    description: str
    config: Callable[[], Any]
    write: Callable[[Path, int, Any], dict]
    writes_marker: bool = False


class EventDataset:
    """A data set: its spec, files, reader, downloader, stand-ins, front end and concept map."""

    spec: ClassVar[DatasetSpec]
    front_end: ClassVar[str]
    stand_ins: ClassVar[dict[str, StandIn]]
    default_stand_in: ClassVar[str]

    @property
    def name(self) -> str:
        return self.spec.name

    # -- files -------------------------------------------------------------------
    def files(self, root: Path, split: str) -> list[Path]:
        """The files that hold `split` (their identity keys the cache); raises if they are missing."""
        raise NotImplementedError

    def read(self, root: Path, split: str) -> EventSource:
        raise NotImplementedError

    def layout(self, split: str) -> str:
        """Where `split` lives under a root, for messages and tables (e.g. "SHD/shd_train.h5")."""
        raise NotImplementedError

    def downloads(self, root: Path) -> list[Download]:
        raise NotImplementedError

    def fetched(self, root: Path) -> list[Path]:
        """The paths a successful fetch leaves (files or folders), shown to the user."""
        return [Path(root) / self.spec.folder]

    def speakers(self, root: Path, split: str) -> np.ndarray | None:
        """Who produced each sample of `split` (ints, in the order `read` gives), or None where the data set
        records no speakers; `neuromem ablate --cv speakers` holds out one of them per fold."""
        return None

    def speaker_names(self, root: Path) -> list[str] | None:
        """Names behind the speaker ids (id i -> names[i]) where the root lists them; None: the ids are the names."""
        return None

    # -- labels ------------------------------------------------------------------
    def concepts(self, labels: np.ndarray) -> np.ndarray:
        """Concept id of each label (NO_CONCEPT where the class names none). Default: none."""
        return np.full(np.shape(labels), NO_CONCEPT, dtype=np.int64)

    def domains(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        """Named domains of the same concepts (e.g. the languages of a spoken-digit set): name -> mask of the
        `labels` in it, in the order a domain-incremental study visits them. Default: {} (one domain)."""
        return {}

    # -- stand-ins ---------------------------------------------------------------
    def stand_in(self, kind: str | None = None) -> StandIn:
        kind = kind or self.default_stand_in
        try:
            return self.stand_ins[kind]
        except KeyError:
            raise NeuromemError(f"--kind {kind!r} has no stand-in for {self.name}; valid kinds for {self.name}: "
                                f"{', '.join(self.stand_ins)}") from None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


_REGISTRY: dict[str, EventDataset] = {}


def register_dataset(entry: type[EventDataset] | EventDataset) -> Any:
    """Register a data set (usable as a class decorator). Names are unique."""
    instance = entry() if isinstance(entry, type) else entry
    name = instance.spec.name
    if name in _REGISTRY:
        raise ValueError(f"data set {name!r} is already registered (by {type(_REGISTRY[name]).__name__})")
    for attribute in ("front_end", "stand_ins", "default_stand_in"):
        if not hasattr(instance, attribute):
            raise ValueError(f"data set {name!r} must define {attribute}")
    if instance.default_stand_in not in instance.stand_ins:
        raise ValueError(f"data set {name!r}: default stand-in {instance.default_stand_in!r} is not in its stand_ins")
    _REGISTRY[name] = instance
    return entry


def unregister_dataset(name: str) -> None:
    """Remove a data set (tests register throw-away ones)."""
    _REGISTRY.pop(name, None)


def register_stand_in(dataset: str, stand_in: StandIn) -> None:
    """Add another stand-in kind to a registered data set (e.g. spoken audio for SHD)."""
    entry = _REGISTRY[dataset]
    if stand_in.kind in entry.stand_ins:
        raise ValueError(f"data set {dataset!r} already has a stand-in of kind {stand_in.kind!r}")
    # per instance: the class's table stays as the entry file wrote it
    entry.stand_ins = {**entry.stand_ins, stand_in.kind: stand_in}


def registered() -> dict[str, EventDataset]:
    return _REGISTRY


__all__ = ["NO_CONCEPT", "NUM_CONCEPTS", "EventSource", "Download", "StandIn", "EventDataset", "register_dataset",
           "unregister_dataset", "register_stand_in", "registered"]
