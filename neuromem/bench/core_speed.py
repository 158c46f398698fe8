"""Training and inference speed of the same spiking network in neuromem, snnTorch and Norse.

Method (one process, so all frameworks see the same machine load):
- every framework builds the configuration's network from the same seed and
  trains it with Adam on the same batches;
- warm-up steps first, then `repetitions` rounds; in each round every
  framework runs a block of `block` consecutive steps, in an order rotated
  round by round (no framework always runs first or right after another one).
  Training runs one network step after step, so throughput is a warm-cache
  figure: the first step of each block re-warms the caches the other
  frameworks' steps evicted and is not timed (`block=1` times every step,
  cold);
- a training step is forward + loss (+ the memory module's auxiliary loss) +
  backward + optimizer step; inference is a forward pass in eval mode under
  `torch.no_grad()` (not inference_mode: test-time-learning memories take
  gradients inside);
- inputs: `spec` runs the steps on random Bernoulli spikes at the
  configuration's `density` (the network as issue 7 defines it; its goals are
  judged on these), `data` on batches from neuromem's data layer (their own
  density: a sensitivity check, since the fast core exploits input sparsity);
  the data time is measured on the data layer for every result alike;
- reported: medians (and the min..max spread) in ms, samples/s, and the ratio
  framework time / neuromem time (> 1: neuromem is faster);
- "neuromem-reference" is the same neuromem network on the step-by-step
  reference core (`reference_core()`), to show what the fast core buys;
- peak memory: a fresh subprocess per (configuration, framework) builds the
  network and a batch, reads its resident set size (RSS), runs training steps
  and reports the peak RSS above that level (CUDA:
  torch.cuda.max_memory_allocated). See `neuromem.bench.peak_memory`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from neuromem.bench.data_source import BatchSource, open_source, spec_source
from neuromem.bench.networks import (
    BenchConfig,
    auxiliary_loss,
    build_network,
    nmnist_config,
    quick_config_for_tests,
    shd_config,
)
from neuromem.neurons.functional.lif import reference_core

FRAMEWORK_ORDER = ("neuromem", "neuromem-reference", "snntorch", "norse")
# what the timed steps run on: "spec" = Bernoulli spikes at the configuration's density, "data" = data-layer batches
INPUT_KINDS = ("spec", "data")
# issue 7: training throughput of neuromem over each competitor, per configuration
GOALS = {
    "shd-feedforward": {"snntorch": 6.0, "norse": 5.0},
    "shd-recurrent": {"snntorch": 6.0, "norse": 5.0},
    "nmnist-conv": {"snntorch": 4.0, "norse": 4.0},
}


def parse_inputs(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """"spec,data" -> ("spec", "data"); refuses unknown kinds."""
    kinds = tuple(k.strip() for k in (text.split(",") if isinstance(text, str) else text) if k.strip())
    unknown = [k for k in kinds if k not in INPUT_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown input kind(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(INPUT_KINDS)}")
    return tuple(dict.fromkeys(kinds))


def input_kinds_for(config: BenchConfig, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """Core configurations run once per kind; memory configurations on one kind only (run time):
    spec when it is asked for, else the first kind asked for."""
    if config.memory is None:
        return kinds
    return ("spec",) if "spec" in kinds else kinds[:1]


def resolve_device(device: str = "auto") -> torch.device:
    """auto: CUDA when present, else the CPU; cpu, cuda, cuda:N as asked (`neuromem.device`: a ValueError naming
    --device, the value and what this machine has)."""
    from neuromem.device import resolve_device as resolve

    return resolve(device, "--device")


def select_configs(config_names: list[str] | None) -> list[BenchConfig]:
    """The named configurations (all by default); ValueError naming the unknown ones."""
    configs = default_configs()
    if not config_names:
        return configs
    known = {c.name: c for c in configs}
    unknown = [n for n in config_names if n not in known]
    if unknown:
        raise ValueError(f"unknown configuration(s) {', '.join(unknown)}; valid: {', '.join(known)}")
    return [known[n] for n in config_names]


def check_arguments(inputs: str, device: str, config_names: list[str] | None) -> None:
    """What a run would refuse, refused before anything runs: ValueError naming the flag, the value
    and what would be valid (the command lines turn it into their one-line error)."""
    for flag, check in (
        ("--inputs", lambda: parse_inputs(inputs)),
        ("--device", lambda: resolve_device(device)),
        ("--configs", lambda: select_configs(config_names)),
    ):
        try:
            check()
        except ValueError as error:
            raise ValueError(str(error) if str(error).startswith(flag) else f"{flag}: {error}") from None


def default_configs(memories: list[str] | None = None) -> list[BenchConfig]:
    """SHD feed-forward and recurrent, N-MNIST conv, and one SHD network per registered memory module."""
    from neuromem.memory import memory_names

    names = memory_names() if memories is None else memories
    return [shd_config(), shd_config(recurrent=True), nmnist_config()] + [shd_config(memory=m) for m in names]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _core(framework: str):
    return reference_core() if framework == "neuromem-reference" else contextlib.nullcontext()


def train_step(framework: str, network, optimizer, inputs, labels) -> float:
    with _core(framework):
        loss = F.cross_entropy(network(inputs), labels)
        extra = auxiliary_loss(network, labels)
        if extra is not None:
            loss = loss + extra
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def infer_step(framework: str, network, inputs) -> None:
    with _core(framework), torch.no_grad():
        network(inputs)


@dataclass
class Timing:
    framework: str
    train_ms: list[float] = field(default_factory=list)
    infer_ms: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    peak: dict | None = None

    @staticmethod
    def _median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    @property
    def train_median(self) -> float:
        return self._median(self.train_ms)

    @property
    def infer_median(self) -> float:
        return self._median(self.infer_ms)


@dataclass
class ConfigResult:
    config: BenchConfig
    batch: int
    data_description: str  # the source of the data time
    data_setup_s: float
    data_ms: list[float]
    timings: dict[str, Timing]
    error: str | None = None
    inputs: str = "spec"  # what the steps ran on: one of INPUT_KINDS
    input_description: str = ""
    input_density: float | None = None  # measured non-zero fraction of the first timed step batch
    # spike density of neuromem's front-end output on the last timed batch: the readout and a recurrent
    # layer's spike sums run over these spikes, so their cost depends on it
    hidden_density: float | None = None
    skipped: str | None = None  # why this input kind did not run

    @property
    def label(self) -> str:
        return f"{self.config.name} [{self.inputs} inputs]"

    @property
    def measured(self) -> bool:
        return self.error is None and self.skipped is None

    @property
    def data_median(self) -> float:
        return statistics.median(self.data_ms) if self.data_ms else float("nan")

    def ratio(self, framework: str, kind: str = "train") -> float:
        base = getattr(self.timings["neuromem"], f"{kind}_median")
        return getattr(self.timings[framework], f"{kind}_median") / base


def _rotated(items: tuple[str, ...], shift: int) -> list[str]:
    shift %= len(items)
    return list(items[shift:] + items[:shift])


def bench_config(
    config: BenchConfig,
    frameworks: tuple[str, ...],
    device: torch.device,
    repetitions: int,
    warmup: int,
    data: str = "random",
    log=print,
    input_kind: str = "spec",
    data_source: BatchSource | None = None,
    block: int = 3,
) -> ConfigResult:
    """Time `config` with the steps on `input_kind` batches (one of INPUT_KINDS). The data time is always
    `data_source`'s fetch (opened from `data` if not given; pass one to share it between input kinds)."""
    source = data_source if data_source is not None else open_source(config, device, data)
    if input_kind == "data" and not source.from_layer:
        # random spikes here would only repeat the spec run under another name
        reason = source.unavailable or "no data-layer batches"
        log(f"{config.name} [data inputs]: skipped ({reason})")
        return ConfigResult(config, config.batch, source.description, source.setup_seconds, [], {},
                            inputs=input_kind, skipped=reason)
    steps = source if input_kind == "data" else spec_source(config, device)
    data_ms = []

    def next_step_batch(timed: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """A step batch; with `timed`, also one data-layer fetch for the data time."""
        batch, labels, seconds = source.next_timed()
        if timed:
            data_ms.append(seconds * 1e3)
        if steps is not source:
            batch, labels, _ = steps.next_timed()
        return batch, labels

    networks, optimizers = {}, {}
    for framework in frameworks:
        networks[framework] = build_network(framework, config).to(device)
        optimizers[framework] = torch.optim.Adam(networks[framework].parameters(), lr=1e-3)
    timings = {f: Timing(f) for f in frameworks}

    for _ in range(warmup):
        inputs, labels = next_step_batch(timed=False)  # warms the loader too
        for framework in frameworks:
            train_step(framework, networks[framework], optimizers[framework], inputs, labels)
            infer_step(framework, networks[framework].eval(), inputs)
            networks[framework].train()
    _synchronize(device)

    density = None
    for round_index in range(repetitions):
        inputs, labels = next_step_batch(timed=True)
        if density is None:
            density = float((inputs != 0).float().mean())
        for framework in _rotated(frameworks, round_index):
            network, optimizer = networks[framework], optimizers[framework]
            for milliseconds, loss in _timed_block(lambda: train_step(framework, network, optimizer, inputs, labels),
                                                   block, device):
                timings[framework].train_ms.append(milliseconds)
                timings[framework].losses.append(loss)
    hidden_density = None
    front = getattr(networks.get("neuromem"), "front", None)
    if front is not None:
        with torch.no_grad():
            hidden_density = float((front(inputs) != 0).float().mean())
    for framework, network in networks.items():
        network.eval()
    for round_index in range(repetitions):
        inputs, _, _ = steps.next_timed()
        for framework in _rotated(frameworks, round_index):
            for milliseconds, _ in _timed_block(lambda: infer_step(framework, networks[framework], inputs), block, device):
                timings[framework].infer_ms.append(milliseconds)
    for network in networks.values():
        memory = getattr(getattr(network, "head", None), "memory", None)
        if memory is not None:
            memory.reset_memory()
    result = ConfigResult(config, config.batch, source.description, source.setup_seconds, data_ms, timings,
                          inputs=input_kind, input_description=steps.description, input_density=density,
                          hidden_density=hidden_density)
    log(_config_line(result))
    return result


def _config_line(result: ConfigResult) -> str:
    parts = [f"{result.label} ({_fmt_density(result.input_density)} non-zero): data {result.data_median:.1f} ms"]
    for framework, timing in result.timings.items():
        text = f"{framework} {timing.train_median:.1f} ms"
        if framework != "neuromem":
            text += f" ({result.ratio(framework):.2f}x)"
        parts.append(text)
    return " | ".join(parts)


# ----------------------------------------------------------------- peak memory (subprocesses)


def measure_peak_memory(config: BenchConfig, framework: str, device: torch.device, steps: int = 3, timeout: float = 600) -> dict:
    spec = {
        "config": asdict(config), "framework": framework, "device": str(device), "steps": steps,
        "threads": torch.get_num_threads(),
    }
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    completed = subprocess.run(
        [sys.executable, "-m", "neuromem.bench.peak_memory", json.dumps(spec)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    if completed.returncode != 0:
        return {"error": (completed.stderr.strip().splitlines() or ["failed"])[-1][:200]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------- report


def _load_average() -> tuple[float, float, float] | None:
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def instruction_sets() -> dict:
    """What the timed code ran with: the CPU tier, the vector extensions the host has, what numba
    compiled its kernels for and what torch's own kernels dispatch to (MKL follows
    MKL_ENABLE_INSTRUCTIONS, reported as set)."""
    from neuromem import cpu_tier

    facts = {"cpu_tier": cpu_tier.TIER, "torch_cpu_capability": "unknown", "numba_cpu": "numba unavailable"}
    try:
        facts["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:  # older torch: not reported
        pass
    try:
        from llvmlite import binding
        from numba.core import config as numba_config

        features = binding.get_host_cpu_features()
        facts["host_vector_extensions"] = ", ".join(
            name for name in ("avx2", "fma", "avx512f", "avx512vl", "avx512bw") if features.get(name)
        ) or "none of avx2/avx512"
        facts["numba_cpu"] = numba_config.CPU_NAME or f"host ({binding.get_host_cpu_name()})"
    except Exception:
        pass
    facts["mkl_enable_instructions"] = os.environ.get("MKL_ENABLE_INSTRUCTIONS", "unset")
    return facts


def instruction_set_line(info: dict) -> str:
    return (
        f"- CPU tier: **{info.get('cpu_tier', '?')}** (NEUROMEM_CPU_TIER; neuromem/cpu_tier.py lists what it switches). "
        f"Instruction sets: host has {info.get('host_vector_extensions', '?')}; numba kernels compiled for "
        f"{info.get('numba_cpu', '?')} (NUMBA_CPU_NAME); torch kernels dispatch to {info.get('torch_cpu_capability', '?')}; "
        f"MKL_ENABLE_INSTRUCTIONS={info.get('mkl_enable_instructions', '?')}"
    )


def machine_info(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:  # Linux; elsewhere platform's answer stands
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__}
    for name in ("snntorch", "norse"):
        try:
            versions[name] = __import__(name).__version__
        except Exception as error:  # a missing competitor is reported, not fatal
            versions[name] = f"unavailable ({type(error).__name__})"
    info = {
        "cpu": cpu,
        **instruction_sets(),
        "logical_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        **versions,
        "platform": platform.platform(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _fmt_load(load) -> str:
    return "/".join(f"{v:.1f}" for v in load) if load else "unknown"


def _fmt_ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} ({min(values):.0f}-{max(values):.0f})"


def _fmt_peak(peak: dict | None) -> str:
    if not peak:
        return "-"
    if "error" in peak:
        return f"error: {peak['error']}"
    return f"{peak['extra_mb']:.0f} (peak {peak['peak_mb']:.0f})"


def _fmt_density(fraction: float | None) -> str:
    if fraction is None:
        return "?"
    return f"{fraction:.1%}" if fraction == 0 or fraction >= 0.001 else f"{fraction:.3%}"


def goal_records(results: list[ConfigResult]) -> list[dict]:
    """The training-ratio goals as records (configuration, framework, ratio, goal, step times in ms)."""
    records = []
    for result in results:
        if not result.measured or result.inputs != "spec":
            continue
        for framework, target in GOALS.get(result.config.name, {}).items():
            if framework in result.timings:
                records.append({
                    "config": result.config.name, "framework": framework, "ratio": result.ratio(framework),
                    "goal": target, "neuromem_ms": result.timings["neuromem"].train_median,
                    "framework_ms": result.timings[framework].train_median,
                })
    return records


def goal_lines(results: list[ConfigResult]) -> list[str]:
    """Issue 7's goals, judged on the configuration as the issue defines it: spec inputs only."""
    lines = []
    for result in results:
        if not result.measured or result.inputs != "spec":
            continue
        name, tag = result.config.name, f"(spec inputs, density {result.config.density:.0%})"
        for framework, target in GOALS.get(name, {}).items():
            if framework not in result.timings:
                continue
            ratio = result.ratio(framework)
            verdict = "met" if ratio >= target else "NOT met"
            lines.append(f"- {name} {tag}: neuromem vs {framework} training {ratio:.2f}x (goal >= {target:g}x): {verdict}")
        peaks = {f: t.peak for f, t in result.timings.items() if t.peak and "extra_mb" in t.peak}
        if "neuromem" in peaks and "snntorch" in peaks:
            ours, theirs = peaks["neuromem"]["extra_mb"], peaks["snntorch"]["extra_mb"]
            verdict = "met" if ours <= theirs else "NOT met"
            lines.append(
                f"- {name} {tag}: training peak memory neuromem {ours:.0f} MB vs snnTorch {theirs:.0f} MB "
                f"(goal: no higher): {verdict}"
            )
    return lines


def sensitivity_lines(results: list[ConfigResult]) -> list[str]:
    """The goal configurations' training ratios on data-layer batches (their own density): not judged."""
    lines = []
    for result in results:
        name = result.config.name
        if result.inputs != "data" or name not in GOALS:
            continue
        if not result.measured:
            lines.append(f"- {name} (sensitivity: data-layer batches): {result.skipped or 'failed: ' + str(result.error)}")
            continue
        ratios = ", ".join(f"vs {f} {result.ratio(f):.2f}x" for f in GOALS[name] if f in result.timings)
        lines.append(f"- {name} (sensitivity: data-layer batches, density {_fmt_density(result.input_density)}): "
                     f"neuromem training {ratios}")
    return lines


def _heading(result: ConfigResult) -> str:
    heading = f"## {result.config.name} — {result.inputs} inputs"
    if result.skipped:
        return heading + ": skipped"
    if result.input_density is None:
        return heading
    return heading + f" ({_fmt_density(result.input_density)} non-zero)"


def render_markdown(results: list[ConfigResult], info: dict, settings: dict) -> str:
    thp = settings.get("thp_mem_alloc")
    lines = [
        "# Spiking core speed: neuromem vs snnTorch vs Norse",
        "",
        "Regenerated by `python -m benchmarks.core_speed` (also `neuromem bench`); do not edit by hand.",
        "",
        f"- run: {settings['timestamp']}, command `{settings['command']}`",
        f"- machine: {info['cpu']}, {info['logical_cores']} logical cores, torch threads {info['torch_threads']}, "
        f"device {info['device']}" + (f" ({info['gpu']})" if "gpu" in info else ""),
        instruction_set_line(info),
        f"- machine load (1/5/15-min load averages) at start {_fmt_load(settings['load'][0])}, at end "
        f"{_fmt_load(settings['load'][1])}: the machine is shared; above {info['logical_cores']} the frameworks "
        "compete with other processes for cores, which penalises many-small-op code most.",
        f"- versions: Python {info['python']}, torch {info['torch']}, snntorch {info['snntorch']}, norse {info['norse']}",
        f"- torch CPU allocator: THP_MEM_ALLOC_ENABLE={'unset' if thp is None else (thp or '(empty)')} "
        "('1': transparent huge pages). torch reads it once, at its first allocation, so it holds for every "
        "framework in this process (and the peak-memory subprocesses, which inherit it) alike.",
        f"- method: {settings['warmup']} warm-up step(s), then {settings['repetitions']} rounds; each round runs a block of "
        f"{settings['block']} consecutive step(s) per framework, frameworks in a rotated order"
        + ("; the first step of each block (re-warming the caches the other frameworks evicted) is not timed: training "
           "runs one network step after step" if settings['block'] > 1 else "; every step timed (cold caches)")
        + "; medians with (min-max) in ms. Training step = forward + cross-entropy "
        "(+ memory auxiliary loss) + backward + Adam step. Inference = forward, eval mode, no_grad. "
        "Ratio = framework time / neuromem time (> 1: neuromem faster). neuromem-reference = the same neuromem "
        "network on the step-by-step autograd core.",
        f"- inputs ({', '.join(settings.get('inputs', INPUT_KINDS))}): the steps run on the configuration as issue 7 "
        "specifies it, random Bernoulli spikes at the configuration's input density (`spec`; the goals are judged on "
        "these). Earlier runs stepped on data-layer batches; those are now shown as a sensitivity check (`data`: "
        "neuromem's data layer at its own density; the fast core exploits input sparsity, so step time depends on "
        "density). Memory configurations run on one kind only (spec if asked for). Each section names its inputs "
        "and their measured non-zero fraction (first timed batch).",
        "- data time: the loader's cost per batch, whatever the steps ran on: time to fetch one time-major batch "
        "from neuromem's data layer onto the device (source named per section; it says so when the data layer "
        "was unavailable and random spikes were timed instead).",
        "- peak memory: a fresh subprocess per cell builds network + batch (random spikes at the configuration's "
        "density, i.e. spec inputs; measured once per configuration, shown in its first section), runs one tiny "
        "warm-up step (T=2, batch 2: lazy one-time costs such as numba loading its kernels and the optimizer state), "
        f"then {settings['memory_steps']} training step(s); "
        "'extra' = peak RSS during those steps (Linux VmHWM, reset before them) minus RSS before them, in MB "
        "(CUDA: max_memory_allocated). Includes allocator caching; comparable across frameworks because each "
        "runs alone in its own process.",
        "",
    ]
    if settings.get("quick"):
        lines += ["**Quick smoke run (T <= 8, batch <= 4): numbers say nothing about speed.**", ""]
    lines += ["## Goals (issue 7)", ""] + (goal_lines(results) or ["- (no spec-input goal configurations in this run)"])
    lines += sensitivity_lines(results) + [""]
    for result in results:
        config = result.config
        lines += [_heading(result), ""]
        if result.skipped:
            lines += [f"Skipped: {result.skipped}.", ""]
            continue
        steps_on = ""
        if result.input_description:
            steps_on = (f" Steps ran on: {result.input_description}; measured non-zero fraction "
                        f"{_fmt_density(result.input_density)}.")
        if result.hidden_density is not None:
            steps_on += (f" Spike density of neuromem's front-end output (after the timed steps): "
                         f"{_fmt_density(result.hidden_density)}.")
        lines += [
            f"T={config.steps}, batch={config.batch}, input {config.input_shape}, hidden {config.hidden}, "
            f"{'recurrent' if config.recurrent else 'feed-forward'}"
            + (f", memory `{config.memory}`" if config.memory else "")
            + "." + steps_on
            + f" Data time: {result.data_description}; {_fmt_ms(result.data_ms)} ms per batch"
            + (f" (opening the data set: {result.data_setup_s:.2f} s)" if result.data_setup_s else "")
            + ".",
            "",
        ]
        if result.error:
            lines += [f"Failed: {result.error}", ""]
            continue
        lines += [
            "| framework | train step ms | train samples/s | train ratio | inference ms | inference samples/s | inference ratio | peak extra MB |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for framework, timing in result.timings.items():
            lines.append(
                f"| {framework} | {_fmt_ms(timing.train_ms)} | {result.batch / timing.train_median * 1e3:.0f} | "
                f"{result.ratio(framework):.2f} | {_fmt_ms(timing.infer_ms)} | "
                f"{result.batch / timing.infer_median * 1e3:.0f} | {result.ratio(framework, 'infer'):.2f} | "
                f"{_fmt_peak(timing.peak)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _timed_block(step, block: int, device: torch.device) -> list[tuple[float, object]]:
    """Runs `step` `block` times in a row; (ms, result) of each timed one: all but the first, which
    re-warms the caches the other frameworks evicted (every one when block == 1)."""
    timed = []
    for position in range(block):
        start = time.perf_counter()
        result = step()
        _synchronize(device)
        if position > 0 or block == 1:
            timed.append(((time.perf_counter() - start) * 1e3, result))
    return timed


def _failed(config: BenchConfig, input_kind: str, error: Exception, log) -> ConfigResult:
    message = f"{type(error).__name__}: {error}".splitlines()[0][:300]
    log(f"{config.name} [{input_kind} inputs]: FAILED {message}")
    return ConfigResult(config, config.batch, "-", 0.0, [], {}, error=message, inputs=input_kind)


def run_benchmark(
    quick: bool = False,
    device: str = "auto",
    data: str = "auto",
    repetitions: int | None = None,
    warmup: int | None = None,
    config_names: list[str] | None = None,
    frameworks: tuple[str, ...] = FRAMEWORK_ORDER,
    peak_memory: bool = True,
    out: str | os.PathLike | None = None,
    command: str = "",
    threads: int | None = None,
    log=print,
    inputs: str | tuple[str, ...] = INPUT_KINDS,
    block: int | None = None,
) -> tuple[list[ConfigResult], str]:
    """inputs: what the steps run on, a comma list or tuple of INPUT_KINDS; `data` chooses the data-layer
    source (auto, random or a root) that the data time is measured on and `data` inputs come from."""
    kinds = parse_inputs(inputs)
    torch_device = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    load_before = _load_average()
    configs = select_configs(config_names)
    if quick:
        configs = [quick_config_for_tests(c) for c in configs]
    block = max(1, block or (1 if quick else 3))
    repetitions = repetitions or (2 if quick else 6)
    warmup = 1 if quick and warmup is None else (2 if warmup is None else warmup)
    memory_steps = 1 if quick else 3
    results = []
    for config in configs:
        config_kinds = input_kinds_for(config, kinds)
        try:  # one data source per configuration, shared by its input kinds (opened once)
            source = open_source(config, torch_device, data)
        except Exception as error:
            results += [_failed(config, kind, error, log) for kind in config_kinds]
            continue
        for kind in config_kinds:
            try:
                results.append(bench_config(config, frameworks, torch_device, repetitions, warmup, data, log,
                                            input_kind=kind, data_source=source, block=block))
            except Exception as error:  # one broken configuration (e.g. a memory module in progress) is reported
                results.append(_failed(config, kind, error, log))
    if peak_memory:  # after all timing, so the subprocesses do not load the timed rounds
        measured = set()  # the subprocesses use spec-density spikes whatever the inputs: once per configuration
        for result in results:
            if not result.measured or result.config.name in measured:
                continue
            measured.add(result.config.name)
            for framework, timing in result.timings.items():
                timing.peak = measure_peak_memory(result.config, framework, torch_device, memory_steps)
                log(f"{result.config.name} {framework}: peak {_fmt_peak(timing.peak)}")
    settings = {
        "timestamp": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "command": command,
        "repetitions": repetitions,
        "block": block,
        "warmup": warmup,
        "memory_steps": memory_steps,
        "quick": quick,
        "inputs": kinds,
        "load": (load_before, _load_average()),
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
    }
    markdown = render_markdown(results, machine_info(torch_device), settings)
    if out is not None:
        from neuromem.study.store import atomic_write_text

        atomic_write_text(Path(out), markdown + "\n")
    return results, markdown


def run_tiers(tiers: list[str], argv: list[str], out: str | os.PathLike | None, command: str, log=print) -> str:
    """The benchmark once per CPU tier, each in a process of its own (the tier is fixed when neuromem
    is imported), then one report: the goals side by side per tier, then each tier's full results."""
    import tempfile

    sections, goals = [], {}
    with tempfile.TemporaryDirectory(prefix="neuromem-bench-") as scratch:
        for tier in tiers:
            markdown_path, goals_path = Path(scratch) / f"{tier}.md", Path(scratch) / f"{tier}.json"
            log(f"CPU tier {tier}: running the benchmark in its own process")
            completed = subprocess.run(
                [sys.executable, "-m", "neuromem.bench.core_speed", *argv, "--tiers", tier,
                 "--out", str(markdown_path), "--goals-json", str(goals_path)],
                env={**os.environ, "NEUROMEM_CPU_TIER": tier}, stdout=subprocess.DEVNULL,
            )
            if completed.returncode != 0 or not markdown_path.exists():
                raise RuntimeError(f"the benchmark for CPU tier {tier} failed (exit {completed.returncode})")
            goals[tier] = {(g["config"], g["framework"]): g for g in json.loads(goals_path.read_text())}
            body = markdown_path.read_text().splitlines()
            body = [line for line in body[1:] if not line.startswith("Regenerated by")]  # title: the tier's heading
            while body and not body[0].strip():
                body.pop(0)
            sections += [f"# CPU tier: {tier}", "", *["#" + line if line.startswith("#") else line for line in body], ""]
    lines = [
        "# Spiking core speed: neuromem vs snnTorch vs Norse, per CPU tier",
        "",
        f"Regenerated by `{command}`; do not edit by hand. One run per CPU tier (`NEUROMEM_CPU_TIER`, "
        "neuromem/cpu_tier.py), each in its own process, every framework timed in each run; the sections below "
        "hold each run's machine, method and tables.",
        "",
        "## Training-ratio goals by CPU tier (spec inputs)",
        "",
        "| configuration | vs | goal | " + " | ".join(f"{tier}: neuromem ms, ratio" for tier in tiers) + " |",
        "|---|---|---|" + "---|" * len(tiers),
    ]
    keys = list(dict.fromkeys(key for tier in tiers for key in goals[tier]))
    for config, framework in keys:
        cells = []
        for tier in tiers:
            g = goals[tier].get((config, framework))
            cells.append("-" if g is None else
                         f"{g['neuromem_ms']:.1f}, {g['ratio']:.2f}x {'met' if g['ratio'] >= g['goal'] else 'NOT met'}")
        goal = next(goals[t][(config, framework)]["goal"] for t in tiers if (config, framework) in goals[t])
        lines.append(f"| {config} | {framework} | >= {goal:g}x | " + " | ".join(cells) + " |")
    markdown = "\n".join(lines + [""] + sections)
    if out is not None:
        from neuromem.study.store import atomic_write_text

        atomic_write_text(Path(out), markdown + "\n")
    return markdown


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """argv less the given options (as `--name value` or `--name=value`)."""
    kept, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item in options:
            skip = True
        elif item.split("=", 1)[0] not in options:
            kept.append(item)
    return kept


def main(argv: list[str] | None = None, default_out: str | os.PathLike | None = None,
         program: str = "python -m benchmarks.core_speed") -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny shapes, 2 rounds: a smoke run")
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:1, ...")
    parser.add_argument("--data", default="auto",
                        help="data-layer source for the data time and `data` inputs: auto (the data layer, random "
                             "if unavailable), random, or a data root")
    parser.add_argument("--inputs", default=",".join(INPUT_KINDS),
                        help="what the steps run on, comma list: spec (random spikes at the configuration's density, "
                             "the goals' input), data (data-layer batches, a sensitivity check)")
    parser.add_argument("--repetitions", type=int, default=None, help="timed rounds (default 6; quick 2)")
    parser.add_argument("--block", type=int, default=None,
                        help="consecutive steps per framework per round, the first not timed (default 3; quick 1; 1: cold)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--configs", default=None, help="comma-separated configuration names")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", default=default_out, help="write the Markdown table here")
    parser.add_argument("--tiers", default=None,
                        help="CPU tiers to run, comma list of tuned,portable (default: the one in force); more than one: "
                             "one process each, one report")
    parser.add_argument("--goals-json", default=None, help=argparse.SUPPRESS)  # run_tiers reads the goals back
    args = parser.parse_args(argv)
    from neuromem import cpu_tier

    tiers = list(dict.fromkeys(t.strip() for t in args.tiers.split(","))) if args.tiers else [cpu_tier.TIER]
    unknown = [t for t in tiers if t not in cpu_tier.TIERS]
    if unknown:
        parser.error(f"--tiers {args.tiers}: unknown tier {unknown[0]!r}; choose from {', '.join(cpu_tier.TIERS)}")
    passed = list(sys.argv[1:] if argv is None else argv)
    # a run for run_tiers names the command without its scratch paths
    command = " ".join([program] + (_without(passed, ("--out", "--goals-json")) if args.goals_json else passed))
    if tiers != [cpu_tier.TIER]:
        forwarded = _without(passed, ("--tiers", "--out", "--goals-json"))  # run_tiers sets them per tier
        print(run_tiers(tiers, forwarded, args.out, command, log=lambda line: print(line, file=sys.stderr)))
        return
    config_names = args.configs.split(",") if args.configs else None
    try:
        check_arguments(args.inputs, args.device, config_names)
    except ValueError as error:
        parser.error(str(error))
    results, markdown = run_benchmark(
        quick=args.quick, device=args.device, data=args.data, repetitions=args.repetitions, warmup=args.warmup,
        block=args.block, config_names=config_names, peak_memory=not args.no_memory,
        out=args.out, threads=args.threads, inputs=parse_inputs(args.inputs), command=command,
    )
    if args.goals_json:
        from neuromem.study.store import atomic_write_text

        atomic_write_text(Path(args.goals_json), json.dumps(goal_records(results)))
    print(markdown)


if __name__ == "__main__":
    main()
