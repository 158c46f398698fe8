"""Retention: accuracy when each test sample is followed by a stretch of silence (curve "silence") or of
background events (curve "background") before the readout; level = the delay as a multiple of the sample's own length in time bins (0, 1/4, 1/2,
1, 2; `delay_bins_<data set>` says how many bins). Background events are Poisson, independent per bin and sensor cell,
at the test split's mean count per bin and cell (as many events per bin as an average sample, with no
structure); seeded by (cell seed, suite, curve, delay).

What the delay measures depends on the readout, and neuromem's readouts read the memory's representation of
the whole sequence: the pooled memories (hopfield, cmhan, scl, ttt) and hgrn's default "windows" pooling
average it in a fixed number of windows over the whole input, so with a delay the sample fills only the
first T / (T + delay) of the windows and the rest hold silence or background. The curve therefore measures
how well the trained code survives its sample being compressed into the early windows and followed by
nothing (or by noise), not the decay of a state held in a recurrence: only a readout of the last step
(hgrn pooling=last) or of an integrating spike readout (spiking memories) reads what a state still holds
at the end. The rows say which (`readout`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neuromem.study.suites.context import CellContext, predictions

DELAYS = (0.0, 0.25, 0.5, 1.0, 2.0)  # times the cell's time bins
CURVES = ("silence", "background")


def _readout(network) -> str:
    options = getattr(network.memory, "options", None)
    pooling = getattr(options, "pooling", None)
    if network.reads_spikes:
        return "integrating readout of the memory's output spike train"
    if pooling == "last":
        return "the last time step of the recurrent state"
    return "the memory's representation pooled over the whole sequence (delay included)"


def _with_delay(delay: int, rate: torch.Tensor | None, generator: torch.Generator):
    def extend(x: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        shape = (x.shape[0], delay, *x.shape[2:])
        tail = torch.zeros(shape) if rate is None else torch.poisson(rate.expand(shape).contiguous(), generator)
        # time-major storage, as the front ends read it (x.transpose(0, 1) contiguous)
        return torch.cat([x, tail.to(x.dtype)], dim=1).transpose(0, 1).contiguous().transpose(0, 1)
    return extend


def run(ctx: CellContext) -> tuple[list[dict[str, Any]], list[str]]:
    rows = []
    for curve in CURVES:
        for fraction in DELAYS:
            metrics: dict[str, Any] = {}
            for group, network in ctx.networks.items():
                for d in group:
                    split = ctx.test[d]
                    steps = int(round(fraction * split.inputs.shape[1]))
                    metrics[f"delay_bins_{d}"] = steps
                    everything = np.arange(len(split.labels))
                    rate = None
                    if curve == "background":
                        x, _ = split.take(everything[: min(len(everything), 256)])
                        rate = x.float().mean(dim=(0, 1), keepdim=True)[:1]  # (1, 1, *sensor): mean count per bin and cell
                    generator = torch.Generator().manual_seed(ctx.seed("retention", f"{curve}/{d}/{steps}"))
                    guess = predictions(network, split, everything, inputs=_with_delay(steps, rate, generator)
                                        if steps else None)
                    metrics[f"accuracy_{d}"] = float((guess == split.labels).mean())
                    metrics["readout"] = _readout(network)
            metrics["value"] = metrics["accuracy"] = float(np.mean(
                [v for k, v in metrics.items() if k.startswith("accuracy_")]))
            rows.append({"curve": curve, "level": float(fraction), "metrics": metrics})
    return rows, []
