"""`neuromem bench`: the core-speed benchmark from the installed CLI (the lead mounts it with `register`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench(
        quick: bool = typer.Option(False, "--quick", help="tiny shapes, 2 rounds: a smoke run, not a measurement"),
        device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ..."),
        data: str = typer.Option("auto", help="data-layer source for the data time and `data` inputs: auto (neuromem's "
                                 "data layer, random spikes if unavailable), random, or a data root"),
        inputs: str = typer.Option("spec,data", help="what the steps run on, comma list: spec (random spikes at the "
                                   "configuration's density, the goals' input), data (data-layer batches, a sensitivity check)"),
        configs: Optional[str] = typer.Option(None, help="comma-separated configurations (default: all)"),
        repetitions: Optional[int] = typer.Option(None, min=1, help="timed rounds per configuration (default 6; quick 2)"),
        block: Optional[int] = typer.Option(
            None, min=1, help="consecutive steps per framework per round, the first not timed (default 3; quick 1; 1: every step, cold)"
        ),
        warmup: Optional[int] = typer.Option(None, min=0, help="warm-up steps per framework (default 2; quick 1)"),
        memory: bool = typer.Option(True, "--memory/--no-memory", help="measure peak memory in subprocesses"),
        threads: Optional[int] = typer.Option(
            None, min=1, help="torch intra-op threads for every framework (default: torch's; `make bench` uses 1: a grid runs one cell per core)"
        ),
        out: Optional[Path] = typer.Option(None, help="write the Markdown results table here"),
    ) -> None:
        """Time training and inference of the same spiking networks in neuromem, snnTorch and Norse."""
        from neuromem.bench.core_speed import INPUT_KINDS, check_arguments, parse_inputs, run_benchmark
        from neuromem.errors import NeuromemError

        config_names = configs.split(",") if configs else None
        try:
            check_arguments(inputs, device, config_names)
        except ValueError as error:
            raise NeuromemError(str(error)) from None  # the CLI's one-line error
        kinds = parse_inputs(inputs)
        command = ("neuromem bench" + (" --quick" if quick else "") + (f" --configs {configs}" if configs else "")
                   + (f" --data {data}" if data != "auto" else "")
                   + (f" --inputs {','.join(kinds)}" if kinds != INPUT_KINDS else "")
                   + (f" --threads {threads}" if threads else "")
                   + (f" --block {block}" if block else ""))
        results, markdown = run_benchmark(
            quick=quick, device=device, data=data, repetitions=repetitions, warmup=warmup, inputs=kinds,
            config_names=config_names, peak_memory=memory, out=out, command=command,
            threads=threads, block=block, log=lambda line: typer.echo(line, err=True),
        )
        typer.echo(markdown)
        failed = [r for r in results if getattr(r, "error", None)]
        if results and len(failed) == len(results):  # nothing was measured: not a success
            raise NeuromemError(f"every configuration failed ({failed[0].error}); nothing was measured")
