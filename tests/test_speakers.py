"""Real recordings in (`neuromem data convert`), leave-one-speaker-out (`ablate --cv speakers`), augmentation."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd-dev" / "recordings"


def _write_wav(path: Path, x: np.ndarray, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(rate)
        file.writeframes((np.clip(x, -1, 1) * 32000).astype(np.int16).tobytes())


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """3 speakers x 3 'words' x 4 takes: each word a tone chord, each speaker its own pitch scale."""
    folder = tmp_path_factory.mktemp("recordings")
    t = np.arange(int(0.25 * 8000)) / 8000
    for s, (speaker, scale) in enumerate((("ann", 1.0), ("bob", 0.8), ("cy", 1.2))):
        for label, chord in enumerate(((300, 900), (500, 1500), (700, 2200))):
            for index in range(4):
                rng = np.random.default_rng([s, label, index])
                x = sum(np.sin(2 * np.pi * f * scale * t) for f in chord) * 0.3 + rng.normal(0, 0.01, t.size)
                _write_wav(folder / f"{label}_{speaker}_{index}.wav", x)
    (folder / "notes.txt").write_text("not a recording")
    return folder


@pytest.fixture(scope="module")
def converted(recordings, tmp_path_factory) -> Path:
    from neuromem.data.convert import ConvertConfig, convert

    root = tmp_path_factory.mktemp("converted")
    record = convert(recordings, root, ConvertConfig(test_index_below=1), workers=1)
    assert not record["cached"]
    return root


def test_convert_writes_the_shd_layout_with_speakers(converted):
    from neuromem.data import formats

    train, test = formats.read_shd(converted, "train"), formats.read_shd(converted, "test")
    assert (len(train), len(test)) == (27, 9)  # index 0 of every (speaker, word) is test: the data set's own rule
    assert json.loads((converted / "SHD" / "speakers.json").read_text()) == ["ann", "bob", "cy"]
    assert sorted(set(train.speakers.tolist())) == [0, 1, 2] and sorted(set(test.speakers.tolist())) == [0, 1, 2]
    assert sorted(set(train.labels.tolist())) == [0, 1, 2]
    assert all(len(t) > 0 for t in train.times)
    # the tones sit in different channels: word 2's events lie higher on the cochlea than word 0's
    centre = lambda i: float(np.mean(train.units[i]))  # noqa: E731
    assert centre(int(np.flatnonzero(train.labels == 2)[0])) > centre(int(np.flatnonzero(train.labels == 0)[0]))


def test_convert_is_cached_and_split_by_speakers(recordings, converted, tmp_path):
    from neuromem.data import formats
    from neuromem.data.convert import ConvertConfig, convert

    assert convert(recordings, converted, ConvertConfig(test_index_below=1), workers=1)["cached"]
    root = tmp_path / "by-speaker"
    record = convert(recordings, root, ConvertConfig(test_speakers=("bob",)), workers=1)
    assert record["splits"]["test"]["speakers"] == ["bob"] and "bob" not in record["splits"]["train"]["speakers"]
    assert set(formats.read_shd(root, "test").speakers.tolist()) == {1}


@pytest.mark.parametrize("args, message", [
    (["--test-speakers", "zed"], "no such speaker; valid: ann, bob, cy"),
    (["--pattern", "{word}_{speaker}.wav"], "unknown field {word}"),
    (["--held-out-speakers", "3"], "valid 1..2"),
])
def test_convert_bad_input_is_one_line(recordings, tmp_path, args, message):
    result = run_cli("data", "convert", "--audio", str(recordings), "--root", str(tmp_path / "r"), *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_convert_refuses_a_broken_wav(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "0_x_0.wav").write_bytes(b"RIFF....nonsense")
    _write_wav(tmp_path / "a" / "1_y_0.wav", np.zeros(800))
    result = run_cli("data", "convert", "--audio", str(tmp_path / "a"), "--root", str(tmp_path / "r"), "--workers", "1", "--test-speakers", "y")
    assert result.returncode == 2 and "0_x_0.wav is not a readable PCM wav file" in result.stderr


def test_folds_hold_out_one_speaker_and_a_fixed_seen_set(converted):
    from neuromem.data import formats
    from neuromem.data.registry import get_dataset
    from neuromem.train.protocol import fold_rows, speaker_folds

    shd = get_dataset("shd")
    assert speaker_folds(shd, converted) == ["speaker=ann", "speaker=bob", "speaker=cy"]
    labels = {split: formats.read_shd(converted, split).labels for split in ("train", "test")}
    speakers = {split: formats.read_shd(converted, split).speakers for split in ("train", "test")}
    seen_sets = []
    for fold, held_out in (("speaker=ann", 0), ("speaker=bob", 1)):
        roles = fold_rows(shd, converted, fold, labels)
        for split in ("train", "test"):
            test, seen, train = (set(roles[r].rows[split].tolist()) for r in ("test", "seen", "train"))
            assert not (test & seen or test & train or seen & train)
            assert len(test | seen | train) == len(labels[split])
            assert set(speakers[split][list(test)].tolist()) <= {held_out}
        seen_sets.append({(s, int(r)) for s in ("train", "test") for r in roles["seen"].rows[s]
                          if speakers[s][r] == 2})
    assert seen_sets[0] == seen_sets[1] and seen_sets[0]  # speaker cy's seen recordings: the same in both folds


def test_cv_speakers_through_the_cli(converted, tmp_path):
    out = tmp_path / "out"
    args = ["ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(converted), "--cv", "speakers",
            "--epochs", "1", "--hidden", "16", "--batch-size", "8", "--out", str(out)]
    dry = run_cli(*args, "--dry-run", "--augment", "none", "--augment", "freq_warp=0.1")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("would run") == 1 and dry.stdout.count("shd-hopfield-") == 6  # 3 folds x 2 recipes
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    cells = json.loads((out / "results.json").read_text())["cells"]
    assert sorted(c["fold"] for c in cells) == ["speaker=ann", "speaker=bob", "speaker=cy"]
    assert all(0 <= c["seen_accuracy"] <= 1 and c["protocol"] == "leave one speaker out" for c in cells)
    report = (out / "report.md").read_text()
    assert "leave one speaker out, 3 folds" in report and "seen speakers" in report


def test_cv_refuses_data_without_speakers(tiny_data, tmp_path):
    result = run_cli("ablate", "--modality", "nmnist", "--memory", "hopfield", "--data-root", str(tiny_data),
                     "--cv", "speakers", "--dry-run", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "nmnist under" in result.stderr and "records no speakers" in result.stderr
    result = run_cli("ablate", "--modality", "joint", "--memory", "hopfield", "--data-root", str(tiny_data),
                     "--cv", "speakers", "--dry-run", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "--cv speakers applies to single data sets with speakers" in result.stderr


# ---- augmentation


def _batch(seed=0, shape=(4, 30, 700)):
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < 0.05).float()


def test_augmentations_are_seeded_and_keep_shapes():
    from neuromem.data.augment import Compose, parse_augment

    recipe = parse_augment("time_shift=3,time_stretch=0.2,channel_shift=10,freq_warp=0.15,drop=0.2,noise=0.01,mask_channels=20")
    compose = Compose(recipe, (700,))
    a = compose(_batch(), torch.Generator().manual_seed(1))
    b = compose(_batch(), torch.Generator().manual_seed(1))
    c = compose(_batch(), torch.Generator().manual_seed(2))
    assert a.shape == (4, 30, 700) and torch.equal(a, b) and not torch.equal(a, c)


def test_augmentation_semantics():
    from neuromem.data.augment import build

    x = _batch()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    for name in ("time_shift", "time_stretch", "channel_shift", "freq_warp", "drop", "noise", "mask_channels"):
        assert torch.equal(build(name, 0)(x, g()), x), name  # strength 0 changes nothing
    assert build("drop", 0.5)(x, g()).sum() < 0.7 * x.sum()
    shifted = build("channel_shift", 5)(x, g())
    assert shifted.sum() <= x.sum()
    spectrum = build("time_shift", 4)(x, g()).sum(dim=(0, 2))
    assert spectrum.sum() <= x.sum()
    # a warp moves content along the channel axis, not in time
    one = torch.zeros(1, 5, 700)
    one[0, 2, 400] = 1
    warped = build("freq_warp", 0.3)(one, torch.Generator().manual_seed(3))
    assert warped.sum() == 1 and warped[0, 2].sum() == 1


def test_bad_augment_is_one_line(tiny_data, tmp_path):
    for text, message in (("freq_warp=2", "must be a number in [0, 0.5]"), ("warp=0.1", "valid: time_shift"),
                          ("freq_warp", "expected NAME=STRENGTH")):
        result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(tiny_data),
                         "--augment", text, "--dry-run", "--out", str(tmp_path / "o"))
        assert result.returncode == 2 and message in result.stderr, result.stderr
    result = run_cli("ablate", "--modality", "nmnist", "--memory", "hopfield", "--data-root", str(tiny_data),
                     "--augment", "freq_warp=0.1", "--dry-run", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "applies to 1-D inputs" in result.stderr


def test_bad_front_option_is_one_line(tiny_data, tmp_path):
    result = run_cli("ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(tiny_data),
                     "--front-option", "dropout=1.5", "--dry-run", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "dropout must lie in [0, 1)" in result.stderr


def test_identity_of_cells_without_the_new_fields_is_unchanged():
    from neuromem.train.config import CellConfig

    config = CellConfig(modality="shd", memory="hopfield")
    assert set(config.to_dict()) == {"modality", "memory", "seed", "epochs", "batch_size", "learning_rate", "hidden",
                                     "neuron", "time_bins", "max_train_samples", "threads", "memory_options",
                                     "energy_profile", "data_fingerprint"}
    varied = CellConfig(modality="shd", memory="hopfield", augment=(("freq_warp", 0.1),), fold="speaker=a",
                        front_options=(("dropout", 0.1),), weight_decay=0.01)
    assert CellConfig.from_dict(json.loads(json.dumps(varied.to_dict()))) == varied
    assert varied.cell_id.startswith("shd-hopfield-a-s0-")


@pytest.mark.skipif(not FSDD.is_dir(), reason=f"the real recordings are not here ({FSDD}): nothing to convert")
def test_real_recordings_convert(tmp_path):
    import shutil

    from neuromem.data import formats
    from neuromem.data.convert import convert

    subset = tmp_path / "rec"
    subset.mkdir()
    for path in sorted(FSDD.glob("[0-2]_*_[0-5].wav")):
        shutil.copy(path, subset / path.name)
    record = convert(subset, tmp_path / "R", workers=1)
    assert record["speakers"] == ["george", "jackson", "lucas", "nicolas"]
    assert record["splits"]["test"]["samples"] == 3 * 4 * 5 and record["splits"]["train"]["samples"] == 3 * 4
    assert record["splits"]["train"]["events"] / 12 > 500  # speech drives the cochlea
    assert formats.read_shd(tmp_path / "R", "train").speakers.max() == 3


def test_train_also_adds_another_root_to_training_only(recordings, converted, tiny_data, tmp_path):
    from neuromem.data.convert import ConvertConfig, convert

    extra = tmp_path / "extra"
    convert(recordings, extra, ConvertConfig(test_index_below=1, seed=3), workers=1)
    out = tmp_path / "out"
    args = ["ablate", "--modality", "shd", "--memory", "hopfield", "--data-root", str(converted), "--epochs", "1",
            "--hidden", "16", "--batch-size", "8", "--out", str(out)]
    result = run_cli(*args, "--train-also", str(extra))
    assert result.returncode == 0, result.stderr
    (cell,) = json.loads((out / "results.json").read_text())["cells"]
    assert cell["variant"] == "hidden=16 train_also=extra"
    from neuromem.train.config import CellConfig

    config = CellConfig.from_dict(json.loads((out / "cells" / cell["cell_id"] / "cell.json").read_text())["config"])
    assert config.train_also[0][0] == str(extra.resolve())
    refused = run_cli(*args, "--train-also", str(tiny_data), "--out", str(tmp_path / "o2"))
    assert refused.returncode != 0 and "--train-also" in refused.stderr and "labels 0..19" in refused.stderr


def test_speaker_gains_bring_each_speaker_to_the_reference():
    from neuromem.data.synth.speech import MAX_GAIN, speaker_gains

    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 2.0, 6)
    tilt = np.array([[1, 1, 1, 1, 1, 1], [2, 2, 1, 1, 0.5, 0.5], [1, 1, 1, 1, 1, 1e-9]])  # the last: a dead channel
    speakers = np.repeat(np.arange(3), 4)
    drives = base * tilt[speakers] * rng.uniform(0.9, 1.1, (12, 6))
    gains = speaker_gains(drives, speakers, 3)
    assert gains.shape == (3, 6) and np.all(gains <= MAX_GAIN) and np.all(gains >= 1 / MAX_GAIN)
    equalized = np.stack([np.exp(np.log(drives[speakers == s] * gains[s]).mean(axis=0)) for s in range(3)])
    # channels 0-4: every speaker's long-term spectrum is the same after its gains (the tilt is gone)
    np.testing.assert_allclose(equalized[:, :5] / equalized[0, :5], 1.0, rtol=1e-9)
    assert gains[1, 0] < 1 < gains[1, 4]  # the loud low channels lowered, the weak high ones raised
    assert gains[2, 5] == pytest.approx(MAX_GAIN)  # a dead channel is raised by at most MAX_GAIN, not by 1e9


def test_convert_normalize_speaker(recordings, tmp_path):
    from neuromem.data import formats
    from neuromem.data.convert import GAINS, ConvertConfig, convert, fingerprint, find_recordings

    # "none" is left out of the fingerprint: a root converted before the field existed is that conversion
    assert "normalize" not in ConvertConfig(normalize="none").identity()
    assert ConvertConfig().identity()["normalize"] == "speaker"  # the default (datasets/speakers.md)
    root, unnormalized = tmp_path / "normalized", tmp_path / "plain"
    record = convert(recordings, root, ConvertConfig(test_index_below=1), workers=1)
    assert not record["cached"] and record["normalize"].startswith("speaker")
    gains = np.load(root / "SHD" / GAINS)
    assert gains.shape == (3, 700) and not np.allclose(gains, 1.0)
    assert convert(recordings, unnormalized, ConvertConfig(test_index_below=1, normalize="none"), workers=1)["normalize"] == "none"
    assert not (unnormalized / "SHD" / GAINS).exists()
    plain = formats.read_shd(unnormalized, "train")
    equal = formats.read_shd(root, "train")

    def spread(data):  # how far apart the speakers' long-term channel profiles are (log events per channel)
        profiles = []
        for s in range(3):
            units = np.concatenate([u for u, k in zip(data.units, data.speakers) if k == s])
            profiles.append(np.log1p(np.bincount(units, minlength=700)))
        return float(np.std(np.stack(profiles), axis=0).mean())

    assert spread(equal) < spread(plain)
    assert convert(recordings, root, ConvertConfig(test_index_below=1), workers=1)["cached"]
    files = find_recordings(recordings, ConvertConfig().pattern)
    from neuromem.data.synth.speech import SpeechSynthConfig
    from dataclasses import replace as _replace
    cochlea = _replace(SpeechSynthConfig(), max_duration=1.4)
    assert fingerprint(files, ConvertConfig(normalize="none"), cochlea) != fingerprint(files, ConvertConfig(), cochlea)
    result = run_cli("data", "convert", "--audio", str(recordings), "--root", str(tmp_path / "r"), "--normalize", "gender")
    assert result.returncode == 2 and "--normalize 'gender': valid: none, speaker" in result.stderr
