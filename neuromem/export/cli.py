"""`neuromem export` and `neuromem hw {train,run,verify}`: Loihi 2 / Lava deployment and NIR interchange."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from neuromem.errors import NeuromemError, check_writable_file

EXPORT_TARGETS = ("lava", "nir")


def _echo(lines) -> None:
    for line in lines:
        typer.echo(line)


def _load_data(data_root: Path, split: str, samples: int | None, time_bins: int | None = None):
    try:
        from neuromem.data import load_split
    except ImportError as err:
        raise NeuromemError(f"the data layer (neuromem.data) is not available: {err}") from None
    dataset = load_split("shd", data_root, split, time_bins=time_bins)
    inputs, labels = np.asarray(dataset.inputs), np.asarray(dataset.labels)
    if len(labels) == 0:
        raise NeuromemError(f"the SHD {split} split under {data_root} is empty")
    if samples is not None:
        if samples < 1:
            raise NeuromemError(f"--samples must be >= 1, got {samples}")
        # evenly spaced over the split (files are often sorted by class): every class gets its share
        rows = np.unique(np.linspace(0, len(labels) - 1, min(samples, len(labels))).round().astype(np.int64))
        inputs, labels = inputs[rows], labels[rows]
    return inputs, labels


def _cell_checkpoints(run_dir: Path) -> list[Path]:
    """model.pt of each finished cell (never a killed run's staging folder)."""
    from neuromem.train.store import finished_cell_dirs

    return [cell / "model.pt" for cell in finished_cell_dirs(run_dir) if (cell / "model.pt").is_file()]


def refuse_unexportable(config: dict, source: str) -> None:
    """Checkpoints of the ablation grid: name the module Loihi cannot run and what to use instead."""
    from neuromem.memory.base import memory_info, memory_names

    memory = config.get("memory")
    if memory:
        try:
            info = memory_info(memory)
        except KeyError:
            info = None
        if info is None or not info.loihi_exportable:
            exportable = [n for n in memory_names() if memory_info(n).loihi_exportable]
            what = f" ({info.summary})" if info else ""
            instead = (
                f"use a Loihi-exportable memory ({', '.join(exportable)})"
                if exportable
                else "no registered memory module is Loihi-exportable yet; deploy the memory-free Loihi model "
                "(`neuromem hw train`, then `neuromem export model.pt --to lava`)"
            )
            raise NeuromemError(
                f"{source}: memory module '{memory}'{what} uses operations Loihi cannot run "
                f"(softmax retrieval, multiplicative gates, float normalisation); {instead}"
            )
    neuron = config.get("neuron")
    if neuron not in (None, "loihi"):
        raise NeuromemError(
            f"{source}: its layers use neuron '{neuron}', which has no Loihi fixed-point form; "
            "train with Loihi neurons (neuron 'loihi' / `neuromem hw train`)"
        )


def load_for_export(run_or_checkpoint: Path):
    """A LoihiNetwork from a checkpoint file, or from the single exportable cell of a run directory."""
    from neuromem.export.model import CHECKPOINT_KIND, load_checkpoint, model_from_checkpoint_dict, read_checkpoint_file

    path = Path(run_or_checkpoint)
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
    checkpoint = read_checkpoint_file(path)
    if not isinstance(checkpoint, dict) or "config" not in checkpoint:
        raise NeuromemError(f"{path}: not a neuromem checkpoint (expected a dict with 'config' and 'state_dict')")
    if checkpoint.get("kind") == CHECKPOINT_KIND:
        return model_from_checkpoint_dict(checkpoint, str(path))
    refuse_unexportable(dict(checkpoint["config"]), str(path))
    return load_checkpoint(path)


def register(app: typer.Typer) -> None:
    hw = typer.Typer(help="Loihi 2 via Lava: train Loihi-exact models, run and verify exported networks.", no_args_is_help=True)

    @app.command("export")
    def export_command(
        run_or_checkpoint: Path = typer.Argument(..., help="a Loihi model checkpoint (.pt) or a run directory with one cell"),
        to: str = typer.Option(..., "--to", help="lava (netx HDF5) or nir"),
        out: Path = typer.Option(..., "--out", help="output file (.h5 for lava, .nir for nir)"),
    ) -> None:
        """Export a trained Loihi network to Lava (netx HDF5) or NIR."""
        if to not in EXPORT_TARGETS:
            raise NeuromemError(f"--to {to!r} is not known; valid: {', '.join(EXPORT_TARGETS)}")
        check_writable_file(out, "--out", "net.h5" if to == "lava" else "net.nir")
        model = load_for_export(run_or_checkpoint)
        existed = out.exists()
        try:
            if to == "lava":
                from neuromem.export.lava import export_lava

                path = export_lava(model, out)
            else:
                from neuromem.export.nir import write_nir

                path = write_nir(model, out)
        except OSError as error:  # e.g. the disk filled while writing
            if not existed:
                out.unlink(missing_ok=True)  # no half-written network left behind
            raise NeuromemError(f"--out {out}: writing failed ({error.strerror or ' '.join(str(error).split())}); "
                                "free space or choose another path") from None
        layers = " -> ".join(str(l.out_features) + ("r" if l.recurrent is not None else "") for l in model.layers)
        typer.echo(f"wrote {path} ({to}; {model.config.input_size} -> {layers}; r = recurrent)")
        from neuromem.export.resources import LOIHI2_BRIEF, layer_cores

        sizes = [(l.out_features, l.in_features * l.out_features + (l.out_features**2 if l.recurrent is not None else 0))
                 for l in model.layers]
        cores = sum(layer_cores(n, s) for n, s in sizes)
        typer.echo(
            f"Loihi 2: {sum(n for n, _ in sizes)} neurons, {sum(s for _, s in sizes)} synapses, {cores} cores "
            f"(limits: {LOIHI2_BRIEF}); energy per inference needs spike counts: `neuromem hw run`"
        )

    @hw.command("train")
    def train_command(
        data_root: Path = typer.Option(..., "--data-root", help="tonic-layout root holding SHD/"),
        out: Path = typer.Option(..., "--out", help="checkpoint to write (.pt)"),
        hidden: str = typer.Option("128,128", help="hidden sizes; the last hidden layer is recurrent"),
        epochs: int = typer.Option(5),
        batch_size: int = typer.Option(32),
        lr: float = typer.Option(2e-3),
        seed: int = typer.Option(0),
        samples: Optional[int] = typer.Option(None, help="N training samples evenly spaced over the split (default: all)"),
    ) -> None:
        """Train the Loihi-exact SHD model (700 -> hidden -> recurrent hidden -> readout)."""
        import torch

        from neuromem.export.model import save_checkpoint, train_loihi_model

        torch.set_num_threads(1)
        try:
            sizes = tuple(int(h) for h in hidden.split(","))
        except ValueError:
            raise NeuromemError(f"--hidden {hidden!r}: expected comma-separated integers, e.g. 128,128") from None
        check_writable_file(out, "--out", "loihi.pt")  # before training, not after
        train_x, train_y = _load_data(data_root, "train", samples)
        test_x, test_y = _load_data(data_root, "test", None)
        result = train_loihi_model(
            train_x, train_y, test_x, test_y, hidden_sizes=sizes, epochs=epochs, batch_size=batch_size,
            lr=lr, seed=seed, log=lambda e: typer.echo(json.dumps(e)),
        )
        try:
            save_checkpoint(result.model, out, {"history": result.history})
        except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError
            out.unlink(missing_ok=True)
            raise NeuromemError(f"--out {out}: saving the checkpoint failed ({' '.join(str(error).split())[:160]}); "
                                "free space or choose another path") from None
        typer.echo(f"wrote {out}: test accuracy {100 * (result.test_accuracy or 0):.2f}% ({result.seconds:.0f} s)")

    @hw.command("run")
    def run_command(
        net: Path = typer.Argument(..., help="network exported with `neuromem export --to lava`"),
        data_root: Path = typer.Option(..., "--data-root"),
        samples: Optional[int] = typer.Option(None, help="N samples evenly spaced over the split (default: all)"),
        split: str = typer.Option("test"),
    ) -> None:
        """Run the network on Lava's Loihi2SimCfg(select_tag='fixed_pt'); report accuracy, resources, energy."""
        from neuromem.export.lava import model_from_lava
        from neuromem.export.resources import loihi_resources
        from neuromem.hardware_bridge import run_on_lava

        model = model_from_lava(net)
        inputs, labels = _load_data(data_root, split, samples)
        lava = run_on_lava(net, inputs)
        accuracy = float((lava.predictions() == labels).mean())
        typer.echo(f"Lava accuracy on {len(labels)} {split} samples: {100 * accuracy:.2f}% ({lava.seconds:.1f} s simulated)")
        shapes = [(l.in_features, l.out_features, l.recurrent is not None) for l in model.layers]
        _echo(loihi_resources(shapes, inputs, lava.spikes).lines())

    @hw.command("verify")
    def verify_command(
        net: Path = typer.Argument(..., help="network exported with `neuromem export --to lava`"),
        data_root: Path = typer.Option(..., "--data-root"),
        samples: Optional[int] = typer.Option(None, help="N samples evenly spaced over the split (default: all)"),
        split: str = typer.Option("test"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="also write the report as JSON"),
    ) -> None:
        """Compare Lava with the quantized torch model: spike rasters at every neuron and step, and accuracy."""
        from neuromem.export.hardware import verify_on_lava

        if json_out is not None:
            check_writable_file(json_out, "--json", "verify.json")
        inputs, labels = _load_data(data_root, split, samples)
        report = verify_on_lava(net, inputs, labels)
        _echo(report.lines())
        _echo(report.resources.lines())
        if json_out is not None:
            data = {k: v for k, v in vars(report).items() if k not in ("resources", "extra")}
            data["resources"] = report.resources.as_dict()
            json_out.write_text(json.dumps(data, indent=2))
        if not report.identical:
            raise typer.Exit(1)

    app.add_typer(hw, name="hw")
