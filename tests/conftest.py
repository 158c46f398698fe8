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
    """Every registered data set, a handful of samples per class (seconds to write)."""
    from neuromem.data import synthesize

    root = tmp_path_factory.mktemp("tiny-data")
    synthesize(root, seed=0, shd_train_per_class=6, shd_test_per_class=3, nmnist_train_per_class=8,
               nmnist_test_per_class=4, ssc_train_per_class=2, ssc_valid_per_class=1, ssc_test_per_class=1)
    return root


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m neuromem ARGS` in a fresh interpreter, as a user would run it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "neuromem", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)


# ---- an independent writer of the real on-disk formats (raw h5py / numpy, not neuromem's synth)


def write_shd_h5(path: Path, times: list, units: list, labels) -> None:
    """SHD's published HDF5 layout: vlen float16 seconds, vlen uint16 channels, uint8 labels."""
    import h5py
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(labels)
    ragged = lambda arrays, dtype: np.array(list(arrays) + [np.zeros(0, dtype)], dtype=object)[:n]  # noqa: E731
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", data=ragged(times, np.float16), dtype=h5py.vlen_dtype(np.float16))
        f.create_dataset("spikes/units", data=ragged(units, np.uint16), dtype=h5py.vlen_dtype(np.uint16))
        f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint8))
        f.create_dataset("extra/keys", data=np.array([b"k%d" % i for i in range(20)]))
        f.create_dataset("extra/speaker", data=np.arange(n, dtype=np.uint16))


def write_nmnist_bin(path: Path, x, y, polarity, t_us) -> None:
    """N-MNIST's published record: 8 bits x, 8 bits y, polarity in bit 7 and a 23-bit µs timestamp."""
    import numpy as np

    path.parent.mkdir(parents=True, exist_ok=True)
    packed = np.zeros((len(x), 5), dtype=np.uint8)
    packed[:, 0], packed[:, 1] = x, y
    packed[:, 2] = (polarity << 7) | (t_us >> 16)
    packed[:, 3], packed[:, 4] = (t_us >> 8) & 255, t_us & 255
    path.write_bytes(packed.tobytes())


# ---- a toy spike problem every memory module must learn


def toy_spikes(generator, channels=24, classes=4, per_class=32, steps=20, shift=0):
    """Each class fires its own block of channels (rotated by `shift`, e.g. per modality) over a low background."""
    labels = torch.arange(classes).repeat_interleave(per_class)
    rates = torch.full((labels.numel(), channels), 0.05)
    block = channels // classes
    for c in range(classes):
        k = (c + shift) % classes
        rates[labels == c, k * block : (k + 1) * block] = 0.5
    spikes = (torch.rand(steps, *rates.shape, generator=generator) < rates).float()
    return spikes, labels


def toy_problem_accuracy(memory, steps: int) -> float:
    """Train `memory` + a linear readout on the toy problem with Adam; test accuracy (chance 0.25).
    The readout is initialised from the global RNG right after the caller seeded and built `memory`."""
    train_x, train_y = toy_spikes(torch.Generator().manual_seed(10))
    test_x, test_y = toy_spikes(torch.Generator().manual_seed(11))
    readout = torch.nn.Linear(memory.output_size, 4)
    optimizer = torch.optim.Adam([*memory.parameters(), *readout.parameters()], lr=3e-3)
    for _ in range(steps):
        out = memory({"shd": train_x})
        loss = torch.nn.functional.cross_entropy(readout(out.representations["shd"]), train_y)
        loss = loss + memory.auxiliary_loss(out, train_y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return (readout(memory({"shd": test_x}).representations["shd"]).argmax(-1) == test_y).float().mean().item()


def train_tiny_cell(modality, shape, memory, memory_options, neuron="lif", classes=3, steps=30, seed=0,
                    neuron_params=None, samples=16, max_count=2):
    """A tiny one-data-set grid-cell network trained a few Adam steps (batches of 8) on random counts
    (0..max_count, ~30% of bins), so its weights are off their initialisation; (network in eval mode,
    batch-major inputs, labels)."""
    import numpy as np

    from neuromem.models import build_network

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_network({modality: shape}, {modality: classes}, memory, hidden=12, neuron=neuron,
                        memory_options=memory_options, neuron_params=neuron_params)
    inputs = rng.integers(0, max_count + 1, (samples, steps, *shape)) * (rng.random((samples, steps, *shape)) < 0.3)
    labels = rng.integers(0, classes, samples)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-2)
    for start in range(0, samples, 8):
        out = net({modality: torch.as_tensor(inputs[start:start + 8]).float()})
        loss = torch.nn.functional.cross_entropy(out.logits[modality], torch.as_tensor(labels[start:start + 8]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return net.eval(), inputs, labels


# ---- headless Chromium: does a report's page load every figure?


def chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def headless_chromium(args: list, tmp_path: Path) -> subprocess.CompletedProcess:
    """Chromium, headless, no network or profile of the user's, run on `args` (e.g. --dump-dom URL)."""
    command = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000", *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def figures_loaded(html: Path, tmp_path: Path) -> tuple[int, int]:
    """(figures loaded, figures on the page) of a neuromem report.html, as headless Chromium saw them
    (the page's <body data-figures="loaded/total">)."""
    import re

    dom = headless_chromium(["--dump-dom", Path(html).resolve().as_uri()], tmp_path)
    match = re.search(r'data-figures="(\d+)/(\d+)"', dom.stdout)
    assert match, dom.stderr[-2000:]
    return int(match.group(1)), int(match.group(2))
