"""Spoken digits from real speech synthesis: espeak-ng voices through a 700-channel spiking cochlea.

A realistic SHD stand-in. espeak-ng speaks the digits 0-9 in English (labels
0-9) and German (labels 10-19), as in SHD. A *speaker* is an espeak-ng voice
variant (a distinct vocal tract, glottal source and intonation), an English
accent, a base pitch, speaking rate and a vocal-tract scale (the waveform is
resampled, moving formants and pitch together); every speaker says every
word in both languages, and the speakers of the test split never occur in
the training split. Each utterance then gets its own pitch, rate and loudness
jitter, a random onset, room reverberation (an exponentially decaying noise
impulse response) and background noise at a random SNR — all drawn from a
generator seeded by (seed, split, index), so a build is a pure function of
its configuration and seed.

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
import time
import wave
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import signal

from neuromem.data import formats
from neuromem.data.base import StandIn
from neuromem.data.paths import MARKER_NAME, read_marker
from neuromem.errors import NeuromemError

GENERATOR = "neuromem.data.synth.speech"
GENERATOR_VERSION = 1  # bump whenever the generated data change: a cached build is then rewritten
ESPEAK = "espeak-ng"
MISSING_ESPEAK = ("espeak-ng is not installed, so the speech stand-in cannot be built: install it "
                  "(`apt-get install espeak-ng` as root, or `make espeak`) or use the embedded default "
                  "(`neuromem data synth`)")

WORDS = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "de": ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
}
KEYS = [f"english-{w}" for w in WORDS["en"]] + [f"german-{w.replace('ü', 'ue')}" for w in WORDS["de"]]
ENGLISH_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
# variants that do not sound like a person speaking (robots, whispering, effects)
NON_HUMAN_VARIANTS = ("robot", "demonic", "croak", "whisper", "tweaky", "storm", "mr serious")


@dataclass(frozen=True)
class SpeechSynthConfig:
    train_per_class: int = 150
    test_per_class: int = 30
    train_speakers: int = 40  # distinct voice variants; the test speakers are further variants
    test_speakers: int = 12
    sample_rate: int = 16000
    channels: int = formats.SHD_CHANNELS
    f_min: float = 80.0
    f_max: float = 7000.0
    max_duration: float = 1.4  # s; SHD words last up to ~1.4 s
    pitch_range: tuple[float, float] = (25.0, 75.0)  # espeak-ng -p (0-99) per speaker
    rate_range: tuple[float, float] = (130.0, 200.0)  # espeak-ng -s, words per minute, per speaker
    tract_range: tuple[float, float] = (0.9, 1.12)  # per-speaker frequency scale (resampling)
    pitch_jitter: float = 6.0  # per utterance, in espeak-ng pitch units
    rate_jitter: float = 0.08  # per utterance, relative
    onset_range: tuple[float, float] = (0.02, 0.2)  # s of silence (noise) before the word
    snr_db_range: tuple[float, float] = (8.0, 30.0)
    reverb_probability: float = 0.7
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


def speak(text: str, voice: str, pitch: int, rate: int) -> tuple[np.ndarray, int]:
    """espeak-ng's waveform (float64 in [-1, 1]) and its sample rate."""
    result = subprocess.run([ESPEAK, "-v", voice, "-p", str(pitch), "-s", str(rate), "--stdout", text],
                            capture_output=True, check=False)
    if result.returncode != 0 or len(result.stdout) < 64:
        raise NeuromemError(f"espeak-ng failed for voice {voice!r}: {result.stderr.decode(errors='replace').strip()}")
    data = result.stdout
    # espeak-ng streams a wav whose header sizes are placeholders: read the format, then all samples after "data"
    with wave.open(io.BytesIO(data[:44])) as header:
        rate_hz, width = header.getframerate(), header.getsampwidth()
    start = data.find(b"data") + 8
    samples = np.frombuffer(data[start:start + (len(data) - start) // width * width], dtype=np.int16)
    return samples.astype(np.float64) / 32768.0, rate_hz


# ---------------------------------------------------------------------------- speakers and utterances


def speakers(cfg: SpeechSynthConfig, seed: int) -> list[dict]:
    """The train speakers, then the test speakers: each one voice variant (never shared between splits)."""
    variants = voice_variants()
    needed = cfg.train_speakers + cfg.test_speakers
    if needed > len(variants):
        raise NeuromemError(f"speech stand-in: {needed} speakers asked for (train {cfg.train_speakers} + test "
                            f"{cfg.test_speakers}), but espeak-ng has only {len(variants)} usable voice variants")
    rng = np.random.default_rng([seed, 7])
    chosen = [variants[i] for i in rng.permutation(len(variants))[:needed]]
    return [{"variant": v, "accent": ENGLISH_ACCENTS[rng.integers(len(ENGLISH_ACCENTS))],
             "pitch": float(rng.uniform(*cfg.pitch_range)), "rate": float(rng.uniform(*cfg.rate_range)),
             "tract": float(rng.uniform(*cfg.tract_range))} for v in chosen]


def _trim(x: np.ndarray, rate_hz: int) -> np.ndarray:
    """Cut espeak-ng's leading and trailing silence (keeps 10 ms either side)."""
    loud = np.flatnonzero(np.abs(x) > 0.02 * (np.abs(x).max() + 1e-12))
    if not len(loud):
        return x
    pad = int(0.01 * rate_hz)
    return x[max(loud[0] - pad, 0):loud[-1] + pad]


def utterance(label: int, speaker: dict, rng: np.random.Generator, cfg: SpeechSynthConfig) -> np.ndarray:
    """One spoken digit at cfg.sample_rate, with reverberation and noise, at most max_duration long."""
    language = "en" if label < 10 else "de"
    voice = f"{speaker['accent'] if language == 'en' else 'de'}+{speaker['variant']}"
    pitch = int(np.clip(round(speaker["pitch"] + rng.normal(0, cfg.pitch_jitter)), 0, 99))
    rate = int(round(speaker["rate"] * np.exp(rng.normal(0, cfg.rate_jitter))))
    raw, raw_hz = speak(WORDS[language][label % 10], voice, pitch, rate)
    raw = _trim(raw, raw_hz)
    # a vocal-tract scale k: the waveform read as if sampled at k * raw_hz (formants and pitch move by k)
    scale = speaker["tract"] * np.exp(rng.normal(0, 0.02))
    x = signal.resample(raw, max(1, int(round(len(raw) * cfg.sample_rate / (raw_hz * scale)))))
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
    return (out + noise) * 10 ** (rng.uniform(*cfg.level_db_range) / 20)


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


def cochlea(x: np.ndarray, rng: np.random.Generator, cfg: SpeechSynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Waveform -> spikes: (times s, units) sorted by time. Unit 0 is the lowest frequency."""
    b, a = _filterbank(cfg.f_min, cfg.f_max, cfg.channels, cfg.sample_rate)
    factor = max(1, int(round(cfg.sample_rate / cfg.step_hz)))
    # inner hair cell: half-wave rectification, low-pass + decimation, power-law compression;
    # the reference level (RMS 0.05) drives a fibre at lif_gain thresholds
    drive = _rectified_envelope(x, b, a, factor)
    drive = drive**cfg.compression * (cfg.lif_gain / 0.05**cfg.compression)
    dt = factor / cfg.sample_rate
    noise = rng.normal(0.0, cfg.membrane_noise, drive.shape)
    spikes = _compiled()[1](drive, noise, np.exp(-dt / cfg.lif_tau), np.exp(-dt / cfg.adaptation_tau),
                         cfg.adaptation, int(round(cfg.refractory / dt)))
    units, steps = np.nonzero(spikes)
    times = steps * dt
    order = np.argsort(times, kind="stable")
    return times[order], units[order]


def render(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    """One clip (label, speaker, seeds, config) -> spikes. A pure function of its job: workers run it."""
    label, speaker, rng_seed, cfg_dict = job
    cfg = SpeechSynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_dict.items()})
    rng = np.random.default_rng(rng_seed)
    return cochlea(utterance(label, speaker, rng, cfg), rng, cfg)


# ---------------------------------------------------------------------------- the build


def _jobs(cfg: SpeechSynthConfig, seed: int, people: list[dict]) -> dict[str, list[tuple]]:
    cfg_dict = asdict(cfg)
    jobs = {}
    for split_index, split in enumerate(("train", "test")):
        per_class = cfg.train_per_class if split == "train" else cfg.test_per_class
        ids = range(cfg.train_speakers) if split == "train" else range(cfg.train_speakers, len(people))
        ids = np.asarray(list(ids))
        jobs[split] = []
        for label in range(20):
            rng = np.random.default_rng([seed, 0, split_index, label])
            # every speaker says every word about equally often, as in the real recordings
            order = np.concatenate([rng.permutation(ids) for _ in range(-(-per_class // len(ids)))])[:per_class]
            for index, speaker_id in enumerate(order):
                jobs[split].append((label, int(speaker_id), [seed, 1, split_index, label, index]))
    return {split: [(label, people[sid], rng_seed, cfg_dict, sid) for label, sid, rng_seed in items]
            for split, items in jobs.items()}


def _render_job(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    return render(job[:4])


def build_fingerprint(cfg: SpeechSynthConfig, seed: int) -> str:
    """What a cached build must match: generator version, espeak-ng version, configuration, seed."""
    blob = json.dumps({"version": GENERATOR_VERSION, "espeak": espeak_version(), "config": asdict(cfg), "seed": seed},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_speech(root: str | os.PathLike, seed: int = 0, cfg: SpeechSynthConfig = SpeechSynthConfig(),
                 workers: int | None = None, force: bool = False) -> dict:
    """Write ROOT/SHD/shd_{train,test}.h5 and the synthetic marker; reuse a build with the same parameters.

    Returns the marker (with "cached": True when nothing had to be built, and "seconds").
    """
    for name in ("train_per_class", "test_per_class", "train_speakers", "test_speakers"):
        if getattr(cfg, name) < 1:
            raise NeuromemError(f"speech stand-in: {name} must be >= 1, got {getattr(cfg, name)}")
    fingerprint = build_fingerprint(cfg, seed)  # also the check that espeak-ng is there
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
    if workers == 1:
        results = [_render_job(job) for job in everything]
    else:
        # spawn: the parent may hold torch / OpenMP threads, which fork does not copy safely
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            results = pool.map(_render_job, everything, chunksize=8)
    offset = 0
    for split in ("train", "test"):
        part = results[offset:offset + len(jobs[split])]
        offset += len(jobs[split])
        labels = np.array([job[0] for job in jobs[split]])
        who = np.array([job[4] for job in jobs[split]])
        formats.write_shd(formats.shd_path(root, split), [t for t, _ in part], [u for _, u in part], labels, who, KEYS)
        summary[split] = {"samples": len(labels), "events": int(sum(len(t) for t, _ in part)),
                          "speakers": sorted({int(s) for s in who})}
    marker = {"generator": GENERATOR, "version": GENERATOR_VERSION, "seed": seed, "fingerprint": fingerprint,
              "espeak": espeak_version(), "speakers": people,
              "modalities": {"shd": {"kind": "speech", "config": asdict(cfg), "splits": summary}}, "complete": True}
    tmp = root / f".{MARKER_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, root / MARKER_NAME)
    return {**marker, "cached": False, "seconds": round(time.perf_counter() - started, 2)}


def _write_stand_in(root: Path, seed: int, cfg: SpeechSynthConfig) -> dict:
    return write_speech(root, seed, cfg)


# SHD's registry entry (neuromem.data.sets.shd) offers this as `--kind speech`; it keeps its own marker (a cached build)
STAND_IN = StandIn("speech", "espeak-ng spoken digits (EN + DE voices, noise, reverberation) through a 700-channel "
                   "spiking cochlea (neuromem.data.synth.speech); needs espeak-ng", SpeechSynthConfig, _write_stand_in,
                   writes_marker=True)
