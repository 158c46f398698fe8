"""Export targets: what `neuromem export --to NAME` can write, one registry entry each.

A target is one file holding its writer (any module; `writer(model, path)`, plus `dataset=`, `time_bins=`
and `data_info=` when it records the training data) and one registration line below. The entry names its
functions as "module:function", imported only when that target is used, so listing the targets (`--to`'s
help, its refusal) imports nothing heavy. `neuromem export` asks the entry for the whole job:

- `loader(run_or_checkpoint)` -> (model, data set or None, time bins or None): what the writer takes, from a
  grid cell (its folder, its model.pt, or a run with one cell) or a bare network checkpoint; by default the
  cell's chain of Loihi layers (`export.cli.load_for_export`, which names what has no chain form);
- `writer(model, path, ...)` writes the file (atomically: into a temporary file that replaces `path` whole);
- `compare(model, inputs, labels=..., device=...)` (optional) runs the written form against neuromem on N test
  samples of the cell's data set for `--compare N` (neuromem's side on `device`, `--device`), returning a report
  with `.lines()`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from neuromem.errors import NeuromemError

CHAIN_LOADER = "neuromem.export.cli:load_for_export"


@dataclass(frozen=True)
class ExportTarget:
    name: str  # --to NAME
    suffix: str  # the file ending, for examples in messages (".h5")
    summary: str  # one clause for --to's help
    writer: str  # "module:function": function(model, path[, dataset=, time_bins=, data_info=])
    records_data: bool = False  # the writer takes dataset=, time_bins= and data_info= (recorded in the file)
    loader: str = CHAIN_LOADER  # "module:function": function(run_or_checkpoint) -> (model, dataset, time_bins)
    compare: str | None = None  # "module:function": function(model, inputs, labels=..., device=...) -> report with .lines()

    def function(self, role: str) -> Callable[..., Any]:
        """The entry's `writer`, `loader` or `compare` function, imported now."""
        spec = getattr(self, role)
        module, _, name = spec.partition(":")
        return getattr(importlib.import_module(module), name)


_TARGETS: dict[str, ExportTarget] = {}


def register_export_target(target: ExportTarget) -> ExportTarget:
    """Make `target` available as `neuromem export --to target.name`."""
    if target.name in _TARGETS:
        raise ValueError(f"export target {target.name!r} registered twice")
    for role in ("writer", "loader", "compare"):
        spec = getattr(target, role)
        if spec is not None and (":" not in spec or not all(spec.partition(":")[::2])):
            raise ValueError(f"export target {target.name!r}: {role} {spec!r} is not 'module:function'")
    if not target.suffix.startswith("."):
        raise ValueError(f"export target {target.name!r}: suffix {target.suffix!r} must start with '.'")
    _TARGETS[target.name] = target
    return target


def export_target_names() -> list[str]:
    return list(_TARGETS)


def export_target(name: str) -> ExportTarget:
    """The entry for `--to name`; a NeuromemError naming the valid targets for any other name."""
    try:
        return _TARGETS[name]
    except KeyError:
        raise NeuromemError(f"--to {name!r} is not known; valid: {', '.join(_TARGETS)}") from None


# the targets shipped with neuromem: one line each
register_export_target(ExportTarget("lava", ".h5", "netx HDF5 for Lava's Loihi 2 (checked by `neuromem hw verify`)",
                                    "neuromem.export.lava:export_lava", records_data=True))
register_export_target(ExportTarget("nir", ".nir", "NIR graph for Norse, snnTorch, Sinabs, Rockpool, Spyx and chips' own importers",
                                    "neuromem.export.nir:write_nir", records_data=True,
                                    loader="neuromem.export.nir:load_for_nir", compare="neuromem.export.nir:nir_agreement"))
