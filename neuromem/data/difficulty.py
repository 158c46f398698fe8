"""How hard is a data set? Linear-classifier baselines on binned counts (a difficulty proxy).

`python -m neuromem.data.difficulty --root ROOT` fits scikit-learn's logistic
regression on each data set's training split and scores the test split, on
(a) all bins flattened and (b) counts summed over time. A linear read-out of
raw counts is a floor that a spiking network with memory should clear; a
number near 100 % means the task cannot separate models.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from neuromem.data.dataset import load_split
from neuromem.data.registry import dataset_names


def _features(inputs: np.ndarray, collapse_time: bool) -> np.ndarray:
    inputs = np.asarray(inputs)  # dense: the probe is for small sets
    x = inputs.sum(axis=1) if collapse_time else inputs
    return np.log1p(x.reshape(len(x), -1).astype(np.float32))  # log1p tames the heavy tail of counts


def logistic_baselines(root, dataset: str, cache_dir=None, time_bins: int | None = None, max_iter: int = 300,
                       seed: int = 0, threads: int = 1) -> dict:
    from threadpoolctl import threadpool_limits

    # BLAS threads fighting over a small shared machine cost more than they give
    with threadpool_limits(limits=threads):
        return _logistic_baselines(root, dataset, cache_dir, time_bins, max_iter, seed)


def _logistic_baselines(root, dataset, cache_dir, time_bins, max_iter, seed) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train = load_split(dataset, root, "train", time_bins=time_bins, cache_dir=cache_dir)
    test = load_split(dataset, root, "test", time_bins=time_bins, cache_dir=cache_dir)
    results = {"dataset": dataset, "train_samples": len(train), "test_samples": len(test),
               "time_bins": train.time_bins, "source": train.source}
    for name, collapse in (("flattened_bins", False), ("time_collapsed", True)):
        started = time.perf_counter()
        scaler = StandardScaler().fit(_features(train.inputs, collapse))
        model = LogisticRegression(max_iter=max_iter, C=0.1, random_state=seed)
        model.fit(scaler.transform(_features(train.inputs, collapse)), train.labels)
        results[name] = {
            "train_accuracy": float(model.score(scaler.transform(_features(train.inputs, collapse)), train.labels)),
            "test_accuracy": float(model.score(scaler.transform(_features(test.inputs, collapse)), test.labels)),
            "seconds": round(time.perf_counter() - started, 1),
        }
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--dataset", "--modality", dest="datasets", default=None,
                        help="comma-separated data sets (default: every registered one)")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    names = args.datasets.split(",") if args.datasets else dataset_names()
    for name in names:
        print(json.dumps(logistic_baselines(args.root, name.strip(), cache_dir=args.cache_dir)))


if __name__ == "__main__":
    main()
