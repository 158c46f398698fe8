"""The CPU tier switch (neuromem/cpu_tier.py): the portable tier turns every machine-specific trick
off and computes the same spikes and (to rounding) the same gradients as the tuned tier."""

import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import run_cli
from neuromem import cpu_tier

# In a fresh process per tier: what is switched, then one forward + backward of a recurrent
# spiking layer and of a convolution stack on sparse input, from a fixed seed.
PROBE = r"""
import json, os, sys
import torch
import neuromem
from neuromem import cpu_tier
from neuromem.neurons import SpikingConv2d, SpikingLinear
from neuromem.neurons.functional import buffers, nonzero, sparse

torch.manual_seed(5)
linear = SpikingLinear(120, 48, beta=0.9, recurrent=True)
conv = torch.nn.Sequential(SpikingConv2d(2, 8, 3, stride=2, padding=1, beta=0.9), SpikingConv2d(8, 8, 3, stride=2, padding=1, beta=0.9))
with torch.no_grad():
    linear.synapse.weight.mul_(4.0)
    for layer in conv:
        layer.synapse.weight.mul_(3.0)
inputs = (torch.rand(30, 4, 120) < 0.05).float()
frames = (torch.rand(6, 4, 2, 16, 16) < 0.08).float().requires_grad_(True)
spikes = linear(inputs)
conv_spikes = conv(frames)
(spikes.sum() + conv_spikes.sum()).backward()
pool_before = buffers.pooled_bytes()[0]
buffers.empty((1 << 21,), torch.float32)
side_channel = bool(sparse._known_nonzeros)
json.dump({
    "tier": cpu_tier.TIER, "thp": os.environ.get("THP_MEM_ALLOC_ENABLE"),
    "scan": int(nonzero.SCAN),
    "pooled": buffers.pooled_bytes()[0] > pool_before or pool_before > 0, "side_channel": side_channel,
    "spikes": spikes.flatten().tolist(), "conv_spikes": conv_spikes.flatten().tolist(),
    "grads": {name: p.grad.flatten().tolist() for name, p in [*linear.named_parameters(), *conv.named_parameters()]},
    "input_grad": frames.grad.flatten().tolist(),
}, open(sys.argv[1], "w"))
"""


def _host_has_avx512() -> bool:
    from llvmlite import binding

    return bool(binding.get_host_cpu_features().get("avx512f")) and not os.environ.get("NUMBA_CPU_NAME")


def _probe(tier: str, tmp_path) -> dict:
    pytest.importorskip("numba")
    out = tmp_path / f"{tier}.json"
    env = {key: value for key, value in os.environ.items() if key != "THP_MEM_ALLOC_ENABLE"}
    env.update(NEUROMEM_CPU_TIER=tier, OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, "-c", PROBE, str(out)], env=env, check=True, timeout=600)
    return json.loads(out.read_text())


def test_portable_tier_switches_every_trick_off_and_computes_the_same(tmp_path):
    tuned, portable = _probe("tuned", tmp_path), _probe("portable", tmp_path)
    assert tuned["tier"] == "tuned" and portable["tier"] == "portable"
    assert tuned["thp"] == "1" and portable["thp"] is None  # neuromem sets the allocator variable only when tuned
    assert portable["scan"] == 0 and tuned["scan"] == (2 if _host_has_avx512() else 0)  # 0: entry by entry; 2: AVX-512
    assert not portable["pooled"] and not portable["side_channel"]
    assert tuned["pooled"] and tuned["side_channel"]
    assert sum(tuned["spikes"]) > 0 and sum(tuned["conv_spikes"]) > 0  # the layers fire
    assert portable["spikes"] == tuned["spikes"] and portable["conv_spikes"] == tuned["conv_spikes"]
    assert portable["grads"].keys() == tuned["grads"].keys()
    for name in tuned["grads"]:
        torch.testing.assert_close(torch.tensor(portable["grads"][name]), torch.tensor(tuned["grads"][name]),
                                   rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(torch.tensor(portable["input_grad"]), torch.tensor(tuned["input_grad"]), rtol=1e-4, atol=1e-5)


def test_each_tier_keeps_its_own_kernel_cache(monkeypatch):
    from neuromem.neurons.functional import jit, leaky

    if jit.numba is None:
        pytest.skip("numba is not installed")
    ours = [c for c in jit._cache_impl()._locator_classes if c.__name__.startswith("KernelSources")]
    found = next(filter(None, (c.from_function(leaky._leaky_forward_kernel.py_func, leaky.__file__) for c in ours)), None)
    assert found is not None  # a kernel file is cached by our stamped locators
    assert found.get_cache_path().endswith(os.sep + "portable") == (not cpu_tier.TUNED)
    stamp = jit._kernel_sources_stamp()
    monkeypatch.setattr(cpu_tier, "TIER", "portable" if cpu_tier.TUNED else "tuned")
    assert jit._kernel_sources_stamp() != stamp  # and the stamp names the tier


def test_an_unknown_tier_is_one_line_naming_the_variable_and_the_choices(monkeypatch):
    monkeypatch.setenv("NEUROMEM_CPU_TIER", "avx9000")
    result = run_cli("memories")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "NEUROMEM_CPU_TIER='avx9000'" in lines[0] and "tuned, portable" in lines[0]
    assert "Traceback" not in result.stderr
