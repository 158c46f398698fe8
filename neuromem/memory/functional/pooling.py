"""Spike trains to rate codes: the time pooling every non-recurrent memory reads."""

from __future__ import annotations

import torch


def binned_rates(spikes: torch.Tensor, bins: int = 1) -> torch.Tensor:
    """Spike train (T, batch, D) -> firing rates in `bins` consecutive time windows, (batch, bins * D),
    bin-major. bins=1 is the plain rate code; more bins keep coarse timing (useful for SHD).
    Windows are adaptive-pooling windows, so any T works (T < bins repeats steps)."""
    if bins < 1:
        raise ValueError(f"time_bins must be >= 1, got {bins}")
    if bins == 1:
        return spikes.mean(0)
    rates = torch.nn.functional.adaptive_avg_pool1d(spikes.permute(1, 2, 0), bins)  # (batch, D, bins)
    return rates.transpose(1, 2).flatten(1)


def windowed_rates(spikes: torch.Tensor, bins: int) -> torch.Tensor:
    """Spike train (T, batch, D) -> firing rates in `bins` consecutive time windows, still time-major:
    (bins, batch, D). The same windows as `binned_rates`, for modules that run over time."""
    if bins < 1:
        raise ValueError(f"time_bins must be >= 1, got {bins}")
    steps, batch, features = spikes.shape
    rates = torch.nn.functional.adaptive_avg_pool1d(spikes.permute(1, 2, 0).reshape(batch * features, 1, steps), bins)
    return rates.reshape(batch, features, bins).permute(2, 0, 1)
