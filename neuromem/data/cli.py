"""`neuromem data ...`: write the embedded default, or fetch the real data sets."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from neuromem.data.fetch import fetch as fetch_dataset
from neuromem.data.specs import MODALITY_SPECS, get_spec
from neuromem.data.synth import synthesize
from neuromem.errors import NeuromemError

app = typer.Typer(help="Data sets: write the embedded synthetic SHD/N-MNIST in the real formats, or fetch the real ones.",
                  no_args_is_help=True)
console = Console()


def _modalities(text: str) -> list[str]:
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise NeuromemError(f"--modality is empty; valid modalities: {', '.join(MODALITY_SPECS)}")
    return [get_spec(name).name for name in names]


@app.command()
def synth(
    root: Path = typer.Option(..., "--root", help="tonic save_to root: writes ROOT/SHD/*.h5 and ROOT/NMNIST/{Train,Test}/"),
    seed: int = typer.Option(0, "--seed", help="same seed -> byte-identical files"),
    modality: str = typer.Option("shd,nmnist", "--modality", help="comma-separated: shd, nmnist"),
    shd_train: int = typer.Option(100, "--shd-train", help="SHD-like training samples per class (20 classes)"),
    shd_test: int = typer.Option(30, "--shd-test", help="SHD-like test samples per class"),
    nmnist_train: int = typer.Option(200, "--nmnist-train", help="N-MNIST-like training samples per class (10 classes)"),
    nmnist_test: int = typer.Option(50, "--nmnist-test", help="N-MNIST-like test samples per class"),
) -> None:
    """Write the embedded default data (synthetic, in the real on-disk formats) under ROOT."""
    started = time.perf_counter()
    marker = synthesize(root, seed=seed, modalities=_modalities(modality), shd_train_per_class=shd_train,
                        shd_test_per_class=shd_test, nmnist_train_per_class=nmnist_train,
                        nmnist_test_per_class=nmnist_test)
    table = Table(title=f"synthetic data under {root} (seed {seed})")
    for column in ("modality", "split", "samples", "events", "events/sample", "written to"):
        table.add_column(column, justify="right" if column in ("samples", "events", "events/sample") else "left")
    for name, info in marker["modalities"].items():
        if "seconds" not in info:
            continue  # written by an earlier call, listed in the marker only
        for split, counts in info["splits"].items():
            where = f"SHD/shd_{split}.h5" if name == "shd" else f"NMNIST/{'Train' if split == 'train' else 'Test'}/<digit>/*.bin"
            table.add_row(name, split, str(counts["samples"]), f"{counts['events']:,}",
                          f"{counts['events'] / max(counts['samples'], 1):,.0f}", where)
    console.print(table)
    console.print(f"marker: {Path(root) / 'NEUROMEM_SYNTHETIC.json'}; {time.perf_counter() - started:.1f} s")


@app.command()
def fetch(
    root: Path = typer.Option(..., "--root", help="tonic save_to root for the real data"),
    modality: str = typer.Option("shd,nmnist", "--modality", help="comma-separated: shd, nmnist"),
) -> None:
    """Download the real SHD / N-MNIST with tonic's downloaders (needs internet)."""
    for name in _modalities(modality):
        started = time.perf_counter()
        paths = fetch_dataset(root, name)
        console.print(f"[green]{name}[/green]: {', '.join(str(p) for p in paths)} ({time.perf_counter() - started:.1f} s)")
