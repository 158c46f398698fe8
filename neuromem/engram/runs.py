"""Reading saved runs and choosing what to compare.

A run directory holds `results.json` and `cells/<cell_id>/cell.json`
({"config": {"modality", "memory", "seed", ...}, "metrics": {...}}) with
`cells/<cell_id>/representations.npz` holding, per modality m in the cell,
`m/representations` (N, D) memory-layer outputs on the test split,
`m/labels` (N,) original labels and `m/digits` (N,) concept ids 0-9.

Comparisons: every cell holding both modalities (a joint network, or a
"parallel" cell with two separately trained networks) is compared within
itself; single-modality cells are paired across all given runs by (memory, seed,
neuron, memory options) — an "nmnist" cell with an "shd" cell, or any two cells of
different data sets. Within a comparison the data sets are in name order. Samples
whose class names no shared concept (digits == -1, e.g. SSC's "dog") are left out:
the report compares engrams of the same concepts.
"""

from __future__ import annotations

import json
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from neuromem.errors import NeuromemError

NO_CONCEPT = -1  # neuromem.data.base.NO_CONCEPT: a class that names no shared concept
ARRAYS = ("representations", "labels", "digits")


@dataclass
class ModalityEngrams:
    modality: str
    representations: np.ndarray  # (N, D)
    labels: np.ndarray
    digits: np.ndarray
    cell: "Cell"


@dataclass
class Cell:
    run_dir: Path
    cell_id: str
    config: dict[str, Any]
    metrics: dict[str, Any]
    modalities: dict[str, ModalityEngrams] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.run_dir.name}/{self.cell_id}"


@dataclass
class Comparison:
    label: str
    kind: str  # "joint" | "parallel"
    first: ModalityEngrams
    second: ModalityEngrams

    @property
    def cells(self) -> list[Cell]:
        cells = [self.first.cell]
        if self.second.cell is not self.first.cell:
            cells.append(self.second.cell)
        return cells


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise NeuromemError(f"{path}: not valid JSON ({error.msg} at line {error.lineno})") from None
    except (RecursionError, UnicodeDecodeError) as error:
        raise NeuromemError(f"{path}: not readable JSON ({type(error).__name__})") from None


@contextmanager
def _open_npz(path: Path) -> Iterator[Any]:
    """np.load of a cell's arrays; a truncated or damaged file (found on opening or on reading) is one line."""
    try:
        with np.load(path) as arrays:
            yield arrays
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        raise NeuromemError(f"{path}: not a readable .npz ({reason}); the file is truncated or damaged: "
                            f"delete {path.parent} and re-run the ablation to train that cell again") from None


def _load_cell(run_dir: Path, cell_dir: Path) -> Cell:
    cell_json = cell_dir / "cell.json"
    if not cell_json.is_file():
        raise NeuromemError(f"{cell_dir}: no cell.json; the engram report needs each cell's config and metrics")
    data = _read_json(cell_json)
    if not isinstance(data, dict) or not isinstance(data.get("config", {}), dict) or not isinstance(data.get("metrics", {}), dict):
        shown = type(data).__name__ if not isinstance(data, dict) else ", ".join(
            f"{key} is a {type(data.get(key)).__name__}" for key in ("config", "metrics") if not isinstance(data.get(key, {}), dict))
        raise NeuromemError(f"{cell_json}: not a neuromem cell description ({shown}); valid: an object with config and "
                            f"metrics objects; delete {cell_dir} and re-run the ablation to train that cell again")
    cell = Cell(run_dir, cell_dir.name, dict(data.get("config", {})), dict(data.get("metrics", {})))
    npz_path = cell_dir / "representations.npz"
    if not npz_path.is_file():
        raise NeuromemError(
            f"{npz_path}: missing; the engram report needs the memory-layer representations saved per cell "
            "(<modality>/representations, /labels, /digits on the test split) — re-run the ablation with them saved"
        )
    with _open_npz(npz_path) as arrays:
        names = set(arrays.files)
        present = sorted({name.split("/")[0] for name in names if "/" in name})
        for modality in present:
            missing = [a for a in ARRAYS if f"{modality}/{a}" not in names]
            if missing:
                raise NeuromemError(
                    f"{npz_path}: modality {modality!r} lacks {', '.join(f'{modality}/{a}' for a in missing)}; "
                    f"the report needs {', '.join(ARRAYS)} for every modality"
                )
            reps = np.asarray(arrays[f"{modality}/representations"], dtype=np.float64)
            digits = np.asarray(arrays[f"{modality}/digits"]).astype(int)
            labels = np.asarray(arrays[f"{modality}/labels"])
            if reps.ndim != 2 or len(reps) != len(digits) or len(labels) != len(digits) or len(reps) == 0:
                raise NeuromemError(
                    f"{npz_path}: {modality}/representations must be (N, D) with N = len(digits) = len(labels) > 0, "
                    f"got {reps.shape}, {digits.shape}, {labels.shape}"
                )
            named = digits != NO_CONCEPT
            if named.any():
                cell.modalities[modality] = ModalityEngrams(modality, reps[named], labels[named], digits[named], cell)
    if not cell.modalities:
        raise NeuromemError(
            f"{npz_path}: holds no <modality>/representations arrays; the report needs them for nmnist and shd"
        )
    return cell


def load_run(run_dir: Path) -> list[Cell]:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise NeuromemError(f"{run_dir}: no such run directory")
    from neuromem.study.store import finished_cell_dirs

    cell_dirs = finished_cell_dirs(run_dir)  # no staging folders of a killed run, no cells without an ok row
    if not cell_dirs:
        raise NeuromemError(
            f"{run_dir}: no cells/<cell_id>/ directories; the engram report needs a run written by `neuromem ablate`"
        )
    return [_load_cell(run_dir, cell_dir) for cell_dir in cell_dirs]


def _check_classes(first: ModalityEngrams, second: ModalityEngrams) -> None:
    classes_a, classes_b = sorted(set(first.digits.tolist())), sorted(set(second.digits.tolist()))
    if classes_a != classes_b:
        raise NeuromemError(
            f"{first.cell.label} ({first.modality}) has digits {classes_a} but {second.cell.label} "
            f"({second.modality}) has {classes_b}; the report compares the same digits in both modalities"
        )
    if len(classes_a) < 3:
        raise NeuromemError(
            f"{first.cell.label}: only digits {classes_a}; the report needs at least 3 shared digits"
        )


def _pairing_key(cell: Cell) -> tuple:
    """Separately trained networks are compared when they share memory, seed, neuron kind
    (spiking cells never pair with ANN-baseline cells), neuron options and memory options."""
    config = cell.config
    options = json.dumps(config.get("memory_options") or {}, sort_keys=True, default=str)
    neuron_options = json.dumps(config.get("neuron_options") or {}, sort_keys=True, default=str)
    return (config.get("memory"), config.get("seed"), config.get("neuron", "lif"), options, neuron_options)


def plan_comparisons(cells: list[Cell]) -> tuple[list[Comparison], list[Cell]]:
    """(comparisons, single-modality cells left unpaired)."""
    comparisons: list[Comparison] = []
    singles: list[Cell] = []
    for cell in cells:
        if len(cell.modalities) >= 2:
            kind = "parallel" if cell.config.get("modality") == "parallel" else "joint"
            first, second = (cell.modalities[m] for m in sorted(cell.modalities)[:2])
            comparisons.append(Comparison(cell.label, kind, first, second))
        else:
            singles.append(cell)
    unpaired: list[Cell] = []
    used: set[int] = set()
    order = sorted(range(len(singles)), key=lambda i: next(iter(singles[i].modalities)))  # data sets in name order
    for position in order:
        if position in used:
            continue
        cell = singles[position]
        (modality,) = cell.modalities
        key = _pairing_key(cell)
        partner = next(
            (
                index
                for index in order
                if index not in used
                and next(iter(singles[index].modalities)) > modality
                and _pairing_key(singles[index]) == key
            ),
            None,
        )
        if partner is None:
            continue
        used.update({position, partner})
        other = singles[partner]
        label = f"{cell.label} + {other.label}"
        comparisons.append(Comparison(label, "parallel", cell.modalities[modality], next(iter(other.modalities.values()))))
    unpaired = [cell for index, cell in enumerate(singles) if index not in used]
    if not comparisons:
        found = sorted({m for cell in cells for m in cell.modalities})
        raise NeuromemError(
            f"only modality {', '.join(found)} found in {', '.join(c.label for c in cells)}; the engram report needs "
            "two data sets' representations of shared concepts (it needs both nmnist and shd, for instance): a "
            "joint/parallel cell, or two cells of different data sets with the same memory, seed, neuron and "
            "memory options"
        )
    for comparison in comparisons:
        _check_classes(comparison.first, comparison.second)
    return comparisons, unpaired
