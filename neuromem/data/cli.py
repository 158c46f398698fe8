"""`neuromem data ...`: write the embedded default, or fetch the real data sets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from neuromem.errors import NeuromemError

# The data layer (tonic, h5py, torch) is imported when a command runs, not when the CLI
# registers its commands: every `neuromem ...` start would otherwise pay ~3 s for it.


def dataset_names() -> list[str]:
    from neuromem.data.registry import dataset_names as names

    return names()


def get_dataset(name: str):
    from neuromem.data.registry import get_dataset as lookup

    return lookup(name)

app = typer.Typer(help="Data sets: write the embedded synthetic stand-ins in the real formats, or fetch the real ones.",
                  no_args_is_help=True)
console = Console()


def _datasets(text: str | None) -> list[str]:
    if text is None:
        return dataset_names()
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not names:
        raise NeuromemError(f"--modality is empty; valid data sets: {', '.join(dataset_names())}")
    return [get_dataset(name).name for name in names]


def _sizes(pairs: list[str], names: list[str]) -> dict[str, int]:
    """--size shd.train=10 (or train=10 for every data set chosen) -> {"shd_train_per_class": 10}."""
    sizes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        target, dot, split = key.strip().rpartition(".")
        if not sep or not value.strip().isdigit():
            raise NeuromemError(f"--size {pair!r}: expected DATASET.SPLIT=N or SPLIT=N with N a positive integer "
                                "(e.g. ssc.train=10)")
        for name in ([target] if dot else names):
            splits = get_dataset(name).spec.splits
            if split not in splits:
                raise NeuromemError(f"--size {pair!r}: {name} has no split {split!r}; valid splits: {', '.join(splits)}")
            sizes[f"{name}_{split}_per_class"] = int(value)
    return sizes


def _options(pairs: list[str]) -> dict[str, str]:
    """--option key=value (repeatable) -> {key: value text}; the stand-in's config checks keys and values."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise NeuromemError(f"--option {pair!r}: expected KEY=VALUE (e.g. languages=en)")
        options[key.strip()] = value.strip()
    return options


@app.command()
def synth(
    root: Path = typer.Option(..., "--root", help="tonic save_to root: writes each data set's files in its real layout (ROOT/SHD/*.h5, ROOT/NMNIST/{Train,Test}/, ROOT/SSC/*.h5)"),
    seed: int = typer.Option(0, "--seed", help="same seed -> byte-identical files"),
    modality: Optional[str] = typer.Option(None, "--modality", help="comma-separated data sets (default: all registered)"),
    kind: Optional[str] = typer.Option(None, "--kind", help="stand-in kind, for every data set chosen (default: each one's own; `neuromem data kinds` lists them)"),
    size: List[str] = typer.Option([], "--size", help="samples per class, DATASET.SPLIT=N or SPLIT=N (repeatable), e.g. ssc.train=10"),
    shd_train: Optional[int] = typer.Option(None, "--shd-train", help="SHD-like training samples per class (20 classes)"),
    shd_test: Optional[int] = typer.Option(None, "--shd-test", help="SHD-like test samples per class"),
    nmnist_train: Optional[int] = typer.Option(None, "--nmnist-train", help="N-MNIST-like training samples per class (10 classes)"),
    nmnist_test: Optional[int] = typer.Option(None, "--nmnist-test", help="N-MNIST-like test samples per class"),
    option: List[str] = typer.Option([], "--option", help="a setting of the chosen stand-in's config, KEY=VALUE (repeatable; lists comma-separated), e.g. --option languages=en --option families=espeak-ng,flite"),
) -> None:
    """Write the embedded default data (synthetic, in the real on-disk formats) under ROOT."""
    started = time.perf_counter()
    names = _datasets(modality)
    sizes = _sizes(size, names)
    options = _options(option)
    for key, value in (("shd_train_per_class", shd_train), ("shd_test_per_class", shd_test),
                       ("nmnist_train_per_class", nmnist_train), ("nmnist_test_per_class", nmnist_test)):
        if value is not None:
            sizes[key] = value
    kinds = {name: kind for name in names} if kind else None
    from neuromem.data.embedded import synthesize

    marker = synthesize(root, seed=seed, datasets=names, kinds=kinds, options=options, **sizes)
    table = Table(title=f"synthetic data under {root} (seed {seed})")
    for column in ("data set", "kind", "split", "samples", "events", "events/sample", "written to"):
        table.add_column(column, justify="right" if column in ("samples", "events", "events/sample") else "left")
    for name, info in marker["modalities"].items():
        if name not in names:
            continue  # written by an earlier call, listed in the marker only
        for split, counts in info["splits"].items():
            table.add_row(name, info.get("kind", ""), split, str(counts["samples"]), f"{counts['events']:,}",
                          f"{counts['events'] / max(counts['samples'], 1):,.0f}", get_dataset(name).layout(split))
    console.print(table)
    console.print(f"marker: {Path(root) / 'NEUROMEM_SYNTHETIC.json'}; {time.perf_counter() - started:.1f} s")


@app.command()
def kinds() -> None:
    """List the registered data sets and the stand-in kinds each one offers."""
    table = Table(title="data sets")
    for column in ("data set", "classes", "front end", "stand-in kinds (default first)", "description"):
        table.add_column(column)
    for name in dataset_names():
        data_set = get_dataset(name)
        order = [data_set.default_stand_in, *(k for k in data_set.stand_ins if k != data_set.default_stand_in)]
        table.add_row(name, str(data_set.spec.num_classes), data_set.front_end, ", ".join(order), data_set.spec.description)
    console.print(table)


@app.command()
def fetch(
    root: Path = typer.Option(..., "--root", help="tonic save_to root for the real data"),
    modality: Optional[str] = typer.Option(None, "--modality", help="comma-separated data sets (default: all registered)"),
) -> None:
    """Download the real data sets with tonic's downloaders (needs internet)."""
    for name in _datasets(modality):
        started = time.perf_counter()
        from neuromem.data.download import fetch as fetch_dataset

        paths = fetch_dataset(root, name)
        console.print(f"[green]{name}[/green]: {', '.join(str(p) for p in paths)} ({time.perf_counter() - started:.1f} s)")


@app.command()
def cache(
    clear: bool = typer.Option(False, "--clear", help="remove every binned entry (they are rebuilt when next needed)"),
) -> None:
    """Show the binned-data cache ($NEUROMEM_HOME/cache): entries, size and cap; --clear empties it."""
    from neuromem.data import default_cache_dir
    from neuromem.data.cache import MAX_BYTES_ENV, cache_entries, clear as clear_cache, max_cache_bytes

    where = default_cache_dir()
    cap = max_cache_bytes()
    if clear:
        count, size = clear_cache(where)
        console.print(f"removed {count} entries ({size / 1024**2:.1f} MiB) from {where}")
        return
    entries = cache_entries(where)
    total = sum(size for _, size, _ in entries)
    console.print(f"{where}: {len(entries)} entries, {total / 1024**2:.1f} MiB; cap {cap / 1024**2:.0f} MiB "
                  f"(${MAX_BYTES_ENV}), least recently used entries removed beyond it", highlight=False)
    for entry, size, last_used in reversed(entries):
        console.print(f"  {entry.name}  {size / 1024**2:.1f} MiB  last used {time.strftime('%Y-%m-%d %H:%M', time.localtime(last_used))}",
                      highlight=False)


@app.command()
def convert(
    audio: Path = typer.Option(..., "--audio", help="folder of labelled recordings (.wav), named as --pattern says"),
    root: Path = typer.Option(..., "--root", help="tonic save_to root to write ROOT/SHD/shd_{train,test}.h5 into"),
    pattern: str = typer.Option("{label}_{speaker}_{index}.wav", "--pattern", help="file names: {label} (integer class), {speaker}, {index} (optional)"),
    test_speakers: Optional[str] = typer.Option(None, "--test-speakers", help="comma list: these speakers are the test split (unseen speakers)"),
    held_out_speakers: int = typer.Option(0, "--held-out-speakers", min=0, help="or: this many speakers, drawn with --seed, are the test split"),
    test_index_below: int = typer.Option(5, "--test-index-below", min=1, help="default split (the data set's own rule, FSDD): recordings with index below this are test (seen speakers)"),
    seed: int = typer.Option(0, "--seed", help="seeds the cochlea's membrane noise and --held-out-speakers"),
    normalize: str = typer.Option("speaker", "--normalize", help="speaker (default): each speaker's channel gains bring its long-term spectrum to the speakers' mean (its unlabelled recordings; a second pass), or none"),
    workers: Optional[int] = typer.Option(None, "--workers", min=1, help="processes (default: every core)"),
    force: bool = typer.Option(False, "--force", help="convert again even if the same conversion is there"),
) -> None:
    """Turn a folder of labelled recordings into the SHD layout through neuromem's spiking cochlea.

    Speakers go into extra/speaker (ROOT/SHD/speakers.json names them); `neuromem ablate --cv speakers`
    then holds out one speaker per fold."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from neuromem.data.convert import ConvertConfig, convert as run

    chosen = tuple(s.strip() for s in (test_speakers or "").split(",") if s.strip())
    cfg = ConvertConfig(pattern=pattern, test_speakers=chosen, held_out_speakers=held_out_speakers,
                        test_index_below=test_index_below, seed=seed, normalize=normalize)
    started = time.perf_counter()
    with Progress(TextColumn("cochlea"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("cochlea", total=None)
        record = run(audio, root, cfg, workers=workers, force=force,
                     progress=lambda done, total: bar.update(task, completed=done, total=total))
    table = Table(title=f"{record['recordings']} recordings by {len(record['speakers'])} speakers -> {root}/SHD"
                        + (" (cached: same conversion already there)" if record["cached"] else ""))
    for column in ("split", "samples", "events/sample", "speakers"):
        table.add_column(column)
    for split, info in record["splits"].items():
        table.add_row(split, str(info["samples"]), f"{info['events'] / max(info['samples'], 1):,.0f}",
                      ", ".join(info["speakers"]))
    console.print(table)
    console.print(f"split: {record['split']}; {time.perf_counter() - started:.1f} s", highlight=False)
