#!/usr/bin/env bash
# Item-level cross-modal Recall@1 (issue 28 item 6): joint cmhan and joint scl trained on fixed item pairs,
# two separately trained hopfield networks (parallel) aligned post hoc on the same pairs; 3 seeds, embedded data,
# one cell at a time, one thread. Then `python -m benchmarks.item_retrieval` prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
N="nice -n 5 ${PYTHON:-.venv/bin/python} -m neuromem"
BUDGET="--seeds 3 --epochs 3 --max-train-samples 1000 --threads 1"
$N ablate --modality joint --memory cmhan,scl --pairing item $BUDGET --out runs/items/joint
$N ablate --modality parallel --memory hopfield $BUDGET --out runs/items/parallel
$N retrieval runs/items/joint --allow-stale  # other model code changed meanwhile: the weights load or are refused
$N retrieval runs/items/parallel --allow-stale
