"""The fused GPU path of the neuron layers: Triton kernels generated from the neuron registry (after SpikingJelly's
FlexSN: the dynamics written once, the kernels generated from them).

For each (template neuron model, surrogate) pair, `generated(model, surrogate)` writes and imports one Python module:
the model's own `MembraneDynamics` pieces (`charge`, `threshold`, `leak`, `aux_update`, `drive_decay`, and the plain
functions they call, e.g. `membrane.leaky_charge`), and the surrogate's `compiled_grad`, each copied from its source
as a `@triton.jit` function (decorators dropped, names prefixed by their file; a conditional expression becomes
`tl.where`, `abs` `tl.abs`: the numba-style scalar code runs on Triton blocks), then two kernels written once below:

- `forward`: steps t_low..t_high-1 of a block of neurons in one launch (state in registers between steps): per step
  the model's aux_update, charge and threshold, exactly the reference step's operations in its order;
- `backward`: steps t_high down to t_low, the backward through time of `functional/neuron.py`'s `_NeuronSequence`
  (gv_t = dL/dv_t + h_t dL/ds_t + leak(s_t) gv_{t+1}; a drive-filtering aux trace: gi_t = gv_t + decay gi_{t+1}) with
  the surrogate's derivative h_t fused in; spikes are recomputed from the kept membranes.

Without a recurrent weight the whole T-step forward is one launch and the whole backward one launch. With one, the
recurrent product s_{t-1} W^T (and the backward's feedback gd_{t+1} W) is a dense matmul (cuBLAS) batched over the
rows between one-step launches of the same kernels: the product couples every neuron of a row, which one block of
neurons cannot compute alone (which of the two is faster on a GPU was not measured: no device was lent).

`neuron_sequence` (`functional/neuron.py`) runs this path for template models on float32 CUDA tensors when Triton is
importable (`applies`); the CPU keeps its numba kernels. The tests run the same generated kernels on CPU tensors under
Triton's interpreter (TRITON_INTERPRET=1, set before the first kernel is generated) against the reference step, for
every template model x surrogate x recurrence, and compile each for an sm_90 target without a GPU.

Not covered (they keep their own paths on CUDA: a torch loop, the reference loop): models outside the template,
SE-adLIF (its adaptation is updated after the spike and carries gradient both ways) and the Loihi fixed-point neuron.
The kernels are float32 only (no bf16/fp16 autocast here).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import os
import sys
import tempfile
import textwrap
import types

import torch

try:
    import triton
    import triton.language as tl  # noqa: F401 - the generated modules import it themselves
except ImportError:  # Triton comes with CUDA builds of torch; the CPU keeps numba
    triton = None

BLOCK = 256  # neurons per program (one warp group reads contiguous memory)


def available() -> bool:
    return triton is not None


def interpreting() -> bool:
    """Whether Triton runs kernels in its interpreter (TRITON_INTERPRET=1: on CPU tensors, no GPU needed)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def covers(model) -> bool:
    """Template models (registry entries with `dynamics`): their pieces are what the kernels are generated from;
    a model outside the template whose entry names a `gpu_module`: its own step functions and kernels."""
    return model.dynamics is not None or bool(model.gpu_module)


def applies(model, inputs: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """The fused path runs here: a template model, float32 CUDA tensors (or CPU ones under the interpreter), Triton."""
    if not covers(model) or inputs.dtype != torch.float32 or triton is None:
        return False
    kind = "cpu" if interpreting() else "cuda"
    return all(t.device.type == kind and t.dtype == torch.float32 for t in (inputs, *others) if t is not None)


# ---------------------------------------------------------------- source generation


class _ToTriton(ast.NodeTransformer):
    """Scalar (numba-style) code to Triton block code: renamed calls, `a if c else b` -> tl.where, abs -> tl.abs."""

    def __init__(self, renames: dict[str, str]) -> None:
        self.renames = renames

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in self.renames:
            return ast.copy_location(ast.Name(id=self.renames[node.id], ctx=node.ctx), node)
        return node

    def visit_IfExp(self, node: ast.IfExp) -> ast.AST:
        self.generic_visit(node)
        where = ast.Attribute(value=ast.Name(id="tl", ctx=ast.Load()), attr="where", ctx=ast.Load())
        return ast.copy_location(ast.Call(func=where, args=[node.test, node.body, node.orelse], keywords=[]), node)

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "abs":
            node.func = ast.Attribute(value=ast.Name(id="tl", ctx=ast.Load()), attr="abs", ctx=ast.Load())
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        node.body = _early_returns_as_else(node.body)
        return node


def _early_returns_as_else(statements: list[ast.stmt]) -> list[ast.stmt]:
    """`if flag: ... return a` then `return b` -> if/else: Triton types every return it reaches, and a constexpr
    `if` that returns does not end the function for it (leaky_leak returns a block or a scalar by its reset flag)."""
    for index, statement in enumerate(statements):
        if isinstance(statement, ast.If):
            statement.body = _early_returns_as_else(statement.body)
            statement.orelse = _early_returns_as_else(statement.orelse)
            rest = statements[index + 1:]
            if rest and not statement.orelse and isinstance(statement.body[-1], ast.Return):
                statement.orelse = _early_returns_as_else(rest)
                return statements[:index + 1]
    return statements


class _Emitter:
    """Copies plain functions (and the plain functions they call) as @triton.jit functions of one module."""

    def __init__(self) -> None:
        self.names: dict[tuple[str, str], str] = {}
        self.chunks: list[str] = []

    def function(self, fn) -> str:
        fn = inspect.unwrap(fn)
        key = (fn.__module__, fn.__qualname__)
        if key in self.names:
            return self.names[key]
        name = f"{fn.__module__.rsplit('.', 1)[-1]}__{fn.__name__}".replace("-", "_")
        self.names[key] = name
        definition = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
        if not isinstance(definition, ast.FunctionDef):
            raise TypeError(f"{fn.__qualname__}: the fused GPU path copies plain functions (def ...), not {type(definition).__name__}")
        definition.decorator_list, definition.name, definition.returns = [], name, None
        for argument in definition.args.args:
            argument.annotation = None
        body = definition.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            definition.body = body[1:] or [ast.Pass()]  # no docstring inside kernels
        renames = {}
        for used in fn.__code__.co_names:
            callee = fn.__globals__.get(used)
            if isinstance(callee, types.FunctionType):
                renames[used] = self.function(callee)
        definition = ast.fix_missing_locations(_ToTriton(renames).visit(definition))
        self.chunks.append("@triton.jit\n" + ast.unparse(definition))
        return name


def _names(prefix: str, count: int) -> tuple[str, str]:
    """Kernel parameters c0, c1, ... and the tuple the model's functions index."""
    names = [f"{prefix}{i}" for i in range(count)]
    return ", ".join(names), "(" + ", ".join(names) + ",)"


# The kernels, written once for every template model (the pieces are module globals of the generated module).
# Sequences are (T, n) flat; state (n,) buffers are read at the start and written back at the end of a launch.
_KERNELS = '''
@triton.jit
def forward(x_ptr, fb_ptr, v_ptr, s_ptr, a_ptr, v_out_ptr, s_out_ptr, a_out_ptr, n, t_low, t_high, {c_args},
            ZERO_RESET: tl.constexpr, FED: tl.constexpr, BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    c = {c_tuple}
    v = tl.load(v_ptr + offsets, mask=mask, other=0.0)
    s = tl.load(s_ptr + offsets, mask=mask, other=0.0)
    if HAS_AUX:
        a = tl.load(a_ptr + offsets, mask=mask, other=0.0)
    else:
        a = tl.full([BLOCK], 0.0, tl.float32)
    for t in range(t_low, t_high):
        drive = tl.load(x_ptr + t * n + offsets, mask=mask, other=0.0)
        if FED:
            drive = drive + tl.load(fb_ptr + offsets, mask=mask, other=0.0)
        if HAS_AUX:
            a = aux_update(a, drive, s, c)
        v = charge(drive, v, s, a, c, ZERO_RESET)
        s = tl.where(v > threshold(a, c), 1.0, 0.0)
        tl.store(v_out_ptr + t * n + offsets, v, mask=mask)
        tl.store(s_out_ptr + t * n + offsets, s, mask=mask)
        if ADAPTIVE:
            tl.store(a_out_ptr + t * n + offsets, a, mask=mask)
    tl.store(v_ptr + offsets, v, mask=mask)
    tl.store(s_ptr + offsets, s, mask=mask)
    if HAS_AUX:
        tl.store(a_ptr + offsets, a, mask=mask)


@triton.jit
def backward(v_seq_ptr, a_seq_ptr, gs_ptr, gm_ptr, fb_ptr, gd_ptr, gv_ptr, gi_ptr, n, t_low, t_high, {c_args}, {sc_args},
             ZERO_RESET: tl.constexpr, HAS_GS: tl.constexpr, HAS_GM: tl.constexpr, FED: tl.constexpr,
             BLOCK: tl.constexpr):
    offsets = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offsets < n
    c = {c_tuple}
    sc = {sc_tuple}
    gv_next = tl.load(gv_ptr + offsets, mask=mask, other=0.0)
    carry = tl.load(gi_ptr + offsets, mask=mask, other=0.0)
    for i in range(t_high - t_low + 1):
        t = t_high - i
        v = tl.load(v_seq_ptr + t * n + offsets, mask=mask, other=0.0)
        if ADAPTIVE:
            a = tl.load(a_seq_ptr + t * n + offsets, mask=mask, other=0.0)
        else:
            a = tl.full([BLOCK], 0.0, tl.float32)
        theta = threshold(a, c)
        s = tl.where(v > theta, 1.0, 0.0)
        h = surrogate_grad(v - theta, sc)
        g = step_gradient(gs_ptr, t, n, offsets, mask, HAS_GS, BLOCK)
        if FED:
            g = g + tl.load(fb_ptr + offsets, mask=mask, other=0.0)
        gv = h * g
        if HAS_GM:
            gv = gv + step_gradient(gm_ptr, t, n, offsets, mask, HAS_GM, BLOCK)
        gv = gv + leak(s, c, ZERO_RESET) * gv_next
        if FILTERED:
            gi = gv + carry
            carry = drive_decay(c) * gi
            tl.store(gd_ptr + t * n + offsets, gi, mask=mask)
        else:
            tl.store(gd_ptr + t * n + offsets, gv, mask=mask)
        gv_next = gv
    tl.store(gv_ptr + offsets, gv_next, mask=mask)
    tl.store(gi_ptr + offsets, carry, mask=mask)
'''


# written into every generated module, ahead of its kernels
_SHARED = '''

@triton.jit
def step_gradient(ptr, t, n, offsets, mask, PRESENT: tl.constexpr, BLOCK: tl.constexpr):
    """Step t's incoming gradient of a (steps, n) sequence, or zeros where the caller passed none."""
    if PRESENT:
        g = tl.load(ptr + t * n + offsets, mask=mask, other=0.0)
    else:
        g = tl.full([BLOCK], 0.0, tl.float32)
    return g
'''


@dataclasses.dataclass(frozen=True)
class KernelForm:
    """What one model's generated module is made of: its pieces (role -> plain function, copied as @triton.jit;
    None: an unused role), the kernels' source (reading the pieces by role, the constants as c0.. / `c`, the
    surrogate's as sc0.. / `sc`), module-level constexpr flags and how many constants the model passes."""

    pieces: dict
    kernels: str
    flags: dict
    constants: int


def template_form(model) -> KernelForm:
    """A template model's form: its `MembraneDynamics` pieces in the kernels written once above."""
    d = model.dynamics
    return KernelForm({"charge": d.charge, "threshold": d.threshold, "leak": d.leak, "aux_update": d.aux_update,
                       "drive_decay": d.drive_decay}, _KERNELS,
                      {"HAS_AUX": d.aux_update is not None, "FILTERED": d.drive_decay is not None,
                       "ADAPTIVE": d.adaptive}, len(d.constants(model.parameters())))


def kernel_form(model) -> KernelForm:
    """The template's form, or the one a model outside it brings (its registry entry's `gpu_module`)."""
    if model.dynamics is not None:
        return template_form(model)
    if not model.gpu_module:
        raise ValueError(f"neuron model {model.name!r} is outside the template and names no gpu_module: the fused "
                         "GPU path does not cover it")
    return importlib.import_module(model.gpu_module).kernel_form(model)


def kernel_source(model, surrogate) -> str:
    """The Python source of one (model, surrogate) pair's generated module."""
    from neuromem.neurons.surrogates import get_surrogate

    surrogate = get_surrogate(surrogate) if isinstance(surrogate, str) else surrogate
    form = kernel_form(model)
    emitter = _Emitter()
    pieces = {**form.pieces, "surrogate_grad": surrogate.compiled_grad}
    aliases = [f"{role} = {emitter.function(fn)}" if fn is not None else f"{role} = tl.constexpr(0)"
               for role, fn in pieces.items()]
    c_args, c_tuple = _names("c", form.constants)
    sc_args, sc_tuple = _names("sc", len(surrogate.constants(1.0)))
    header = [f'"""Generated by neuromem.neurons.fused_gpu for neuron {model.name!r} x surrogate {surrogate.name!r}."""',
              "import triton", "import triton.language as tl", ""]
    header += [f"{flag} = tl.constexpr({value})" for flag, value in form.flags.items()]
    header += [_SHARED]
    kernels = form.kernels.format(c_args=c_args, c_tuple=c_tuple, sc_args=sc_args, sc_tuple=sc_tuple)
    return "\n".join(header) + "\n\n\n" + "\n\n\n".join(emitter.chunks) + "\n\n\n" + "\n".join(aliases) + "\n" + kernels


_FOLDER: list[str] = []


@functools.lru_cache(maxsize=None)
def _generated(model_name: str, surrogate_name: str, interpret: bool) -> types.ModuleType:
    from neuromem.neurons.models import get_neuron

    source = kernel_source(get_neuron(model_name), surrogate_name)
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    module_name = f"neuromem_fused_{model_name}_{surrogate_name}_{digest}".replace("-", "_")
    if not _FOLDER:  # one folder per process: Triton and `inspect` read the kernels' source from their file
        _FOLDER.append(tempfile.mkdtemp(prefix="neuromem-fused-"))
    path = os.path.join(_FOLDER[0], module_name + ".py")
    with open(path, "w") as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def generated(model, surrogate: str) -> types.ModuleType:
    """The imported module of one (model, surrogate) pair (generated once per process and interpreter mode)."""
    if triton is None:
        raise RuntimeError("the fused GPU path needs Triton (pip install triton)")
    return _generated(model.name, surrogate, interpreting())


# ---------------------------------------------------------------- one autograd node per sequence


def launch(kernel, n: int, *args, **constexprs) -> None:
    """One launch over n neurons in blocks of BLOCK (without fused multiply-add on a GPU)."""
    if not interpreting():
        constexprs["enable_fp_fusion"] = False  # no fused multiply-add: the reference step's rounding, so its spikes
    kernel[(triton.cdiv(n, BLOCK),)](*args, BLOCK=BLOCK, **constexprs)


class _FusedSequence(torch.autograd.Function):
    """A template model over a whole sequence on the generated kernels (see the module doc)."""

    @staticmethod
    def forward(ctx, inputs, recurrent_weight, aux0, membrane0, spikes0, model, constants, zero_reset, surrogate, slope):
        d = model.dynamics
        kernels = generated(model, surrogate)
        has_aux, recurrent = d.aux_update is not None, recurrent_weight is not None
        ctx.set_materialize_grads(False)
        ctx.options = (model, constants, zero_reset, surrogate, slope)
        inputs = inputs.contiguous()
        steps, n = inputs.shape[0], inputs[0].numel()
        spikes, membranes = torch.empty_like(inputs), torch.empty_like(inputs)
        aux_trace = torch.empty_like(inputs) if d.adaptive else inputs.new_zeros(1)
        membrane = membrane0.detach().expand_as(inputs[0]).clone().contiguous()
        spike = spikes0.detach().expand_as(inputs[0]).clone().contiguous()
        aux = aux0.detach().expand_as(inputs[0]).clone().contiguous() if has_aux else inputs.new_zeros(1)
        arrays = (membrane, spike, aux, membranes, spikes, aux_trace)
        if not recurrent:
            launch(kernels.forward, n, inputs, inputs, *arrays, n, 0, steps, *constants, ZERO_RESET=zero_reset,
                    FED=False)
        else:
            size = recurrent_weight.shape[0]
            weight_t = recurrent_weight.detach().t()
            feedback = torch.empty_like(membrane)
            for t in range(steps):  # the recurrent product batched over the rows, one fused neuron step after it
                torch.mm(spike.view(-1, size), weight_t, out=feedback.view(-1, size))
                launch(kernels.forward, n, inputs, feedback, *arrays, n, t, t + 1, *constants, ZERO_RESET=zero_reset,
                        FED=True)
        ctx.save_for_backward(membranes, spikes if recurrent else None, recurrent_weight, spikes0,
                              aux_trace if d.adaptive else None)
        if not has_aux:
            return spikes, membranes
        final_aux = aux.view_as(inputs[0])
        if d.adaptive:  # the threshold carries no gradient
            ctx.mark_non_differentiable(final_aux)
        return spikes, membranes, final_aux

    @staticmethod
    def backward(ctx, grad_spikes, grad_membranes, grad_aux=None):
        membranes, spikes, weight, spikes0, aux_trace = ctx.saved_tensors
        model, c, zero_reset, surrogate_name, slope = ctx.options
        from neuromem.neurons.surrogates import get_surrogate

        d = model.dynamics
        kernels = generated(model, surrogate_name)
        filtered, recurrent = d.drive_decay is not None, weight is not None
        steps, n = membranes.shape[0], membranes[0].numel()
        surrogate_constants = get_surrogate(surrogate_name).constants(slope)
        grad_drive = torch.empty_like(membranes)
        grad_v = membranes.new_zeros(membranes[0].shape)
        carry = (grad_aux.detach().clone().contiguous() if filtered and grad_aux is not None
                 else membranes.new_zeros(membranes[0].shape))
        has_gs, has_gm = grad_spikes is not None, grad_membranes is not None
        gs = grad_spikes.contiguous() if has_gs else membranes
        gm = grad_membranes.contiguous() if has_gm else membranes
        trace = aux_trace if aux_trace is not None else membranes
        flags = dict(ZERO_RESET=zero_reset, HAS_GS=has_gs, HAS_GM=has_gm)
        if not recurrent:
            launch(kernels.backward, n, membranes, trace, gs, gm, membranes, grad_drive, grad_v, carry, n, 0, steps - 1,
                    *c, *surrogate_constants, FED=False, **flags)
        else:
            size = weight.shape[0]
            weight_matrix = weight.detach()
            feedback = membranes.new_zeros(membranes[0].shape)
            for t in range(steps - 1, -1, -1):
                if t < steps - 1:
                    torch.mm(grad_drive[t + 1].view(-1, size), weight_matrix, out=feedback.view(-1, size))
                launch(kernels.backward, n, membranes, trace, gs, gm, feedback, grad_drive, grad_v, carry, n, t, t,
                        *c, *surrogate_constants, FED=t < steps - 1, **flags)
        grad_weight = grad_aux0 = grad_membrane0 = grad_spikes0 = None
        if recurrent and ctx.needs_input_grad[1]:
            size = weight.shape[0]
            grad_weight = grad_drive[1:].reshape(-1, size).t() @ spikes[:-1].reshape(-1, size)
            grad_weight += grad_drive[0].reshape(-1, size).t() @ spikes0.detach().reshape(-1, size)
        if filtered and ctx.needs_input_grad[2]:
            grad_aux0 = carry  # decay * gi_0
        if ctx.needs_input_grad[3]:
            grad_membrane0 = grad_v * d.leak(spikes0.detach(), c, zero_reset)
        if recurrent and ctx.needs_input_grad[4]:
            grad_spikes0 = grad_drive[0] @ weight
        return (grad_drive, grad_weight, grad_aux0, grad_membrane0, grad_spikes0) + (None,) * 5


def fused_sequence(model, inputs, p, recurrent_weight=None, state=None, return_membrane=False):
    """A model over a whole (T, batch, ...) sequence on its generated kernels (as `neuron_sequence`): a template
    model through the node above, a model outside the template through its `gpu_module`'s `sequence`."""
    from neuromem.neurons.functional.neuron import template_sequence

    if model.dynamics is None:
        return importlib.import_module(model.gpu_module).sequence(inputs, p, recurrent_weight, state, return_membrane)
    return template_sequence(_FusedSequence, model, inputs, p, recurrent_weight, state, return_membrane)
