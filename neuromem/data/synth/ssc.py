"""SSC-like spoken commands: the 35 Speech Commands words built like the SHD stand-in's digits.

The same phoneme templates on the same 700-channel cochlea as `synth.shd`
(formant tracks, noise bands, plosive bursts, speaker pitch and vocal-tract
scale, Poisson spikes), with the words of Speech Commands v0.02, which SSC
converted (Cramer et al. 2020). Words are short (the source clips last 1 s),
and, as in Speech Commands' hash-based partition, each speaker appears in
one split only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from neuromem.data.synth.shd import SHDSynthConfig, write_words

# the 35 classes in label order (see neuromem.data.sets.ssc.CLASS_NAMES), as phoneme strings
WORDS = {
    "backward": "b a k w @ r d", "bed": "b E d", "bird": "b @ r d", "cat": "k a t", "dog": "d A g",
    "down": "d a u n", "eight": "e i t", "five": "f a i v", "follow": "f A l o u", "forward": "f o r w @ r d",
    "four": "f o r", "go": "g o u", "happy": "h a p i", "house": "h a u s", "learn": "l @ r n",
    "left": "l E f t", "marvin": "m A r v I n", "nine": "n a i n", "no": "n o u", "off": "A f",
    "on": "A n", "one": "w a n", "right": "r a i t", "seven": "s E v @ n", "sheila": "sh i l @",
    "six": "s I k s", "stop": "s t A p", "three": "th r i", "tree": "t r i", "two": "t u",
    "up": "@ p", "visual": "v I z u @ l", "wow": "w a u", "yes": "j E s", "zero": "z I r o u",
}
SPEAKER_POOLS = {"train": list(range(0, 10)), "valid": list(range(10, 12)), "test": list(range(12, 16))}


@dataclass(frozen=True)
class SSCSynthConfig(SHDSynthConfig):
    train_per_class: int = 10
    valid_per_class: int = 2
    test_per_class: int = 4
    word_stretch: float = 1.2  # commands fit in 1 s clips: ~0.35-0.8 s per word
    onset_range: tuple[float, float] = (0.02, 0.15)


def ssc_path(root: str | Path, split: str) -> Path:
    return Path(root) / "SSC" / f"ssc_{split}.h5"


def write_ssc(root: str | Path, seed: int = 0, cfg: SSCSynthConfig = SSCSynthConfig()) -> dict:
    """Write ROOT/SSC/ssc_{train,valid,test}.h5 in the Heidelberg layout; returns counts per split."""
    per_class = {"train": cfg.train_per_class, "valid": cfg.valid_per_class, "test": cfg.test_per_class}
    return write_words(lambda split: ssc_path(root, split), list(WORDS.values()), list(WORDS), per_class,
                       SPEAKER_POOLS, seed, 2, cfg)
