"""N-MNIST-like events from real handwritten digits, made the way N-MNIST itself was made.

Orchard et al. (2015) put MNIST digits on a monitor and moved an ATIS event
camera in three saccades (a triangle, ~105 ms each); pixels fired ON/OFF events
where log intensity changed by a contrast threshold. Here the digits are
scikit-learn's 1,797 real 8x8 handwritten digits (shipped offline), each
warped (rotation, scale, shear, stroke blur, contrast, position) into the
34x34 field; the camera path is the published triangle with jittered
amplitude and timing; events are level crossings of log intensity with a
per-pixel threshold mismatch (as in DVS models), plus background-activity noise.
Train and test use disjoint source images.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from neuromem.data import formats

SENSOR = formats.NMNIST_SIZE
STEP_US = 1_500  # simulation step; event times are spread uniformly inside a step (bins are ~10 ms)
SACCADE_US = 105_000
TEST_FRACTION = 0.25  # of each class's source images, held out for the test split
SPLIT_SEED = 2015  # fixed, so the held-out source images do not depend on the sample seed
# the camera path of the real recordings (tonic's `stabilize` undoes exactly this triangle), in pixels
TRIANGLE = np.array([[0.0, 0.0], [3.5, 7.0], [7.0, 0.0], [0.0, 0.0]])


@dataclass(frozen=True)
class NMNISTSynthConfig:
    train_per_class: int = 200
    test_per_class: int = 50
    contrast_threshold: float = 0.5  # log-intensity step per event (mean over pixels)
    threshold_mismatch: float = 0.05  # std of the per-pixel threshold
    noise_events: float = 150.0  # mean background-activity events per sample
    max_rotation_deg: float = 12.0
    scale_range: tuple[float, float] = (0.85, 1.1)
    max_shear: float = 0.1
    max_offset_px: float = 1.5
    saccade_jitter: float = 0.15  # relative amplitude jitter of each saccade


def source_images() -> tuple[np.ndarray, np.ndarray, dict[str, list[np.ndarray]]]:
    """scikit-learn's digits (float 0..1) and, per split, per class, the indices of its source images."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0
    labels = digits.target.astype(np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    pools: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    for digit in range(formats.NMNIST_CLASSES):
        idx = rng.permutation(np.flatnonzero(labels == digit))
        n_test = int(round(TEST_FRACTION * len(idx)))
        pools["test"].append(np.sort(idx[:n_test]))
        pools["train"].append(np.sort(idx[n_test:]))
    return images, labels, pools


def _scene(image8: np.ndarray, rng: np.random.Generator, cfg: NMNISTSynthConfig, margin: int) -> np.ndarray:
    """The digit as the monitor showed it, sampled on a sensor-resolution canvas with room for the saccades."""
    size = SENSOR + 2 * margin
    angle = np.deg2rad(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
    # an 8x8 digit (which fills its box) spans ~18-23 px, as MNIST's 20x20 digits did on the 34x34 sensor
    scale = rng.uniform(*cfg.scale_range) * 8.0 / 21.0  # source px per canvas px
    shear = rng.uniform(-cfg.max_shear, cfg.max_shear)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = scale * rot @ np.array([[1.0, shear], [0.0, 1.0]])
    # the sensor window follows the camera, on average (row 2.3, col 3.5) px along: centre the digit there
    centre_out = np.array([margin + (SENSOR - 1) / 2 + 2.3, margin + (SENSOR - 1) / 2 + 3.5]) + rng.uniform(-cfg.max_offset_px, cfg.max_offset_px, 2)
    offset = np.array([3.5, 3.5]) - matrix @ centre_out
    padded = np.pad(image8, 2)
    scene = ndimage.affine_transform(padded, matrix, offset=offset + 2, output_shape=(size, size), order=3, mode="constant")
    scene = ndimage.gaussian_filter(np.clip(scene, 0, 1), rng.uniform(0.3, 0.9))
    return (np.clip(scene, 0, 1) * rng.uniform(0.7, 1.0)).astype(np.float32)


def _camera_path(rng: np.random.Generator, cfg: NMNISTSynthConfig, steps: int) -> np.ndarray:
    """(steps, 2) camera offset (row, col) in pixels along the jittered three-saccade triangle."""
    corners = TRIANGLE * (1 + cfg.saccade_jitter * rng.uniform(-1, 1, TRIANGLE.shape))
    corners[-1] = corners[0]
    # saccade boundaries jitter by a few ms; motion eases in and out like a pan-tilt unit
    bounds = np.array([0, SACCADE_US, 2 * SACCADE_US, 3 * SACCADE_US], dtype=float)
    bounds[1:3] += rng.uniform(-8_000, 8_000, 2)
    t = (np.arange(steps) + 0.5) * STEP_US
    seg = np.clip(np.searchsorted(bounds, t, side="right") - 1, 0, 2)
    frac = np.clip((t - bounds[seg]) / (bounds[seg + 1] - bounds[seg]), 0, 1)
    ease = 0.5 - 0.5 * np.cos(np.pi * frac)
    path = corners[seg] + (corners[seg + 1] - corners[seg]) * ease[:, None]
    return path[:, ::-1]  # TRIANGLE is (x, y); return (row, col)


def _frames(scene: np.ndarray, path: np.ndarray, margin: int) -> np.ndarray:
    """(steps, 34, 34) intensity seen by the sensor: a bilinear crop of the scene following the camera."""
    base = margin + path
    whole = np.floor(base).astype(int)
    frac = (base - whole).astype(np.float32)
    fr, fc = frac[:, 0, None, None], frac[:, 1, None, None]
    windows = np.lib.stride_tricks.sliding_window_view(scene, (SENSOR + 1, SENSOR + 1))
    patch = windows[whole[:, 0], whole[:, 1]]  # (steps, 35, 35): one gather, then four shifted views
    return ((1 - fr) * (1 - fc) * patch[:, :-1, :-1] + (1 - fr) * fc * patch[:, :-1, 1:]
            + fr * (1 - fc) * patch[:, 1:, :-1] + fr * fc * patch[:, 1:, 1:])


def sample_events(image8: np.ndarray, rng: np.random.Generator, cfg: NMNISTSynthConfig):
    """One recording: (x, y, t_us, p) arrays sorted by time."""
    steps = 3 * SACCADE_US // STEP_US
    margin = 12
    frames = _frames(_scene(image8, rng, cfg, margin), _camera_path(rng, cfg, steps), margin)
    log_i = np.log(frames + np.float32(0.05))  # the monitor's black is not zero light
    threshold = np.clip(rng.normal(cfg.contrast_threshold, cfg.threshold_mismatch, (SENSOR, SENSOR)), 0.05, None)
    reference = rng.uniform(0, 1, (SENSOR, SENSOR))  # where each pixel's last reset left it
    level = np.floor(log_i * (1 / threshold).astype(np.float32) + reference.astype(np.float32)).astype(np.int16)
    change = np.diff(level, axis=0)
    step, row, col = np.nonzero(change)
    counts = np.abs(change[step, row, col])
    polarity = (change[step, row, col] > 0).astype(np.int64)
    step, row, col, polarity = (np.repeat(a, counts) for a in (step + 1, row, col, polarity))
    t = step * STEP_US + rng.integers(0, STEP_US, len(step))
    n_noise = rng.poisson(cfg.noise_events)
    x = np.concatenate([col, rng.integers(0, SENSOR, n_noise)])
    y = np.concatenate([row, rng.integers(0, SENSOR, n_noise)])
    t = np.concatenate([t, rng.integers(0, steps * STEP_US, n_noise)])
    p = np.concatenate([polarity, rng.integers(0, 2, n_noise)])
    order = np.argsort(t, kind="stable")
    return x[order], y[order], t[order], p[order]


def write_nmnist(root: str | Path, seed: int = 0, cfg: NMNISTSynthConfig = NMNISTSynthConfig()) -> dict:
    """Write ROOT/NMNIST/{Train,Test}/<digit>/<n>.bin; returns counts per split."""
    images, _, pools = source_images()
    summary = {}
    for split_index, split in enumerate(("train", "test")):
        per_class = cfg.train_per_class if split == "train" else cfg.test_per_class
        split_dir = formats.nmnist_split_dir(root, split)
        events_total = 0
        for digit in range(formats.NMNIST_CLASSES):
            digit_dir = split_dir / str(digit)
            digit_dir.mkdir(parents=True, exist_ok=True)
            for stale in digit_dir.glob("*.bin"):  # a smaller re-synthesis must not leave old samples behind
                if stale.stem.isdigit() and int(stale.stem) >= per_class:
                    stale.unlink()
            rng = np.random.default_rng([seed, 1, split_index, digit])
            pool = pools[split][digit]
            # cycle through a shuffled pool so every source image is used before any repeats
            order = np.concatenate([rng.permutation(pool) for _ in range(-(-per_class // len(pool)))])[:per_class]
            for n, source in enumerate(order):
                x, y, t, p = sample_events(images[source], rng, cfg)
                formats.write_nmnist_file(digit_dir / f"{n:05d}.bin", x, y, t, p)
                events_total += len(t)
        summary[split] = {"samples": per_class * formats.NMNIST_CLASSES, "events": events_total}
    return summary
