"""`neuromem import`: a NIR graph (neuromem's, snnTorch's, Norse's, ...) as a neuromem cell (`nir.cell`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from neuromem.errors import NeuromemError


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_command(
        graph: Path = typer.Argument(..., help="a .nir graph: a chain of Linear/Affine/Conv2d -> LIF/CubaLIF/IF layers "
                                               "(neuromem's, snnTorch's, Norse's exports)"),
        out: Path = typer.Option(..., "--out", help="run directory the cell goes into (as `neuromem ablate --out`; "
                                                    "`neuromem evaluate`, `engram` and `export` read it)"),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="the data set the graph reads (default: the one "
                                                                      "a neuromem graph records)"),
        data_root: Optional[Path] = typer.Option(None, "--data-root", help="default: as `neuromem ablate` (real data in "
                                                                           "$NEUROMEM_DATA, else the embedded default)"),
        time_bins: Optional[int] = typer.Option(None, "--time-bins", min=1, help="time bins per sample (default: the "
                                                                                  "graph's record, else the data set's)"),
        dt: Optional[float] = typer.Option(None, "--dt", help="seconds per step the graph's time constants are read "
                                                              "with (default: its record, else 1e-4 as snnTorch writes; "
                                                              "Norse 1.1.0's to_nir at its dt=1e-3: 1e-6)"),
    ) -> None:
        """Build a neuromem cell from a NIR graph and evaluate it on a data set's test split."""
        from neuromem.export.nir.cell import import_cell

        if dt is not None and not (math.isfinite(dt) and dt > 0):
            raise NeuromemError(f"--dt {dt} is not a time step; valid: a number of seconds > 0 (e.g. 1e-4)")
        _, _, lines = import_cell(graph, out, dataset=dataset, data_root=data_root, time_bins=time_bins, dt=dt)
        for line in lines:
            typer.echo(line)
