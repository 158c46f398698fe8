"""The `neuromem` command line (typer + rich)."""

from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from neuromem import cpu_tier
from neuromem.errors import NeuromemError, shown_path

console = Console(stderr=True)
app = typer.Typer(
    help="Memory in spiking neural networks across senses. Errors are one line; add --debug (or set NEUROMEM_DEBUG=1) for the traceback.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# sub-commands living next to the code they drive; each module exposes register(app)
SUMMARY_METRICS = ("test_accuracy", "activation_sparsity", "energy_ratio", "retrieval_image_to_audio_recall@1")
COMMAND_MODULES = ("neuromem.data.cli", "neuromem.export.cli", "neuromem.export.nir.cli", "neuromem.engram.cli", "neuromem.bench.cli", "neuromem.train.cli", "neuromem.study.retrieval_cli")


def _split(value: str, flag: str, valid: list[str]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise NeuromemError(f"{flag} is empty; valid: {', '.join(valid)}")
    unknown = [v for v in items if v not in valid]
    if unknown:
        shown = ", ".join(unknown)
        shown = shown if len(shown) <= 80 else f"{shown[:60]}... ({len(shown)} characters)"
        raise NeuromemError(f"{flag} {shown} is not known; valid: {', '.join(valid)}")
    return list(dict.fromkeys(items))


_OPTION_TYPES = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string"}


def _option_type_ok(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float("inf")
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    return True


def _non_positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value <= 0


def _positive_default(default: Any) -> bool:
    return isinstance(default, int) and not isinstance(default, bool) and default > 0


def _probe_memory(name: str, options: dict[str, Any]) -> None:
    """Build the module on a tiny input and run it forward once: raises whatever construction or use raises."""
    import torch

    from neuromem.memory import build_memory

    memory = build_memory(name, {"probe": 8}, **options)
    spikes = (torch.rand(3, 2, 8, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    with torch.no_grad():
        output = memory({"probe": spikes})
    features = output.representations["probe"]
    if features.numel() == 0:
        raise ValueError(f"its representation has shape {tuple(features.shape)} (no features)")


def check_memory_options(name: str, options: dict[str, Any]) -> None:
    """--memory-option values for one memory module, before any training, against its option record (the
    module's `Options`, a `MemoryOptions`: names, types, defaults): each key must be an option of the module,
    each value of the option's type, and the module must build and run with it. The message names the key,
    the value and what is valid."""
    import warnings

    from neuromem.memory import memory_info

    record = memory_info(name).options
    # the network's neuron model and its parameters: `build_network` sets them from --neuron / --neuron-option
    network = {"neuron": "--neuron", "neuron_params": "--neuron-option KEY=VALUE"}
    named = {k: f for k, f in record.option_fields().items() if k not in network}
    for key, value in options.items():
        option = named.get(record.ALIASES.get(key, key))
        if key in network:
            raise NeuromemError(f"--memory-option for {name!r}: {key} is the network's, not the memory's; give "
                                f"{network[key]} (every spiking layer, front end and memory alike)")
        if option is None:
            raise NeuromemError(f"--memory-option for {name!r}: no option {key!r}; valid: {', '.join(named)}")
        kind = option.type if isinstance(option.type, str) else getattr(option.type, "__name__", "")
        if kind in _OPTION_TYPES and not _option_type_ok(kind, value):
            raise NeuromemError(f"--memory-option for {name!r}: {key} must be {_OPTION_TYPES[kind]}, got {json.dumps(value)} "
                                f"(default {json.dumps(option.default, default=str)})")
        if _positive_default(option.default) and _non_positive(value):
            raise NeuromemError(f"--memory-option for {name!r}: {key} must be a positive integer, got {value} "
                                f"(default {option.default})")
    from neuromem.bounds import check_iterations, check_module_memory, probe_settings
    from neuromem.memory import build_memory

    check_iterations(name, options)  # the probe below runs them: bounded first
    check_module_memory(name, options, lambda: build_memory(name, {"probe": 8}, **options))
    for subset in [{key: value} for key, value in options.items()] + ([options] if len(options) > 1 else []):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _probe_memory(name, probe_settings(subset))
        except Exception as error:  # construction errors come as ValueError, TypeError or torch's RuntimeError
            shown = " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in subset.items())
            reason = " ".join(str(error).split()) or type(error).__name__
            raise NeuromemError(f"--memory-option for {name!r}: {shown} is not valid ({reason})") from None


class RichProgress:
    """Renders trainer progress: one bar per epoch with loss and accuracy."""

    def __init__(self, progress: Progress, cell_label: str) -> None:
        self.progress, self.cell_label, self.task = progress, cell_label, None

    def phase(self, description: str, total: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(f"{self.cell_label} {description}", total=total, loss=float("nan"), acc=float("nan"))

    def advance(self, loss: float | None = None, accuracy: float | None = None) -> None:
        self.progress.update(self.task, advance=1, loss=loss, acc=accuracy)

    def close(self) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
            self.task = None


def _check_writable(out: Path) -> None:
    """--out can be written; folders made for the probe are removed again (the store makes them when it writes), so a
    run refused later (bad data, say) leaves nothing behind."""
    import tempfile

    missing, folder = [], Path(out)
    while folder != folder.parent and not os.path.lexists(folder):  # lexists: False, not an error, for too long a name
        missing.append(folder)  # deepest first
        folder = folder.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".neuromem-write-test.")  # unique: runs may share --out
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise NeuromemError(f"--out {shown_path(out)}: cannot write there (a file is in the way); choose a writable "
                            "folder") from None
    except OSError as error:
        raise NeuromemError(f"--out {shown_path(out)}: cannot write there ({error.strerror or error}); choose a writable "
                            "folder") from None
    finally:
        for made in missing:
            try:
                made.rmdir()
            except OSError:
                if os.path.lexists(made):
                    break  # not empty after all: left alone
                # else never made: the failure came before it


@app.command()
def ablate(
    modality: str = typer.Option(..., help="Comma list of modalities, e.g. shd,nmnist,joint,parallel."),
    memory: str = typer.Option(..., help="Comma list of memory modules, e.g. hopfield,hgrn."),
    epochs: Optional[int] = typer.Option(None, min=1, help="Training epochs per cell (default: the data set's own, SHD 8, N-MNIST 5; joint/parallel 5)."),
    seeds: int = typer.Option(1, min=1, help="Seeds 0..K-1 per (modality, memory)."),
    data_root: Optional[Path] = typer.Option(None, help="tonic save_to root with SHD/ and NMNIST/; default: real data in $NEUROMEM_DATA, else the embedded default."),
    out: Path = typer.Option(Path("runs/ablate"), help="Output folder (results store, csv, json, report.md, per-cell artifacts)."),
    dense: bool = typer.Option(False, "--dense", help="Train the ANN-equivalent (ReLU) graph instead of the spiking one."),
    neuron: str = typer.Option("lif", help="Neuron model of the spiking front ends (a comma list is a sweep axis)."),
    hidden: str = typer.Option("256", help="Front-end width (a comma list is a sweep axis, e.g. 64,128)."),
    batch_size: int = typer.Option(64, min=1),
    learning_rate: str = typer.Option("2e-3", help="Peak learning rate (a comma list is a sweep axis)."),
    time_bins: Optional[str] = typer.Option(None, help="Time bins per sample (default: the data set's; a comma list is a sweep axis)."),
    max_train_samples: Optional[int] = typer.Option(None, min=1, help="Cap on training samples per data set."),
    memory_option: List[str] = typer.Option([], "--memory-option", help="key=value or memory.key=value (repeatable); key=v1,v2,v3 is a sweep axis."),
    front_option: List[str] = typer.Option([], "--front-option", help="Front-end option key=value (repeatable; key=v1,v2 is a sweep axis), e.g. delays=25, dropout=0.1 (an unknown key is refused with the valid keys of that data set's front end)."),
    neuron_option: List[str] = typer.Option([], "--neuron-option", help="Neuron parameter key=value given to every spiking layer of the cell, front end and spiking memory alike (repeatable; key=v1,v2 is a sweep axis): a field of the --neuron model's parameter record (lif: beta, threshold, reset, surrogate, surrogate_slope; cuba adds alpha; a key the model lacks is refused, naming its fields), e.g. reset=zero (lif, cuba, alif: the reset to 0, which NIR states exactly, so `export --to nir` of the cell is exact; default subtract), threshold=0.5."),
    rate_option: List[str] = typer.Option([], "--rate-option", help="Firing-rate ceiling in training on every spiking layer of the front ends and memory (neuromem.train.rate_penalty): target=RATE (spikes per neuron per step, in (0, 1); default 0.02) and weight=W (>= 0; default 1; the loss a layer adds at twice the target), repeatable, key=v1,v2 a sweep axis; part of the cell's identity when given, e.g. target=0.02 weight=1."),
    augment: List[str] = typer.Option([], "--augment", help="Training augmentation, e.g. time_stretch=0.15,freq_warp=0.1 (transforms in order; repeat the flag for a sweep axis, 'none' for no augmentation): time_shift, time_stretch, channel_shift, freq_warp, drop, noise, mask_channels."),
    weight_decay: str = typer.Option("0", help="AdamW weight decay (0: Adam; a comma list is a sweep axis)."),
    train_also: List[Path] = typer.Option([], "--train-also", help="Another data root of the same data set whose every sample is trained on too, never tested on (repeatable), e.g. a speech stand-in with many voices beside a few real speakers."),
    cv: Optional[str] = typer.Option(None, "--cv", help="Cross-validation protocol: 'speakers' = leave one speaker out (one fold per speaker, each a cell; both splits pooled; also reports seen-speaker accuracy)."),
    energy_profile: str = typer.Option("horowitz-45nm", help="Energy profile pricing the cells (finished cells priced otherwise are re-priced, not retrained)."),
    rerun: Optional[str] = typer.Option(None, help="'stale': re-train finished cells whose model code or neuromem version changed (default: keep them)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the cells the grid would run, one line each, and stop."),
    executor: str = typer.Option("local", help="local or ray."),
    device: str = typer.Option("auto", "--device", help="Where cells train: auto (CUDA when present, else the CPU), cpu, cuda or cuda:N; recorded in each cell's results, not part of its identity."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 (default: no autocast), bf16 or fp16 (CUDA only): the synaptic products under torch autocast, the neuron state in float32; part of the cell's identity when not fp32 (a comma list is a sweep axis)."),
    workers: int = typer.Option(1, min=1, help="Local worker processes (executor local)."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (executor ray); default: start Ray here."),
    cpus_per_cell: float = typer.Option(1.0, min=0.1, help="CPUs reserved per cell on Ray."),
    threads: int = typer.Option(1, min=1, help="Torch threads per cell (part of the config: same threads, same numbers)."),
    preset: Optional[str] = typer.Option(None, help="Tri-modal network size: small, default or large (the design document's configurations); default: default where a GPU is present, else small."),
    trimodal_schedule: str = typer.Option("joint", help="Tri-modal training: joint (everything at once), phased (the design document's four phases) or zero-shot (text-image and text-audio pairs only: image <-> audio is then zero-shot)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start every cell from this cell's weights where names and shapes fit (a cells/<cell_id> folder); what cannot transfer is named in one line."),
    freeze: Optional[str] = typer.Option(None, "--freeze", help="With --init-from: keep this part's transferred weights fixed: memory or front-end."),
    pairing: Optional[str] = typer.Option(None, "--pairing", help="Two senses trained together (joint): class (a fresh same-digit partner every batch, the default) or item (one fixed partner per sample: stored episodes, for item-level retrieval)."),
) -> None:
    """Train and evaluate the modality x memory x seed grid; resumable."""
    from neuromem.data import resolve_data_root
    from neuromem.device import device_name
    from neuromem.memory import build_memory, memory_names
    from neuromem.models.frontends import NEURON_LAYERS
    from neuromem.accounting.energy import PROFILES
    from neuromem.train import sweep
    from neuromem.train.grid import EXECUTORS, run_grid
    from neuromem.study.report import write_reports
    from neuromem.study.store import ResultStore
    from neuromem.train.tasks import EXTERNAL_TASKS, TASKS, default_epochs

    modalities = _split(modality, "--modality", [*TASKS, *EXTERNAL_TASKS])
    memories = _split(memory, "--memory", memory_names())
    if executor not in EXECUTORS:
        raise NeuromemError(f"--executor {executor!r} is not known; valid: {', '.join(EXECUTORS)}")
    if address is not None and executor != "ray":
        raise NeuromemError(f"--address applies to --executor ray only (got --executor {executor}); add --executor ray")
    neurons = ["dense"] if dense else _split(neuron, "--neuron", [n for n in NEURON_LAYERS if n != "dense"])
    axes = {
        "neuron": neurons,
        "hidden": sweep.parse_axis(hidden, "--hidden", int, "positive integers, e.g. 64,128", lambda v: v >= 1),
        "learning_rate": sweep.parse_axis(learning_rate, "--learning-rate", float, "finite numbers >= 0, e.g. 1e-3,2e-3", lambda v: 0 <= v < float("inf")),
        "time_bins": sweep.parse_axis(time_bins, "--time-bins", int, "positive integers, e.g. 50,100", lambda v: v >= 1),
        "weight_decay": sweep.parse_axis(weight_decay, "--weight-decay", float, "numbers >= 0, e.g. 0,1e-4",
                                         lambda v: v >= 0 and v != float("inf")),
    }
    front_axes = sweep.parse_option_axes(front_option, "--front-option")
    neuron_axes = sweep.parse_option_axes(neuron_option, "--neuron-option", "reset=zero")
    from neuromem.data.augment import parse_augment

    recipes = list(dict.fromkeys(parse_augment(text) for text in augment)) or [()]
    if cv is not None and cv not in ("speakers",):
        raise NeuromemError(f"--cv {cv!r} is not known; valid: speakers")
    if energy_profile not in PROFILES:
        raise NeuromemError(f"--energy-profile {energy_profile!r} is not known; valid: {', '.join(PROFILES)}")
    if rerun not in (None, "stale"):
        raise NeuromemError(f"--rerun {rerun!r} is not known; valid: stale")
    option_axes = sweep.parse_memory_option_axes(memory_option, memories)
    for name in memories:  # fail on a bad option before any training starts
        for options in sweep.option_combinations(option_axes[name]):
            check_memory_options(name, options)
    fixed = dict(epochs=epochs, batch_size=batch_size, max_train_samples=max_train_samples, threads=threads,
                 energy_profile=energy_profile, device=device_name(device))
    from neuromem.precision import PRECISIONS, check_precision

    axes["precision"] = [check_precision(p, fixed["device"]) for p in _split(precision, "--precision", list(PRECISIONS))]
    configs = sweep.expand_grid(modalities, memories, seeds, axes, option_axes, fixed,
                                neuron_for=lambda m, n: "dense" if m in EXTERNAL_TASKS else n,
                                epochs_for=default_epochs)
    configs = _with_trimodal_options(configs, modalities, preset, trimodal_schedule)
    external = sorted({c.modality for c in configs if c.modality in EXTERNAL_TASKS and c.precision != "fp32"})
    if external:
        raise NeuromemError(f"--precision {precision}: {', '.join(external)} cells are trained by their own runner, "
                            "in fp32 only; valid for them: fp32")
    configs = sweep.with_variants(configs, front_axes, recipes, neuron_axes)
    from neuromem.train.rate_penalty import with_rate_options

    rate_axes = sweep.parse_option_axes(rate_option, "--rate-option", "target=0.02")
    if rate_axes and any(c.modality in EXTERNAL_TASKS for c in configs):
        raise NeuromemError(f"--rate-option: {', '.join(sorted({c.modality for c in configs if c.modality in EXTERNAL_TASKS}))} "
                            "cells are trained by their own runner, without it; valid for: " + ", ".join(TASKS))
    configs = with_rate_options(configs, rate_axes)
    configs = _with_extra_roots(configs, train_also, data_root)
    from neuromem.train.transfer import say_transfer, with_transfer

    configs = with_transfer(configs, init_from, freeze)
    say_transfer(configs, lambda text: console.print(text, highlight=False, soft_wrap=True))
    from neuromem.train.pairing import with_pairing

    configs = with_pairing(configs, pairing)
    _check_neuron_options(configs)
    _check_front_and_augment(configs)
    from neuromem.bounds import check_training_memory

    check_training_memory(configs)
    if cv is not None:
        configs = sweep.with_folds(configs, _fold_lister(modalities, resolve_data_root(data_root)[0]))
    if dry_run:
        root = _check_data_files(modalities, resolve_data_root(data_root)[0])  # a root without the data: one line
        sweep.print_dry_run(_with_data_fingerprint(configs, root), out, rerun == "stale", typer.echo)
        return
    from neuromem.study.store import check_out_is_ours

    check_out_is_ours(out)
    _check_writable(out)

    root, source = resolve_data_root(data_root)
    console.print(f"data: [bold]{source}[/] at {root}" + ("  (embedded default: no real data found)" if data_root is None and source == "synthetic" else ""))
    for bins in axes["time_bins"]:
        _check_data(modalities, root, bins)
    configs = _with_data_fingerprint(configs, root)

    store = ResultStore(out)
    store.set_run_info(data=source, data_root=str(root))
    plan = sweep.plan_run(store, configs, rerun_stale=rerun == "stale")
    for line in plan.messages(executor):
        console.print(line, highlight=False)
    sweep.reprice_finished(store, plan, energy_profile, console.print)
    pending = plan.pending

    with Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f} acc {task.fields[acc]:.3f}"), TimeElapsedColumn(),
        console=console, transient=True,
    ) as progress:
        sink = RichProgress(progress, "")
        failed: list[str] = []

        def done(config, result) -> None:
            sink.close()
            metrics = result["metrics"]
            if result["status"] != "ok":
                failed.append(config.cell_id)
            if result["status"] == "ok":
                shown = [f"{key.replace('_', ' ')} {metrics[key]:.4f}" for key in SUMMARY_METRICS if key in metrics]
                if "central_memory" in metrics:  # the tri-modal network: which one ran, Recall@1 in six directions
                    from neuromem.dense.trimodal import summary_parts

                    shown = summary_parts(metrics)
                console.print(f"[green]✓[/] {config.cell_id}: {', '.join(shown)}, {metrics['wall_seconds']:.0f} s")
            else:
                console.print(f"[red]✗[/] {config.cell_id}: {metrics['error']}")
            write_reports(store, figures=False)

        def elsewhere(config, note) -> None:
            console.print(f"[cyan]=[/] {config.cell_id}: {note}", highlight=False)

        try:
            run_grid(pending, root, store, executor=executor, workers=workers, address=address,
                     cpus_per_cell=cpus_per_cell, progress=sink, on_cell_done=done, on_cell_elsewhere=elsewhere)
        except KeyboardInterrupt:
            write_reports(store)
            raise NeuromemError(f"interrupted: finished cells are kept in {out}; re-run the same command to resume") from None
    paths = write_reports(store)
    _print_summary(store)
    console.print(f"report: {paths['report']}  (also {paths['csv'].name}, {paths['json'].name})")
    if failed:  # the grid went on, but the run did not do what was asked
        console.print(f"[red]error:[/] {len(failed)} of {len(pending)} cells failed ({', '.join(failed[:3])}"
                      f"{', ...' if len(failed) > 3 else ''}); their errors are in {paths['report']}", highlight=False)
        raise typer.Exit(1)


def _with_trimodal_options(configs: list, modalities: list[str], preset: str | None, schedule: str) -> list:
    """--preset and --trimodal-schedule become part of each trimodal cell's identity (resolved: the preset chosen
    for this machine is recorded, not "auto")."""
    from dataclasses import replace

    from neuromem.dense.trimodal import PRESET_NAMES, SCHEDULES, default_preset

    if "trimodal" not in modalities:
        for flag, value, default in (("--preset", preset, None), ("--trimodal-schedule", schedule, "joint")):
            if value != default:
                raise NeuromemError(f"{flag} applies to --modality trimodal only")
        return configs
    if preset is not None and preset not in PRESET_NAMES:
        raise NeuromemError(f"--preset {preset!r} is not known; valid: {', '.join(PRESET_NAMES)}")
    if schedule not in SCHEDULES:
        raise NeuromemError(f"--trimodal-schedule {schedule!r} is not known; valid: {', '.join(SCHEDULES)}")
    options = (("preset", preset or default_preset()), ("schedule", schedule))
    return [replace(c, task_options=options) if c.modality == "trimodal" else c for c in configs]


def _check_neuron_options(configs: list) -> None:
    """--neuron-option values against each cell's neuron model's parameter record, before any training: one line
    naming the flag, the key and what is valid."""
    from neuromem.neurons.models import check_neuron_options, neuron_names
    from neuromem.train.tasks import TASKS

    seen = set()
    for config in configs:
        options = dict(config.neuron_options)
        key = (config.neuron, json.dumps(config.neuron_options, default=str))  # values may be lists (unhashable)
        if not options or key in seen:
            continue
        seen.add(key)
        given = " ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in options.items())
        if config.neuron not in neuron_names():
            why = "--dense trains ReLU layers" if config.modality in TASKS else f"{config.modality} is a dense task"
            raise NeuromemError(f"--neuron-option {given}: neuron parameters apply to spiking neurons; {why}, "
                                "which have none")
        try:
            check_neuron_options(config.neuron, options)
        except ValueError as error:
            raise NeuromemError(f"--neuron-option {given}: {error}") from None
        clash = sorted(set(options) & set(dict(config.front_options)))
        if clash:
            raise NeuromemError(f"--neuron-option and --front-option both set {', '.join(clash)}; give it once "
                                "(--neuron-option: every spiking layer, --front-option: the front end's)")


def _check_front_and_augment(configs: list) -> None:
    """--front-option and --augment against each data set's front end and input shape, before any training."""
    from neuromem.data.augment import Compose
    from neuromem.data.registry import get_dataset
    from neuromem.models.frontends import check_front_options
    from neuromem.train.tasks import TASKS

    seen = set()
    for config in configs:
        task = TASKS.get(config.modality)
        if task is None:
            if config.front_options or config.augment:
                raise NeuromemError(f"--front-option and --augment apply to the spiking tasks, not to {config.modality}")
            continue
        for name in task.datasets:
            key = (name, json.dumps([config.front_options, config.augment], default=str), config.neuron)  # lists unhashable
            if key in seen:
                continue
            seen.add(key)
            spec = get_dataset(name).spec
            Compose(config.augment, spec.input_shape)
            check_front_options(name, spec.input_shape, dict(config.front_options), config.neuron)


def _with_extra_roots(configs: list, roots: list[Path], data_root: Path | None) -> list:
    """--train-also roots join each spiking cell's identity by their resolved path and fingerprint."""
    from dataclasses import replace

    from neuromem.data.cache import root_fingerprint
    from neuromem.train.tasks import TASKS

    if not roots:
        return configs
    extra = []
    for root in roots:
        root = root.expanduser()
        if not root.is_dir():
            raise NeuromemError(f"--train-also {root}: not a folder; give a data root (e.g. one written by "
                                "`neuromem data synth` or `neuromem data convert`)")
        if data_root is not None and root.resolve() == data_root.expanduser().resolve():
            raise NeuromemError(f"--train-also {root} is the --data-root itself; give another root")
        extra.append((str(root.resolve()), root_fingerprint(root)))
    if any(c.modality not in TASKS for c in configs):
        raise NeuromemError("--train-also applies to the spiking tasks (e.g. shd), not to the dense ones")
    return [replace(c, train_also=tuple(extra)) for c in configs]


def _fold_lister(modalities: list[str], root: Path):
    """modality -> its folds under --cv speakers (single data sets that record speakers only)."""
    from neuromem.data.registry import get_dataset
    from neuromem.train.protocol import speaker_folds
    from neuromem.train.tasks import TASKS

    folds = {}
    for modality in modalities:
        task = TASKS.get(modality)
        if task is None or len(task.datasets) != 1:
            raise NeuromemError(f"--cv speakers applies to single data sets with speakers (e.g. shd, ssc), not to {modality}")
        folds[modality] = speaker_folds(get_dataset(task.datasets[0]), root)
    return folds.__getitem__


def _with_data_fingerprint(configs: list, root: Path) -> list:
    """The cells' identity includes the data they learn from: another data root (or changed files) is another cell."""
    from dataclasses import replace

    from neuromem.data.cache import root_fingerprint

    fingerprint = root_fingerprint(root)
    return [replace(config, data_fingerprint=fingerprint) for config in configs]


def _check_data_files(modalities: list[str], root: Path) -> Path:
    """The files of every split the grid needs are there (listed, not read): a dry run checks this much, before
    the data root is fingerprinted (`--data-root /` is refused at once, not walked)."""
    from neuromem.data.registry import get_dataset
    from neuromem.train.tasks import EXTERNAL_TASK_DATASETS, TASKS

    needed = sorted({d for m in modalities for d in (TASKS[m].datasets if m in TASKS else EXTERNAL_TASK_DATASETS[m])})
    for name in needed:
        for split in ("train", "test"):
            get_dataset(name).files(root, split)
    return root


def _check_data(modalities: list[str], root: Path, time_bins: int | None) -> None:
    """Open (and bin, into the cache) every split the grid needs, so bad data fails before training."""
    from neuromem.data import load_split
    from neuromem.train.tasks import EXTERNAL_TASK_DATASETS, TASKS

    needed = sorted({d for m in modalities for d in (TASKS[m].datasets if m in TASKS else EXTERNAL_TASK_DATASETS[m])})
    for name in needed:
        for split in ("train", "test"):
            dataset = load_split(name, root, split, time_bins=time_bins)
            if len(dataset) == 0:
                raise NeuromemError(f"{name} {split} split under {root} is empty")


def _print_summary(store) -> None:
    from neuromem.study.report import flat_rows

    table = Table(title="test accuracy")
    columns = ("test_accuracy", "train_accuracy", "activation_sparsity", "energy_ratio", "wall_seconds")
    rows = [row for row in flat_rows(store) if row["status"] == "ok"]
    longest = max((len(row["cell_id"]) for row in rows), default=4)
    # whole cell names on an 80-column terminal: the numbers' columns give way (and a longer name folds, never cut)
    table.add_column("cell", overflow="fold", min_width=min(longest, 48))
    for column in columns:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(row["cell_id"], *(f"{row[c]:.4g}" if isinstance(row.get(c), float) else "" for c in columns))
    Console().print(table)


@app.command("memories")
def list_memories() -> None:
    """List the registered memory modules."""
    from neuromem.memory import memory_info, memory_names

    table = Table()
    table.add_column("memory")
    table.add_column("summary")
    table.add_column("Loihi")
    for name in memory_names():
        info = memory_info(name)
        table.add_row(name, info.summary, "yes (train with --neuron loihi)" if info.loihi_exportable else info.loihi)
    Console().print(table)


_registered: list[str] = []


def _register_commands() -> None:
    if _registered:  # main() may run more than once in one interpreter (tests)
        return
    _registered.append("yes")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name and module_name.startswith(error.name):
                continue  # that part of neuromem is not installed in this checkout
            raise
        if hasattr(module, "register"):
            module.register(app)
        else:  # a plain typer sub-app, mounted under the package's last name (e.g. `neuromem data`)
            app.add_typer(module.app, name=module_name.split(".")[-2])


def _click_exception_classes(name: str) -> tuple[type, ...]:
    """`name` (e.g. 'ClickException') from every click the installed typer may raise from: its vendored
    `typer._click` (typer >= 0.24) and the standalone `click` package (older typer)."""
    found = []
    for module_name in ("typer._click.exceptions", "click.exceptions"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


def _given_value(param, args: list[str]) -> str | None:
    """The text the user gave for `param` on the command line (for naming it in the error)."""
    for opt in getattr(param, "opts", []) or []:
        for position, arg in enumerate(args):
            if arg == opt and position + 1 < len(args):
                return args[position + 1]
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1:]
    return None


def _usage_line(error, args: list[str]) -> str:
    """A click usage error as one line: the flag, the value given, what is valid, where to look."""
    ctx = getattr(error, "ctx", None)
    command = ctx.command_path if ctx is not None else "neuromem"
    param = getattr(error, "param", None)
    kind = type(error).__name__
    message = " ".join(str(getattr(error, "message", error)).split())
    if kind == "MissingParameter":
        text = " ".join(error.format_message().split())
    elif kind == "BadParameter" and param is not None:
        flag = "/".join(getattr(param, "opts", []) or [param.name or "?"])
        given = _given_value(param, args)
        text = f"{flag} {given!r}: {message}" if given is not None else f"{flag}: {message}"
    elif kind == "NoSuchOption":
        close = sorted(getattr(error, "possibilities", None) or [])
        text = message + (f" (did you mean {' or '.join(close)}?)" if close else "")
    elif kind == "UsageError" and message.startswith("No such command") and ctx is not None:
        valid = ", ".join(ctx.command.list_commands(ctx)) if hasattr(ctx.command, "list_commands") else ""
        text = f"{message.rstrip('.')}; valid: {valid}" if valid else message
    else:
        text = " ".join(error.format_message().split())
    return f"{text} (see `{command} --help`)"


def _say_error(text: str) -> None:
    from rich.markup import escape

    console.print(f"[red]error:[/] {escape(' '.join(str(text).split()))}", highlight=False, soft_wrap=True)


INTERRUPTED = "interrupted; nothing half-written kept"
_SIGNALS: list[int] = []  # SIGTERM received by this command (its exit code is then 143, not 130)


def _on_sigterm(signum, frame) -> None:
    """SIGTERM ends a command as Ctrl-C does: cleanup runs, one line, exit 143. Processes forked from this one
    (workers) keep the default: they simply end."""
    import signal

    if os.getpid() != _MAIN_PID[0]:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _SIGNALS.append(signum)
    raise KeyboardInterrupt


_MAIN_PID = [0]


def _interrupted_code() -> int:
    return 128 + (_SIGNALS[-1] if _SIGNALS else 2)


def main() -> None:
    """The console entry point: every failure leaves as one line and an exit code (2: bad input, 1: failure,
    130: interrupted, 143: terminated); `--debug` anywhere on the line (or NEUROMEM_DEBUG=1) re-raises with the traceback."""
    args = sys.argv[1:]
    debug = "--debug" in args or os.environ.get("NEUROMEM_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    import signal
    import threading

    _SIGNALS.clear()
    _MAIN_PID[0] = os.getpid()
    previous_sigterm = None
    if threading.current_thread() is threading.main_thread():
        previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        _main(args, debug)
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)


def _main(args: list[str], debug: bool) -> None:
    click_errors = _click_exception_classes("ClickException")
    no_args_help = _click_exception_classes("NoArgsIsHelpError")
    exits = (typer.Exit, *_click_exception_classes("Exit"))
    aborts = (typer.Abort, *_click_exception_classes("Abort"))
    try:
        cpu_tier.check()
        _register_commands()
        code = app(args=args, prog_name="neuromem", standalone_mode=False)
    except NeuromemError as error:
        if debug:
            raise
        _say_error(error)
        sys.exit(2)
    except no_args_help as error:  # bare `neuromem` / `neuromem data`: the help is the answer
        typer.echo(error.ctx.get_help() if getattr(error, "ctx", None) is not None else error.format_message())
        sys.exit(0)
    except click_errors as error:
        if debug:
            raise
        _say_error(_usage_line(error, args) if getattr(error, "exit_code", 1) == 2 else error.format_message())
        sys.exit(getattr(error, "exit_code", 1) or 1)
    except exits as exit_:
        sys.exit(getattr(exit_, "exit_code", 0))
    except (KeyboardInterrupt, *aborts):
        _say_error(INTERRUPTED)
        sys.exit(_interrupted_code())
    except Exception as error:  # a bug, not bad input: still one line unless asked for the traceback
        if debug:
            raise
        _say_error(f"internal error: {type(error).__name__}: {error} (re-run with --debug for the traceback)")
        sys.exit(1)
    if isinstance(code, int) and not isinstance(code, bool):
        if code == 130:  # typer turns Ctrl-C into Exit(130) and, outside standalone mode, returns it silently
            _say_error(INTERRUPTED)
            code = _interrupted_code()
        sys.exit(code)
