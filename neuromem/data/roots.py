"""Where data lives: explicit roots, $NEUROMEM_DATA (real data) and the embedded synthetic default."""

from __future__ import annotations

import json
import os
from pathlib import Path

from neuromem.errors import NeuromemError

MARKER_NAME = "NEUROMEM_SYNTHETIC.json"


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
    """'synthetic' iff the marker written by `synthesize` is present, else 'real'."""
    return "synthetic" if (Path(root) / MARKER_NAME).is_file() else "real"


def resolve_data_root(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Pick the data folder and say whether it holds synthetic or real data.

    explicit -> exactly that folder (it must exist). None -> $NEUROMEM_DATA if set
    (real data placed by hand or by `neuromem data fetch`), else the embedded
    default, synthesized on first use (deterministic, seed 0).
    """
    if explicit is not None:
        root = Path(explicit).expanduser()
        if not root.is_dir():
            raise NeuromemError(
                f"data root {root} does not exist; write the embedded data there with "
                f"`neuromem data synth --root {root}` or fetch the real data with `neuromem data fetch --root {root}`"
            )
        return root, source_of(root)
    env_root = os.environ.get("NEUROMEM_DATA")
    if env_root:
        root = Path(env_root).expanduser()
        if not root.is_dir():
            raise NeuromemError(
                f"$NEUROMEM_DATA points to {root}, which does not exist; unset it to use the embedded "
                f"synthetic data, or place the real data there (`neuromem data fetch --root {root}`)"
            )
        return root, source_of(root)
    root = default_embedded_root()
    marker = read_marker(root)
    from neuromem.data.synth import GENERATOR_VERSION, synthesize

    if (marker is None or marker.get("version") != GENERATOR_VERSION or marker.get("seed") != 0
            or not {"shd", "nmnist"} <= set(marker.get("modalities", {}))):
        synthesize(root, seed=0)  # first use, or written by an older generator
    return root, "synthetic"
