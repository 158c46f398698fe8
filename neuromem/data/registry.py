"""Look data sets up by name: the one place that knows which data sets exist.

Importing this module loads the entries shipped with neuromem (`neuromem.data.sets`);
entries registered later (`neuromem.data.base.register_dataset`) are found the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import neuromem.data.sets  # noqa: F401  (registers the shipped data sets)
from neuromem.data.base import EventDataset, registered
from neuromem.data.specs import DatasetSpec
from neuromem.errors import NeuromemError


def dataset_names() -> list[str]:
    return list(registered())


def get_dataset(name: str) -> EventDataset:
    try:
        return registered()[name]
    except KeyError:
        raise NeuromemError(f"unknown data set {name!r}; valid data sets: {', '.join(registered())}") from None


def get_spec(name: str) -> DatasetSpec:
    return get_dataset(name).spec


class _Specs(Mapping):
    """name -> DatasetSpec over the live registry (a data set registered later appears here too)."""

    def __getitem__(self, name: str) -> DatasetSpec:
        return registered()[name].spec

    def __iter__(self) -> Iterator[str]:
        return iter(list(registered()))

    def __len__(self) -> int:
        return len(registered())


DATASET_SPECS: Mapping[str, DatasetSpec] = _Specs()
