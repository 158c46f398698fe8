"""What a stored cell was computed with: neuromem's version and a fingerprint of the code that
defines the model, so that a re-run can tell which finished cells are stale.

The fingerprint hashes the source of the packages whose change can change a cell's numbers:
neurons (and their kernels), memory modules, network builders, the dense tri-modal networks,
the trainer, and the data's binning, batching and encoders. Reports, the CLI, the store and
accounting are left out (energy is re-priced from stored counts, `neuromem reprice`).
"""

from __future__ import annotations

import ast
import hashlib
import inspect
from functools import lru_cache
from pathlib import Path
from typing import Any

import neuromem

MODEL_SOURCES = (
    "neurons", "memory", "models", "dense",
    "train/trainer.py", "data/binning.py", "data/batching.py", "data/encoders.py",
)


def _package_root() -> Path:
    return Path(neuromem.__file__).resolve().parent


def model_source_files(root: Path | None = None) -> list[Path]:
    root = root or _package_root()
    files: list[Path] = []
    for entry in MODEL_SOURCES:
        path = root / entry
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
    return files


def _memory_files(root: Path, memory: str) -> set[Path] | None:
    """The files of neuromem/memory a memory module is built from: its own file and, transitively, the
    files of neuromem.memory it imports, plus the registry (None: the module is not registered)."""
    from neuromem.memory import memory_info, memory_names

    if memory not in memory_names():
        return None
    package = root / "memory"
    found = {package / "__init__.py", package / "base.py"}
    pending = [Path(inspect.getsourcefile(memory_info(memory).cls)).resolve()]
    while pending:
        path = pending.pop()
        if path in found or not path.is_file():
            continue
        found.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("neuromem.memory"):
                target = root.parent / Path(*node.module.split("."))
                pending += [target.with_suffix(".py"), target / "__init__.py"]
                pending += [target / f"{alias.name}.py" for alias in node.names]
    return {p for p in found if p.is_file()}


@lru_cache(maxsize=None)
def code_fingerprint(memory: str | None = None) -> str:
    """sha256 over the model-defining source files (relative path and bytes of each), 16 hex digits.
    With `memory`, neuromem/memory contributes only the files that module is built from, so a change
    to one memory module makes only its own cells stale."""
    root = _package_root()
    files = model_source_files(root)
    if memory is not None:
        own = _memory_files(root, memory)
        if own is not None:
            package = root / "memory"
            files = [f for f in files if package not in f.resolve().parents or f.resolve() in own]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def current_provenance(memory: str | None = None) -> dict[str, Any]:
    """The provenance a newly trained cell of `memory` is stored with. (The data's fingerprint is part
    of the cell's identity, `CellConfig.data_fingerprint`: other data is another cell, not a stale one.)"""
    return {"neuromem_version": neuromem.__version__, "code_fingerprint": code_fingerprint(memory)}


def stale_reason(stored: dict[str, Any] | None, current: dict[str, Any]) -> str | None:
    """Why a finished cell's stored provenance does not match the current one (None: it matches)."""
    if not stored:
        return "recorded without a code fingerprint"
    reasons = []
    for key, what in (("code_fingerprint", "model code"), ("neuromem_version", "neuromem version")):
        if key in current and stored.get(key) != current[key]:
            reasons.append(f"{what} {stored.get(key, '?')} -> {current[key]}")
    return "; ".join(reasons) or None
