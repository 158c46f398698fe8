"""The data layer: real on-disk formats, the synthetic default, binning, the cache, errors, encoders."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import tonic
from conftest import write_nmnist_bin, write_shd_h5

from neuromem.data import (
    MODALITY_SPECS,
    DeltaEncoder,
    LatencyEncoder,
    RateEncoder,
    default_embedded_root,
    fetch,
    load_split,
    resolve_data_root,
    synthesize,
)
from neuromem.data.formats import read_nmnist_events
from neuromem.errors import NeuromemError

TINY = dict(shd_train_per_class=3, shd_test_per_class=1, nmnist_train_per_class=3, nmnist_test_per_class=1,
            ssc_train_per_class=1, ssc_valid_per_class=1, ssc_test_per_class=1)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No test touches the user's cache or embedded data."""
    monkeypatch.setenv("NEUROMEM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NEUROMEM_DATA", raising=False)


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    synthesize(root, seed=0, **TINY)
    return root


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- synthetic data through tonic's readers


def test_synthetic_shd_reads_with_tonic(tiny_root):
    # tonic.datasets.SHD only checks that the downloaded zip exists before reading the .h5 it holds
    (tiny_root / "SHD" / "shd_train.h5.zip").touch()
    try:
        shd = tonic.datasets.SHD(save_to=str(tiny_root), train=True)
        assert len(shd) == 20 * TINY["shd_train_per_class"]
        labels, counts = [], []
        for i in range(len(shd)):
            events, label = shd[i]
            labels.append(int(label))
            counts.append(len(events))
            assert events["x"].min() >= 0 and events["x"].max() <= 699
            assert events["t"].min() >= 0 and events["t"].max() <= 1.5e6
            assert np.all(np.diff(events["t"]) >= 0)
        assert sorted(set(labels)) == list(range(20))
        assert 2_000 <= np.mean(counts) <= 15_000
        assert len(shd.classes) == 20 and shd.speaker.shape == (len(shd),)
    finally:
        (tiny_root / "SHD" / "shd_train.h5.zip").unlink()


def test_synthetic_shd_file_layout(tiny_root):
    with h5py.File(tiny_root / "SHD" / "shd_test.h5", "r") as f:
        assert f["spikes/times"].dtype.metadata["vlen"] == np.float16
        assert f["spikes/units"].dtype.metadata["vlen"] == np.uint16
        assert f["labels"].dtype == np.uint8
        assert set(f["labels"][()]) == set(range(20))
        assert f["extra/keys"].shape == (20,) and f["extra/speaker"].shape == (20,)
        assert f["extra/speaker"][()].max() < 12


def test_synthetic_nmnist_reads_with_tonic(tiny_root):
    files = sorted((tiny_root / "NMNIST" / "Train").glob("*/*.bin"))
    assert len(files) == 10 * TINY["nmnist_train_per_class"]
    assert {f.parent.name for f in files} == {str(d) for d in range(10)}
    for path in files:
        events = tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
        assert 3_000 <= len(events) <= 10_000
        assert events["x"].max() <= 33 and events["y"].max() <= 33 and events["x"].min() >= 0
        assert set(np.unique(events["p"])) == {0, 1}
        assert events["t"].max() <= 315_000 and np.all(np.diff(events["t"]) >= 0)


def test_synthesis_is_deterministic_and_seeded(tmp_path):
    small = dict(shd_train_per_class=1, shd_test_per_class=1, nmnist_train_per_class=1, nmnist_test_per_class=1,
                 ssc_train_per_class=1, ssc_valid_per_class=1, ssc_test_per_class=1)
    synthesize(tmp_path / "a", seed=5, **small)
    synthesize(tmp_path / "b", seed=5, **small)
    synthesize(tmp_path / "c", seed=6, **small)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a["SHD/shd_train.h5"] != c["SHD/shd_train.h5"]
    assert a["NMNIST/Train/3/00000.bin"] != c["NMNIST/Train/3/00000.bin"]
    assert a["SSC/ssc_valid.h5"] != c["SSC/ssc_valid.h5"]
    marker = json.loads((tmp_path / "a" / "NEUROMEM_SYNTHETIC.json").read_text())
    assert marker["seed"] == 5 and marker["modalities"]["shd"]["splits"]["train"]["samples"] == 20


def test_nmnist_test_images_are_held_out():
    from neuromem.data.synth.nmnist import source_images

    _, labels, pools = source_images()
    for digit in range(10):
        train, test = set(pools["train"][digit]), set(pools["test"][digit])
        assert not train & test and len(test) >= 40
        assert all(labels[i] == digit for i in train | test)


# ---------------------------------------------------------------- loading, binning, cache


def test_load_split_shapes_and_binning(tiny_root, tmp_path):
    ds = load_split("shd", tiny_root, "train", cache_dir=tmp_path / "cache")
    assert ds.inputs.shape == (60, 100, 700) and ds.inputs.dtype == np.uint8
    assert ds.labels.dtype == np.int64 and list(np.bincount(ds.labels)) == [3] * 20
    assert (ds.num_classes, ds.input_shape, ds.time_bins, ds.source) == (20, (700,), 100, "synthetic")
    # binned counts equal the spikes inside the 1.4 s window, read straight from the file
    with h5py.File(tiny_root / "SHD" / "shd_train.h5", "r") as f:
        in_window = [int((t.astype(np.float64) * 1e6 < 1.4e6).sum()) for t in f["spikes/times"][()]]
    assert np.asarray(ds.inputs).reshape(60, -1).sum(1).tolist() == in_window
    x, y = ds[5]
    assert x.dtype == torch.float32 and x.shape == (100, 700) and isinstance(y, int)

    nm = load_split("nmnist", tiny_root, "test", time_bins=15, cache_dir=tmp_path / "cache")
    assert nm.inputs.shape == (10, 15, 2, 34, 34) and nm.input_shape == (2, 34, 34)
    events = read_nmnist_events(sorted((tiny_root / "NMNIST" / "Test" / "0").glob("*.bin"))[0])
    frames = nm.inputs[0]
    assert frames.sum() == len(events)  # all synthetic events fall inside the 315 ms window
    first = events[events["t"] < 21_000]  # first bin of 15 over 315 ms
    assert frames[0, 1].sum() == (first["p"] == 1).sum() and frames[0, 0].sum() == (first["p"] == 0).sum()
    assert frames[0, :, first["y"][0], first["x"][0]].sum() >= 1  # frames are (p, y, x), as tonic makes them


def test_cache_is_hit_on_second_load(tiny_root, tmp_path, monkeypatch):
    first = load_split("shd", tiny_root, "test", cache_dir=tmp_path / "cache")
    assert not first.meta["cache_hit"]
    import neuromem.data.dataset as dataset_module

    def no_binning(*args, **kwargs):
        raise AssertionError("binned again despite a cache entry")

    monkeypatch.setattr(dataset_module, "FixedWindowFrames", no_binning)
    second = load_split("shd", tiny_root, "test", cache_dir=tmp_path / "cache")
    assert second.meta["cache_hit"]
    assert isinstance(second.inputs.index, np.memmap)  # the sparse rows, memory-mapped
    assert np.array_equal(np.asarray(first.inputs), np.asarray(second.inputs))
    # other binning parameters are another entry
    with pytest.raises(AssertionError, match="binned again"):
        load_split("shd", tiny_root, "test", time_bins=50, cache_dir=tmp_path / "cache")


def test_cache_invalidated_when_source_changes(tmp_path):
    root = tmp_path / "data"
    synthesize(root, seed=0, modalities=["nmnist"], nmnist_train_per_class=1, nmnist_test_per_class=1)
    before = load_split("nmnist", root, "test", cache_dir=tmp_path / "cache")
    victim = root / "NMNIST" / "Test" / "4" / "00000.bin"
    victim.write_bytes(victim.read_bytes()[: 5 * 100])  # same file, now only its first 100 events
    after = load_split("nmnist", root, "test", cache_dir=tmp_path / "cache")
    assert not after.meta["cache_hit"]
    assert after.inputs[4].sum() == 100 and before.inputs[4].sum() > 100


def test_default_cache_dir_is_under_neuromem_home(tiny_root, tmp_path):
    ds = load_split("nmnist", tiny_root, "test")
    assert Path(ds.meta["cache_entry"]).parent == tmp_path / "home" / "cache"


def test_batches_are_deterministic(tiny_root, tmp_path):
    ds = load_split("shd", tiny_root, "train", cache_dir=tmp_path / "cache")

    def run(seed):
        return list(ds.batches(16, shuffle=True, generator=torch.Generator().manual_seed(seed)))

    a, b, c = run(1), run(1), run(2)
    assert [len(y) for _, y in a] == [16, 16, 16, 12]
    assert all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1])
    x, y = a[0]
    assert x.dtype == torch.float32 and x.shape == (16, 100, 700) and y.dtype == torch.int64
    # every sample exactly once per epoch, and each x matches its label's row
    ys = torch.cat([y for _, y in a])
    assert sorted(ys.tolist()) == sorted(ds.labels.tolist())
    plain = list(ds.batches(60))
    assert torch.equal(plain[0][0][7], ds[7][0]) and plain[0][1][7] == ds[7][1]
    assert len(list(ds.batches(16, drop_last=True))) == 3


def test_subset(tiny_root, tmp_path):
    ds = load_split("nmnist", tiny_root, "train", cache_dir=tmp_path / "cache")
    sub = ds.subset([29, 0, 10])
    assert len(sub) == 3 and sub.labels.tolist() == [9, 0, 3]
    assert np.array_equal(sub.inputs[1], ds.inputs[0])
    assert torch.equal(sub[2][0], ds[10][0])
    subsub = sub.subset([0])
    assert subsub.labels.tolist() == [9] and torch.equal(subsub[0][0], ds[29][0])
    (xb, yb), = list(sub.batches(8))
    assert yb.tolist() == [9, 0, 3] and torch.equal(xb[0], ds[29][0])


# ---------------------------------------------------------------- folders from an independent writer


def test_independent_shd_file_loads(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "real" / "SHD" / "shd_train.h5"
    path.parent.mkdir(parents=True)
    n = 6
    times = [np.sort(rng.uniform(0, 1.6, 500)).astype(np.float16) for _ in range(n)]
    units = [rng.integers(0, 700, 500).astype(np.uint16) for _ in range(n)]
    write_shd_h5(path, times, units, [0, 5, 10, 19, 3, 3])
    ds = load_split("shd", tmp_path / "real", "train", time_bins=7, cache_dir=tmp_path / "cache")
    assert ds.source == "real" and ds.labels.tolist() == [0, 5, 10, 19, 3, 3]
    for i in range(n):
        t_us = times[i].astype(np.float64) * 1e6
        keep = t_us < 1.4e6
        expected = np.zeros((7, 700), dtype=np.int64)
        np.add.at(expected, ((t_us[keep] // 200_000).astype(int), units[i][keep].astype(int)), 1)
        assert np.array_equal(ds.inputs[i], expected)


def test_independent_nmnist_files_load(tmp_path):
    root = tmp_path / "real"
    rng = np.random.default_rng(1)
    written = {}
    for split, folder in (("train", "Train"), ("test", "Test")):
        for digit in (0, 7):
            x, y = rng.integers(0, 34, 300), rng.integers(0, 34, 300)
            p, t = rng.integers(0, 2, 300), np.sort(rng.integers(0, 320_000, 300))
            write_nmnist_bin(root / "NMNIST" / folder / str(digit) / "00001.bin", x, y, p, t)
            written[(split, digit)] = (x, y, p, t)
    ds = load_split("nmnist", root, "test", time_bins=3, cache_dir=tmp_path / "cache")
    assert ds.source == "real" and ds.labels.tolist() == [0, 7]
    x, y, p, t = written[("test", 7)]
    keep = t < 315_000
    expected = np.zeros((3, 2, 34, 34), dtype=np.int64)
    np.add.at(expected, (t[keep] // 105_000, p[keep], y[keep], x[keep]), 1)
    assert np.array_equal(ds.inputs[1], expected)


# ---------------------------------------------------------------- roots


def test_resolve_data_root(tmp_path, tiny_root, monkeypatch):
    assert resolve_data_root(tiny_root) == (tiny_root, "synthetic")
    real = tmp_path / "real"
    real.mkdir()
    assert resolve_data_root(real) == (real, "real")
    monkeypatch.setenv("NEUROMEM_DATA", str(real))
    assert resolve_data_root(None) == (real, "real")
    monkeypatch.setenv("NEUROMEM_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(NeuromemError, match="NEUROMEM_DATA.*nowhere"):
        resolve_data_root(None)
    with pytest.raises(NeuromemError, match=r"missing.*neuromem data synth --root"):
        resolve_data_root(tmp_path / "missing")


def test_embedded_default_is_synthesized_on_first_use(tmp_path, monkeypatch):
    import neuromem.data.embedded as embedded

    calls = []
    real_synthesize = embedded.synthesize
    tiny = {f"{name}_{split}_per_class": 1 for name, spec in MODALITY_SPECS.items() for split in spec.splits}

    def small_synthesize(root, seed=0, datasets=None, **kwargs):  # the real generator, at tiny sizes
        calls.append(seed)
        return real_synthesize(root, seed=seed, datasets=datasets, **tiny)

    monkeypatch.setattr(embedded, "synthesize", small_synthesize)
    root, source = resolve_data_root(None)
    assert root == default_embedded_root() == tmp_path / "home" / "embedded" and source == "synthetic"
    assert (root / "SHD" / "shd_train.h5").is_file() and calls == [0]
    assert resolve_data_root(None) == (root, "synthetic") and calls == [0]  # not again
    marker_path = root / "NEUROMEM_SYNTHETIC.json"
    marker_path.write_text(json.dumps({**json.loads(marker_path.read_text()), "version": 1}))
    resolve_data_root(None)
    assert calls == [0, 0]  # an older generator's data are rewritten


# ---------------------------------------------------------------- bad input: one line naming file and fix


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_error_missing_root_and_files(tmp_path):
    with pytest.raises(NeuromemError) as e:
        load_split("shd", tmp_path / "absent", "train")
    assert "absent" in _one_line(e) and "neuromem data synth --root" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(NeuromemError) as e:
        load_split("shd", tmp_path / "empty", "train")
    assert "shd_train.h5" in _one_line(e) and "neuromem data fetch --root" in str(e.value)
    with pytest.raises(NeuromemError) as e:
        load_split("nmnist", tmp_path / "empty", "test")
    assert "NMNIST/Test" in _one_line(e)


def test_error_wrong_modality_and_split(tiny_root):
    with pytest.raises(NeuromemError) as e:
        load_split("mnist", tiny_root, "train")
    assert "'mnist'" in _one_line(e) and "shd, nmnist" in str(e.value)
    with pytest.raises(NeuromemError) as e:
        load_split("shd", tiny_root, "validation")
    assert "train, test" in _one_line(e)


def test_error_corrupt_h5(tmp_path):
    path = tmp_path / "r" / "SHD" / "shd_train.h5"
    path.parent.mkdir(parents=True)
    synthesize(tmp_path / "s", seed=0, modalities=["shd"], shd_train_per_class=1, shd_test_per_class=1)
    good = (tmp_path / "s" / "SHD" / "shd_train.h5").read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated download
    with pytest.raises(NeuromemError) as e:
        load_split("shd", tmp_path / "r", "train")
    assert str(path) in _one_line(e) and "corrupt" in str(e.value)
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=np.zeros(3, np.uint8))
    with pytest.raises(NeuromemError) as e:
        load_split("shd", tmp_path / "r", "train")
    assert "spikes/times" in _one_line(e)


def test_error_out_of_range_shd_values(tmp_path):
    path = tmp_path / "r" / "SHD" / "shd_test.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", (1,), dtype=h5py.vlen_dtype(np.float16))[0] = np.zeros(2, np.float16)
        f.create_dataset("spikes/units", (1,), dtype=h5py.vlen_dtype(np.uint16))[0] = np.array([3, 700], np.uint16)
        f.create_dataset("labels", data=np.zeros(1, np.uint8))
    with pytest.raises(NeuromemError) as e:
        load_split("shd", tmp_path / "r", "test")
    assert "unit 700" in _one_line(e) and "0..699" in str(e.value)


def test_error_empty_split(tmp_path):
    path = tmp_path / "r" / "SHD" / "shd_train.h5"
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", (0,), dtype=h5py.vlen_dtype(np.float16))
        f.create_dataset("spikes/units", (0,), dtype=h5py.vlen_dtype(np.uint16))
        f.create_dataset("labels", data=np.zeros(0, np.uint8))
    with pytest.raises(NeuromemError) as e:
        load_split("shd", tmp_path / "r", "train")
    assert "no samples" in _one_line(e)
    (tmp_path / "r" / "NMNIST" / "Train" / "3").mkdir(parents=True)
    with pytest.raises(NeuromemError) as e:
        load_split("nmnist", tmp_path / "r", "train")
    assert "no .bin files" in _one_line(e)


def test_error_truncated_and_corrupt_bin(tmp_path):
    d = tmp_path / "r" / "NMNIST" / "Test" / "2"
    d.mkdir(parents=True)
    (d / "00000.bin").write_bytes(bytes([1, 2, 0, 0, 9, 3, 3]))  # 7 bytes: a record cut short
    with pytest.raises(NeuromemError) as e:
        load_split("nmnist", tmp_path / "r", "test")
    assert "00000.bin" in _one_line(e) and "truncated" in str(e.value)
    (d / "00000.bin").write_bytes(bytes([200, 2, 0, 0, 9]))  # x = 200 on a 34x34 sensor
    with pytest.raises(NeuromemError) as e:
        load_split("nmnist", tmp_path / "r", "test")
    assert "x=200" in _one_line(e) and "0..33" in str(e.value)


def test_fetch_offline_says_how_to_place_files(tmp_path):
    for modality, hint in (("shd", "shd_train.h5"), ("nmnist", "Train")):
        with pytest.raises(NeuromemError) as e:
            fetch(tmp_path / "real", modality)
        message = _one_line(e)
        assert "could not download" in message and "by hand" in message and hint in message


# ---------------------------------------------------------------- encoders


def test_rate_encoder_is_seeded_and_follows_intensity():
    x = torch.tensor([0.0, 0.25, 1.0])
    a, b = RateEncoder(400, seed=3)(x), RateEncoder(400, seed=3)(x)
    assert a.shape == (400, 3) and torch.equal(a, b)
    assert not torch.equal(a, RateEncoder(400, seed=4)(x))
    rates = a.mean(0)
    assert rates[0] == 0 and rates[2] == 1 and 0.18 < rates[1] < 0.32
    assert RateEncoder(400, gain=0.5, seed=0)(np.full((2, 2), 0.8)).mean().item() == pytest.approx(0.4, abs=0.05)


def test_latency_encoder_orders_by_intensity():
    x = torch.tensor([1.0, 0.6, 0.2, 0.01, 0.005])
    spikes = LatencyEncoder(21, threshold=0.01)(x)
    assert spikes.shape == (21, 5) and spikes.sum(0).tolist() == [1, 1, 1, 1, 0]
    first = spikes.argmax(0)
    assert first[0] == 0 and first[0] < first[1] < first[2] < first[3] == 20
    assert first[2] == round(20 * np.log(0.2) / np.log(0.01))
    linear = LatencyEncoder(11, threshold=0.1, mode="linear")(np.array([1.0, 0.55, 0.1, 0.05]))
    assert linear.argmax(0).tolist()[:3] == [0, 5, 10] and linear.sum().item() == 3


def test_delta_encoder_level_crossings():
    signal = torch.tensor([0.0, 0.05, 0.25, 0.28, 0.05, 0.05, -0.17])
    out = DeltaEncoder(0.1)(signal)
    assert out.shape == (7, 2)
    # the reference moves one threshold per spike: 0 -> 0.2 after two ONs; -0.15 from there is one OFF
    assert out[:, 1].tolist() == [0, 0, 2, 0, 0, 0, 0]  # ON
    assert out[:, 0].tolist() == [0, 0, 0, 0, 1, 0, 2]  # OFF
    signed = DeltaEncoder(0.1, signed=True)(signal.unsqueeze(1).repeat(1, 3))
    assert signed.shape == (7, 3) and torch.equal(signed[:, 0], out[:, 1] - out[:, 0])


def test_modality_specs():
    assert MODALITY_SPECS["shd"].num_classes == 20 and MODALITY_SPECS["shd"].input_shape == (700,)
    assert MODALITY_SPECS["nmnist"].num_classes == 10 and MODALITY_SPECS["nmnist"].input_shape == (2, 34, 34)
    with pytest.raises(dataclasses.FrozenInstanceError):
        MODALITY_SPECS["shd"].time_bins = 5


# ---------------------------------------------------------------- the `neuromem data` sub-app


def test_data_cli_synth_and_fetch(tmp_path):
    from typer.testing import CliRunner

    from neuromem.data.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["synth", "--root", str(tmp_path / "d"), "--modality", "nmnist",
                                 "--nmnist-train", "1", "--nmnist-test", "1", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert "nmnist" in result.output and len(list((tmp_path / "d" / "NMNIST" / "Test").glob("*/*.bin"))) == 10
    assert json.loads((tmp_path / "d" / "NEUROMEM_SYNTHETIC.json").read_text())["seed"] == 2
    result = runner.invoke(app, ["synth", "--root", str(tmp_path / "d"), "--modality", "audio"])
    assert isinstance(result.exception, NeuromemError) and "shd, nmnist" in str(result.exception)
    result = runner.invoke(app, ["fetch", "--root", str(tmp_path / "d")])
    assert isinstance(result.exception, NeuromemError) and "synthetic" in str(result.exception)


def test_difficulty_proxy_runs_and_beats_chance(tiny_root, tmp_path):
    from neuromem.data.difficulty import logistic_baselines

    result = logistic_baselines(tiny_root, "shd", cache_dir=tmp_path / "cache", time_bins=5, max_iter=100)
    assert result["train_samples"] == 60 and result["test_samples"] == 20
    for features in ("flattened_bins", "time_collapsed"):
        assert result[features]["train_accuracy"] == 1.0  # 60 samples, thousands of features: separable
        assert result[features]["test_accuracy"] > 0.2  # chance is 0.05


def test_error_unwritable_cache(tiny_root, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(NeuromemError) as e:
        load_split("nmnist", tiny_root, "test", cache_dir=blocker / "cache")
    assert "cache" in _one_line(e) and "NEUROMEM_HOME" in str(e.value)
