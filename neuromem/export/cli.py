"""`neuromem export` and `neuromem hw {run,verify}`: Loihi 2 / Lava deployment and NIR interchange.

Loihi models are trained by the ablation grid (`neuromem ablate --neuron loihi` with a Loihi-exportable
memory); a cell's front end, memory and readout are exported as one chain of Loihi layers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from neuromem.device import resolve_device
from neuromem.errors import NeuromemError, check_writable_file
from neuromem.export.targets import export_target, export_target_names


def _echo(lines) -> None:
    for line in lines:
        typer.echo(line)


def _load_data(data_root: Path, split: str, samples: int | None, time_bins: int | None = None, name: str = "shd"):
    try:
        from neuromem.data import load_split, resolve_data_root
    except ImportError as err:
        raise NeuromemError(f"the data layer (neuromem.data) is not available: {err}") from None
    if data_root is None:
        data_root, _ = resolve_data_root(None)
    from neuromem.data.registry import get_dataset

    splits = get_dataset(name).spec.splits
    if split not in splits:
        raise NeuromemError(f"--split {split!r} is not a split of {name}; valid: {', '.join(splits)}")
    if samples is not None and samples < 1:
        raise NeuromemError(f"--samples must be >= 1, got {samples}")
    dataset = load_split(name, data_root, split, time_bins=time_bins)
    labels = np.asarray(dataset.labels)
    if len(labels) == 0:
        raise NeuromemError(f"the {name} {split} split under {data_root} is empty")
    rows = np.arange(len(labels))
    if samples is not None:
        # evenly spaced over the split (files are often sorted by class): every class gets its share
        rows = np.unique(np.linspace(0, len(labels) - 1, min(samples, len(labels))).round().astype(np.int64))
    return np.asarray(dataset.inputs[rows]), labels[rows]  # only the chosen samples made dense


def _cell_checkpoints(run_dir: Path) -> list[Path]:
    """model.pt of each finished cell (never a killed run's staging folder)."""
    from neuromem.study.store import finished_cell_dirs

    return [cell / "model.pt" for cell in finished_cell_dirs(run_dir) if (cell / "model.pt").is_file()]


def refuse_unexportable(config: dict, source: str) -> None:
    """Checkpoints of the ablation grid: name what Loihi cannot run (the module's own reason) and what to use instead."""
    from neuromem.memory.base import loihi_memory_names, memory_info

    exportable = loihi_memory_names()
    instead = (f"Loihi-exportable memories: {', '.join(exportable)} "
               f"(`neuromem ablate --neuron loihi --memory {exportable[0] if exportable else '...'}`)")
    memory = config.get("memory")
    if memory:
        try:
            info = memory_info(memory)
        except KeyError:
            raise NeuromemError(f"{source}: memory module '{memory}' is not registered here; {instead}") from None
        if not info.loihi_exportable:
            raise NeuromemError(f"{source}: memory module '{memory}' cannot run on Loihi: {info.loihi_reason}; {instead}")
    neuron = config.get("neuron")
    if neuron not in (None, "loihi"):
        raise NeuromemError(
            f"{source}: its layers use neuron '{neuron}', which has no Loihi fixed-point form; "
            f"train the cell with `neuromem ablate --neuron loihi --memory {memory if memory in exportable else (exportable[0] if exportable else '...')}`"
        )


def checkpoint_path(run_or_checkpoint: Path) -> Path:
    """The model.pt a checkpoint file, a cell folder, or the single cell of a run directory names."""
    path = Path(run_or_checkpoint)
    if path.is_dir() and (path / "model.pt").is_file():
        path = path / "model.pt"  # runs/X/cells/<cell>
    if path.is_dir():
        cells = _cell_checkpoints(path)
        if not cells:
            raise NeuromemError(f"{path}: no cells/<cell_id>/model.pt inside; give a run directory or a checkpoint file")
        if len(cells) > 1:
            names = ", ".join(c.parent.name for c in cells[:5])
            raise NeuromemError(f"{path} holds {len(cells)} cells ({names}, ...); give one: {path}/cells/<cell_id>/model.pt")
        path = cells[0]
    if not path.is_file():
        raise NeuromemError(f"{path} does not exist; give a run directory or a model checkpoint (.pt)")
    return path


def training_data_info(run_or_checkpoint: Path) -> dict:
    """The data a grid cell was trained on, for the export to record: its fingerprint (from the cell's config)
    and its data root (the run's root whose files still have that fingerprint). {} for a bare network."""
    import sqlite3

    from neuromem.data.cache import root_fingerprint
    from neuromem.study.store import read_checkpoint_file

    path = checkpoint_path(run_or_checkpoint)
    checkpoint = read_checkpoint_file(path)
    config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    fingerprint = config.get("data_fingerprint") if isinstance(config, dict) else None
    if not isinstance(fingerprint, str) or not fingerprint:
        return {}
    info = {"data_fingerprint": fingerprint}
    store = path.parent.parent.parent / "results.sqlite"
    if path.parent.parent.name != "cells" or not store.is_file():
        return info
    try:
        db = sqlite3.connect(f"{store.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            row = db.execute("SELECT value FROM run WHERE key = 'data_root'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return info
    for root in (row[0].split("; ") if row and isinstance(row[0], str) else []):
        if root and Path(root).is_dir() and root_fingerprint(root) == fingerprint:
            info["data_root"] = str(Path(root).resolve())
            break
    return info


def network_data(net: Path, data_root: Path | None, split: str, samples: int | None, num_classes: int,
                 input_shape: tuple[int, ...], sense: str | None = None, concepts: bool = False):
    """(inputs, labels) for `hw run` / `hw verify`: the data set and root the network was trained on (recorded
    in the export), another root only when --data-root says so; one line says which data it is. `sense`: the
    data set of that sense's chain in a file of several; `concepts`: labels as the shared concepts (`concept_of`)."""
    from neuromem.data.cache import root_fingerprint
    from neuromem.export.lava import data_record

    recorded = data_record(net)
    dataset, time_bins = sense or recorded.get("dataset") or "shd", recorded.get("time_bins")
    if data_root is not None:
        how = "--data-root"
        if recorded.get("data_root") and Path(data_root).resolve() != Path(recorded["data_root"]):
            how += f"; it was trained on {recorded['data_root']}"
    elif recorded.get("data_root"):
        data_root = Path(recorded["data_root"])
        if not data_root.is_dir():
            raise NeuromemError(f"{net} was trained on the data root {data_root}, which is not there now; give "
                                "--data-root (the same data, or other data of its data set)")
        how = "the root it was trained on, recorded in the export"
        if recorded.get("data_fingerprint") and root_fingerprint(data_root) != recorded["data_fingerprint"]:
            how += "; its files changed since training"
    else:
        from neuromem.data import resolve_data_root

        data_root, source = resolve_data_root(None)
        how = f"the default ({source}): the export does not record its training data; give --data-root to choose"
    inputs, labels = _load_data(data_root, split, samples, time_bins, dataset)
    if concepts:
        from neuromem.train.tasks import concept_of

        labels = np.asarray(concept_of(dataset, labels))
    if tuple(inputs.shape[2:]) != tuple(input_shape):
        raise NeuromemError(f"{net} takes inputs of shape {tuple(input_shape)} per step, but {dataset} samples under "
                            f"{data_root} are {tuple(inputs.shape[2:])}; give the data it was trained on")
    if len(labels) and int(labels.max()) >= num_classes:
        raise NeuromemError(f"{net} has {num_classes} output classes, but the {dataset} {split} split under {data_root} "
                            f"has labels up to {int(labels.max())}; give the --data-root it was trained on")
    typer.echo(f"data: {dataset} {split}, {len(labels)} samples{' (labels as concepts)' if concepts else ''}, at "
               f"{data_root} ({how})")
    return inputs, labels


def load_for_export(run_or_checkpoint: Path):
    """(LoihiNetwork, data set, time bins) from a checkpoint file, a cell folder, or the single cell of a run directory."""
    from neuromem.export.model import CHECKPOINT_KIND, chip_network_from_cell, chip_senses, model_from_checkpoint_dict
    from neuromem.study.store import read_checkpoint_file

    path = checkpoint_path(run_or_checkpoint)
    checkpoint = read_checkpoint_file(path)
    if not isinstance(checkpoint, dict) or "config" not in checkpoint:
        raise NeuromemError(f"{path}: not a neuromem checkpoint (expected a dict with 'config' and 'state_dict')")
    if checkpoint.get("kind") == CHECKPOINT_KIND:
        return model_from_checkpoint_dict(checkpoint, str(path)), None, None
    if not isinstance(checkpoint["config"], dict):
        raise NeuromemError(f"{path}: not a neuromem checkpoint (its 'config' is not a mapping)")
    refuse_unexportable(dict(checkpoint["config"]), str(path))
    senses = chip_senses(checkpoint, str(path))  # a cell of several senses: each sense's chain
    if senses is not None:
        return senses[0], senses[0].modality, senses[1]
    return chip_network_from_cell(checkpoint, str(path))


def refuse_out_equal_to_input(out: Path, source: Path, flag: str = "--out") -> None:
    """An output path that is the input (or the checkpoint inside it) would destroy the input: refused."""
    source = Path(source)
    inputs = [source, source / "model.pt"] if source.is_dir() else [source]
    for candidate in inputs:
        same = Path(out).resolve() == candidate.resolve()
        if not same and Path(out).exists() and candidate.exists():
            try:
                same = os.path.samefile(out, candidate)
            except OSError:
                pass
        if same:
            raise NeuromemError(f"{flag} {out} is the input {candidate}; writing there would replace it: "
                                "give another output path")


def lava_workers(workers: int | None) -> int:
    """--workers, or by default one Lava worker per CPU core this process may use."""
    if workers is not None:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS)
        return max(1, os.cpu_count() or 1)


WORKERS_HELP = "Lava processes at once, each a share of the samples (default: one per CPU core)"
DEVICE_HELP = "where {what}: auto (CUDA when present, else the CPU), cpu, cuda or cuda:N"
PARALLEL_HELP = "samples per Lava process side by side (copies of the network); its groups of samples follow one another in one run"


def _written_lines(model, path: Path, to: str) -> list[str]:
    """What was written; for a chain of Loihi layers its shape and Loihi 2 resources too, for a model that
    describes itself (`describe()`, e.g. a float cell's NIR chain) its own lines."""
    from neuromem.export.model import LoihiNetwork, LoihiSenses

    if isinstance(model, LoihiSenses):
        how = ("one shared memory: its layers in every sense's chain, the same weights" if model.shared
               else "one network per sense")
        lines = [f"wrote {path} ({to}; a '{model.modality}' cell: one chain per sense, sense/<name> ({how}))"]
        for sense, chain in model.chains.items():
            lines += [f"  {sense}: {line}" for line in _chain_lines(chain)]
        return lines
    if not isinstance(model, LoihiNetwork):
        describe = getattr(model, "describe", None)
        return [f"wrote {path} ({to})", *(describe() if callable(describe) else [])]
    first, *rest = _chain_lines(model)
    return [f"wrote {path} ({to}; {first})", *rest]


def _chain_lines(model) -> list[str]:
    """A chain of Loihi layers' shape, and its Loihi 2 neurons, synapses and cores."""
    from neuromem.export.hardware import chain_shapes
    from neuromem.export.resources import LOIHI2_BRIEF, layer_cores

    shapes = chain_shapes(model)
    layers = " -> ".join(f"{'conv ' if len(s) > 3 else ''}{s[1]}{'r' if s[2] else ''}" for s in shapes)
    sizes = [(s[1], (s[3] if len(s) > 3 else s[0] * s[1]) + (s[1] ** 2 if s[2] else 0)) for s in shapes]
    cores = sum(layer_cores(n, s) for n, s in sizes)
    return [f"{model.config.input_size} -> {layers}; r = recurrent",
            f"Loihi 2: {sum(n for n, _ in sizes)} neurons, {sum(s for _, s in sizes)} synapses, {cores} cores "
            f"(limits: {LOIHI2_BRIEF}); energy per inference needs spike counts: `neuromem hw run`"]


def _sense_models(net: Path):
    """({sense: its chain rebuilt from the file}, labels as concepts) of a file of several senses (joint,
    parallel); ({None: the chain}, False) of a file of one chain."""
    from neuromem.export.lava import model_from_lava, senses_record

    record = senses_record(net)
    if record is None:
        return {None: model_from_lava(net)}, False
    return {sense: model_from_lava(net, sense) for sense in record["senses"]}, bool(record.get("concept_labels"))


def register(app: typer.Typer) -> None:
    hw = typer.Typer(help="Loihi 2 via Lava: run and verify exported networks (train them with `neuromem ablate --neuron loihi`).",
                     no_args_is_help=True)

    @app.command("export")
    def export_command(
        run_or_checkpoint: Path = typer.Argument(..., help="a cell (runs/X/cells/<cell>), its model.pt, or a run directory with one cell"),
        to: str = typer.Option(..., "--to", help=" | ".join(f"{n}: {export_target(n).summary}" for n in export_target_names())),
        out: Path = typer.Option(..., "--out", help="output file (" + ", ".join(
            f"{export_target(n).suffix} for {n}" for n in export_target_names()) + ")"),
        compare: int = typer.Option(0, "--compare", min=0,
                                    help="run the written form against neuromem on N test samples of the cell's data "
                                         "set (targets that can: " + ", ".join(
                                             n for n in export_target_names() if export_target(n).compare) + ")"),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP.format(what="--compare runs the cell (or its quantized chain) and neuromem's reading of the written file")),
    ) -> None:
        """Export a trained cell to one of the registered targets (neuromem.export.targets)."""
        where = resolve_device(device)
        target = export_target(to)
        if compare and target.compare is None:
            comparable = ", ".join(n for n in export_target_names() if export_target(n).compare)
            raise NeuromemError(f"--compare: --to {to} has no comparison here ({target.summary}); targets with one: "
                                f"{comparable}")
        check_writable_file(out, "--out", f"net{target.suffix}")
        refuse_out_equal_to_input(out, run_or_checkpoint)
        model, dataset, time_bins = target.function("loader")(run_or_checkpoint)
        data_info = training_data_info(run_or_checkpoint) if dataset is not None else None
        if compare and dataset is None:
            raise NeuromemError(f"--compare needs a grid cell (it names its data set); {run_or_checkpoint} is a bare "
                                "Loihi network checkpoint")
        from neuromem.study.store import atomic_output

        recorded = {"dataset": dataset, "time_bins": time_bins, "data_info": data_info} if target.records_data else {}
        with atomic_output(out) as tmp:  # the previous file stays whole until the new one is complete
            target.function("writer")(model, tmp, **recorded)
        _echo(_written_lines(model, out, to))
        if compare:
            trained_on = Path(data_info["data_root"]) if data_info and data_info.get("data_root") else None
            senses = getattr(model, "senses", None)  # a cell of several senses: each its own test samples
            if senses:
                data = {sense: _load_data(trained_on, "test", compare, time_bins, sense) for sense in senses}
                inputs, labels = {s: d[0] for s, d in data.items()}, {s: d[1] for s, d in data.items()}
            else:
                inputs, labels = _load_data(trained_on, "test", compare, time_bins, dataset)
            _echo(target.function("compare")(model, inputs, labels=labels, device=where).lines())

    @hw.command("run")
    def run_command(
        net: Path = typer.Argument(..., help="network exported with `neuromem export --to lava`"),
        data_root: Optional[Path] = typer.Option(None, "--data-root", help="default: as `neuromem ablate` (real data in $NEUROMEM_DATA, else the embedded default)"),
        samples: Optional[int] = typer.Option(None, help="N samples evenly spaced over the split (default: all)"),
        split: str = typer.Option("test"),
        workers: Optional[int] = typer.Option(None, min=1, help=WORKERS_HELP),
        parallel: int = typer.Option(20, min=1, help=PARALLEL_HELP),
    ) -> None:
        """Run the network on Lava's Loihi2SimCfg(select_tag='fixed_pt'); report accuracy, resources, energy."""
        from neuromem.export.resources import loihi_resources
        from neuromem.export.hardware import chain_shapes, run_lava_split

        models, concepts = _sense_models(net)
        for sense, model in models.items():
            inputs, labels = network_data(net, data_root, split, samples, model.config.num_classes,
                                          model.config.input_shape, sense=sense, concepts=concepts)
            lava = run_lava_split(net, inputs, False, lava_workers(workers), parallel, sense)
            accuracy = float((lava.predictions() == labels).mean())
            typer.echo(f"{f'sense {sense}: ' if sense else ''}Lava accuracy on {len(labels)} {split} samples: "
                       f"{100 * accuracy:.2f}% ({lava.seconds:.1f} s simulated)")
            _echo(loihi_resources(chain_shapes(model), inputs, lava.spikes).lines())

    @hw.command("verify")
    def verify_command(
        net: Path = typer.Argument(..., help="network exported with `neuromem export --to lava`"),
        data_root: Optional[Path] = typer.Option(None, "--data-root", help="default: as `neuromem ablate` (real data in $NEUROMEM_DATA, else the embedded default)"),
        samples: Optional[int] = typer.Option(None, help="N samples evenly spaced over the split (default: all)"),
        split: str = typer.Option("test"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="also write the report as JSON"),
        workers: Optional[int] = typer.Option(None, min=1, help=WORKERS_HELP),
        parallel: int = typer.Option(20, min=1, help=PARALLEL_HELP),
        device: str = typer.Option("auto", "--device", help=DEVICE_HELP.format(what="the quantized torch model runs (Lava runs on the CPU)")),
    ) -> None:
        """Compare Lava with the quantized torch model: spike rasters at every neuron and step, readout voltages
        at every step, and accuracy. (200 samples of a 5-layer SHD cell: ~45 s of Lava on 2 cores.)"""
        from neuromem.export.hardware import verify_on_lava

        where = resolve_device(device)

        if json_out is not None:
            check_writable_file(json_out, "--json", "verify.json")
            refuse_out_equal_to_input(json_out, net, "--json")
        # a damaged network is named before any data is binned for it; a file of several senses: each sense's
        # chain on that sense's own test samples
        models, concepts = _sense_models(net)
        reports = {}
        for sense, model in models.items():
            if sense is not None:
                typer.echo(f"sense {sense}:")
            inputs, labels = network_data(net, data_root, split, samples, model.config.num_classes,
                                          model.config.input_shape, sense=sense, concepts=concepts)
            report = verify_on_lava(net, inputs, labels, record_voltages=True,
                                    workers=lava_workers(workers), parallel=parallel, sense=sense, device=where)
            _echo(report.lines())
            _echo(report.resources.lines())
            reports[sense] = report
        if json_out is not None:
            data = {sense: {**{k: v for k, v in vars(r).items() if k not in ("resources", "extra")},
                            "resources": r.resources.as_dict()} for sense, r in reports.items()}
            from neuromem.study.store import atomic_write_text

            atomic_write_text(json_out, json.dumps(data[None] if None in data else data, indent=2))
        if not all(r.identical for r in reports.values()):
            raise typer.Exit(1)

    app.add_typer(hw, name="hw")
