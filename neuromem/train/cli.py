"""`neuromem report`, `neuromem reprice` and `neuromem evaluate`: work on a finished ablation
store without retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from neuromem.errors import NeuromemError
from neuromem.study.perturb import COMPLETION, ROBUSTNESS  # numpy only: the evaluations' names, for --help

console = Console(stderr=True)


def _open_store(run: Path, writes: bool = False):
    """The run's store, after checking that this process may write it (with `writes`, before any work: a
    read-only mount is named as such) and that it is one (another tool's SQLite file is never changed)."""
    import os

    from neuromem.study.store import ResultStore, check_foreign_store

    path = Path(run) / "results.sqlite"
    if path.is_dir():
        raise NeuromemError(f"{path} is a folder, not a results store; give the --out folder of a `neuromem ablate` run")
    if not path.is_file():
        raise NeuromemError(f"{run}: no results.sqlite there; give the --out folder of a `neuromem ablate` run")
    if writes and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):  # first: a read-only mount
        raise NeuromemError(f"{path}: cannot write the results store (read-only); this command writes its results "
                            "there: copy the run to a writable folder")
    check_foreign_store(path)
    return ResultStore(run)


def _say_rejected(store) -> None:
    for cell_id, why in sorted(store.rejected.items()):
        console.print(f"[yellow]-[/] row {cell_id!r} ignored: {why}", highlight=False, soft_wrap=True)
    for note in store.notes:
        console.print(f"note: {note}", highlight=False, soft_wrap=True)


def report(run: Path = typer.Argument(..., help="The --out folder of an ablate run.")) -> None:
    """Rebuild results.csv, results.json and report.md from the store alone."""
    from neuromem.study.report import write_reports

    store = _open_store(run, writes=True)  # the reports are written beside the store
    paths = write_reports(store)
    _say_rejected(store)
    console.print(f"report: {paths['report']}  (also {paths['csv'].name}, {paths['json'].name})")


def reprice(
    run: Path = typer.Argument(..., help="The --out folder of an ablate run."),
    profile: str = typer.Option(..., help="Energy profile to price the stored operation counts with."),
) -> None:
    """Re-price every finished cell's energy from its stored per-sample counts (no retraining)."""
    from neuromem.accounting.energy import PROFILES
    from neuromem.study.report import write_reports
    from neuromem.study.reprice import reprice_store

    if profile not in PROFILES:
        raise NeuromemError(f"--profile {profile!r} is not known; valid: {', '.join(PROFILES)}")
    store = _open_store(run, writes=True)
    done, skipped = reprice_store(store, PROFILES[profile])
    _say_rejected(store)
    console.print(f"re-priced {len(done)} cells under {profile} (accuracy and counts unchanged)")
    for cell_id, why in sorted(skipped.items()):
        console.print(f"  not re-priced: {cell_id}: {why}", highlight=False)
    write_reports(store)
    if not done and (skipped or store.rejected):
        raise NeuromemError(f"nothing re-priced in {run}: every cell was skipped (reasons above)")


def evaluate(
    run: Path = typer.Argument(..., help="The --out folder of an ablate run."),
    robustness: str = typer.Option("", help=f"Comma list of robustness evaluations: {', '.join(ROBUSTNESS)}."),
    completion: str = typer.Option("", help=f"Comma list of pattern-completion evaluations: {', '.join(COMPLETION)}."),
    data_root: Optional[Path] = typer.Option(None, help="Data root the cells were trained on (default: the run's, if it used one)."),
    allow_stale: bool = typer.Option(False, "--allow-stale", help="Also evaluate cells whose model code changed since training (their weights are loaded into today's network)."),
    capacity: bool = typer.Option(False, "--capacity", help="Capacity: N-way accuracy of growing N (frozen network, nearest class mean); stored-pattern retrieval against load for associative memories, beside the modern-Hopfield bound."),
    retention: bool = typer.Option(False, "--retention", help="Retention: accuracy with silence or background events between the sample and the readout."),
    interference: bool = typer.Option(False, "--interference", help="Interference: a copy trained class- (and domain-) incrementally; forgetting and average accuracy."),
    few_shot: bool = typer.Option(False, "--few-shot", help="Few-shot: k-shot (1, 5, 10) nearest-prototype accuracy on held-out classes with a frozen network."),
    suite_epochs: Optional[int] = typer.Option(None, "--suite-epochs", min=1, help="Epochs per task of the copies --interference and --few-shot train (default: the cell's own, at most 3)."),
    episodes: int = typer.Option(20, "--episodes", min=1, help="Few-shot episodes per (setting, k)."),
    device: str = typer.Option("auto", "--device", help="Where the cells' networks run the --robustness / --completion evaluations and the memory suites: auto (CUDA when present, else the CPU), cpu, cuda or cuda:N."),
) -> None:
    """Accuracy (and cross-modal recall@1) of every finished cell under perturbed test inputs, at increasing
    levels; and the memory suites (capacity, retention, interference, few-shot). Curves go into the store, the
    report and one figure per evaluation or suite; a re-run keeps what is stored."""
    from neuromem.device import resolve_device
    from neuromem.study.evaluate import evaluate_store, parse_evaluations
    from neuromem.study.report import write_reports

    where = resolve_device(device)
    chosen = parse_evaluations(robustness, "--robustness", ROBUSTNESS) + parse_evaluations(completion, "--completion", COMPLETION)
    picked = [name for name, on in (("capacity", capacity), ("retention", retention), ("interference", interference),
                                    ("few-shot", few_shot)) if on]
    if not chosen and not picked:
        raise NeuromemError(f"nothing to evaluate: give --robustness ({', '.join(ROBUSTNESS)}) and/or --completion "
                            f"({', '.join(COMPLETION)}), or a memory suite: --capacity, --retention, --interference, --few-shot")
    store = _open_store(run, writes=True)
    if data_root is None:
        roots = [r for r in store.run_info().get("data_root", "").split("; ") if r]
        if len(roots) != 1:
            raise NeuromemError(f"{run}: the run used {len(roots) or 'no'} data roots ({'; '.join(roots)}); give --data-root")
        data_root = Path(roots[0])
    if not data_root.is_dir():
        raise NeuromemError(f"--data-root {data_root}: not a folder; give the data root the cells were trained on")

    def show(cell_id, results, skipped) -> None:
        if skipped:
            console.print(f"[yellow]-[/] {cell_id}: not evaluated: {skipped}", highlight=False)
            return
        worst = {r["evaluation"]: r["metrics"]["accuracy"] for r in results}
        console.print(f"[green]✓[/] {cell_id}: accuracy at the strongest level " +
                      ", ".join(f"{k} {v:.3f}" for k, v in worst.items()), highlight=False)

    count = evaluate_store(store, data_root, chosen, show, allow_stale=allow_stale, device=where) if chosen else 0
    suite_count = _run_suites(store, data_root, picked, suite_epochs, episodes, allow_stale, where) if picked else 0
    _say_rejected(store)
    paths = write_reports(store)
    if chosen:
        console.print(f"evaluated {count} cells ({', '.join(chosen)}); report: {paths['report']}")
    if picked:
        console.print(f"memory suites ({', '.join(picked)}): {suite_count} (cell, suite) results in the store; "
                      f"report: {paths['report']}")
    if (chosen and count == 0) or (picked and suite_count == 0):  # a run that did nothing is not a success
        raise NeuromemError(f"no cell of {run} was evaluated (the reasons are above)")


def _run_suites(store, data_root: Path, picked: list[str], epochs: Optional[int], episodes: int, allow_stale: bool,
                device) -> int:
    from neuromem.study.suites import SuiteOptions, run_suites

    def show(cell_id, suite, rows, note) -> None:
        where = f"{cell_id} {suite}" if suite else cell_id
        if rows is None:
            console.print(f"[yellow]-[/] {where}: {note}", highlight=False, soft_wrap=True)
            return
        curves = sorted({r["curve"] for r in rows})
        console.print(f"[green]✓[/] {where}: {len(rows)} rows ({', '.join(curves)})" + (f"; {note}" if note else ""),
                      highlight=False, soft_wrap=True)

    return run_suites(store, data_root, picked, SuiteOptions(epochs=epochs, episodes=episodes), show, allow_stale,
                      device)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("reprice")(reprice)
    app.command("evaluate")(evaluate)
