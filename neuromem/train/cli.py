"""`neuromem report`, `neuromem reprice` and `neuromem evaluate`: work on a finished ablation
store without retraining."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from neuromem.errors import NeuromemError

console = Console(stderr=True)


def _open_store(run: Path):
    from neuromem.train.store import ResultStore

    if not (Path(run) / "results.sqlite").is_file():
        raise NeuromemError(f"{run}: no results.sqlite there; give the --out folder of a `neuromem ablate` run")
    return ResultStore(run)


def report(run: Path = typer.Argument(..., help="The --out folder of an ablate run.")) -> None:
    """Rebuild results.csv, results.json and report.md from the store alone."""
    from neuromem.train.report import write_reports

    paths = write_reports(_open_store(run))
    console.print(f"report: {paths['report']}  (also {paths['csv'].name}, {paths['json'].name})")


def reprice(
    run: Path = typer.Argument(..., help="The --out folder of an ablate run."),
    profile: str = typer.Option(..., help="Energy profile to price the stored operation counts with."),
) -> None:
    """Re-price every finished cell's energy from its stored per-sample counts (no retraining)."""
    from neuromem.accounting.energy import PROFILES
    from neuromem.train.report import write_reports
    from neuromem.train.reprice import reprice_store

    if profile not in PROFILES:
        raise NeuromemError(f"--profile {profile!r} is not known; valid: {', '.join(PROFILES)}")
    store = _open_store(run)
    done, skipped = reprice_store(store, PROFILES[profile])
    console.print(f"re-priced {len(done)} cells under {profile} (accuracy and counts unchanged)")
    for cell_id, why in sorted(skipped.items()):
        console.print(f"  not re-priced: {cell_id}: {why}", highlight=False)
    write_reports(store)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("reprice")(reprice)
