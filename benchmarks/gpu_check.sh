#!/usr/bin/env bash
# The prepared GPU check of issue 29 (item 6): on a CUDA machine, in a copy of this working tree, with no internet.
#
#   bash benchmarks/gpu_check.sh prepare   # HERE, with internet: wheels the GPU machine lacks into .whl/ (git-ignored
#                                          # through .git/info/exclude; carry it: the device tool's `carry: [".whl"]`)
#   bash benchmarks/gpu_check.sh           # THERE: install them, then the CUDA tests, the GPU bench, SHD hopfield
#                                          # cells end to end on CUDA (fp32 and bf16), evaluate / engram / export
#                                          # --compare with --device cuda; results under $OUT
#
# What the GPU image has (the device tool's list of machine kinds, 2026-11): Python 3.12, torch 2.11 (CUDA 13), triton 3.6,
# numba, h5py, scipy, scikit-learn, matplotlib, typer, rich. What neuromem needs beside them: tonic (+ expelliarmus,
# importRosbag, librosa and its own needs), nir, snntorch and norse (the bench's peers). Budget: under 8 minutes
# (each step has its own `timeout`, together 460 s); every step's log lands in $OUT, a failed step does not stop the next.
# Status: written, never run: no device machine was lent to the session that wrote it (benchmarks/README.md).
set -u
cd "$(dirname "$0")/.."

if [ "${1:-}" = "prepare" ]; then
    grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
    mkdir -p .whl
    pip_download() {
        python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
            --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "$@"
    }
    # pure-Python or manylinux wheels the image lacks (versions as this repository's .venv runs them)
    pip_download tonic==1.7.0 expelliarmus importRosbag nir==1.0.8 snntorch==1.0.0 librosa audioread soxr \
        lazy-loader pooch soundfile msgpack decorator platformdirs || exit 1
    # norse 1.1.0 is an sdist on PyPI: build its wheel here (pure Python)
    python3 -m pip wheel --no-deps --no-build-isolation -w .whl norse==1.1.0 || echo "norse not built: the bench runs without it"
    du -sh .whl
    exit 0
fi

OUT="${OUT:-$(mktemp -d)}"
export PYTHONUNBUFFERED=1 NEUROMEM_HOME="${NEUROMEM_HOME:-/tmp/neuromem-home}"
started=$(date +%s)
step() {  # step NAME SECONDS COMMAND...: its output to $OUT/NAME.log, its time and exit code to $OUT/steps.txt
    local name=$1 limit=$2; shift 2
    local t0=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    echo "$name rc=$rc seconds=$(( $(date +%s) - t0 ))" | tee -a "$OUT/steps.txt"
}

# 1. what the machine is, and the wheels it lacks
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
if ls .whl/*.whl > /dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        > "$OUT/install.log" 2>&1 || { echo "wheel install failed (see install.log)" | tee -a "$OUT/steps.txt"; }
    export PYTHONPATH="/tmp/site:$PWD"
else
    echo "no .whl/: run 'bash benchmarks/gpu_check.sh prepare' here and carry .whl" | tee -a "$OUT/steps.txt"
    export PYTHONPATH="$PWD"
fi
python3 -c "import torch, triton; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0), triton.__version__)" \
    > "$OUT/versions.txt" 2>&1

# 2. the CUDA tests: the generated kernels on the GPU against the CPU reference (every model x surrogate x recurrence;
#    SE-adLIF too; sparse batches assembled on the GPU against the CPU's); the commands' --device tests skip there
#    (they check the refusal of a missing CUDA)
step tests 120 python3 -m pytest -q -p no:cacheprovider tests/test_device_path.py tests/test_device_batches.py

# 3. the GPU bench (neuromem vs snnTorch vs Norse on CUDA; a short run: 3 repetitions, no peak-memory subprocesses)
step bench 80 python3 -m neuromem bench --device cuda --inputs spec --repetitions 3 --no-memory \
    --configs shd-feedforward,shd-recurrent,nmnist-conv --out "$OUT/bench.md"

# 4. cells end to end on the GPU: embedded SHD-like data, hopfield, 2 epochs x 1024 samples, fp32 and bf16 autocast
#    (--precision; the CPU's bf16 numbers are in benchmarks/README.md); then a checkpoint on the CPU
step ablate 90 python3 -m neuromem ablate --modality shd --memory hopfield --epochs 2 --max-train-samples 1024 \
    --precision fp32,bf16 --device cuda --out /tmp/gpu-cell
cp /tmp/gpu-cell/results.json "$OUT/ablate-results.json" 2>/dev/null
step checkpoint-on-cpu 20 env CUDA_VISIBLE_DEVICES= python3 -c "
import glob, torch
def tensors(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, dict):
        for v in x.values():
            yield from tensors(v)
path = glob.glob('/tmp/gpu-cell/cells/*/model.pt')[0]
loaded = torch.load(path, weights_only=True)  # no map_location, no CUDA visible: fails if a tensor was saved on the GPU
print(path, 'all CPU tensors:', all(t.device.type == 'cpu' for t in tensors(loaded)))"

# 5. the other commands' --device: evaluate (the cells' networks on CUDA; level 0 must equal the stored test
#    accuracy), engram of a parallel cell (its permutation nulls on CUDA), export --to nir --compare (the cell and neuromem's reading of
#    its graph on CUDA, Norse beside them on the CPU) of a spiking cell trained on CUDA
step evaluate 40 python3 -m neuromem evaluate /tmp/gpu-cell --robustness noise --device cuda
cp /tmp/gpu-cell/results.json "$OUT/evaluate-results.json" 2>/dev/null
step engram-cell 40 python3 -m neuromem ablate --modality parallel --memory hopfield --epochs 1 \
    --max-train-samples 256 --device cuda --out /tmp/gpu-pair
step engram 15 python3 -m neuromem engram /tmp/gpu-pair --permutations 2000 --device cuda --out "$OUT/engram.html"
step nir-cell 40 python3 -m neuromem ablate --modality shd --memory hopfield-spiking --neuron-option reset=zero \
    --epochs 1 --max-train-samples 512 --device cuda --out /tmp/gpu-nir
step export-compare 15 sh -c 'python3 -m neuromem export /tmp/gpu-nir --to nir --out /tmp/gpu-nir/cell.nir \
    --compare 32 --device cuda'

echo "total seconds=$(( $(date +%s) - started ))" | tee -a "$OUT/steps.txt"
