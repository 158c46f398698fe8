"""The GPU path without a GPU, and --device (issue 29).

- The Triton kernels generated from the neuron registry (`neuromem.neurons.fused_gpu`) run on CPU tensors under
  Triton's interpreter (TRITON_INTERPRET=1) and equal the reference step for every covered model x surrogate x
  recurrence: spikes and membranes equal, gradients (inputs, recurrent weight, initial state) to float rounding.
  Covered: the template models, and SE-adLIF from its own step functions (its `gpu_module`); the Loihi neuron is
  not (its fixed-point update keeps its own paths on CUDA).
- Each pair's kernels compile for an sm_90 (H100) target on this CPU-only machine (Triton's own ptxas): what a GPU
  would run is the same source the interpreter ran.
- `--device`: resolved and checked in one module; a device this machine lacks is one line and exit 2; the device is
  not part of a cell's identity.
- CUDA-only tests skip, saying why, where torch sees no CUDA device.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from neuromem.device import DeviceError, resolve_device
from neuromem.neurons import fused_gpu
from neuromem.neurons.functional.neuron import neuron_sequence, reference_sequence
from neuromem.neurons.models import get_neuron, neuron_names
from neuromem.neurons.surrogates import get_surrogate, surrogate_names
from neuromem.train.config import CellConfig

needs_triton = pytest.mark.skipif(not fused_gpu.available(), reason="Triton is not installed (pip install triton)")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here (CPU-only torch or no GPU)")

MODELS = neuron_names()
SURROGATES = surrogate_names()
STEPS, BATCH, SIZE = 6, 3, 10


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")


def _case(model, surrogate: str, recurrent: bool, device: str = "cpu", seed: int = 0, **fields):
    """Inputs, recurrent weight and an initial state (all leaves needing gradients) for one comparison."""
    g = torch.Generator().manual_seed(seed)
    p = model.make_parameters(surrogate=surrogate, threshold=0.5, **fields)
    inputs = torch.rand(STEPS, BATCH, SIZE, generator=g) * 1.2
    weight = torch.randn(SIZE, SIZE, generator=g) * 0.3 if recurrent else None
    fields = {name: torch.rand(BATCH, SIZE, generator=g) * 0.4 for name in model.state._fields}
    fields["spikes"] = (torch.rand(BATCH, SIZE, generator=g) < 0.3).float()
    leaves = [t.to(device).requires_grad_() for t in (inputs, weight, *fields.values()) if t is not None]
    inputs, weight = leaves[0], (leaves[1] if recurrent else None)
    state = model.state(*leaves[2 if recurrent else 1:])
    upstream = [torch.randn(STEPS, BATCH, SIZE, generator=g).to(device) for _ in range(2)]
    return p, inputs, weight, state, leaves, upstream


def _loss(spikes, final, membranes, upstream):
    """Reads spikes, membranes and the final state (an aux trace included), so every backward branch runs."""
    loss = (spikes * upstream[0]).sum() + (membranes * upstream[1]).sum()
    return loss + sum(t.sum() * (i + 1) for i, t in enumerate(final) if t.requires_grad)


def _grads(loss, leaves):
    return torch.autograd.grad(loss, leaves, allow_unused=True)


def _compare(model, surrogate, recurrent, run, device="cpu", **fields):
    p, inputs, weight, state, leaves, upstream = _case(model, surrogate, recurrent, device, **fields)
    spikes, final, membranes = run(model, inputs, p, weight, state, return_membrane=True)
    ref_p, ref_inputs, ref_weight, ref_state, ref_leaves, ref_upstream = _case(model, surrogate, recurrent, **fields)
    ref_spikes, ref_final, ref_membranes = reference_sequence(model, ref_inputs, ref_p, ref_weight, ref_state, True)
    assert 0.05 < ref_spikes.mean().item() < 0.95, "the case must spike and stay silent somewhere"
    assert torch.equal(spikes.cpu(), ref_spikes)
    torch.testing.assert_close(membranes.cpu(), ref_membranes, rtol=0, atol=0 if not recurrent else 1e-6)
    for ours, theirs in zip(final, ref_final):
        torch.testing.assert_close(ours.detach().cpu(), theirs.detach(), rtol=0, atol=1e-6)
    grads = _grads(_loss(spikes, final, membranes, upstream), leaves)
    ref_grads = _grads(_loss(ref_spikes, ref_final, ref_membranes, ref_upstream), ref_leaves)
    for name, ours, theirs in zip(("inputs", "weight", *model.state._fields)[0 if recurrent else 0:], grads, ref_grads):
        if theirs is None:
            assert ours is None or not ours.abs().any(), name
            continue
        assert ours is not None, f"no gradient for {name}"
        torch.testing.assert_close(ours.cpu(), theirs, rtol=1e-5, atol=1e-5, msg=lambda m: f"{name}: {m}")


def _uncovered_reason(model) -> str:
    return (f"neuron model {model.name!r} is outside the template the fused GPU path is generated from and names no "
            "gpu_module of its own (its own fast path stays its CUDA path): not covered")


@needs_triton
@pytest.mark.parametrize("recurrent", [False, True], ids=["feedforward", "recurrent"])
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", MODELS)
def test_generated_kernels_equal_the_reference_step(interpreter, name, surrogate, recurrent):
    model = get_neuron(name)
    if not fused_gpu.covers(model):
        pytest.skip(_uncovered_reason(model))
    _compare(model, surrogate, recurrent, fused_gpu.fused_sequence)


def _compile_for_sm90(kernel, signature: dict[str, str], constexprs: dict):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {**signature, **{name: "constexpr" for name in constexprs}}
    source = ASTSource(fn=kernel, signature=signature, constexprs=constexprs)
    return triton.compile(source, target=GPUTarget("cuda", 90, 32), options={"enable_fp_fusion": False})


@needs_triton
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", [n for n in MODELS if get_neuron(n).dynamics is not None])
def test_generated_kernels_compile_for_a_gpu_target(monkeypatch, name, surrogate):
    """Triton compiles the generated source down to sm_90 machine code here (no GPU needed), with no fused
    multiply-add left in it (the reference's rounding, hence its spikes)."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    model = get_neuron(name)
    module = fused_gpu.generated(model, surrogate)
    constants = {f"c{i}": "fp32" for i in range(len(model.dynamics.constants(model.parameters())))}
    surrogate_constants = {f"sc{i}": "fp32" for i in range(len(get_surrogate(surrogate).constants(1.0)))}
    scalars = {"n": "i32", "t_low": "i32", "t_high": "i32"}
    try:
        forward = _compile_for_sm90(
            module.forward,
            {**{k: "*fp32" for k in ("x_ptr", "fb_ptr", "v_ptr", "s_ptr", "a_ptr", "v_out_ptr", "s_out_ptr", "a_out_ptr")},
             **scalars, **constants},
            {"ZERO_RESET": False, "FED": True, "BLOCK": fused_gpu.BLOCK})
    except RuntimeError as error:  # e.g. Triton's CUDA backend without its bundled ptxas
        pytest.skip(f"Triton cannot compile for sm_90 on this machine: {error}")
    backward = _compile_for_sm90(
        module.backward,
        {**{k: "*fp32" for k in ("v_seq_ptr", "a_seq_ptr", "gs_ptr", "gm_ptr", "fb_ptr", "gd_ptr", "gv_ptr", "gi_ptr")},
         **scalars, **constants, **surrogate_constants},
        {"ZERO_RESET": True, "HAS_GS": True, "HAS_GM": True, "FED": True, "BLOCK": fused_gpu.BLOCK})
    for compiled in (forward, backward):
        assert compiled.asm["cubin"] and "fma.rn" not in compiled.asm["ptx"]


@needs_triton
@pytest.mark.parametrize("surrogate", SURROGATES)
def test_se_adlif_s_kernels_compile_for_a_gpu_target(monkeypatch, surrogate):
    """SE-adLIF's kernels, generated from its own step functions, compile to sm_90 without fused multiply-add."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    model = get_neuron("se-adlif")
    module = fused_gpu.generated(model, surrogate)
    constants = {f"c{i}": "fp32" for i in range(fused_gpu.kernel_form(model).constants)}
    surrogate_constants = {f"sc{i}": "fp32" for i in range(len(get_surrogate(surrogate).constants(1.0)))}
    scalars = {"n": "i32", "t_low": "i32", "t_high": "i32"}
    try:
        forward = _compile_for_sm90(
            module.forward, {**{k: "*fp32" for k in ("x_ptr", "fb_ptr", "w_ptr", "m_ptr", "s_ptr", "m_out_ptr",
                                                     "s_out_ptr")}, **scalars, **constants},
            {"ZERO_RESET": True, "FED": True, "BLOCK": fused_gpu.BLOCK})
    except RuntimeError as error:
        pytest.skip(f"Triton cannot compile for sm_90 on this machine: {error}")
    backward = _compile_for_sm90(
        module.backward, {**{k: "*fp32" for k in ("v_seq_ptr", "gs_ptr", "gm_ptr", "fb_ptr", "gd_ptr", "grad_m_ptr",
                                                  "grad_w_ptr")}, **scalars, "steps": "i32", **constants,
                          **surrogate_constants},
        {"ZERO_RESET": False, "HAS_GS": True, "HAS_GM": True, "FED": True, "BLOCK": fused_gpu.BLOCK})
    for compiled in (forward, backward):
        assert compiled.asm["cubin"] and "fma.rn" not in compiled.asm["ptx"]


@needs_triton
@pytest.mark.parametrize("recurrent", [False, True], ids=["feedforward", "recurrent"])
def test_se_adlif_s_generated_kernels_equal_its_reference_step_with_the_other_reset(interpreter, recurrent):
    """(its default reset, zero, runs in the test above for every surrogate)"""
    _compare(get_neuron("se-adlif"), "atan", recurrent, fused_gpu.fused_sequence, reset="subtract")


def test_the_generated_source_is_the_registry_s_dynamics():
    """One model's module carries its own pieces (and the helpers they call) and the surrogate's derivative."""
    source = fused_gpu.kernel_source(get_neuron("cuba"), "triangle")
    for piece in ("cuba___charge", "cuba___current", "membrane__leaky_charge", "triangle___compiled_grad",
                  "FILTERED = tl.constexpr(True)", "ADAPTIVE = tl.constexpr(False)", "tl.where("):
        assert piece in source, piece
    with pytest.raises(ValueError, match="outside the template and names no gpu_module"):
        fused_gpu.kernel_source(get_neuron("loihi"), "atan")
    source = fused_gpu.kernel_source(get_neuron("se-adlif"), "atan")  # SE-adLIF: its own functions, its own kernels
    for piece in ("se_adlif__charge", "se_adlif__adapt", "se_adlif__membrane_adjoint", "se_adlif__through_reset",
                  "se_adlif__reset_membrane", "atan___compiled_grad"):
        assert piece in source, piece


def test_the_cpu_path_never_runs_the_generated_kernels(monkeypatch):
    """On CPU tensors `neuron_sequence` keeps its numba kernels, interpreter or not."""
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    called = []
    monkeypatch.setattr(fused_gpu, "fused_sequence", lambda *a, **k: called.append(1))
    model = get_neuron("lif")
    spikes, _ = neuron_sequence(model, torch.rand(4, 2, 5), model.parameters())
    assert spikes.shape == (4, 2, 5) and not called


# ---------------------------------------------------------------- --device


def test_device_resolution_names_the_flag_and_what_is_here():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("tpu", "cpu:2", "cuda:99"):
        with pytest.raises(DeviceError, match=r"^--device .*valid: auto, cpu"):
            resolve_device(bad)


def test_the_device_is_not_part_of_a_cell_s_identity():
    cpu = CellConfig("shd", "hopfield", seed=1, memory_options=(("beta", 4.0),))
    gpu = CellConfig("shd", "hopfield", seed=1, memory_options=(("beta", 4.0),), device="cuda:0")
    assert cpu.cell_id == gpu.cell_id and cpu.variant_digest() == gpu.variant_digest() and cpu.variant == gpu.variant
    assert "device" not in cpu.to_dict()  # configs stored before --device keep their exact dict (and id)
    assert CellConfig.from_dict(gpu.to_dict()).device == "cuda:0"  # travels to worker processes
    from neuromem.train.config import stored_digest

    assert stored_digest(gpu.to_dict()) == stored_digest(cpu.to_dict()) == cpu.digest()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present: --device cuda is valid here")
def test_cuda_on_a_machine_without_it_is_one_line(tmp_path):
    """(bench's flag: tests/test_bench.py)"""
    command = ["ablate", "--modality", "shd", "--memory", "hopfield", "--dry-run"]
    result = subprocess.run([sys.executable, "-m", "neuromem", *command, "--device", "cuda"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "--device cuda: CUDA is not available on this machine; valid: auto, cpu" in lines[0]


# ---------------------------------------------------------------- on a GPU


@needs_cuda
@needs_triton
@pytest.mark.parametrize("recurrent", [False, True], ids=["feedforward", "recurrent"])
@pytest.mark.parametrize("surrogate", SURROGATES)
@pytest.mark.parametrize("name", MODELS)
def test_cuda_layers_equal_the_cpu_reference(name, surrogate, recurrent):
    """On CUDA, `neuron_sequence` (what every spiking layer calls) equals the reference step run on the CPU."""
    _compare(get_neuron(name), surrogate, recurrent, neuron_sequence, device="cuda")


@needs_cuda
@needs_triton
def test_cuda_dispatches_template_models_to_the_generated_kernels(monkeypatch):
    seen = []
    original = fused_gpu.fused_sequence
    monkeypatch.setattr(fused_gpu, "fused_sequence", lambda *a, **k: seen.append(1) or original(*a, **k))
    from neuromem.neurons.layers import SpikingLinear

    layer = SpikingLinear(20, 16, recurrent=True).cuda()
    spikes = layer(torch.rand(5, 2, 20, device="cuda"))
    spikes.sum().backward()
    assert seen and layer.recurrent.grad is not None
