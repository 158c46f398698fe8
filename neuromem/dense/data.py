"""A tri-modal paired digit data set from what ships offline.

Each sample is one concept (a digit 0-9) in three senses:

- audio: a spoken digit from the SHD-format data (700-channel cochlear
  spike counts, labels 0-9 English, 10-19 German), pooled into a
  (freq, time) count spectrogram; the encoder sees log(1 + counts);
- image: a handwritten digit of the same value from scikit-learn's bundled
  `load_digits` (8x8), upscaled to the network's image size;
- text: the digit's word in the spoken sample's language ("seven" /
  "sieben") inside a short template, as character tokens.

Images are split into disjoint train/test pools, so test images are unseen.
Pairing is by digit and is a pure function of the seed. `batch(...,
audio_noise=r)` adds Poisson background events (r per original channel and
time bin), the shifted distribution of the test-time-adaptation experiments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from neuromem.errors import NeuromemError

NUM_DIGITS = 10
SHD_CHANNELS = 700
WORDS = {
    "en": ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    "de": ("null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"),
}
LANGUAGES = ("en", "de")  # SHD label // 10
TEMPLATES = {
    "en": ("{}", "digit {}", "the number {}", "a spoken {}", "{} please"),
    "de": ("{}", "ziffer {}", "die zahl {}", "eine gesprochene {}", "{} bitte"),
}
PAD, UNKNOWN = 0, 1
ALPHABET = " abcdefghijklmnopqrstuvwxyzäöüß"
CHAR_IDS = {ch: i + 2 for i, ch in enumerate(ALPHABET)}
VOCAB_SIZE = len(ALPHABET) + 2
IMAGE_TEST_FRACTION = 0.3


def tokenize(text: str, length: int) -> np.ndarray:
    """Character ids padded with PAD to `length` (longer text is an error, not a silent cut)."""
    if len(text) > length:
        raise ValueError(f"text {text!r} has {len(text)} characters; max_text_length is {length}")
    ids = np.full(length, PAD, dtype=np.int64)
    ids[: len(text)] = [CHAR_IDS.get(ch, UNKNOWN) for ch in text.lower()]
    return ids


def digit_images(split: str) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits in [0, 1] (N, 8, 8) and their labels; a fixed disjoint train/test split."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    cut = int(len(order) * (1 - IMAGE_TEST_FRACTION))
    rows = order[:cut] if split == "train" else order[cut:]
    return (digits.images[rows] / 16.0).astype(np.float32), digits.target[rows].astype(np.int64)


def pool_counts(counts: np.ndarray, freq: int, time: int) -> np.ndarray:
    """(N, T, 700) event counts -> (N, freq, time) summed counts (adaptive pooling over both axes)."""
    x = torch.as_tensor(np.asarray(counts, dtype=np.float32)).transpose(1, 2)  # (N, 700, T)
    cells = (x.shape[1] / freq) * (x.shape[2] / time)
    return (F.adaptive_avg_pool2d(x.unsqueeze(1), (freq, time)).squeeze(1) * cells).numpy()


@dataclass
class TriModalDigits:
    text: np.ndarray  # (N, L) int64 character ids
    images: np.ndarray  # (N, 8, 8) float32 in [0, 1]
    audio: np.ndarray  # (N, freq, time) float32 pooled event counts
    digits: np.ndarray  # (N,) int64 concept
    languages: np.ndarray  # (N,) int64 0 = English, 1 = German
    cells_per_bin: float  # original (channel, time) bins pooled into one spectrogram cell

    def __len__(self) -> int:
        return len(self.digits)

    def batch(
        self,
        indices,
        image_size: int,
        image_channels: int,
        audio_noise: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Network-ready tensors for the given rows: text (B, L), images (B, C, S, S), audio (B, 1, F, T), digits."""
        indices = np.asarray(indices)
        images = torch.from_numpy(self.images[indices]).unsqueeze(1)
        if image_size != images.shape[-1]:
            images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
        counts = torch.from_numpy(self.audio[indices])
        if audio_noise > 0:
            counts = counts + torch.poisson(torch.full_like(counts, audio_noise * self.cells_per_bin), generator)
        text = self.text[indices]
        text = text[:, : max(1, int((text != PAD).sum(1).max()))]  # drop all-padding columns: shorter attention
        return {
            "text": torch.from_numpy(text),
            "images": images.expand(-1, image_channels, -1, -1).contiguous(),
            "audio": torch.log1p(counts).unsqueeze(1),
            "digits": torch.from_numpy(self.digits[indices]),
        }


def pair_trimodal(
    audio_counts: np.ndarray, audio_labels: np.ndarray, split: str, freq: int, time: int, max_text_length: int, seed: int
) -> TriModalDigits:
    """Pair every spoken digit with a same-digit image of the split's pool and a same-language text."""
    audio_counts, audio_labels = np.asarray(audio_counts), np.asarray(audio_labels, dtype=np.int64)
    if audio_counts.ndim != 3 or audio_counts.shape[2] != SHD_CHANNELS or len(audio_counts) != len(audio_labels):
        raise ValueError(f"audio must be (N, T, {SHD_CHANNELS}) counts with N labels; got {audio_counts.shape}")
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    images, image_digits = digit_images(split)
    digits, languages = audio_labels % NUM_DIGITS, audio_labels // NUM_DIGITS
    by_digit = [np.flatnonzero(image_digits == d) for d in range(NUM_DIGITS)]
    image_rows = np.array([rng.choice(by_digit[d]) for d in digits], dtype=np.int64)
    texts = []
    for digit, language in zip(digits, languages):
        code = LANGUAGES[language]
        template = TEMPLATES[code][rng.integers(len(TEMPLATES[code]))]
        texts.append(tokenize(template.format(WORDS[code][digit]), max_text_length))
    cells = (SHD_CHANNELS / freq) * (audio_counts.shape[1] / time)
    return TriModalDigits(
        text=np.stack(texts), images=images[image_rows], audio=pool_counts(audio_counts, freq, time).astype(np.float32),
        digits=digits, languages=languages, cells_per_bin=cells,
    )  # fmt: skip


def load_trimodal(
    data_root: str | os.PathLike, split: str, freq: int, time: int, max_text_length: int, seed: int = 0
) -> TriModalDigits:
    """The tri-modal set built on the SHD-format data under `data_root` (see `neuromem.data`)."""
    from neuromem.data import load_split  # the data layer; imported late so the dense path stays light

    try:
        shd = load_split("shd", data_root, split)
    except FileNotFoundError as error:
        raise NeuromemError(f"no SHD data for the tri-modal set under {data_root}: {error}") from None
    return pair_trimodal(shd.inputs, shd.labels, split, freq, time, max_text_length, seed)
