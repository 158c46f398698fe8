"""Download the real data sets with tonic's own downloaders (needs internet)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import tonic

from neuromem.data import formats
from neuromem.data.roots import read_marker
from neuromem.data.specs import get_spec
from neuromem.errors import NeuromemError

_TIMEOUT_S = 60.0


def _by_hand(modality: str, root: Path) -> str:
    if modality == "shd":
        return (f"download {tonic.datasets.SHD.base_url}shd_train.h5.zip and shd_test.h5.zip by hand and unzip them to "
                f"{root / 'SHD' / 'shd_train.h5'} and {root / 'SHD' / 'shd_test.h5'}")
    return (f"download N-MNIST's train.zip and test.zip by hand (https://www.garrickorchard.com/datasets/n-mnist) and "
            f"unzip them so that {root / 'NMNIST' / 'Train' / '<digit>' / '*.bin'} and {root / 'NMNIST' / 'Test' / '<digit>' / '*.bin'} exist")


def fetch(root: str | os.PathLike, modality: str) -> list[Path]:
    """Download one real data set under `root` (tonic `save_to` layout) and return its split paths.

    Raises NeuromemError (one line: what could not be reached, how to place the files by hand) offline.
    """
    spec = get_spec(modality)
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
        for train in (True, False):
            if spec.name == "shd":
                url = tonic.datasets.SHD.base_url + (tonic.datasets.SHD.train_zip if train else tonic.datasets.SHD.test_zip)
                make = lambda: tonic.datasets.SHD(save_to=str(root), train=train)  # noqa: E731
            else:
                url = tonic.datasets.NMNIST.train_url if train else tonic.datasets.NMNIST.test_url
                make = lambda: tonic.datasets.NMNIST(save_to=str(root), train=train)  # noqa: E731
            try:
                make()
            except Exception as error:  # urllib, socket, zip and md5 failures all end the same way for the user
                reason = getattr(error, "reason", None) or error
                reason = str(reason).splitlines()[0] if str(reason) else type(error).__name__
                raise NeuromemError(f"could not download {spec.name} ({'train' if train else 'test'}) from {url}: "
                                    f"{reason}; {_by_hand(spec.name, root)}") from None
    finally:
        socket.setdefaulttimeout(previous_timeout)
    if spec.name == "shd":
        return [formats.shd_path(root, split) for split in ("train", "test")]
    return [formats.nmnist_split_dir(root, split) for split in ("train", "test")]
