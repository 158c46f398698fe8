"""A training cell's configuration: everything its numbers are a pure function of."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CellConfig:
    modality: str
    memory: str
    seed: int = 0
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 2e-3
    hidden: int = 256
    neuron: str = "lif"  # "dense" gives the ANN-equivalent baseline of the same graph
    time_bins: int | None = None  # None: the data set's default binning
    max_train_samples: int | None = None  # per data set; None: the whole split
    threads: int = 1  # torch intra-op threads: fixed so that results match across executors
    memory_options: tuple[tuple[str, Any], ...] = field(default_factory=tuple)
    data_fingerprint: str = ""  # the data root it learns from (neuromem.data.cache.root_fingerprint): other data, other cell

    @property
    def cell_id(self) -> str:
        kind = "" if self.neuron == "lif" else f"-{self.neuron}"
        return f"{self.modality}-{self.memory}{kind}-s{self.seed}-{self.digest()[:8]}"

    def digest(self) -> str:
        canonical = json.dumps(self.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["memory_options"] = dict(self.memory_options)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CellConfig":
        data = dict(data)
        data["memory_options"] = tuple(sorted(dict(data.get("memory_options") or {}).items()))
        return cls(**data)
