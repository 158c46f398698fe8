"""Download the real data sets with their registry entries' downloaders (tonic's own; needs internet)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from neuromem.data.paths import read_marker
from neuromem.data.registry import get_dataset
from neuromem.errors import NeuromemError

_TIMEOUT_S = 60.0


def fetch(root: str | os.PathLike, dataset: str) -> list[Path]:
    """Download one real data set under `root` (tonic `save_to` layout) and return its split paths.

    Raises NeuromemError (one line: what could not be reached, how to place the files by hand) offline.
    """
    data_set = get_dataset(dataset)
    root = Path(root).expanduser()
    if read_marker(root) is not None:
        raise NeuromemError(f"{root} holds the synthetic default (it has a marker file); fetch real data into a separate folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NeuromemError(f"cannot create data root {root}: {error.strerror}") from None
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_TIMEOUT_S)  # a stalled connection should end in a message, not a hang
    try:
        for download in data_set.downloads(root):
            try:
                download.run()
            except Exception as error:  # urllib, socket, zip and md5 failures all end the same way for the user
                reason = getattr(error, "reason", None) or error
                reason = str(reason).splitlines()[0] if str(reason) else type(error).__name__
                raise NeuromemError(f"could not download {data_set.name} ({download.what}) from {download.url}: "
                                    f"{reason}; {download.by_hand}") from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return data_set.fetched(root)
