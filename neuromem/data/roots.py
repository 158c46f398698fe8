"""Which data folder a command reads: an explicit root, $NEUROMEM_DATA (real data) or the embedded default."""

from __future__ import annotations

import os
from pathlib import Path

from neuromem.data import embedded
from neuromem.data.paths import default_embedded_root, read_marker, source_of
from neuromem.errors import NeuromemError


def resolve_data_root(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """Pick the data folder and say whether it holds synthetic or real data.

    explicit -> exactly that folder (it must exist). None -> $NEUROMEM_DATA if set
    (real data placed by hand or by `neuromem data fetch`), else the embedded
    default, synthesized on first use (deterministic, seed 0); a data set
    registered since is added to it, the others are kept.
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
    missing = embedded.missing_from(read_marker(root))
    if missing:  # first use, a stale generator, or a data set registered since
        embedded.synthesize(root, seed=0, datasets=missing)
    return root, "synthetic"
