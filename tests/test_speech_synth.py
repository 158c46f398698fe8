"""The speech stand-in: espeak-ng and flite digits through the spiking cochlea, in the real SHD layout."""

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
needs_flite = pytest.mark.skipif(shutil.which("flite") is None or shutil.which("espeak-ng") is None,
                                 reason="flite (or espeak-ng) is not installed: the flite speakers are not tested "
                                        "(`make espeak` installs both where apt and root are available)")

# 20 words x (1 train + 1 test) clips, 2 train speakers and 1 test speaker, all espeak-ng (the flite tests add flite)
TINY = replace(speech.SpeechSynthConfig(), train_per_class=1, test_per_class=1, train_speakers=2, test_speakers=1,
               families=("espeak-ng",))


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


def test_speakers_shared_out_by_family():
    assert speech.speaker_families(TINY, 3) == ["espeak-ng"] * 3  # the tests above need espeak-ng only
    default = speech.SpeechSynthConfig()
    families = speech.speaker_families(default, 0)
    assert families[:40].count("flite") == 20 and families[40:].count("flite") == 6
    assert speech._shares(3, (0.75, 0.25)) == [2, 1] and speech._shares(1, (0.5, 0.5)) == [1, 0]
    # German needs an espeak-ng speaker in every split, whatever the weights say
    assert speech.speaker_families(replace(TINY, families=("espeak-ng", "flite"), family_weights=(0.1, 0.9)), 0) \
        .count("espeak-ng") == 2


@needs_espeak
def test_english_only_is_ten_classes(tmp_path):
    cfg = replace(TINY, languages=("en",), families=("espeak-ng",))
    marker = speech.write_speech(tmp_path, seed=0, cfg=cfg, workers=1)
    for split in ("train", "test"):
        with h5py.File(formats.shd_path(tmp_path, split), "r") as file:
            assert sorted(file["labels"][()]) == list(range(10))  # FSDD's classes: the English digits 0-9
            assert [k.decode() for k in file["extra/keys"][()]] == [f"english-{w}" for w in speech.WORDS["en"]]
    assert list(marker["modalities"]["shd"]["config"]["languages"]) == ["en"]
    assert speech.keys_of(("de",))[5] == "german-fuenf" and len(speech.keys_of(("en", "de"))) == 20


@needs_flite
def test_flite_speakers_say_english_only(tmp_path):
    # 2 + 2 speakers, half of them flite voices; German words come from the espeak-ng speakers alone
    cfg = replace(TINY, train_speakers=2, test_speakers=2, families=("espeak-ng", "flite"), family_weights=(0.5, 0.5))
    people = speech.speakers(cfg, seed=1)
    assert [p["family"] for p in people].count("flite") == 2
    assert {p["voice"] for p in people if p["family"] == "flite"} <= set(speech.FLITE_F0)
    marker = speech.write_speech(tmp_path, seed=1, cfg=cfg, workers=1)
    assert "flite" in marker and marker["speakers"] == people
    for split in ("train", "test"):
        with h5py.File(formats.shd_path(tmp_path, split), "r") as file:
            labels, who = file["labels"][()], file["extra/speaker"][()]
            assert sorted(labels) == list(range(20))
            for label, speaker in zip(labels, who):
                if people[speaker]["family"] == "flite":
                    assert label < 10, "a flite speaker said a German word"
            assert any(people[s]["family"] == "flite" for s in who)  # and they do speak
            for times in file["spikes/times"][()]:
                assert len(times) > 200


@needs_flite
def test_flite_speaks_with_its_pitch_and_rate():
    slow, hz = speech.speak_flite("seven", "slt", 167.0, 20.0, 1.5)
    fast, hz2 = speech.speak_flite("seven", "slt", 167.0, 20.0, 0.8)
    assert hz == hz2 == 16000 and len(slow) > 1.5 * len(fast)
    assert speech.speak_flite("seven", "kal", 100.0, 10.0, 1.0)[1] == 8000  # kal: an 8 kHz diphone voice


def test_missing_flite_is_one_clear_line(monkeypatch, tmp_path):
    real_which = shutil.which
    monkeypatch.setattr(speech.shutil, "which", lambda name: None if name == "flite" else real_which(name))
    if real_which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (`make espeak` installs it where apt and root are available)")
    cfg = replace(TINY, train_speakers=2, test_speakers=2, families=("espeak-ng", "flite"), family_weights=(0.5, 0.5))
    with pytest.raises(NeuromemError, match="flite is not installed") as error:
        speech.write_speech(tmp_path / "r", cfg=cfg)
    assert "\n" not in str(error.value) and "families=espeak-ng" in str(error.value)
    speech.build_fingerprint(replace(cfg, families=("espeak-ng",)), 0)  # without flite speakers flite is not needed


@needs_espeak
def test_legacy_settings_draw_nothing_new():
    # LEGACY (generator version 1's speaker model) must not touch the newer traits' generator: version 1's
    # stream of draws, hence its clips, stays as it was (checked byte for byte against version 1's code once)
    cfg = replace(TINY, **speech.LEGACY)
    person = speech.speakers(cfg, seed=0)[0]
    assert person["formant"] == 1.0 and person["lowpass"] == 8000.0 and person["family"] == "espeak-ng"
    voice_rng = np.random.default_rng(5)
    before = voice_rng.bit_generator.state
    speech.utterance(3, person, np.random.default_rng(0), cfg, voice_rng)
    assert voice_rng.bit_generator.state == before
    # the default draws a contour for every utterance
    speech.utterance(3, person, np.random.default_rng(0), TINY, voice_rng)
    assert voice_rng.bit_generator.state != before


def _vowel(f0: float, formants: tuple[float, ...], fs: int = 16000, seconds: float = 0.5) -> np.ndarray:
    from scipy import signal

    x = np.zeros(int(fs * seconds))
    x[:: int(fs / f0)] = 1.0
    for f in formants:  # two-pole resonators, 80 Hz wide
        r = np.exp(-np.pi * 80 / fs)
        x = signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * f / fs), r * r], x)
    return x / np.std(x)


def _f0(x: np.ndarray, fs: int = 16000) -> float:
    segment = x[2000:6000] - x[2000:6000].mean()
    correlation = np.correlate(segment, segment, "full")[len(segment) - 1:]
    low, high = fs // 400, fs // 60
    return fs / (low + np.argmax(correlation[low:high]))


def _envelope_peaks(x: np.ndarray, fs: int = 16000) -> np.ndarray:
    from scipy import signal

    f, power = signal.welch(x, fs, nperseg=1024)
    cepstrum = np.fft.irfft(np.log(power + 1e-20))
    cepstrum[30:-29] = 0
    envelope = np.fft.rfft(cepstrum).real[: len(f)]
    return f[signal.find_peaks(envelope)[0]]


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_formant_warp_moves_formants_and_keeps_pitch(factor):
    x = _vowel(120.0, (700.0, 1800.0, 2600.0))
    y = speech.warp_formants(x, 16000, factor)
    assert len(y) == len(x) and np.all(np.isfinite(y))
    assert _f0(y) == pytest.approx(_f0(x), rel=0.02)  # the harmonics stay
    peaks = _envelope_peaks(y)
    for formant in (700.0, 1800.0, 2600.0):  # each formant moved by the factor (within 10 %)
        assert np.min(np.abs(peaks / (factor * formant) - 1)) < 0.1, (formant, peaks)
    assert speech.warp_formants(x, 16000, 1.0) is x


def test_config_errors_name_the_setting():
    for change, name in (({"languages": ("fr",)}, "languages"), ({"languages": ()}, "languages"),
                         ({"families": ("festival",)}, "families"), ({"family_weights": (1.0,)}, "family_weights"),
                         ({"families": ("flite",), "family_weights": (1.0, 0.0)}, "family_weights"),
                         ({"formant_range": (1.2, 0.8)}, "formant_range"), ({"flite_voices": ("hal",), "families": ("espeak-ng", "flite")}, "flite_voices"),
                         ({"clause_marks": (";",)}, "clause_marks"), ({"contour_range": (1.0, 2.0, 3.0)}, "contour_range")):
        with pytest.raises(NeuromemError, match=f"speech stand-in: {name}=") as error:
            speech.check_config(replace(TINY, **change))
        assert "\n" not in str(error.value)
    with pytest.raises(NeuromemError, match="English only"):
        speech.speaker_families(replace(TINY, families=("flite",), family_weights=(0.0, 1.0)), 0)
    speech.check_config(replace(TINY, families=("flite",), family_weights=(0.0, 1.0), languages=("en",)))


def test_options_set_the_stand_in_config():
    from neuromem.data.embedded import with_options

    cfg = with_options(speech.SpeechSynthConfig(), {"languages": "en", "formant_range": "0.9,1.1", "train_speakers": "8",
                                                    "families": "espeak-ng", "clause_marks": "", "drift_depth": "0"}, "x")
    assert cfg.languages == ("en",) and cfg.formant_range == (0.9, 1.1) and cfg.train_speakers == 8
    assert cfg.families == ("espeak-ng",) and cfg.clause_marks == ("",) and cfg.drift_depth == 0.0
    for options, text in (({"langauges": "en"}, "--option langauges: x has no such setting; valid keys: adaptation"),
                          ({"rate_range": "1,2,3"}, "--option rate_range=1,2,3: expected 2 comma-separated numbers"),
                          ({"train_speakers": "many"}, "--option train_speakers=many: "),
                          ({"pitch_range": "a,b"}, "--option pitch_range=a,b: ")):
        with pytest.raises(NeuromemError) as error:
            with_options(speech.SpeechSynthConfig(), options, "x")
        assert str(error.value).startswith(text) and "\n" not in str(error.value)
        assert "valid keys:" in str(error.value) and "languages" in str(error.value)


def test_cli_option_reaches_the_stand_in(tmp_path):
    from typer.testing import CliRunner

    from neuromem.data.cli import app

    result = CliRunner().invoke(app, ["synth", "--root", str(tmp_path / "d"), "--modality", "shd", "--kind", "speech",
                                      "--option", "languages=xx"])
    assert isinstance(result.exception, NeuromemError) and "languages=('xx',)" in str(result.exception)
    result = CliRunner().invoke(app, ["synth", "--root", str(tmp_path / "d"), "--modality", "shd", "--kind", "speech",
                                      "--option", "nonsense=1"])
    assert isinstance(result.exception, NeuromemError) and "--option nonsense" in str(result.exception)
    result = CliRunner().invoke(app, ["synth", "--root", str(tmp_path / "d"), "--modality", "shd", "--option", "languages"])
    assert isinstance(result.exception, NeuromemError) and "KEY=VALUE" in str(result.exception)
    assert not (tmp_path / "d" / "SHD").exists()


@needs_espeak
def test_speaker_gain_option_equalizes_the_stand_in_speakers(tmp_path):
    """`--option speaker_gain=true`: the same clips, each speaker's channels through its gains; the default's
    fingerprint does not hold the field (builds before it stay cached)."""
    from dataclasses import replace

    from neuromem.data import formats
    from neuromem.data.synth.speech import SpeechSynthConfig, build_fingerprint, write_speech

    cfg = replace(SpeechSynthConfig(), languages=("en",), train_per_class=2, test_per_class=1, train_speakers=3,
                  test_speakers=1, families=("espeak-ng",), family_weights=(1.0, 0.0))
    gained = replace(cfg, speaker_gain=True)
    assert build_fingerprint(cfg, 0) != build_fingerprint(gained, 0)
    write_speech(tmp_path / "plain", 0, cfg, workers=1)
    write_speech(tmp_path / "gained", 0, gained, workers=1)
    plain, equal = formats.read_shd(tmp_path / "plain", "train"), formats.read_shd(tmp_path / "gained", "train")
    assert plain.labels.tolist() == equal.labels.tolist() and plain.speakers.tolist() == equal.speakers.tolist()

    def spread(data):
        profiles = [np.log1p(np.bincount(np.concatenate([u for u, k in zip(data.units, data.speakers) if k == s]),
                                         minlength=700)) for s in sorted(set(data.speakers.tolist()))]
        return float(np.std(np.stack(profiles), axis=0).mean())

    assert spread(equal) < spread(plain)
