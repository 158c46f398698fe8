"""SHD-like spoken digits: phoneme-built spectro-temporal templates on a 700-channel cochlea.

Each of the 20 words (0-9 English, 10-19 German, as in SHD) is a sequence of
phonemes. Vowels and liquids are formant tracks (Gaussian bands over channels
whose centres glide between neighbouring phonemes' targets: coarticulation),
fricatives are noise bands, plosives a closure then a broadband burst, voiced
sounds add a band at the speaker's pitch. Channels map log frequency
(80 Hz .. 8 kHz) to 0..699, so a speaker's vocal-tract length is a channel
shift. Words share phonemes (nine/neun/eins, six/sechs, seven/sieben, five/
fünf/four/vier ...), so classes overlap the way real spoken digits do.

Per sample: a speaker (pitch, vocal-tract scale, speaking rate, loudness;
two speakers appear only in the test split, as in SHD), per-phoneme duration
jitter (a non-linear time warp), formant jitter, onset delay, loudness and
background spikes. Spikes are Poisson draws from the resulting rate map.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuromem.data import formats

CHANNELS = formats.SHD_CHANNELS
F_MIN, F_MAX = 80.0, 8000.0
DT = 0.005  # rate-map step (s); spike times are uniform inside a step
MAX_DURATION = 1.5  # s; later spikes are not generated (SHD words last up to ~1.4 s)
TRAIN_SPEAKERS = 10
TEST_ONLY_SPEAKERS = 2
SPEAKER_SEED = 2020  # fixed, so the speakers are the same people whatever the sample seed

# vowels and liquids: (F1, F2, F3) Hz, nominal duration s, amplitude
FORMANTS = {
    "i": ((280, 2250, 2900), 0.10, 1.0), "I": ((400, 1900, 2550), 0.09, 1.0), "e": ((450, 2000, 2600), 0.09, 1.0),
    "E": ((580, 1800, 2500), 0.10, 1.0), "a": ((730, 1100, 2450), 0.11, 1.0), "A": ((760, 1250, 2550), 0.11, 1.0),
    "o": ((500, 900, 2400), 0.11, 1.0), "u": ((320, 900, 2300), 0.11, 1.0), "U": ((400, 1050, 2350), 0.09, 1.0),
    "y": ((280, 1650, 2200), 0.10, 1.0), "@": ((500, 1450, 2450), 0.07, 0.8),
    "r": ((350, 1250, 1700), 0.06, 0.6), "l": ((360, 1000, 2600), 0.06, 0.6), "w": ((300, 650, 2200), 0.05, 0.6),
    "n": ((250, 1300, 2500), 0.07, 0.45), "v": ((300, 1400, 2400), 0.06, 0.3),
    # used by the SSC stand-in's words only (SHD's digits do not contain them)
    "m": ((250, 1100, 2300), 0.07, 0.45), "j": ((280, 2200, 3000), 0.05, 0.6),
}
NOT_VOWELS = {"r", "l", "w", "n", "v", "m", "j"}  # liquids, glides and nasals: never a word's first vowel
# noise: (low Hz, high Hz, duration s, relative rate, voiced)
NOISES = {
    "s": (4000, 8000, 0.10, 1.0, False), "z": (3800, 8000, 0.08, 0.8, True), "f": (1500, 8000, 0.09, 0.35, False),
    "th": (2000, 8000, 0.08, 0.3, False), "x": (1000, 2600, 0.10, 0.7, False), "v": (1500, 6000, 0.06, 0.25, True),
    "sh": (2000, 7000, 0.10, 0.9, False), "h": (500, 4000, 0.07, 0.3, False),
}
# plosives: (closure s, burst s, burst low Hz, burst high Hz, voiced)
PLOSIVES = {
    "t": (0.04, 0.02, 2500, 8000, False), "d": (0.03, 0.015, 1500, 6000, True),
    "k": (0.04, 0.025, 1200, 3500, False), "b": (0.03, 0.015, 200, 3000, True),
    "g": (0.03, 0.02, 1000, 3000, True), "p": (0.04, 0.02, 300, 3500, False),
}
# the digits as phoneme strings ("ai" etc. are written as two vowel targets: the track glides between them)
WORDS = [
    ("zero", "z I r o u"), ("one", "w a n"), ("two", "t u"), ("three", "th r i"), ("four", "f o r"),
    ("five", "f a i v"), ("six", "s I k s"), ("seven", "s E v @ n"), ("eight", "e i t"), ("nine", "n a i n"),
    ("null", "n U l"), ("eins", "a i n s"), ("zwei", "t s v a i"), ("drei", "d r a i"), ("vier", "f i @"),
    ("fuenf", "f y n f"), ("sechs", "z E k s"), ("sieben", "z i b @ n"), ("acht", "A x t"), ("neun", "n o i n"),
]
KEYS = [f"english-{w}" if i < 10 else f"german-{w}" for i, (w, _) in enumerate(WORDS)]


@dataclass(frozen=True)
class SHDSynthConfig:
    train_per_class: int = 100
    test_per_class: int = 30
    word_stretch: float = 1.7  # isolated, carefully spoken digits: ~0.5-1.0 s per word
    formant_rate: float = 80.0  # Hz per channel at a formant's centre, amplitude 1
    noise_rate: float = 45.0  # Hz per channel in a fricative band, relative rate 1
    burst_rate: float = 120.0
    voicing_rate: float = 70.0
    background_rate: tuple[float, float] = (0.5, 2.5)  # Hz per channel, drawn per sample
    duration_jitter: float = 0.2  # log-normal sigma of each phoneme's duration
    formant_jitter: float = 0.07  # relative sigma of each formant target
    onset_range: tuple[float, float] = (0.02, 0.25)  # s of silence before the word
    tract_range: tuple[float, float] = (0.84, 1.2)  # speakers' vocal-tract (formant) scale
    tract_jitter: float = 0.04  # per-utterance relative sigma around the speaker's scale
    channel_gain_sigma: float = 0.25  # per-utterance smooth random gain over channels (log-normal sigma)
    phoneme_drop: float = 0.08  # probability that an unstressed phoneme (not the first vowel) is swallowed


def channel_of(freq_hz):
    return (CHANNELS - 1) * (np.log(freq_hz) - np.log(F_MIN)) / (np.log(F_MAX) - np.log(F_MIN))


def speakers(count: int = TRAIN_SPEAKERS + TEST_ONLY_SPEAKERS, tract_range=(0.88, 1.15)) -> list[dict]:
    rng = np.random.default_rng(SPEAKER_SEED)
    return [{"tract": rng.uniform(*tract_range), "pitch": rng.uniform(95, 230), "rate": rng.uniform(0.8, 1.2),
             "loudness": rng.uniform(0.75, 1.25)} for _ in range(count)]


def _segments(word: str, speaker: dict, rng: np.random.Generator, cfg: SHDSynthConfig):
    """The word's phonemes laid out in time: a list of (kind, symbol, start s, end s)."""
    tempo = speaker["rate"] * rng.normal(1.0, 0.08) / cfg.word_stretch
    t = rng.uniform(*cfg.onset_range)
    segments = []
    previous = None
    symbols = word.split()
    first_vowel = next(i for i, sym in enumerate(symbols) if sym in FORMANTS and sym not in NOT_VOWELS)
    for index, symbol in enumerate(symbols):
        if index != first_vowel and len(symbols) > 2 and rng.random() < cfg.phoneme_drop:
            continue
        stretch = np.exp(rng.normal(0, cfg.duration_jitter)) / tempo
        if symbol in PLOSIVES:
            closure, burst, *_ = PLOSIVES[symbol]
            t += closure * stretch
            segments.append(("plosive", symbol, t, t + burst * stretch))
            t += burst * stretch
            continue
        kind = "noise" if symbol in NOISES and (symbol != "v" or previous in NOISES) else "voiced"
        duration = (NOISES[symbol][2] if kind == "noise" else FORMANTS[symbol][1]) * stretch
        segments.append((kind, symbol, t, t + duration))
        if symbol == "v" and kind == "voiced":  # a voiced fricative: formants and frication together
            segments.append(("noise", symbol, t, t + duration))
        t += duration
        previous = symbol
    return segments


def _rate_map(segments, speaker: dict, rng: np.random.Generator, cfg: SHDSynthConfig) -> np.ndarray:
    end = min(max(s[3] for s in segments) + 0.03, MAX_DURATION)
    steps = int(np.ceil(end / DT))
    times = (np.arange(steps) + 0.5) * DT
    channels = np.arange(CHANNELS)
    pad = 64  # room for band tails past the edge channels; cropped at the end
    rate = np.zeros((steps, CHANNELS + 2 * pad))
    tract = speaker["tract"] * rng.normal(1.0, cfg.tract_jitter)
    shift = channel_of(tract * 1000.0) - channel_of(1000.0)  # vocal-tract scale = a channel shift

    def span(start, stop):
        return slice(int(start / DT), max(int(start / DT) + 1, int(np.ceil(stop / DT))))

    # formant tracks: targets at each voiced phoneme's centre, linear glides in between
    voiced = [s for s in segments if s[0] == "voiced"]
    amplitude = np.zeros(steps)
    voicing = np.zeros(steps)
    if voiced:
        centres = np.array([(s[2] + s[3]) / 2 for s in voiced])
        targets = np.array([FORMANTS[s[1]][0] for s in voiced], dtype=float)
        targets *= rng.normal(1.0, cfg.formant_jitter, targets.shape)
        for s in voiced:
            amplitude[span(s[2], s[3])] = FORMANTS[s[1]][2]
            voicing[span(s[2], s[3])] = 1.0
        active = np.flatnonzero(amplitude)
        offsets = np.arange(-pad + 1, pad)
        for k, width in enumerate((9.0, 11.0, 13.0)):
            centre = channel_of(np.interp(times[active], centres, targets[:, k])) + shift
            nearest = np.clip(np.round(centre).astype(int), 0, CHANNELS - 1)
            # each band only where it matters (+-4.9 widths), written into the padded map
            band = np.exp(-0.5 * ((nearest[:, None] + offsets[None, :] - centre[:, None]) / width) ** 2)
            columns = nearest[:, None] + offsets[None, :] + pad
            rate[active[:, None], columns] += cfg.formant_rate * (1.0 - 0.2 * k) * amplitude[active, None] * band
    for kind, symbol, start, stop in segments:
        if kind == "noise":
            low, high, _, relative, is_voiced = NOISES[symbol]
            lo, hi = int(channel_of(low) + shift), int(channel_of(high) + shift)
            rate[span(start, stop), pad + max(lo, 0):pad + min(hi, CHANNELS)] += cfg.noise_rate * relative
            if is_voiced:
                voicing[span(start, stop)] = 1.0
        elif kind == "plosive":
            _, _, low, high, is_voiced = PLOSIVES[symbol]
            lo, hi = int(channel_of(low) + shift), int(channel_of(high) + shift)
            rate[span(start, stop), pad + max(lo, 0):pad + min(hi, CHANNELS)] += cfg.burst_rate
            if is_voiced:
                voicing[span(start - 0.02, stop)] = 1.0
    rate = rate[:, pad:pad + CHANNELS]
    if cfg.channel_gain_sigma > 0:  # recording / cochlea variation: a smooth random gain profile over channels
        knots = rng.normal(0.0, cfg.channel_gain_sigma, 8)
        rate *= np.exp(np.interp(channels, np.linspace(0, CHANNELS - 1, 8), knots))[None, :]
    pitch_channel = channel_of(speaker["pitch"] * rng.normal(1.0, 0.04))
    near = slice(max(int(pitch_channel) - 25, 0), int(pitch_channel) + 26)
    pitch_band = np.exp(-0.5 * ((channels[near] - pitch_channel) / 5.0) ** 2)
    rate[:, near] += cfg.voicing_rate * voicing[:, None] * pitch_band[None, :]
    return rate * (speaker["loudness"] * rng.uniform(0.8, 1.2))


def sample_spikes(word: str, speaker: dict, rng: np.random.Generator, cfg: SHDSynthConfig):
    """One utterance: (times s float64 sorted, units int) ."""
    rate = _rate_map(_segments(word, speaker, rng, cfg), speaker, rng, cfg)
    cells = np.flatnonzero(rate)  # draw only where the map is non-zero: most of it is silence
    counts = rng.poisson(rate.ravel()[cells] * DT)
    cells = np.repeat(cells, counts)
    step, unit = np.divmod(cells, CHANNELS)
    times = (step + rng.uniform(0, 1, len(step))) * DT
    n_background = rng.poisson(rng.uniform(*cfg.background_rate) * CHANNELS * MAX_DURATION)
    times = np.concatenate([times, rng.uniform(0, MAX_DURATION, n_background)])
    units = np.concatenate([unit, rng.integers(0, CHANNELS, n_background)])
    order = np.argsort(times, kind="stable")
    return times[order], units[order]


def write_words(path_of_split, words: list[str], keys: list[str], per_class: dict[str, int],
                speaker_pools: dict[str, list[int]], seed: int, stream: int, cfg: SHDSynthConfig) -> dict:
    """Write one Heidelberg-layout file per split: `per_class[split]` utterances of each word (label = index),
    spoken by the speakers of `speaker_pools[split]`; `stream` keeps data sets' random draws apart."""
    people = speakers(count=max(i for pool in speaker_pools.values() for i in pool) + 1, tract_range=cfg.tract_range)
    summary = {}
    for split_index, (split, count) in enumerate(per_class.items()):
        pool = np.asarray(speaker_pools[split])

        def utterances(split_index=split_index, count=count, pool=pool):
            for label, word in enumerate(words):
                rng = np.random.default_rng([seed, stream, split_index, label])
                # every speaker says every word about equally often, as in the real recordings
                order = np.concatenate([rng.permutation(pool) for _ in range(-(-count // len(pool)))])[:count]
                for speaker_id in order:
                    t, u = sample_spikes(word, people[speaker_id], rng, cfg)
                    yield t, u, label, speaker_id
        # streamed: one utterance in memory at a time, whatever the split's size
        events = formats.write_heidelberg_stream(path_of_split(split), count * len(words), utterances(), keys)
        summary[split] = {"samples": count * len(words), "events": events}
    return summary


def write_shd(root: str | Path, seed: int = 0, cfg: SHDSynthConfig = SHDSynthConfig()) -> dict:
    """Write ROOT/SHD/shd_{train,test}.h5; returns counts per split. Two speakers appear only in the test split."""
    pools = {"train": list(range(TRAIN_SPEAKERS)), "test": list(range(TRAIN_SPEAKERS + TEST_ONLY_SPEAKERS))}
    return write_words(lambda split: formats.shd_path(root, split), [word for _, word in WORDS], KEYS,
                       {"train": cfg.train_per_class, "test": cfg.test_per_class}, pools, seed, 0, cfg)
