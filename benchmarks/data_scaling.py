"""Data of real size: one epoch of an N-MNIST `hopfield` cell per training-set size, with the binned cache's size,
the worker's peak resident memory, and whether a second run bins again; tonic's DiskCachedDataset beside it.

    python -m benchmarks.data_scaling --root 2000=/data/n2k --root 10000=/data/n10k --root 60000=/data/n60k \
        [--peer-up-to 10000] [--baseline /path/to/older/checkout --baseline-up-to 10000] [--out FILE.md]

Each root is in the layout of --modality, N-MNIST by default (`neuromem data synth --modality nmnist --nmnist-train
N/10 ...` writes one; `--modality ssc --size ssc.train=N/35` an SSC one). Every
run is a fresh subprocess with a fresh NEUROMEM_HOME (an empty cache), so its peak RSS is its own. `--baseline`
runs the same cell with another checkout's code first on the path (e.g. the dense cache before the sparse one), on
the same machine, in the same invocation. The table goes to --out (markdown) and to stdout."""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CELL = ["ablate", "--memory", "hopfield", "--epochs", "1", "--threads", "1"]


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _run(command: list[str], env: dict, cwd: str | None = None) -> tuple[float, int, str]:
    """(wall seconds, peak RSS bytes, output tail) of one command in a child that measures itself."""
    probe = ("import resource, subprocess, sys, json, time; t = time.perf_counter(); "
             "p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
             "print(json.dumps({'rc': p.returncode, 'wall': time.perf_counter() - t, "
             "'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, 'tail': (p.stdout + p.stderr)[-600:]}))")
    done = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, env=env, cwd=cwd)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if result["rc"] != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result['rc']}):\n{result['tail']}")
    return result["wall"], result["rss"], result["tail"]


def _entries(cache: Path) -> dict[str, int]:
    return {p.name: p.stat().st_ino for p in cache.iterdir() if not p.name.startswith(".")} if cache.exists() else {}


def neuromem_row(label: str, root: Path, work: Path, pythonpath: str | None = None, modality: str = "nmnist") -> dict:
    home = work / f"home-{label}"
    env = {**os.environ, "NEUROMEM_HOME": str(home)}
    if pythonpath:  # and run from there: `python -m` puts the working folder first on the path
        env["PYTHONPATH"] = pythonpath
    command = [sys.executable, "-m", "neuromem", *CELL, "--modality", modality, "--data-root", str(root)]
    wall, rss, _ = _run([*command, "--out", str(work / f"run-{label}-1")], env, pythonpath)
    cache = home / "cache"
    size, entries = _tree_bytes(cache), _entries(cache)
    # the second run trains on a 2,000-sample subset: what it shows is whether the split is binned again
    wall2, rss2, _ = _run([*command, "--max-train-samples", "2000", "--out", str(work / f"run-{label}-2")], env,
                          pythonpath)
    again = _entries(cache)
    kept = all(name in again and again[name] == inode for name, inode in entries.items())
    splits = sorted({name.split("-")[1] for name in again})
    return {"wall_s": wall, "peak_rss": rss, "cache_bytes": size, "cached_splits": ",".join(splits),
            "second_wall_s": wall2, "second_peak_rss": rss2, "second_binned_again": not kept}


class _Files:
    """N-MNIST training files as a map-style data set of tonic events (tonic's NMNIST class wants the zip)."""

    def __init__(self, root: Path):
        import numpy as np

        folders = sorted((root / "NMNIST" / "Train").iterdir(), key=lambda p: p.name)
        self.files = [(f, int(d.name)) for d in folders if d.name.isdigit() for f in sorted(d.glob("*.bin"))]
        self._np = np

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int):
        import tonic

        path, label = self.files[i]
        events = tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
        return events, label


def tonic_row(root: Path, work: Path) -> dict:
    """tonic's DiskCachedDataset over the same files and the same frames (30 bins of 10 ms); two passes."""
    import resource as res

    import tonic

    cache = work / "tonic-cache"
    shutil.rmtree(cache, ignore_errors=True)
    frames = tonic.transforms.ToFrame(sensor_size=tonic.datasets.NMNIST.sensor_size, n_time_bins=30)
    data = tonic.DiskCachedDataset(_Files(root), cache_path=str(cache), transform=frames)
    walls = []
    for _ in range(2):
        start = time.perf_counter()
        for i in range(len(data)):
            data[i]
        walls.append(time.perf_counter() - start)
    return {"first_pass_s": walls[0], "second_pass_s": walls[1], "cache_bytes": _tree_bytes(cache),
            "peak_rss": res.getrusage(res.RUSAGE_SELF).ru_maxrss * 1024}


def _peer_in_child(root: Path, work: Path) -> dict:
    code = ("import json, sys; from pathlib import Path; from benchmarks.data_scaling import tonic_row; "
            "print(json.dumps(tonic_row(Path(sys.argv[1]), Path(sys.argv[2]))))")
    done = subprocess.run([sys.executable, "-c", code, str(root), str(work)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1][:200]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", action="append", required=True, help="SAMPLES=PATH, a root in the data set's layout")
    parser.add_argument("--modality", default="nmnist", help="the cell's data set (tonic's loader runs on N-MNIST only)")
    parser.add_argument("--peer-up-to", type=int, default=10000, help="run tonic's loader on sets up to this size")
    parser.add_argument("--baseline", default=None, help="another checkout to run first on the path, as 'before'")
    parser.add_argument("--baseline-up-to", type=int, default=10000, help="run the baseline on sets up to this size")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    roots = sorted(((int(n), Path(p)) for n, p in (r.split("=", 1) for r in args.root)), key=lambda r: r[0])
    rows = []
    with tempfile.TemporaryDirectory(prefix="nm-scaling-") as tmp:
        work = Path(tmp)
        for samples, root in roots:
            row = {"samples": samples, "neuromem": neuromem_row(f"{samples}", root, work, modality=args.modality)}
            if args.baseline and samples <= args.baseline_up_to:
                row["baseline"] = neuromem_row(f"{samples}-base", root, work, args.baseline, args.modality)
            if samples <= args.peer_up_to and args.modality == "nmnist":
                row["tonic"] = _peer_in_child(root, work)
            rows.append(row)
            print(json.dumps(row), flush=True)
            for leftover in work.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
    lines = ["| training samples | loader | epoch wall (binning included) | peak RSS | cache after the run | "
             "splits cached | second run (2,000 samples) |", "|---|---|---|---|---|---|---|"]
    for row in rows:
        for name in ("neuromem", "baseline"):
            if name in row:
                r = row[name]
                second = (f"{r['second_wall_s']:.0f} s, " + ("binned again" if r["second_binned_again"] else "cache hit"))
                lines.append(f"| {row['samples']:,} {args.modality} | {name if name == 'neuromem' else 'neuromem, ' + args.baseline} | "
                             f"{r['wall_s']:.0f} s | {_gb(r['peak_rss'])} | {_gb(r['cache_bytes'])} | "
                             f"{r['cached_splits']} | {second} |")
        if "tonic" in row:
            t = row["tonic"]
            if "error" in t:
                lines.append(f"| {row['samples']:,} | tonic DiskCachedDataset | failed: {t['error']} | | | | |")
            else:
                lines.append(f"| {row['samples']:,} | tonic DiskCachedDataset (frames only, no training) | "
                             f"{t['first_pass_s']:.0f} s (first pass) | {_gb(t['peak_rss'])} | {_gb(t['cache_bytes'])} "
                             f"| train | {t['second_pass_s']:.0f} s |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
