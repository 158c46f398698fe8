"""The item-level retrieval table (`benchmarks/item_retrieval.sh` first): item Recall@1 on the training pairs
and class Recall@1 on the test split, both directions, mean ± std over seeds, from the runs' stores."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SYSTEMS = [  # label, run, memory, key infix (the joint network's own recall, or a post-hoc alignment)
    ("joint cmhan (--pairing item)", "joint", "cmhan", ""),
    ("joint scl (--pairing item)", "joint", "scl", ""),
    ("parallel hopfield + Procrustes", "parallel", "hopfield", "procrustes_"),
    ("parallel hopfield + CCA", "parallel", "hopfield", "cca_"),
]


def rows(run: Path) -> list[dict]:
    db = sqlite3.connect(run / "results.sqlite")
    try:
        found = db.execute("SELECT cell_id, metrics FROM evaluations WHERE evaluation = 'item-retrieval'").fetchall()
    finally:
        db.close()
    return [{"cell_id": c, **json.loads(m)} for c, m in found]


def main(base: Path = ROOT / "runs" / "items") -> None:
    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"

    lines = ["| system | n | pairs | item R@1 visual→audio | item R@1 audio→visual | item MRR v→a | "
             "class R@1 visual→audio (test) | class R@1 audio→visual (test) |", "|---|---|---|---|---|---|---|---|"]
    for label, run, memory, infix in SYSTEMS:
        mine = [r for r in rows(base / run) if r["cell_id"].startswith(f"{run}-{memory}-")]
        get = lambda key: [r[key] for r in mine]  # noqa: E731
        lines.append(f"| {label} | {len(mine)} | {int(np.mean(get('pairs')))} | "
                     f"{cell(get(f'item_{infix}nmnist_to_shd_recall@1'))} | {cell(get(f'item_{infix}shd_to_nmnist_recall@1'))} | "
                     f"{cell(get(f'item_{infix}nmnist_to_shd_mrr'))} | {cell(get(f'class_{infix}nmnist_to_shd_recall@1'))} | "
                     f"{cell(get(f'class_{infix}shd_to_nmnist_recall@1'))} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
