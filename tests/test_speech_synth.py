"""The speech stand-in: espeak-ng digits through the spiking cochlea, in the real SHD layout."""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, replace

import h5py
import numpy as np
import pytest

from neuromem.data import formats
from neuromem.data.synth import speech
from neuromem.errors import NeuromemError

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (`make espeak` installs it where apt and root are available)")

# 20 words x (1 train + 1 test) clips, 2 train speakers and 1 test speaker
TINY = replace(speech.SpeechSynthConfig(), train_per_class=1, test_per_class=1, train_speakers=2, test_speakers=1)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (`make espeak` installs it where apt and root are available)")
    root = tmp_path_factory.mktemp("speech")
    marker = speech.write_speech(root, seed=3, cfg=TINY, workers=1)
    return root, marker


@needs_espeak
def test_real_layout(built):
    root, marker = built
    assert not marker["cached"]
    speakers = {}
    for split in ("train", "test"):
        with h5py.File(formats.shd_path(root, split), "r") as file:
            assert file["spikes/times"].dtype == h5py.vlen_dtype(np.float16)
            assert file["spikes/units"].dtype == h5py.vlen_dtype(np.uint16)
            assert file["labels"].dtype == np.uint8
            labels = file["labels"][()]
            assert sorted(labels) == list(range(20))  # every digit in both languages
            keys = [k.decode() for k in file["extra/keys"][()]]
            assert keys[0] == "english-zero" and keys[15] == "german-fuenf" and len(keys) == 20
            speakers[split] = set(file["extra/speaker"][()].tolist())
            for times, units in zip(file["spikes/times"][()], file["spikes/units"][()]):
                assert len(times) == len(units) > 200  # a spoken word, not silence
                assert np.all(np.diff(times.astype(np.float64)) >= 0)
                assert 0 <= times.min() and times.max() <= TINY.max_duration
                assert units.max() < 700
                assert len(np.unique(units)) > 50  # a word spreads over many cochlear channels
    assert speakers["train"] == {0, 1} and speakers["test"] == {2}  # voices disjoint between splits
    variants = [p["variant"] for p in marker["speakers"]]
    assert len(set(variants)) == 3


@needs_espeak
def test_read_back_through_tonic_and_neuromem(built):
    import tonic

    root, _ = built
    # tonic's SHD class reads ROOT/SHD/shd_train.h5 once it believes the archive was downloaded:
    # its presence check looks for the zip by name only (no hashing), so an empty placeholder suffices
    (root / "SHD" / "shd_train.h5.zip").touch()
    dataset = tonic.datasets.SHD(save_to=str(root), train=True)
    assert len(dataset) == 20
    events, target = dataset[5]
    assert target == 5 and events.dtype.names == ("t", "x", "p")
    shd = formats.read_shd(root, "train")
    assert shd.labels[5] == 5
    ours = shd.events(5)
    assert np.array_equal(ours["t"], events["t"]) and np.array_equal(ours["x"], events["x"])
    frames = tonic.transforms.ToFrame(sensor_size=tonic.datasets.SHD.sensor_size, n_time_bins=10)(events)
    # tonic's ToFrame leaves out events at exactly the last timestamp (the right edge of its last bin)
    assert frames.shape == (10, 1, 700) and len(events) - 5 <= frames.sum() <= len(events)


@needs_espeak
def test_cached_until_parameters_change(built):
    root, marker = built
    again = speech.write_speech(root, seed=3, cfg=TINY, workers=1)
    assert again["cached"] and again["fingerprint"] == marker["fingerprint"]
    stored = json.loads((root / "NEUROMEM_SYNTHETIC.json").read_text())
    assert stored["generator"] == speech.GENERATOR and stored["modalities"]["shd"]["config"]["train_speakers"] == 2
    assert speech.build_fingerprint(replace(TINY, snr_db_range=(0.0, 5.0)), 3) != marker["fingerprint"]
    assert speech.build_fingerprint(TINY, 4) != marker["fingerprint"]


@needs_espeak
def test_clip_is_a_pure_function_of_its_job():
    people = speech.speakers(TINY, seed=0)
    job = (13, people[0], [0, 1, 0, 13, 0], asdict(TINY))
    first, second = speech.render(job), speech.render(job)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    other = speech.render((13, people[0], [0, 1, 0, 13, 1], asdict(TINY)))
    assert not (len(other[0]) == len(first[0]) and np.array_equal(other[1], first[1]))


def test_cochlea_filterbank_matches_scipy():
    from scipy import signal

    cfg = speech.SpeechSynthConfig()
    b, a = speech._filterbank(cfg.f_min, cfg.f_max, cfg.channels, cfg.sample_rate)
    x = np.random.default_rng(0).normal(0, 0.05, 800)
    envelope = speech._rectified_envelope(x, b, a, 8)
    for channel in (0, 350, 699):
        reference = np.maximum(signal.lfilter(b[channel], a[channel], x), 0).reshape(-1, 8).mean(1)
        np.testing.assert_allclose(envelope[channel], reference, rtol=1e-9, atol=1e-15)
    centres = speech.erb_space(cfg.f_min, cfg.f_max, cfg.channels)
    assert centres[0] == pytest.approx(cfg.f_min) and centres[-1] == pytest.approx(cfg.f_max)
    assert np.all(np.diff(centres) > 0)


def test_missing_espeak_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(NeuromemError, match="espeak-ng is not installed") as error:
        speech.write_speech(tmp_path / "r", cfg=TINY)
    assert "\n" not in str(error.value)


def test_cli_offers_the_speech_kind_for_shd_only(tmp_path):
    from typer.testing import CliRunner

    from neuromem.data.cli import app

    result = CliRunner().invoke(app, ["kinds"])
    assert result.exit_code == 0 and "speech" in result.output
    result = CliRunner().invoke(app, ["synth", "--root", str(tmp_path / "d"), "--kind", "speech", "--modality", "nmnist"])
    assert isinstance(result.exception, NeuromemError) and "speech" in str(result.exception)
    assert not (tmp_path / "d" / "SHD").exists()
