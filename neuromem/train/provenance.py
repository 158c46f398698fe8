"""What a stored cell was computed with: neuromem's version and a fingerprint of the code that
defines the model, so that a re-run can tell which finished cells are stale.

The fingerprint hashes the parsed code (not the text: formatting, comments and docstrings do not count) of
the packages whose change can change a cell's numbers:
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
    source = Path(inspect.getsourcefile(memory_info(memory).cls)).resolve()
    pending = [root / source.relative_to(_package_root())]  # the module's file in the tree being fingerprinted
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


def _without_docstrings(tree: ast.AST) -> ast.AST:
    """The tree with the docstring of the module and of every class and function dropped."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _code(node) -> str:
    """A node as text: its type and its fields, positions left out, and empty fields (None, []) too, so that a
    field a newer Python adds with an empty default does not change the text."""
    if isinstance(node, ast.AST):
        fields = ", ".join(f"{name}={_code(value)}" for name, value in ast.iter_fields(node)
                           if value is not None and not (isinstance(value, list) and not value))
        return f"{type(node).__name__}({fields})"
    if isinstance(node, list):
        return "[" + ", ".join(_code(item) for item in node) + "]"
    return repr(node)


def source_digest(source: str) -> bytes:
    """What a source file contributes to the fingerprint: its parsed code (`_code` of the AST without
    docstrings), so formatting, comments and docstrings do not count, only what runs. A file that does not
    parse counts by its text."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source.encode()
    return _code(_without_docstrings(tree)).encode()


@lru_cache(maxsize=None)
def code_fingerprint(memory: str | None = None, root: Path | None = None) -> str:
    """sha256 over the model-defining source files (relative path and parsed code of each, `source_digest`),
    16 hex digits. With `memory`, neuromem/memory contributes only the files that module is built from, so a
    change to one memory module makes only its own cells stale; a change of formatting, comments or
    docstrings makes none stale. `root`: another copy of the package's source (default: this one)."""
    root = root or _package_root()
    files = model_source_files(root)
    if memory is not None:
        own = _memory_files(root, memory)
        if own is not None:
            package = root / "memory"
            files = [f for f in files if package not in f.resolve().parents or f.resolve() in own]
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + source_digest(path.read_text()) + b"\0")
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
