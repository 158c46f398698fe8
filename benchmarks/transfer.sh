#!/usr/bin/env bash
# Transfer N-MNIST -> SHD and SHD -> N-MNIST against training from scratch at the same budget (issue 28 item 4).
# Embedded default data; one cell at a time, one thread. Writes runs/transfer/*; then
# `python -m benchmarks.transfer` draws the learning curves and prints the table.
set -euo pipefail
cd "$(dirname "$0")/.."
N="nice -n 5 ${PYTHON:-.venv/bin/python} -m neuromem"
BUDGET="--memory hopfield --seeds 3 --epochs 4 --max-train-samples 200 --threads 1"
$N ablate --modality nmnist,shd --memory hopfield --epochs 3 --threads 1 --out runs/transfer/source
NMNIST=$(ls -d runs/transfer/source/cells/nmnist-hopfield-s0-*)
SHD=$(ls -d runs/transfer/source/cells/shd-hopfield-s0-*)
$N ablate --modality shd,nmnist $BUDGET --out runs/transfer/scratch
$N ablate --modality shd $BUDGET --init-from "$NMNIST" --out runs/transfer/nmnist-to-shd
$N ablate --modality nmnist $BUDGET --init-from "$SHD" --out runs/transfer/shd-to-nmnist
$N ablate --modality shd $BUDGET --init-from "$NMNIST" --freeze memory --out runs/transfer/nmnist-to-shd-frozen
$N ablate --modality nmnist $BUDGET --init-from "$SHD" --freeze memory --out runs/transfer/shd-to-nmnist-frozen
