"""`neuromem engram RUN_DIR [RUN_DIR ...] --out report.html` (mounted by neuromem.cli)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("engram")
    def engram(
        run_dirs: list[Path] = typer.Argument(..., help="run directories written by `neuromem ablate`"),
        out: Path = typer.Option(Path("engram_report.html"), "--out", help="HTML report; engram.json goes beside it"),
        permutations: int = typer.Option(1000, "--permutations", min=1, help="permutations per significance test"),
        seed: int = typer.Option(0, "--seed", help="seed of the permutation tests"),
        max_pairs_per_digit: int = typer.Option(50, "--max-pairs-per-digit", min=1, help="digit-matched pairs per digit for CKA/CCA"),
        device: str = typer.Option("auto", "--device", help="where the CKA and CCA permutation nulls run (batched): auto (CUDA when present, else the CPU), cpu, cuda or cuda:N"),
    ) -> None:
        """Cross-modal alignment of memory engrams (cosine, CKA, RSA, CCA with permutation p-values)."""
        from neuromem.device import resolve_device
        from neuromem.errors import NeuromemError, check_writable_file

        where = resolve_device(device)

        seen: dict[Path, Path] = {}
        for run in run_dirs:
            if Path(run).resolve() in seen:
                raise NeuromemError(f"run {run} is given twice (also as {seen[Path(run).resolve()]}); give each run once")
            seen[Path(run).resolve()] = run

        for target, flag in ((Path(out), "--out"), (Path(out).parent / "engram.json", "--out (engram.json beside it)")):
            for run in run_dirs:  # an input run's own files are never overwritten
                if target.exists() and target.resolve().is_relative_to(Path(run).resolve() / "cells") or (
                        target.resolve().parent == Path(run).resolve()
                        and target.name in ("results.sqlite", "results.csv", "results.json", "report.md")):
                    raise NeuromemError(f"{flag} {target} would overwrite a file of the input run {run}; "
                                        "give another output path")
        check_writable_file(out, "--out", "engram_report.html")  # before the statistics, not after
        check_writable_file(Path(out).parent / "engram.json", "--out (engram.json beside it)")
        from neuromem.engram.report import build_report  # matplotlib only when the command runs

        document = build_report(run_dirs, out, permutations, seed, max_pairs_per_digit, device=str(where))
        for entry in document["comparisons"]:
            cosine = entry["cosine"]
            cosine_text = (
                f"cosine match-nonmatch {cosine['difference']:.3f} (p={cosine['p_value']:.3g})" if cosine else "cosine n/a"
            )
            typer.echo(
                f"{entry['label']} [{entry['kind']}]: {cosine_text}, "
                f"CKA {entry['cka']['linear_cka']:.3f} (p={entry['cka']['p_value']:.3g}), "
                f"RSA {entry['rsa']['spearman_r']:.3f} (p={entry['rsa']['p_value']:.3g}), "
                f"CCA {entry['cca']['mean_canonical_correlation']:.3f} (p={entry['cca']['p_value']:.3g})"
            )
        for warning in document.get("warnings", []):
            typer.echo(f"warning: {warning}", err=True)
        typer.echo(f"report: {out}  numbers: {Path(out).parent / 'engram.json'}")
