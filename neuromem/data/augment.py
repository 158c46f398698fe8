"""Training-time augmentation of binned event data, as small composable callables (after tonic's transforms).

Each transform is a frozen record with one strength and a `__call__(x, generator)` over a float batch
(batch, T, *input_shape) of event counts; it draws one random setting per sample from `generator` (a
seeded `torch.Generator`: same seed, same augmented batches). They act on the binned frames the trainer
already holds, so an augmented run costs no re-binning and no cache space. Where a transform needs the
channel axis (1-D inputs: cochlear channels, lowest frequency first) it says so when built for another shape.

    time_shift=S     shift in time by up to S bins either way (zeros come in)
    time_stretch=F   play faster or slower by a factor up to 1+F (log-uniform), from t = 0
    channel_shift=C  shift along the channels by up to C either way (a pitch / formant shift on a cochlea)
    freq_warp=A      vocal-tract-length perturbation: every frequency f is read from alpha f, alpha in
                     [1-A, 1+A] (Jaitly & Hinton 2013), on the cochlea's ERB-spaced centre frequencies
    drop=P           each event is dropped with probability P
    noise=R          background events: R per channel and bin on average
    mask_channels=W  one band of up to W adjacent channels is silenced (SpecAugment's frequency mask)

`--augment time_stretch=0.15,freq_warp=0.1` builds them in the given order (`parse_augment`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
import torch

from neuromem.errors import NeuromemError


def _uniform(generator: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def _gather_time(x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """out[b, t] = x[b, source[b, t]], zero where source is out of range. source: (B, T) long."""
    steps = x.shape[1]
    valid = (source >= 0) & (source < steps)
    index = source.clamp(0, steps - 1).view(*source.shape, *([1] * (x.dim() - 2))).expand_as(x)
    return torch.gather(x, 1, index) * valid.view(*valid.shape, *([1] * (x.dim() - 2))).to(x.dtype)


def _gather_channels(x: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """out[b, :, c] = x[b, :, source[b, c]], zero where out of range. x: (B, T, C); source: (B, C) long."""
    channels = x.shape[2]
    valid = (source >= 0) & (source < channels)
    index = source.clamp(0, channels - 1)[:, None, :].expand_as(x)
    return torch.gather(x, 2, index) * valid[:, None, :].to(x.dtype)


def _shifted(batch: int, size: int, most: int, generator: torch.Generator) -> torch.Tensor:
    """Source positions (batch, size) of a shift by a whole amount in [-most, most] per sample."""
    shift = torch.randint(-most, most + 1, (batch, 1), generator=generator)
    return torch.arange(size)[None, :] - shift


@dataclass(frozen=True)
class Augmentation:
    name: ClassVar[str]
    needs_channels: ClassVar[bool] = False  # reads a 1-D channel axis
    valid: ClassVar[str]  # what a valid strength is, for the one-line error
    strength: float

    def check(self) -> None:
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class _Whole(Augmentation):
    """A strength that counts bins or channels."""

    def check(self) -> None:
        if not (self.strength >= 0 and float(self.strength).is_integer()):
            raise ValueError


@dataclass(frozen=True)
class TimeShift(_Whole):
    name: ClassVar[str] = "time_shift"
    valid: ClassVar[str] = "a whole number of bins >= 0"


    def __call__(self, x, generator):
        return _gather_time(x, _shifted(x.shape[0], x.shape[1], int(self.strength), generator))


@dataclass(frozen=True)
class TimeStretch(Augmentation):
    name: ClassVar[str] = "time_stretch"
    valid: ClassVar[str] = "a number in [0, 1)"

    def check(self) -> None:
        if not 0 <= self.strength < 1:
            raise ValueError

    def __call__(self, x, generator):
        batch, steps = x.shape[:2]
        bound = np.log1p(self.strength)
        factor = torch.exp(_uniform(generator, batch, -bound, bound))[:, None]
        source = torch.floor(torch.arange(steps, dtype=torch.float64)[None, :] / factor).long()
        return _gather_time(x, source)


@dataclass(frozen=True)
class ChannelShift(_Whole):
    name: ClassVar[str] = "channel_shift"
    needs_channels: ClassVar[bool] = True
    valid: ClassVar[str] = "a whole number of channels >= 0"


    def __call__(self, x, generator):
        return _gather_channels(x, _shifted(x.shape[0], x.shape[2], int(self.strength), generator))


@lru_cache(maxsize=8)
def _centre_frequencies(channels: int) -> np.ndarray:
    from neuromem.data.synth.speech import SpeechSynthConfig, erb_space

    cfg = SpeechSynthConfig()
    return erb_space(cfg.f_min, cfg.f_max, channels)


@dataclass(frozen=True)
class FrequencyWarp(Augmentation):
    name: ClassVar[str] = "freq_warp"
    needs_channels: ClassVar[bool] = True
    valid: ClassVar[str] = "a number in [0, 0.5]"

    def check(self) -> None:
        if not 0 <= self.strength <= 0.5:
            raise ValueError

    def __call__(self, x, generator):
        batch, _, channels = x.shape
        centres = _centre_frequencies(channels)
        alpha = _uniform(generator, batch, 1 - self.strength, 1 + self.strength).numpy()
        # channel c now carries what the unwarped cochlea heard at alpha * f_c (nearest channel)
        warped = np.interp(np.log(alpha[:, None] * centres[None, :]), np.log(centres), np.arange(channels),
                           left=-1, right=channels)
        return _gather_channels(x, torch.from_numpy(np.rint(warped).astype(np.int64)))


@dataclass(frozen=True)
class EventDrop(Augmentation):
    name: ClassVar[str] = "drop"
    valid: ClassVar[str] = "a probability in [0, 1)"

    def check(self) -> None:
        if not 0 <= self.strength < 1:
            raise ValueError

    def __call__(self, x, generator):
        keep = torch.full_like(x, 1.0 - self.strength)
        return torch.binomial(x, keep, generator=generator)


@dataclass(frozen=True)
class NoiseEvents(Augmentation):
    name: ClassVar[str] = "noise"
    valid: ClassVar[str] = "a rate in [0, 1] events per channel and bin"

    def check(self) -> None:
        if not 0 <= self.strength <= 1:
            raise ValueError

    def __call__(self, x, generator):
        return x + (torch.rand(x.shape, generator=generator) < self.strength).to(x.dtype)


@dataclass(frozen=True)
class ChannelMask(_Whole):
    name: ClassVar[str] = "mask_channels"
    needs_channels: ClassVar[bool] = True
    valid: ClassVar[str] = "a whole number of channels >= 0"


    def __call__(self, x, generator):
        batch, _, channels = x.shape
        width = torch.randint(0, int(self.strength) + 1, (batch, 1), generator=generator)
        start = (torch.rand(batch, 1, generator=generator) * (channels - width + 1)).long()
        c = torch.arange(channels)[None, :]
        keep = ~((c >= start) & (c < start + width))
        return x * keep[:, None, :].to(x.dtype)


AUGMENTATIONS: dict[str, type[Augmentation]] = {
    cls.name: cls for cls in (TimeShift, TimeStretch, ChannelShift, FrequencyWarp, EventDrop, NoiseEvents, ChannelMask)
}


def build(name: str, strength: Any, input_shape: tuple[int, ...] | None = None) -> Augmentation:
    """One transform, validated; `input_shape` (per time bin) checks that it applies to the data."""
    cls = AUGMENTATIONS.get(name)
    if cls is None:
        raise NeuromemError(f"--augment {name!r} is not known; valid: {', '.join(AUGMENTATIONS)}")
    try:
        value = float(strength)
        transform = cls(value)
        transform.check()
    except (TypeError, ValueError):
        raise NeuromemError(f"--augment {name}={strength!r}: the strength must be {cls.valid}") from None
    if input_shape is not None and cls.needs_channels and len(input_shape) != 1:
        raise NeuromemError(f"--augment {name} reads a channel axis: it applies to 1-D inputs (cochlear channels, "
                            f"e.g. shd, ssc), not to inputs of shape {tuple(input_shape)}")
    return transform


def parse_augment(text: str) -> tuple[tuple[str, float], ...]:
    """"time_stretch=0.15,freq_warp=0.1" -> (("time_stretch", 0.15), ("freq_warp", 0.1)); "none" or "" -> ()."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    pairs = []
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise NeuromemError(f"--augment {part.strip()!r}: expected NAME=STRENGTH, e.g. freq_warp=0.1; "
                                f"valid names: {', '.join(AUGMENTATIONS)}")
        transform = build(name.strip(), value.strip())
        if any(existing == transform.name for existing, _ in pairs):
            raise NeuromemError(f"--augment names {transform.name} twice")
        pairs.append((transform.name, transform.strength))
    return tuple(pairs)


class Compose:
    """The transforms of a cell's `augment` record, in order, over one batch."""

    def __init__(self, pairs, input_shape: tuple[int, ...]) -> None:
        self.transforms = [build(name, strength, input_shape) for name, strength in pairs]

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x, generator)
        return x

    def __bool__(self) -> bool:
        return bool(self.transforms)
