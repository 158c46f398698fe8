"""Shared fixtures: tiny data sets written by the project's own generator in the real layouts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# one thread: steadier timings on shared 2-core machines and the same numbers as the CLI's default
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep caches and the embedded default out of the user's home during tests."""
    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path_factory.getbasetemp() / "neuromem-home"))
    monkeypatch.delenv("NEUROMEM_DATA", raising=False)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Both data sets, a handful of samples per class (seconds to write)."""
    from neuromem.data import synthesize

    root = tmp_path_factory.mktemp("tiny-data")
    synthesize(root, seed=0, shd_train_per_class=6, shd_test_per_class=3, nmnist_train_per_class=8,
               nmnist_test_per_class=4)
    return root


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m neuromem ARGS` in a fresh interpreter, as a user would run it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "neuromem", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
