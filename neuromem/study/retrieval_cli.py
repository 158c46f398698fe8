"""`neuromem retrieval RUN`: item-level cross-modal retrieval of a finished run's two-sense cells."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from neuromem.errors import NeuromemError


def retrieval(
    run: Path = typer.Argument(..., help="The --out folder of an ablate run."),
    data_root: Optional[Path] = typer.Option(None, help="Data root the cells were trained on (default: the run's, if it used one)."),
    allow_stale: bool = typer.Option(False, "--allow-stale", help="Also evaluate cells whose model code changed since training."),
) -> None:
    """Item-level Recall@K / MRR / NDCG (the training split's fixed visual-spoken pairs) beside class level, for
    every finished joint or parallel cell (parallel: aligned post hoc by Procrustes and CCA); into the store
    (evaluation item-retrieval) and the report."""
    from neuromem.study.item_retrieval import evaluate_items
    from neuromem.study.report import write_reports
    from neuromem.train.cli import _open_store, _say_rejected, console

    store = _open_store(run, writes=True)
    roots = [r for r in store.run_info().get("data_root", "").split("; ") if r]
    if data_root is None and len(roots) != 1:
        raise NeuromemError(f"{run}: the run used {len(roots) or 'no'} data roots ({'; '.join(roots)}); give --data-root")
    data_root = Path(data_root or roots[0])
    if not data_root.is_dir():
        raise NeuromemError(f"--data-root {data_root}: not a folder; give the data root the cells were trained on")

    def show(cell_id, metrics, skipped) -> None:
        if metrics is None:
            console.print(f"[yellow]-[/] {cell_id}: not evaluated: {skipped}", highlight=False)
            return
        recalls = {k.removesuffix("_recall@1"): v for k, v in metrics.items() if k.startswith("item_") and k.endswith("recall@1")}
        console.print(f"[green]✓[/] {cell_id}: item Recall@1 ({metrics['pairs']} pairs) " +
                      ", ".join(f"{k.removeprefix('item_')} {v:.3f}" for k, v in recalls.items()), highlight=False)

    count = evaluate_items(store, data_root, show, allow_stale)
    _say_rejected(store)
    paths = write_reports(store)
    console.print(f"item retrieval of {count} cells; report: {paths['report']}")
    if count == 0:
        raise NeuromemError(f"no cell of {run} was evaluated (item retrieval takes joint and parallel cells; reasons above)")


def register(app: typer.Typer) -> None:
    app.command("retrieval")(retrieval)
