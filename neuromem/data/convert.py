"""Real recordings in: a folder of labelled audio files -> the SHD layout, through neuromem's cochlea.

`neuromem data convert --audio DIR --root R` reads every file whose name matches a
pattern (default `{label}_{speaker}_{index}.wav`, the Free Spoken Digit Dataset's
naming), normalizes its level, runs it through the 700-channel spiking cochlea of
the speech stand-in (`neuromem.data.synth.speech.cochlea`: gammatone filterbank,
hair cell, one LIF fibre per channel) and writes `R/SHD/shd_{train,test}.h5` in the
published layout, speakers in `extra/speaker` (ids into the sorted speaker names,
which `R/SHD/speakers.json` lists). The split is chosen by speakers
(`--test-speakers a,b` or `--held-out-speakers N`) or, by default, by the data
set's own rule (FSDD: recordings 0-4 of every speaker are its test set, so test
speakers are seen speakers). `neuromem ablate --cv speakers` pools both splits and
holds out one speaker per fold, whatever split was written.

The conversion is a pure function of the files, the pattern, the split and the
cochlea settings: its fingerprint is kept in `R/SHD/converted.json` (written last,
after both files have appeared atomically), and a conversion with the same
fingerprint is not redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import wave
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import signal

from neuromem.data import formats
from neuromem.errors import NeuromemError

CONVERTER_VERSION = 1  # bump whenever the written spikes change for the same input
MARKER = "converted.json"
SPEAKERS = "speakers.json"
DEFAULT_PATTERN = "{label}_{speaker}_{index}.wav"
FIELDS = ("label", "speaker", "index")
REFERENCE_RMS = 0.05  # the cochlea's reference level (synth.speech: RMS 0.05 drives a fibre at lif_gain)
MAX_FILES = 1_000_000
# the cochlea's own settings: what the spikes of a recording depend on (the stand-in's other fields do not enter)
COCHLEA_FIELDS = ("sample_rate", "channels", "f_min", "f_max", "compression", "step_hz", "lif_tau", "lif_gain",
                  "refractory", "adaptation", "adaptation_tau", "membrane_noise", "max_duration")  # far above any spoken-digit corpus: a bound before anything is read


@dataclass(frozen=True)
class ConvertConfig:
    pattern: str = DEFAULT_PATTERN
    test_speakers: tuple[str, ...] = ()  # these speakers are the test split
    held_out_speakers: int = 0  # or this many, drawn with `seed`
    test_index_below: int = 5  # or (the data set's own rule, FSDD) recordings with index < this are test
    seed: int = 0
    max_duration: float = 1.4  # s: longer recordings are cut (SHD's window)
    # "speaker": each speaker's channel gains equalized (synth.speech.speaker_gains); the default since the
    # leave-one-speaker-out table of datasets/speakers.md (every memory +12 to +19 points on unseen speakers)
    normalize: str = "speaker"

    def identity(self) -> dict:
        """The settings a conversion's fingerprint holds (normalize not when "none", so a root converted before
        the field existed is recognized as that conversion)."""
        fields = asdict(self)
        if self.normalize == "none":
            del fields["normalize"]
        return fields


NORMALIZATIONS = ("none", "speaker")
GAINS = "speaker_gains.npy"


def pattern_regex(pattern: str) -> re.Pattern:
    """`{label}_{speaker}_{index}.wav` -> a regex with one named group per field; every field must appear once."""
    for name in re.findall(r"{(\w*)}", pattern):
        if name not in FIELDS:
            raise NeuromemError(f"--pattern {pattern!r}: unknown field {{{name}}}; valid fields: "
                                f"{', '.join('{' + f + '}' for f in FIELDS)}")
    for name in ("label", "speaker"):
        if pattern.count("{" + name + "}") != 1:
            raise NeuromemError(f"--pattern {pattern!r} must name {{{name}}} exactly once, e.g. {DEFAULT_PATTERN}")
    parts, position = [], 0
    for match in re.finditer(r"{(\w+)}", pattern):
        parts.append(re.escape(pattern[position:match.start()]))
        name = match.group(1)
        parts.append(f"(?P<{name}>[0-9]+)" if name in ("label", "index") else f"(?P<{name}>[^/]+?)")
        position = match.end()
    parts.append(re.escape(pattern[position:]))
    return re.compile("^" + "".join(parts) + "$")


@dataclass(frozen=True)
class Recording:
    path: Path
    label: int
    speaker: str
    index: int


def find_recordings(audio: Path, pattern: str) -> list[Recording]:
    """Every regular file directly in `audio` whose name matches; sorted (speaker, label, index, name)."""
    if not audio.is_dir():
        raise NeuromemError(f"--audio {audio}: not a folder; give the folder that holds the recordings")
    regex = pattern_regex(pattern)
    found = []
    for count, entry in enumerate(os.scandir(audio)):
        if count > MAX_FILES:
            raise NeuromemError(f"--audio {audio}: more than {MAX_FILES:,} entries; give a folder of recordings")
        match = regex.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        fields = match.groupdict()
        found.append(Recording(Path(entry.path), int(fields["label"]), fields["speaker"], int(fields.get("index") or 0)))
    if not found:
        raise NeuromemError(f"--audio {audio}: no file matches --pattern {pattern!r} "
                            f"(e.g. 7_george_12.wav for {DEFAULT_PATTERN})")
    return sorted(found, key=lambda r: (r.speaker, r.label, r.index, r.path.name))


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A PCM wav as float64 mono in [-1, 1] and its sample rate; one line naming the file when it is not one."""
    try:
        with wave.open(str(path), "rb") as file:
            rate, width, channels, frames = (file.getframerate(), file.getsampwidth(), file.getnchannels(),
                                             file.getnframes())
            if frames > rate * 60:
                raise NeuromemError(f"{path}: {frames / rate:.0f} s long; spoken-word recordings of at most 60 s are valid")
            data = file.readframes(frames)
    except (wave.Error, EOFError, OSError) as error:
        raise NeuromemError(f"{path} is not a readable PCM wav file ({error}); valid: 8/16/32-bit PCM .wav") from None
    kinds = {1: (np.uint8, 128.0, 128.0), 2: (np.int16, 0.0, 32768.0), 4: (np.int32, 0.0, 2.0**31)}
    if width not in kinds:
        raise NeuromemError(f"{path}: {8 * width}-bit samples; valid: 8, 16 or 32-bit PCM")
    dtype, offset, scale = kinds[width]
    samples = (np.frombuffer(data[: len(data) // width * width], dtype=dtype).astype(np.float64) - offset) / scale
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    if rate <= 0 or samples.size == 0:
        raise NeuromemError(f"{path}: no samples (rate {rate} Hz, {samples.size} samples)")
    return samples, rate


def _waveform(path: Path, cochlea_config, max_duration: float) -> np.ndarray:
    """A recording resampled to the cochlea's rate, at the reference level, at most `max_duration` long."""
    x, rate = read_wav(path)
    fs = cochlea_config.sample_rate
    if rate != fs:
        x = signal.resample_poly(x, fs, rate)
    x = x[: int(max_duration * fs)]
    x = x - x.mean()
    return x / (np.sqrt(np.mean(x**2)) + 1e-12) * REFERENCE_RMS


def encode(path: Path, seed: list[int], cochlea_config, max_duration: float,
           channel_gain: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One recording -> (times s, units) through the cochlea (`channel_gain`: its speaker's, or None).
    A pure function of its arguments (workers run it)."""
    from neuromem.data.synth.speech import cochlea

    return cochlea(_waveform(path, cochlea_config, max_duration), np.random.default_rng(seed), cochlea_config,
                   channel_gain)


def mean_drive(path: Path, cochlea_config, max_duration: float) -> np.ndarray:
    """One recording's mean hair-cell drive per channel (channels,): its long-term spectrum at the fibres."""
    from neuromem.data.synth.speech import hair_cell_drive

    return hair_cell_drive(_waveform(path, cochlea_config, max_duration), cochlea_config).mean(axis=1)


def _encode_job(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    return encode(*job)


def _drive_job(job: tuple) -> np.ndarray:
    return mean_drive(*job)


def choose_test_speakers(speakers: list[str], cfg: ConvertConfig) -> tuple[str, ...] | None:
    """The test split's speakers, or None for the data set's own (per-recording) rule."""
    if cfg.test_speakers and cfg.held_out_speakers:
        raise NeuromemError("give --test-speakers or --held-out-speakers, not both")
    if cfg.test_speakers:
        unknown = [s for s in cfg.test_speakers if s not in speakers]
        if unknown:
            raise NeuromemError(f"--test-speakers {','.join(unknown)}: no such speaker; valid: {', '.join(speakers)}")
        if len(set(cfg.test_speakers)) >= len(speakers):
            raise NeuromemError(f"--test-speakers names every speaker ({', '.join(speakers)}); leave at least one to train on")
        return tuple(cfg.test_speakers)
    if cfg.held_out_speakers:
        if not 1 <= cfg.held_out_speakers < len(speakers):
            raise NeuromemError(f"--held-out-speakers {cfg.held_out_speakers}: valid 1..{len(speakers) - 1} "
                                f"({len(speakers)} speakers found)")
        order = np.random.default_rng(cfg.seed).permutation(len(speakers))[: cfg.held_out_speakers]
        return tuple(sorted(speakers[i] for i in order))
    return None


def fingerprint(recordings: list[Recording], cfg: ConvertConfig, cochlea_config) -> str:
    files = [[r.path.name, r.path.stat().st_size, r.path.stat().st_mtime_ns] for r in recordings]
    blob = json.dumps({"version": CONVERTER_VERSION, "files": files, "config": cfg.identity(),
                       "cochlea": cochlea_settings(cochlea_config)}, sort_keys=True, default=list)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cochlea_settings(cochlea_config) -> dict:
    return {name: getattr(cochlea_config, name) for name in COCHLEA_FIELDS}


def read_conversion(root: Path) -> dict | None:
    try:
        return json.loads((Path(root) / "SHD" / MARKER).read_text())
    except (OSError, ValueError):
        return None


def speaker_names(root: Path) -> list[str] | None:
    """The names behind the speaker ids of a converted root (None where the root has no such list)."""
    try:
        names = json.loads((Path(root) / "SHD" / SPEAKERS).read_text())
    except (OSError, ValueError):
        return None
    return [str(n) for n in names] if isinstance(names, list) else None


def _atomic_json(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


def convert(audio: str | os.PathLike, root: str | os.PathLike, cfg: ConvertConfig = ConvertConfig(),
            workers: int | None = None, force: bool = False,
            progress: Callable[[int, int], None] | None = None) -> dict:
    """Convert `audio` into ROOT/SHD/shd_{train,test}.h5; returns the conversion record (with "cached")."""
    from neuromem.data.paths import read_marker
    from neuromem.data.synth.speech import SpeechSynthConfig, map_jobs, speaker_gains

    audio, root = Path(audio).expanduser(), Path(root).expanduser()
    if cfg.normalize not in NORMALIZATIONS:
        raise NeuromemError(f"--normalize {cfg.normalize!r}: valid: {', '.join(NORMALIZATIONS)}")
    recordings = find_recordings(audio, cfg.pattern)
    if root.resolve() == audio.resolve() or audio.resolve() in root.resolve().parents:
        raise NeuromemError(f"--root {root} lies inside --audio {audio}; write the converted data elsewhere")
    if read_marker(root) is not None:
        raise NeuromemError(f"--root {root} holds a synthetic stand-in (its marker file is there); convert into a folder of its own")
    cochlea_config = replace(SpeechSynthConfig(), max_duration=cfg.max_duration)
    stamp = fingerprint(recordings, cfg, cochlea_config)
    previous = read_conversion(root)
    files = {split: formats.shd_path(root, split) for split in ("train", "test")}
    if previous is None and any(p.exists() for p in files.values()):
        raise NeuromemError(f"--root {root} already holds SHD files that neuromem did not convert; choose another --root")
    if not force and previous and previous.get("fingerprint") == stamp and all(p.is_file() for p in files.values()):
        return {**previous, "cached": True}

    speakers = sorted({r.speaker for r in recordings})
    labels = sorted({r.label for r in recordings})
    if len(labels) < 2:
        raise NeuromemError(f"--audio {audio}: every recording has label {labels[0]}; a task needs at least 2 classes")
    if labels[-1] >= formats.SHD_CLASSES:
        raise NeuromemError(f"--audio {audio}: label {labels[-1]} found; the SHD layout holds labels 0..{formats.SHD_CLASSES - 1}")
    test_speakers = choose_test_speakers(speakers, cfg)
    in_test = [(r.speaker in test_speakers) if test_speakers is not None else (r.index < cfg.test_index_below)
               for r in recordings]
    if all(in_test) or not any(in_test):
        raise NeuromemError(f"the split leaves the {'train' if all(in_test) else 'test'} split empty; "
                            "give --test-speakers, --held-out-speakers or another --test-index-below")

    workers = max(1, min(workers or os.cpu_count() or 1, len(recordings)))
    speaker_ids = np.array([speakers.index(r.speaker) for r in recordings])
    gains = None
    passes = 2 if cfg.normalize == "speaker" else 1
    if cfg.normalize == "speaker":  # a first pass measures each speaker's long-term spectrum at the fibres
        drives = map_jobs(_drive_job, [(r.path, cochlea_config, cfg.max_duration) for r in recordings], workers,
                      progress, 0, passes * len(recordings))
        gains = speaker_gains(np.stack(drives), speaker_ids, len(speakers))
    # every recording's cochlea noise is seeded by its position in the sorted list: same files, same spikes
    jobs = [(r.path, [cfg.seed, 9, i], cochlea_config, cfg.max_duration, None if gains is None else gains[speaker_ids[i]])
            for i, r in enumerate(recordings)]
    spikes = map_jobs(_encode_job, jobs, workers, progress, (passes - 1) * len(recordings), passes * len(recordings))

    (root / "SHD").mkdir(parents=True, exist_ok=True)
    (root / "SHD" / MARKER).unlink(missing_ok=True)  # the record goes last: files without it are not trusted
    keys = [str(label) for label in range(labels[-1] + 1)]
    summary = {}
    for split, flag in (("train", False), ("test", True)):
        chosen = [i for i, test in enumerate(in_test) if test == flag]
        formats.write_shd(files[split], [spikes[i][0] for i in chosen], [spikes[i][1] for i in chosen],
                          np.array([recordings[i].label for i in chosen]),
                          np.array([speakers.index(recordings[i].speaker) for i in chosen]), keys)
        summary[split] = {"samples": len(chosen), "events": int(sum(len(spikes[i][0]) for i in chosen)),
                          "speakers": sorted({recordings[i].speaker for i in chosen})}
    _atomic_json(root / "SHD" / SPEAKERS, speakers)
    if gains is not None:
        tmp = root / "SHD" / f".{GAINS}.{os.getpid()}.tmp.npy"
        np.save(tmp, gains)
        os.replace(tmp, root / "SHD" / GAINS)
    else:
        (root / "SHD" / GAINS).unlink(missing_ok=True)
    record = {"converter": "neuromem.data.convert", "version": CONVERTER_VERSION, "fingerprint": stamp,
              "audio": str(audio.resolve()), "recordings": len(recordings), "speakers": speakers,
              "classes": len(keys), "config": asdict(cfg),
              "normalize": ("speaker: each speaker's channel gains (SHD/" + GAINS + ") bring its long-term spectrum at "
                            "the fibres to the speakers' geometric mean; computed from every recording of the speaker, "
                            "unlabelled") if gains is not None else "none", "cochlea": cochlea_settings(cochlea_config),
              "split": "speakers " + ",".join(test_speakers) + " are test" if test_speakers is not None
              else f"the data set's own rule: recordings with index < {cfg.test_index_below} are test (seen speakers)",
              "splits": summary}
    _atomic_json(root / "SHD" / MARKER, record)
    return {**record, "cached": False}
