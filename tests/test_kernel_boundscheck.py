"""The CPU kernels stay inside their arrays: a few kernel tests rerun with numba's bounds checks
on (NUMBA_BOUNDSCHECK=1, an out-of-range index raises IndexError instead of reading or writing
beside the buffer). numba compiles without the checks otherwise; some invariants span files
(e.g. a non-zero scan writes whole blocks of candidate indices into buffers sized for them), so
only a checked run shows they hold. A fresh NUMBA_CACHE_DIR: no unchecked cached code is reused."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuromem.neurons.functional import jit
from neuromem.neurons.models import get_neuron, neuron_names

pytestmark = pytest.mark.skipif(jit.numba is None, reason="numba not installed")

ROOT = Path(__file__).resolve().parent.parent


def _selected_tests() -> list[str]:
    models = [name for name in neuron_names() if get_neuron(name).has_kernels]
    fused = [name for name in models if get_neuron(name).fused_conv]
    core = "tests/test_fast_core.py::"
    # each model's recurrent kernels (forward, spike-only and general backward), the fused
    # convolution (the row loops of the feed-forward kernels, the scatter, the input gradient),
    # the non-zero scans, the sparse linear sums
    selected = [
        f"{core}test_every_model_and_surrogate_fast_equals_reference[numba-True-zero-fast_sigmoid-{name}]"
        for name in models
    ]
    selected += [f"{core}test_fused_conv_equals_unfused[True-fast_sigmoid-subtract-{name}]" for name in fused[:1]]
    selected += [
        "tests/test_kernels.py::test_both_nonzero_scans_list_the_entries_of_numpy_nonzero",
        "tests/test_sparse_synapses.py::test_sparse_linear_fills_every_density_regime",
    ]
    return selected


def test_kernel_tests_pass_with_numba_bounds_checks(tmp_path):
    environment = dict(os.environ, NUMBA_BOUNDSCHECK="1", NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-p", "no:cacheprovider", *_selected_tests()],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    summary = result.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "deselected" not in summary, summary
