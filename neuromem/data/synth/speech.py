"""Spoken digits from real speech synthesis: espeak-ng and flite voices through a 700-channel spiking cochlea.

A realistic SHD stand-in. The digits 0-9 are spoken in the languages of
`languages`: by default English (labels 0-9) and German (labels 10-19), as in
SHD (20 classes); `languages=("en",)` gives 10 classes, labels 0-9, as the Free
Spoken Digit Dataset. Label = 10 * (position of the language) + digit.

The speaker model. A *speaker* is drawn once and says every word of its
languages; the speakers of the test split never occur in the training split.
Each speaker has:
- a synthesizer voice family (`families`, shared out by `family_weights` in
  each split): espeak-ng (one voice variant per speaker, never reused: a
  distinct glottal source, formant set and intonation; with an English accent)
  or Debian's flite (voices kal, kal16, awb, rms, slt: diphone and clustergen
  voices, different recordings of different people). flite speaks English
  only: its speakers say the English digits only, and the German words come
  from the espeak-ng speakers alone (a split that needs German needs at least
  one espeak-ng speaker). The five flite voices are shared between speakers
  (and splits): a flite speaker is its voice with its own pitch, rate, formant
  warp and recording channel below;
- a base pitch (espeak-ng `-p`, or a factor on the flite voice's own mean F0:
  `int_f0_target_mean`) and a speaking rate (words per minute; flite's
  `duration_stretch` = 175 / rate);
- a vocal-tract scale `tract` (the waveform is resampled: formants and pitch
  move together) and, independent of it, a formant warp `formant` over the
  adult-male-to-child range (0.8-1.25): each 32 ms frame's spectral envelope
  (cepstrally smoothed log spectrum) is stretched in frequency by the factor
  while its harmonics (the pitch) stay where they are;
- a recording channel: a low-pass at a cutoff drawn in `lowpass_range`
  (telephone and 8 kHz recordings end near 3.5-4 kHz; from 0.475 x the sample
  rate, 7.6 kHz, up no filter is applied).
Each utterance then gets its own pitch and speaking-rate jitter, a pitch
contour (a clause intonation drawn from `clause_marks` — statement, question,
exclamation, continuation — with the intonation range scaled by a factor from
`contour_range`: espeak-ng SSML `<prosody range>`, flite `int_f0_target_stddev`;
and a slow drift of pitch and tempo by time-varying resampling, `drift_depth`),
a random onset, room reverberation (an exponentially decaying noise impulse
response), background noise at a random SNR and a level — all drawn from
generators seeded by (seed, split, index), so a build is a pure function of
its configuration and seed. `LEGACY` holds the settings of generator version 1
(espeak-ng only, no formant warp, no contour, no channel; onsets from 20 ms,
SNR 8-30 dB, reverberation on 70 % of clips): they reproduce version 1's
files byte for byte.

The cochlea: a 4th-order gammatone filterbank (scipy.signal.gammatone, centre
frequencies ERB-spaced between `f_min` and `f_max`), half-wave rectification
and power-law compression (inner hair cell), low-pass and decimation to
`step_hz`, then one leaky integrate-and-fire cell per channel with
refractoriness, spike-frequency adaptation and a little membrane noise (the
auditory nerve fibre / bushy cell). Spike times are written as float16
seconds, channels as uint16, in the published SHD HDF5 layout.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import tempfile
import time
import wave
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import signal

from neuromem.data import formats
from neuromem.data.base import StandIn
from neuromem.data.paths import MARKER_NAME, read_marker
from neuromem.errors import NeuromemError

GENERATOR = "neuromem.data.synth.speech"
# bump whenever the generated data change: a cached build is then rewritten. 2: the speaker model
# (flite voices, formant warp, pitch contours, recording channel, wider rate jitter), cleaner rooms and
# `languages` became defaults; the LEGACY settings still write version 1's files byte for byte
GENERATOR_VERSION = 2
ESPEAK = "espeak-ng"
FLITE = "flite"
MISSING_ESPEAK = ("espeak-ng is not installed, so the speech stand-in cannot be built: install it "
                  "(`apt-get install espeak-ng` as root, or `make espeak`) or use the embedded default "
                  "(`neuromem data synth`)")
MISSING_FLITE = ("flite is not installed, so the speech stand-in's flite speakers cannot be built: install it "
                 "(`apt-get install flite` as root, or `make espeak`) or leave flite out (`--option families=espeak-ng`)")
FAMILIES = (ESPEAK, FLITE)
# flite's voices (awb_time is a limited-domain clock voice: left out) and each one's own mean F0 in Hz
# (measured on "seven"; rms keeps its own F0 whatever int_f0_target_mean says)
FLITE_F0 = {"kal": 100.0, "kal16": 100.0, "awb": 113.0, "rms": 89.0, "slt": 167.0}
FLITE_LANGUAGES = ("en",)

WORDS = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "de": ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
}
KEY_PREFIX = {"en": "english", "de": "german"}
LANGUAGE_NAMES = {"en": "English", "de": "German"}


def keys_of(languages: tuple[str, ...]) -> list[str]:
    """The class names (SHD's extra/keys) of a build with these languages, in label order."""
    return [f"{KEY_PREFIX[lang]}-{w.replace('ü', 'ue')}" for lang in languages for w in WORDS[lang]]


KEYS = keys_of(("en", "de"))
ENGLISH_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# variants that do not sound like a person speaking (robots, whispering, effects)
NON_HUMAN_VARIANTS = ("robot", "demonic", "croak", "whisper", "tweaky", "storm", "mr serious")


@dataclass(frozen=True)
class SpeechSynthConfig:
    train_per_class: int = 150
    test_per_class: int = 30
    train_speakers: int = 40  # distinct speakers; the test speakers are further ones
    test_speakers: int = 12
    languages: tuple[str, ...] = ("en", "de")  # 10 classes each, in this order; flite speakers say "en" only
    families: tuple[str, ...] = (ESPEAK, FLITE)  # synthesizer voice families of the speakers
    # share of each split's speakers: espeak-ng, flite (flite's share measured: 0 / 0.25 / 0.5 of the speakers ->
    # 0.335 / 0.374 / 0.414 on real recordings, datasets/README.md)
    family_weights: tuple[float, float] = (0.5, 0.5)
    flite_voices: tuple[str, ...] = ("kal", "kal16", "awb", "rms", "slt")
    sample_rate: int = 16000
    channels: int = formats.SHD_CHANNELS
    f_min: float = 80.0
    f_max: float = 7000.0
    max_duration: float = 1.4  # s; SHD words last up to ~1.4 s
    pitch_range: tuple[float, float] = (25.0, 75.0)  # espeak-ng -p (0-99) per speaker
    flite_pitch_range: tuple[float, float] = (0.8, 1.25)  # per flite speaker, factor on the voice's own mean F0
    rate_range: tuple[float, float] = (130.0, 200.0)  # words per minute, per speaker
    tract_range: tuple[float, float] = (0.9, 1.12)  # per-speaker frequency scale (resampling: pitch and formants)
    formant_range: tuple[float, float] = (0.8, 1.25)  # per-speaker formant warp (pitch kept), log-uniform
    lowpass_range: tuple[float, float] = (3500.0, 8000.0)  # Hz, per-speaker recording bandwidth, log-uniform
    pitch_jitter: float = 6.0  # per utterance, in espeak-ng pitch units (flite: a factor exp(N(0, jitter / 100)))
    rate_jitter: float = 0.12  # per utterance, relative
    contour_range: tuple[float, float] = (50.0, 200.0)  # per utterance, intonation range in % of the voice's own
    clause_marks: tuple[str, ...] = (".", "?", "!", ",")  # per utterance: the clause intonation ("" none)
    drift_depth: float = 0.04  # per utterance, slow pitch + tempo drift by time-varying resampling, relative
    # recording conditions; version 2 widened them to close-talking, clean recordings (measured: 0.374 -> 0.466
    # on real recordings, datasets/README.md); version 1: onset 0.02-0.2 s, SNR 8-30 dB, reverberation on 70 %
    onset_range: tuple[float, float] = (0.0, 0.2)  # s of silence (noise) before the word
    snr_db_range: tuple[float, float] = (8.0, 40.0)
    reverb_probability: float = 0.5
    rt60_range: tuple[float, float] = (0.1, 0.6)  # s
    reverb_mix_range: tuple[float, float] = (0.1, 0.5)  # reverberant energy share
    level_db_range: tuple[float, float] = (-8.0, 6.0)  # loudness around the reference level
    compression: float = 0.3  # hair-cell power law
    step_hz: float = 2000.0  # hair-cell / LIF time step (0.5 ms)
    lif_tau: float = 0.002  # s
    lif_gain: float = 2.2  # drive at the reference level, in thresholds
    refractory: float = 0.001  # s
    adaptation: float = 0.5  # threshold increase per spike
    adaptation_tau: float = 0.05  # s
    membrane_noise: float = 0.15  # sigma per step, in thresholds
    speaker_gain: bool = False  # each speaker's channel gains equalized (speaker_gains), as `data convert --normalize speaker`


# generator version 1's speaker model and rooms: espeak-ng only, no formant warp, no recording channel, no
# contour or drift, rate jitter 0.08, onset 0.02-0.2 s, SNR 8-30 dB, reverberation on 70 % of clips. replace(SpeechSynthConfig(), **LEGACY) writes version 1's files byte for byte.
LEGACY = {"families": (ESPEAK,), "family_weights": (1.0, 0.0), "formant_range": (1.0, 1.0),
          "lowpass_range": (8000.0, 8000.0), "rate_jitter": 0.08, "contour_range": (100.0, 100.0),
          "clause_marks": ("",), "drift_depth": 0.0, "onset_range": (0.02, 0.2), "snr_db_range": (8.0, 30.0),
          "reverb_probability": 0.7}


def check_config(cfg: SpeechSynthConfig) -> None:
    """One clear line naming the field when a setting cannot be built."""
    def bad(name: str, why: str) -> NeuromemError:
        return NeuromemError(f"speech stand-in: {name}={getattr(cfg, name)!r}: {why}")

    for name in ("train_per_class", "test_per_class", "train_speakers", "test_speakers"):
        if getattr(cfg, name) < 1:
            raise bad(name, "must be >= 1")
    if not cfg.languages or len(set(cfg.languages)) != len(cfg.languages) or set(cfg.languages) - set(WORDS):
        raise bad("languages", f"one or more distinct of {', '.join(WORDS)}")
    if 10 * len(cfg.languages) > formats.SHD_CLASSES:
        raise bad("languages", f"the SHD layout holds at most {formats.SHD_CLASSES} classes")
    if not cfg.families or len(set(cfg.families)) != len(cfg.families) or set(cfg.families) - set(FAMILIES):
        raise bad("families", f"one or more distinct of {', '.join(FAMILIES)}")
    if len(cfg.family_weights) != len(FAMILIES) or any(w < 0 for w in cfg.family_weights) \
            or sum(_weight(cfg, f) for f in cfg.families) <= 0:
        raise bad("family_weights", f"one non-negative weight per family ({', '.join(FAMILIES)}, in this order), "
                                    "not 0 for every family in `families`")
    if FLITE in cfg.families and (not cfg.flite_voices or set(cfg.flite_voices) - set(FLITE_F0)):
        raise bad("flite_voices", f"one or more of {', '.join(FLITE_F0)}")
    if set(cfg.clause_marks) - {"", ".", "?", "!", ","} or not cfg.clause_marks:
        raise bad("clause_marks", 'one or more of ".", "?", "!", "," and "" (none)')
    ranges = ("pitch_range", "flite_pitch_range", "rate_range", "tract_range", "formant_range", "lowpass_range",
              "contour_range", "onset_range", "snr_db_range", "rt60_range", "reverb_mix_range", "level_db_range")
    for name in ranges:
        if len(getattr(cfg, name)) != 2:
            raise bad(name, "expected two numbers, LOW,HIGH")
        low, high = getattr(cfg, name)
        if low > high:
            raise bad(name, "expected LOW,HIGH with LOW <= HIGH")
    for name in ("flite_pitch_range", "rate_range", "tract_range", "formant_range", "lowpass_range", "contour_range"):
        if getattr(cfg, name)[0] <= 0:
            raise bad(name, "must be positive")
    if not 0 <= cfg.drift_depth < 0.5:
        raise bad("drift_depth", "expected 0 <= drift_depth < 0.5")


# ---------------------------------------------------------------------------- espeak-ng


def espeak_version() -> str:
    """espeak-ng's version line, or a NeuromemError with one clear line when it is missing."""
    if shutil.which(ESPEAK) is None:
        raise NeuromemError(MISSING_ESPEAK)
    out = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return out.split("Data at")[0].strip().rstrip(":").strip()


def voice_variants() -> list[str]:
    """espeak-ng's voice variants that sound like people, sorted (the speakers' identities)."""
    if shutil.which(ESPEAK) is None:
        raise NeuromemError(MISSING_ESPEAK)
    listing = subprocess.run([ESPEAK, "--voices=variant"], capture_output=True, text=True, check=False).stdout
    names = set()
    for line in listing.splitlines()[1:]:
        path = line[line.find("!v/"):].split()[0] if "!v/" in line else ""
        name = path[3:]
        if name and not any(bad in name.lower() for bad in NON_HUMAN_VARIANTS) and " " not in name:
            names.add(name)
    return sorted(names)


def flite_version() -> str:
    """flite's version line, or a NeuromemError with one clear line when it is missing."""
    if shutil.which(FLITE) is None:
        raise NeuromemError(MISSING_FLITE)
    out = subprocess.run([FLITE, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return out.splitlines()[0].strip() if out else "flite"


def _read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """A 16-bit wav whose header sizes may be placeholders: the format, then all samples after "data"."""
    with wave.open(io.BytesIO(data[:44])) as header:
        rate_hz, width = header.getframerate(), header.getsampwidth()
    start = data.find(b"data") + 8
    samples = np.frombuffer(data[start:start + (len(data) - start) // width * width], dtype=np.int16)
    return samples.astype(np.float64) / 32768.0, rate_hz


def speak(text: str, voice: str, pitch: int, rate: int, ssml_range: float | None = None,
          mark: str = "") -> tuple[np.ndarray, int]:
    """espeak-ng's waveform (float64 in [-1, 1]) and its sample rate. With `ssml_range` (% of the voice's
    intonation range) the text goes in as SSML (`-m`, <prosody range>); `mark` ends the clause ("?": a question)."""
    if ssml_range is None:
        command = [ESPEAK, "-v", voice, "-p", str(pitch), "-s", str(rate), "--stdout", text + mark]
    else:
        ssml = f'<speak><prosody range="{ssml_range:.0f}%">{text}{mark}</prosody></speak>'
        command = [ESPEAK, "-m", "-v", voice, "-p", str(pitch), "-s", str(rate), "--stdout", ssml]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or len(result.stdout) < 64:
        raise NeuromemError(f"espeak-ng failed for voice {voice!r}: {result.stderr.decode(errors='replace').strip()}")
    # espeak-ng streams a wav whose header sizes are placeholders
    return _read_wav_bytes(result.stdout)


def speak_flite(text: str, voice: str, f0: float, f0_std: float, stretch: float) -> tuple[np.ndarray, int]:
    """flite's waveform (float64 in [-1, 1]) and its sample rate (kal: 8 kHz, the others 16 kHz)."""
    with tempfile.TemporaryDirectory(prefix="neuromem-flite-") as folder:
        out = Path(folder) / "word.wav"
        result = subprocess.run([FLITE, "-voice", voice, "--setf", f"duration_stretch={stretch:.4f}",
                                 "--setf", f"int_f0_target_mean={f0:.2f}", "--setf", f"int_f0_target_stddev={f0_std:.2f}",
                                 "-t", text, "-o", str(out)], capture_output=True, check=False)
        data = out.read_bytes() if out.is_file() else b""
    if result.returncode != 0 or len(data) < 64:
        raise NeuromemError(f"flite failed for voice {voice!r}: {result.stderr.decode(errors='replace').strip()}")
    return _read_wav_bytes(data)


# ---------------------------------------------------------------------------- speakers and utterances


def _weight(cfg: SpeechSynthConfig, family: str) -> float:
    """The share of speakers of `family` (family_weights are in FAMILIES order; families picks among them)."""
    return float(cfg.family_weights[FAMILIES.index(family)]) if family in cfg.families else 0.0


def _shares(count: int, weights: tuple[float, ...]) -> list[int]:
    """`count` speakers shared out by `weights` (largest remainder; ties to the earlier family)."""
    total = float(sum(weights))
    exact = [count * w / total for w in weights]
    shares = [int(np.floor(e)) for e in exact]
    for i in sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))[: count - sum(shares)]:
        shares[i] += 1
    return shares


def speaker_families(cfg: SpeechSynthConfig, seed: int) -> list[str]:
    """Each speaker's voice family: train speakers first, then test speakers, each split shared out by
    `family_weights` and shuffled (a split that needs a language flite lacks keeps an espeak-ng speaker)."""
    out = []
    rng = np.random.default_rng([seed, 8])
    for split, count in (("train", cfg.train_speakers), ("test", cfg.test_speakers)):
        shares = _shares(count, tuple(_weight(cfg, f) for f in cfg.families))
        if set(cfg.languages) - set(FLITE_LANGUAGES) and FLITE in cfg.families:
            if ESPEAK not in cfg.families:
                raise NeuromemError(f"speech stand-in: languages={cfg.languages!r} need espeak-ng speakers (flite "
                                    "speaks English only); add espeak-ng to families or use languages=en")
            flite, espeak = cfg.families.index(FLITE), cfg.families.index(ESPEAK)
            if shares[espeak] == 0:  # the German words need someone to say them
                shares[espeak], shares[flite] = 1, shares[flite] - 1
        families = [f for f, n in zip(cfg.families, shares) for _ in range(n)]
        out += [families[i] for i in rng.permutation(len(families))] if len(cfg.families) > 1 else families
    return out


def speakers(cfg: SpeechSynthConfig, seed: int) -> list[dict]:
    """The train speakers, then the test speakers: an espeak-ng speaker is one voice variant (never shared
    between speakers or splits); a flite speaker one of flite's voices with its own pitch, rate and warp."""
    families = speaker_families(cfg, seed)
    needed = families.count(ESPEAK)
    variants = voice_variants() if needed else []
    if needed > len(variants):
        raise NeuromemError(f"speech stand-in: {needed} espeak-ng speakers asked for (train {cfg.train_speakers} + "
                            f"test {cfg.test_speakers} speakers, family_weights {cfg.family_weights}), but espeak-ng "
                            f"has only {len(variants)} usable voice variants")
    # version 1's draws, in its order (its builds stay byte-identical); the newer traits from a stream of their own
    rng, extra = np.random.default_rng([seed, 7]), np.random.default_rng([seed, 9])
    chosen = iter([variants[i] for i in rng.permutation(len(variants))[:needed]])
    people = []
    for family in families:
        person = {"family": family}
        if family == ESPEAK:
            person.update(variant=next(chosen), accent=ENGLISH_ACCENTS[rng.integers(len(ENGLISH_ACCENTS))],
                          pitch=float(rng.uniform(*cfg.pitch_range)))
        else:
            rng.integers(len(ENGLISH_ACCENTS)), rng.uniform(*cfg.pitch_range)  # keep the stream aligned
        person.update(rate=float(rng.uniform(*cfg.rate_range)), tract=float(rng.uniform(*cfg.tract_range)))
        if family == FLITE:
            voice = cfg.flite_voices[extra.integers(len(cfg.flite_voices))]
            person.update(voice=voice, f0=float(FLITE_F0[voice] * _log_uniform(extra, cfg.flite_pitch_range)))
        person.update(formant=float(_log_uniform(extra, cfg.formant_range)),
                      lowpass=float(_log_uniform(extra, cfg.lowpass_range)))
        people.append(person)
    return people


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    low, high = bounds
    return float(np.exp(rng.uniform(np.log(low), np.log(high)))) if high > low else float(low)


def languages_of(speaker: dict, cfg: SpeechSynthConfig) -> tuple[str, ...]:
    """The languages a speaker says: flite speakers the English digits only."""
    if speaker.get("family", ESPEAK) == FLITE:
        return tuple(lang for lang in cfg.languages if lang in FLITE_LANGUAGES)
    return tuple(cfg.languages)


def _trim(x: np.ndarray, rate_hz: int) -> np.ndarray:
    """Cut the synthesizer's leading and trailing silence (keeps 10 ms either side)."""
    loud = np.flatnonzero(np.abs(x) > 0.02 * (np.abs(x).max() + 1e-12))
    if not len(loud):
        return x
    pad = int(0.01 * rate_hz)
    return x[max(loud[0] - pad, 0):loud[-1] + pad]


def warp_formants(x: np.ndarray, fs: int, factor: float, lifter: int = 30, nperseg: int = 512) -> np.ndarray:
    """Move the formants by `factor` and keep the pitch: in each frame (32 ms at 16 kHz, hop 8 ms) the spectral
    envelope (log spectrum smoothed by keeping `lifter` cepstral coefficients, below the pitch's quefrency up to
    ~500 Hz F0) is stretched in frequency, env'(f) = env(f / factor), and the fine structure (the harmonics) kept."""
    if factor == 1.0 or len(x) < 2:
        return x
    pad = nperseg
    _, _, spec = signal.stft(np.pad(x, pad), fs=fs, window="hann", nperseg=nperseg, noverlap=nperseg * 3 // 4)
    log_mag = np.log(np.abs(spec) + 1e-9)
    cepstrum = np.fft.irfft(log_mag, axis=0)
    cepstrum[lifter:cepstrum.shape[0] - lifter + 1] = 0.0  # keep the low quefrencies (both halves)
    envelope = np.fft.rfft(cepstrum, axis=0).real[: spec.shape[0]]
    bins = np.arange(spec.shape[0], dtype=np.float64)
    source = np.minimum(bins / factor, bins[-1])
    low = np.floor(source).astype(int)
    high = np.minimum(low + 1, len(bins) - 1)
    weight = (source - low)[:, None]
    warped = envelope[low] * (1 - weight) + envelope[high] * weight
    gain = np.exp(np.clip(warped - envelope, -8.0, 8.0))  # at most ~70 dB either way
    _, y = signal.istft(spec * gain, fs=fs, window="hann", nperseg=nperseg, noverlap=nperseg * 3 // 4)
    return y[pad:pad + len(x)]


def _drift(raw: np.ndarray, depth: float, rng: np.random.Generator) -> np.ndarray:
    """A slow pitch and tempo drift: the waveform read at a rate exp(depth * s(t)), s a half to one and a half
    cycles of a sine over the word (a rise, a fall or an arch), by linear interpolation."""
    n = len(raw)
    cycles = rng.uniform(0.5, 1.5)
    phase = rng.uniform(0, 2 * np.pi)
    speed = np.exp(depth * np.sin(2 * np.pi * cycles * np.arange(n) / n + phase))
    positions = np.concatenate([[0.0], np.cumsum(speed)])
    positions = positions[positions <= n - 1]
    return np.interp(positions, np.arange(n), raw)


def utterance(label: int, speaker: dict, rng: np.random.Generator, cfg: SpeechSynthConfig,
              voice_rng: np.random.Generator) -> np.ndarray:
    """One spoken digit at cfg.sample_rate, with reverberation and noise, at most max_duration long.

    `rng` draws version 1's traits in version 1's order (with LEGACY settings nothing else is drawn, so
    version 1's clips come out); `voice_rng` draws the newer ones: intonation range, clause mark, drift."""
    language = cfg.languages[label // 10]
    word = WORDS[language][label % 10]
    if language not in languages_of(speaker, cfg):
        raise NeuromemError(f"speech stand-in: a {speaker.get('family')} speaker cannot say {language!r} words")
    contour = None if cfg.contour_range == (100.0, 100.0) else voice_rng.uniform(*cfg.contour_range)
    mark = cfg.clause_marks[voice_rng.integers(len(cfg.clause_marks))] if len(cfg.clause_marks) > 1 else cfg.clause_marks[0]
    if speaker.get("family", ESPEAK) == ESPEAK:
        voice = f"{speaker['accent'] if language == 'en' else language}+{speaker['variant']}"
        pitch = int(np.clip(round(speaker["pitch"] + rng.normal(0, cfg.pitch_jitter)), 0, 99))
        rate = int(round(speaker["rate"] * np.exp(rng.normal(0, cfg.rate_jitter))))
        raw, raw_hz = speak(word, voice, pitch, rate, contour, mark)
    else:
        f0 = speaker["f0"] * np.exp(rng.normal(0, cfg.pitch_jitter / 100))
        stretch = 175.0 / (speaker["rate"] * np.exp(rng.normal(0, cfg.rate_jitter)))
        f0_std = 0.12 * f0 * (contour if contour is not None else 100.0) / 100
        raw, raw_hz = speak_flite(word + mark, speaker["voice"], f0, f0_std, stretch)
    raw = _trim(raw, raw_hz)
    if cfg.drift_depth > 0:
        raw = _drift(raw, cfg.drift_depth, voice_rng)
    # a vocal-tract scale k: the waveform read as if sampled at k * raw_hz (formants and pitch move by k)
    scale = speaker["tract"] * np.exp(rng.normal(0, 0.02))
    x = signal.resample(raw, max(1, int(round(len(raw) * cfg.sample_rate / (raw_hz * scale)))))
    x = warp_formants(x, cfg.sample_rate, speaker.get("formant", 1.0))  # formants alone (the pitch stays)
    x = x / (np.sqrt(np.mean(x**2)) + 1e-12) * 0.05  # the reference level (RMS 0.05)
    if rng.random() < cfg.reverb_probability:
        rt60 = rng.uniform(*cfg.rt60_range)
        n = int(rt60 * cfg.sample_rate)
        tail = rng.normal(0, 1, n) * np.exp(-6.9 * np.arange(n) / n)
        tail *= np.sqrt(rng.uniform(*cfg.reverb_mix_range) / (np.sum(tail**2) + 1e-12))
        impulse = np.concatenate([[1.0], tail])
        x = signal.fftconvolve(x, impulse)[: len(x) + n // 2]
    onset = int(rng.uniform(*cfg.onset_range) * cfg.sample_rate)
    total = min(onset + len(x) + int(0.03 * cfg.sample_rate), int(cfg.max_duration * cfg.sample_rate))
    out = np.zeros(total)
    part = x[: total - onset]
    out[onset:onset + len(part)] = part
    speech_rms = np.sqrt(np.mean(part**2)) + 1e-12
    noise = rng.normal(0, 1, total)
    if rng.random() < 0.5:  # pink-ish (low-frequency heavy) background instead of white
        noise = signal.lfilter([1.0], [1.0, -0.95], noise)
    noise *= speech_rms / (np.sqrt(np.mean(noise**2)) + 1e-12) * 10 ** (-rng.uniform(*cfg.snr_db_range) / 20)
    out = (out + noise) * 10 ** (rng.uniform(*cfg.level_db_range) / 20)
    cutoff = speaker.get("lowpass", cfg.sample_rate / 2)
    if cutoff < 0.475 * cfg.sample_rate:  # the recording channel: room, noise and voice through one low-pass
        level = np.sqrt(np.mean(out**2))
        out = signal.sosfilt(signal.butter(8, cutoff, fs=cfg.sample_rate, output="sos"), out)
        out *= level / (np.sqrt(np.mean(out**2)) + 1e-12)  # the level drawn above, as a recording gain would
    return out


# ---------------------------------------------------------------------------- the cochlea


def erb_space(f_min: float, f_max: float, count: int) -> np.ndarray:
    """Centre frequencies equally spaced on the ERB-rate scale (Glasberg & Moore 1990), low to high."""
    erb = lambda f: 21.4 * np.log10(1 + 0.00437 * f)  # noqa: E731
    rates = np.linspace(erb(f_min), erb(f_max), count)
    return (10 ** (rates / 21.4) - 1) / 0.00437


@lru_cache(maxsize=4)
def _filterbank(f_min: float, f_max: float, count: int, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """scipy's 4th-order IIR gammatone filters as one (count, order + 1) array each of b and a (a[:, 0] = 1)."""
    bank = [signal.gammatone(f, "iir", fs=fs) for f in erb_space(f_min, f_max, count)]
    width = max(max(len(b), len(a)) for b, a in bank)
    b_all, a_all = np.zeros((count, width)), np.zeros((count, width))
    for channel, (b, a) in enumerate(bank):
        b_all[channel, : len(b)], a_all[channel, : len(a)] = b / a[0], a / a[0]
    return b_all, a_all


def _envelope_loop(x, b, a, factor):  # pragma: no cover - compiled
    """Each channel's gammatone output (direct form II transposed, as scipy's lfilter), half-wave
    rectified and averaged over `factor` samples: (channels, len(x) // factor)."""
    channels, width = b.shape
    order = width - 1
    steps = len(x) // factor
    out = np.zeros((channels, steps))
    state = np.zeros(order)
    for c in range(channels):
        state[:] = 0.0
        for step in range(steps):
            total = 0.0
            for i in range(step * factor, (step + 1) * factor):
                xi = x[i]
                y = b[c, 0] * xi + state[0]
                for m in range(order - 1):
                    state[m] = b[c, m + 1] * xi + state[m + 1] - a[c, m + 1] * y
                state[order - 1] = b[c, order] * xi - a[c, order] * y
                if y > 0.0:
                    total += y
            out[c, step] = total / factor
    return out


def _fibre_loop(drive, noise, decay, adapt_decay, adaptation, refractory_steps):  # pragma: no cover - compiled
    """One LIF fibre per channel over the drive (channels, steps): membrane noise, reset to 0,
    refractory steps, an adaptive threshold (1 + a, a += adaptation per spike). Spikes as bool."""
    channels, steps = drive.shape
    spikes = np.zeros((channels, steps), dtype=np.bool_)
    for c in range(channels):
        v, extra, blocked = 0.0, 0.0, 0
        for t in range(steps):
            extra *= adapt_decay
            if blocked > 0:
                blocked -= 1
                v = 0.0
                continue
            v = decay * v + (1.0 - decay) * drive[c, t] + noise[c, t]
            if v >= 1.0 + extra:
                spikes[c, t] = True
                v = 0.0
                extra += adaptation
                blocked = refractory_steps
    return spikes


@lru_cache(maxsize=1)
def _compiled() -> tuple:
    """The two loops compiled by numba (it comes with tonic) on first use, so that importing this
    module (the data-set registry does) stays cheap; without numba, the same loops in Python."""
    try:
        from numba import njit
    except ImportError:  # pragma: no cover
        return _envelope_loop, _fibre_loop
    return njit(cache=True, nogil=True)(_envelope_loop), njit(cache=True, nogil=True)(_fibre_loop)


def _rectified_envelope(x: np.ndarray, b: np.ndarray, a: np.ndarray, factor: int) -> np.ndarray:
    return _compiled()[0](np.ascontiguousarray(x, dtype=np.float64), b, a, factor)


def hair_cell_drive(x: np.ndarray, cfg: SpeechSynthConfig) -> np.ndarray:
    """Waveform -> the fibres' drive (channels, steps): gammatone filterbank, then the inner hair cell
    (half-wave rectification, low-pass + decimation, power-law compression); the reference level
    (RMS 0.05) drives a fibre at lif_gain thresholds."""
    b, a = _filterbank(cfg.f_min, cfg.f_max, cfg.channels, cfg.sample_rate)
    drive = _rectified_envelope(x, b, a, _decimation(cfg))
    return drive**cfg.compression * (cfg.lif_gain / 0.05**cfg.compression)


def _decimation(cfg: SpeechSynthConfig) -> int:
    return max(1, int(round(cfg.sample_rate / cfg.step_hz)))


def cochlea(x: np.ndarray, rng: np.random.Generator, cfg: SpeechSynthConfig,
            channel_gain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Waveform -> spikes: (times s, units) sorted by time. Unit 0 is the lowest frequency.
    `channel_gain` (channels,) scales the drive of each fibre (a speaker's gain control; see data.convert)."""
    drive = hair_cell_drive(x, cfg)
    return fibres(drive if channel_gain is None else drive * channel_gain[:, None], rng, cfg)


def fibres(drive: np.ndarray, rng: np.random.Generator, cfg: SpeechSynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """The drive (channels, steps) -> spikes of one LIF fibre per channel: (times s, units) sorted by time."""
    factor = _decimation(cfg)
    dt = factor / cfg.sample_rate
    noise = rng.normal(0.0, cfg.membrane_noise, drive.shape)
    spikes = _compiled()[1](drive, noise, np.exp(-dt / cfg.lif_tau), np.exp(-dt / cfg.adaptation_tau),
                         cfg.adaptation, int(round(cfg.refractory / dt)))
    units, steps = np.nonzero(spikes)
    times = steps * dt
    order = np.argsort(times, kind="stable")
    return times[order], units[order]


def _clip(job: tuple) -> tuple[np.ndarray, np.random.Generator, SpeechSynthConfig]:
    """One clip (label, speaker, seeds, config) -> its waveform, the generator the cochlea goes on with, the config."""
    label, speaker, rng_seed, cfg_dict = job
    cfg = SpeechSynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_dict.items()})
    rng = np.random.default_rng(rng_seed)
    voice_rng = np.random.default_rng([*rng_seed, 5])
    return utterance(label, speaker, rng, cfg, voice_rng), rng, cfg


def render(job: tuple, channel_gain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One clip (label, speaker, seeds, config) -> spikes. A pure function of its job: workers run it."""
    x, rng, cfg = _clip(job)
    return cochlea(x, rng, cfg, channel_gain)


MAX_GAIN = 16.0  # a speaker's channel is raised or lowered by at most 24 dB


def speaker_gains(drives: np.ndarray, speaker_ids: np.ndarray, speakers: int) -> np.ndarray:
    """Per speaker, per channel gains (speakers, channels) that bring each speaker's long-term spectrum at the
    fibres (the geometric mean over its clips of their mean drive, `drives` (clips, channels)) to the
    reference: the geometric mean of the speakers' spectra. Speaker-level gain control, the spiking analogue
    of per-speaker cepstral mean normalization: it removes what is constant in a voice and its microphone
    (spectral tilt, formant region levels) and needs only the speaker's unlabelled clips and the reference.
    Bounded by MAX_GAIN. A speaker without clips keeps gain 1."""
    log = np.log(np.maximum(drives, 1e-12))
    present = [s for s in range(speakers) if np.any(speaker_ids == s)]
    per_speaker = np.zeros((speakers, drives.shape[1]))
    for s in present:
        per_speaker[s] = log[speaker_ids == s].mean(axis=0)
    reference = per_speaker[present].mean(axis=0)
    gains = np.exp(np.clip(reference - per_speaker, -np.log(MAX_GAIN), np.log(MAX_GAIN)))
    gains[[s for s in range(speakers) if s not in present]] = 1.0
    return gains


def _mean_drive_job(job: tuple) -> np.ndarray:
    x, _, cfg = _clip(job[:4])
    return hair_cell_drive(x, cfg).mean(axis=1)


# ---------------------------------------------------------------------------- the build


def _jobs(cfg: SpeechSynthConfig, seed: int, people: list[dict]) -> dict[str, list[tuple]]:
    cfg_dict = asdict(cfg)
    jobs = {}
    for split_index, split in enumerate(("train", "test")):
        per_class = cfg.train_per_class if split == "train" else cfg.test_per_class
        ids = range(cfg.train_speakers) if split == "train" else range(cfg.train_speakers, len(people))
        jobs[split] = []
        for label in range(10 * len(cfg.languages)):
            # the speakers who say this word's language (flite speakers: English only)
            language = cfg.languages[label // 10]
            speaking = np.asarray([i for i in ids if language in languages_of(people[i], cfg)])
            rng = np.random.default_rng([seed, 0, split_index, label])
            # every speaker says every word about equally often, as in the real recordings
            order = np.concatenate([rng.permutation(speaking)
                                    for _ in range(-(-per_class // len(speaking)))])[:per_class]
            for index, speaker_id in enumerate(order):
                jobs[split].append((label, int(speaker_id), [seed, 1, split_index, label, index]))
    return {split: [(label, people[sid], rng_seed, cfg_dict, sid) for label, sid, rng_seed in items]
            for split, items in jobs.items()}


def _render_job(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    return render(job[:4], job[5] if len(job) > 5 else None)


def synthesizers(cfg: SpeechSynthConfig, seed: int) -> dict[str, str]:
    """The version line of each synthesizer the build uses (a missing one: one clear line saying so); flite
    only where some speaker is a flite voice."""
    versions = {"espeak": espeak_version()}  # espeak-ng lists the voice variants, so it is always needed
    if _weight(cfg, FLITE) > 0 and FLITE in speaker_families(cfg, seed):
        versions["flite"] = flite_version()
    return versions


def build_fingerprint(cfg: SpeechSynthConfig, seed: int) -> str:
    """What a cached build must match: generator version, synthesizer versions, configuration, seed."""
    check_config(cfg)
    config = asdict(cfg)
    if not cfg.speaker_gain:  # added later: builds without it keep their fingerprint
        del config["speaker_gain"]
    blob = json.dumps({"version": GENERATOR_VERSION, **synthesizers(cfg, seed), "config": config, "seed": seed},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_speech(root: str | os.PathLike, seed: int = 0, cfg: SpeechSynthConfig = SpeechSynthConfig(),
                 workers: int | None = None, force: bool = False) -> dict:
    """Write ROOT/SHD/shd_{train,test}.h5 and the synthetic marker; reuse a build with the same parameters.

    Returns the marker (with "cached": True when nothing had to be built, and "seconds").
    """
    fingerprint = build_fingerprint(cfg, seed)  # also the checks of the config and that the synthesizers are there
    root = Path(root).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise NeuromemError(f"cannot create data root {root}: {error.strerror}") from None
    previous = read_marker(root)
    if previous is None and ((root / "SHD").exists() or (root / "NMNIST").exists()):
        raise NeuromemError(f"{root} already holds data without the synthetic marker ({MARKER_NAME}), probably real data; "
                            "write the speech stand-in into another folder")
    if previous is not None and previous.get("generator") != GENERATOR:
        raise NeuromemError(f"{root} holds data written by {previous.get('generator')!r} (the embedded default?); "
                            "write the speech stand-in into a folder of its own")
    files = [formats.shd_path(root, split) for split in ("train", "test")]
    if not force and previous and previous.get("fingerprint") == fingerprint and all(p.is_file() for p in files):
        return {**previous, "cached": True, "seconds": 0.0}

    started = time.perf_counter()
    people = speakers(cfg, seed)
    jobs = _jobs(cfg, seed, people)
    workers = max(1, workers or os.cpu_count() or 1)
    summary = {}
    everything = jobs["train"] + jobs["test"]
    if cfg.speaker_gain:  # a first pass measures each speaker's long-term spectrum at the fibres
        gains = speaker_gains(np.stack(map_jobs(_mean_drive_job, everything, workers)),
                              np.array([job[4] for job in everything]), len(people))
        everything = [(*job, gains[job[4]]) for job in everything]
    results = map_jobs(_render_job, everything, workers)
    offset = 0
    for split in ("train", "test"):
        part = results[offset:offset + len(jobs[split])]
        offset += len(jobs[split])
        labels = np.array([job[0] for job in jobs[split]])
        who = np.array([job[4] for job in jobs[split]])
        formats.write_shd(formats.shd_path(root, split), [t for t, _ in part], [u for _, u in part], labels, who,
                          keys_of(cfg.languages))
        summary[split] = {"samples": len(labels), "events": int(sum(len(t) for t, _ in part)),
                          "speakers": sorted({int(s) for s in who})}
    marker = {"generator": GENERATOR, "version": GENERATOR_VERSION, "seed": seed, "fingerprint": fingerprint,
              **synthesizers(cfg, seed), "speakers": people,
              "modalities": {"shd": {"kind": "speech", "config": asdict(cfg), "splits": summary}}, "complete": True}
    tmp = root / f".{MARKER_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, root / MARKER_NAME)
    return {**marker, "cached": False, "seconds": round(time.perf_counter() - started, 2)}


def map_jobs(function, jobs: list, workers: int, progress: Callable[[int, int], None] | None = None,
             offset: int = 0, total: int | None = None) -> list:
    """`function` over `jobs` in order, in worker processes when workers > 1; progress counts from `offset`."""
    total = total or len(jobs)
    results = []
    if workers == 1:
        for done, job in enumerate(jobs, 1):
            results.append(function(job))
            if progress:
                progress(offset + done, total)
        return results
    # spawn: the parent may hold torch / OpenMP threads, which fork does not copy safely
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        for done, result in enumerate(pool.imap(function, jobs, chunksize=4), 1):
            results.append(result)
            if progress:
                progress(offset + done, total)
    return results


def _write_stand_in(root: Path, seed: int, cfg: SpeechSynthConfig) -> dict:
    return write_speech(root, seed, cfg)


# SHD's registry entry (neuromem.data.sets.shd) offers this as `--kind speech`; it keeps its own marker (a cached build)
STAND_IN = StandIn("speech", "espeak-ng and flite spoken digits (EN + DE; speakers with formant warps, pitch contours, "
                   "recording channels; noise, reverberation) through a 700-channel spiking cochlea "
                   "(neuromem.data.synth.speech); needs espeak-ng (and flite for its flite speakers)", SpeechSynthConfig,
                   _write_stand_in,
                   writes_marker=True)
