"""Where data lives: the neuromem home, the embedded-default and cache folders, the synthetic-data marker.

A leaf: it imports nothing else from neuromem.data, so every part of the data layer can use it without a cycle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from neuromem.errors import NeuromemError

MARKER_NAME = "NEUROMEM_SYNTHETIC.json"
# written before `synthesize` writes any stand-in and removed after its marker: a folder that still has it was
# left by an interrupted synth (incomplete, and never taken for real data)
PARTIAL_NAME = ".NEUROMEM_SYNTHETIC.partial"


def neuromem_home() -> Path:
    return Path(os.environ.get("NEUROMEM_HOME") or Path.home() / ".cache" / "neuromem").expanduser()


def default_embedded_root() -> Path:
    """The folder that holds the embedded synthetic default ($NEUROMEM_HOME/embedded)."""
    return neuromem_home() / "embedded"


def default_cache_dir() -> Path:
    return neuromem_home() / "cache"


def read_marker(root: str | os.PathLike) -> dict | None:
    """The synthetic-data marker's content, or None for a folder of real data."""
    path = Path(root) / MARKER_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise NeuromemError(f"{path}: unreadable synthetic-data marker ({error}); delete it and re-run `neuromem data synth --root {root}`") from None


def source_of(root: str | os.PathLike) -> str:
    """'synthetic' iff the marker written by `synthesize` is present, else 'real'; a folder an interrupted
    synth left incomplete is refused."""
    if (Path(root) / PARTIAL_NAME).exists():
        raise NeuromemError(f"{root} was left incomplete by an interrupted `neuromem data synth` ({PARTIAL_NAME} is "
                            f"there); re-run the same synth to finish it, or delete the folder")
    return "synthetic" if (Path(root) / MARKER_NAME).is_file() else "real"


def fix_hint(root: str | os.PathLike) -> str:
    """The end of every "data missing" message: the two ways to fill a root."""
    return (f"write the embedded data with `neuromem data synth --root {root}` "
            f"or fetch the real data with `neuromem data fetch --root {root}`")
