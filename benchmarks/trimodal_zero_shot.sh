#!/usr/bin/env bash
# The tri-modal design document's zero-shot protocol (issue 28 item 7): trained on text-image and text-audio pairs
# only, then image <-> audio retrieval, beside the same network trained on every pair; through `neuromem evaluate`.
set -euo pipefail
cd "$(dirname "$0")/.."
N="nice -n 5 ${PYTHON:-.venv/bin/python} -m neuromem"
for schedule in zero-shot joint; do
  $N ablate --modality trimodal --memory ttt --preset small --trimodal-schedule $schedule --epochs 2 \
     --max-train-samples 400 --threads 1 --out runs/trimodal-zero-shot
done
$N evaluate runs/trimodal-zero-shot --robustness dropout --allow-stale  # model code of others changed meanwhile
