"""Learning curves and the table of the transfer runs (`benchmarks/transfer.sh` first): per-epoch test accuracy,
mean ± std over seeds, of each target data set trained from scratch and started from the other data set's cell
(fine-tuned, or with the transferred memory frozen). Writes benchmarks/transfer.png and benchmarks/transfer.md."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RUNS = {  # target data set -> (label, run folder)
    "shd": [("scratch", "scratch"), ("from N-MNIST, fine-tuned", "nmnist-to-shd"),
            ("from N-MNIST, memory frozen", "nmnist-to-shd-frozen")],
    "nmnist": [("scratch", "scratch"), ("from SHD, fine-tuned", "shd-to-nmnist"),
               ("from SHD, memory frozen", "shd-to-nmnist-frozen")],
}
NAMES = {"shd": "SHD (20 words)", "nmnist": "N-MNIST (10 digits)"}


def curves(run: Path, modality: str) -> np.ndarray:
    cells = json.loads((run / "results.json").read_text())["cells"]
    rows = [c["learning_curve"] for c in sorted(cells, key=lambda c: c["seed"])
            if c["status"] == "ok" and c["modality"] == modality]
    return np.array(rows) * 100


def main(base: Path = ROOT / "runs" / "transfer") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    lines = ["| target | start | n | test accuracy per epoch (%), mean ± std | final |", "|---|---|---|---|---|"]
    for axis, (target, runs) in zip(axes, RUNS.items()):
        for label, folder in runs:
            values = curves(base / folder, target)
            mean, std = values.mean(0), values.std(0, ddof=1) if len(values) > 1 else np.zeros(values.shape[1])
            epochs = np.arange(1, len(mean) + 1)
            axis.plot(epochs, mean, marker="o", label=label)
            axis.fill_between(epochs, mean - std, mean + std, alpha=0.2)
            per_epoch = " / ".join(f"{m:.1f}" for m in mean)
            lines.append(f"| {NAMES[target]} | {label} | {len(values)} | {per_epoch} | "
                         f"{mean[-1]:.1f} ± {std[-1]:.1f} |")
        axis.set_title(f"{NAMES[target]}: hopfield, 200 training samples")
        axis.set_xlabel("epoch")
        axis.set_ylabel("test accuracy (%)")
        axis.set_xticks(epochs)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(ROOT / "benchmarks" / "transfer.png", dpi=120)
    (ROOT / "benchmarks" / "transfer.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
