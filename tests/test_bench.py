"""The benchmark runs end to end on tiny shapes (a smoke test: no timing is asserted)."""

import re

import pytest
import torch

pytest.importorskip("snntorch")
pytest.importorskip("norse")

from conftest import run_cli  # noqa: E402
from neuromem.bench.core_speed import check_arguments, run_benchmark  # noqa: E402
from neuromem.bench.networks import FRAMEWORKS, build_network, nmnist_config, quick_config_for_tests  # noqa: E402
from neuromem.bench.peak_memory import measure  # noqa: E402


def test_quick_benchmark_writes_results(tmp_path, tiny_data):
    out = tmp_path / "RESULTS.md"
    results, markdown = run_benchmark(
        quick=True, device="cpu", data=str(tiny_data), repetitions=1, warmup=1,
        config_names=["shd-feedforward", "shd-recurrent", "shd-memory-hopfield"], peak_memory=False, out=out,
        log=lambda line: None,
    )
    assert out.read_text().strip() == markdown.strip()
    # core configurations once per input kind, memory configurations on spec inputs only
    assert [(r.config.name, r.inputs) for r in results] == [
        ("shd-feedforward", "spec"), ("shd-feedforward", "data"),
        ("shd-recurrent", "spec"), ("shd-recurrent", "data"),
        ("shd-memory-hopfield", "spec"),
    ]
    for result in results:
        assert result.error is None and result.skipped is None
        assert set(result.timings) == {"neuromem", "neuromem-reference", "snntorch", "norse"}
        for timing in result.timings.values():
            assert len(timing.train_ms) == 1 and len(timing.infer_ms) == 1
            assert all(loss == loss for loss in timing.losses)  # finite, not NaN
        assert len(result.data_ms) == 1 and "neuromem.data synthetic shd" in result.data_description
        assert 0 < result.input_density < 1
        heading = f"## {result.config.name} — {result.inputs} inputs ({result.input_density:.1%} non-zero)"
        assert heading in markdown
    spec, data = results[0], results[1]
    assert "Bernoulli" in spec.input_description and "neuromem.data" in data.input_description
    assert "| neuromem |" in markdown and "torch" in markdown and "Quick smoke run" in markdown
    assert "THP_MEM_ALLOC_ENABLE=" in markdown and "loader's cost per batch" in markdown
    density = f"density {spec.config.density:.0%}"
    assert f"- shd-feedforward (spec inputs, {density}): neuromem vs snntorch training" in markdown
    assert f"- shd-feedforward (sensitivity: data-layer batches, density {data.input_density:.1%}): " \
           "neuromem training vs snntorch" in markdown


def test_data_inputs_skipped_with_a_reason_without_the_data_layer():
    logged = []
    results, markdown = run_benchmark(
        quick=True, device="cpu", data="random", repetitions=1, warmup=1, config_names=["shd-feedforward"],
        frameworks=("neuromem", "snntorch"), peak_memory=False, log=logged.append,
    )
    spec, data = results
    assert spec.inputs == "spec" and spec.measured and "--data random" in spec.data_description
    assert data.inputs == "data" and not data.measured and "--data random" in data.skipped
    assert any("[data inputs]: skipped" in line and "--data random" in line for line in logged)
    assert "## shd-feedforward — data inputs: skipped" in markdown
    assert "- shd-feedforward (sensitivity: data-layer batches): --data random" in markdown


def test_unknown_input_kind_is_refused():
    with pytest.raises(ValueError, match="unknown input kind"):
        run_benchmark(quick=True, device="cpu", data="random", inputs="spec,nope", peak_memory=False)


def test_unknown_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown configuration"):
        run_benchmark(quick=True, device="cpu", data="random", config_names=["nope"], peak_memory=False)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_nmnist_networks_agree_on_shapes(framework):
    config = quick_config_for_tests(nmnist_config())
    network = build_network(framework, config)
    inputs = (torch.rand(config.steps, config.batch, *config.input_shape) < 0.1).float()
    assert network(inputs).shape == (config.batch, config.classes)


def test_peak_memory_measure_in_process(monkeypatch):
    """The measured step's own memory is seen: a step that touches 64 MiB more than the warm-up measures >= 64."""
    import neuromem.bench.core_speed as core_speed

    real_step, held = core_speed.train_step, []

    def step_holding_64_mib(framework, network, optimizer, inputs, labels):
        real_step(framework, network, optimizer, inputs, labels)
        if tuple(inputs.shape[:2]) != (2, 2):  # not the warm-up step (T=2, batch 2)
            held.append(torch.ones(16 * 2**20, dtype=torch.float32))  # written: resident

    monkeypatch.setattr(core_speed, "train_step", step_holding_64_mib)
    config = quick_config_for_tests(nmnist_config())
    result = measure(config, "neuromem", torch.device("cpu"), steps=1)
    assert result["rss_before_mb"] > 0 and held
    if "note" not in result:  # the peak counter was reset before the step: the step's peak is measured
        assert result["extra_mb"] >= 60, result


@pytest.mark.parametrize(
    "args, message",
    [
        (["--configs", "nope"], "--configs: unknown configuration(s) nope; valid: shd-feedforward"),
        (["--inputs", "spec,nope"], "--inputs: unknown input kind(s) nope; valid: spec, data"),
        (["--device", "tpu"], "--device 'tpu' is not a device; valid: auto, cpu"),
    ],
)
def test_bad_bench_flags_get_one_line_errors(args, message):
    """Refused before anything runs: one line naming the flag, the value and what is valid."""
    result = run_cli("bench", "--quick", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cuda_device_refused_where_there_is_none():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="--device cuda: CUDA is not available on this machine; valid: auto, cpu"):
        check_arguments("spec", "cuda", None)


def test_benchmark_runs_each_cpu_tier_in_its_own_process_and_reports_both(tmp_path):
    from neuromem.bench.core_speed import main

    out = tmp_path / "RESULTS.md"
    main(["--quick", "--tiers", "tuned,portable", "--configs", "shd-feedforward", "--inputs", "spec", "--no-memory",
          "--repetitions", "1", "--data", "random", "--out", str(out)])
    markdown = out.read_text()
    assert "| configuration | vs | goal | tuned: neuromem ms, ratio | portable: neuromem ms, ratio |" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| shd-feedforward |")]
    assert [row.split(" | ")[1] for row in rows] == ["snntorch", "norse"]
    assert all(len(re.findall(r"\d+\.\d+, \d+\.\d\dx (met|NOT met)", row)) == 2 for row in rows)  # both tiers measured
    for tier in ("tuned", "portable"):
        assert f"# CPU tier: {tier}" in markdown and f"- CPU tier: **{tier}**" in markdown
    assert "Instruction sets: host has" in markdown and "torch kernels dispatch to" in markdown
    assert "--out" not in markdown.split("# CPU tier: tuned", 1)[1]  # scratch paths are not reported


def test_unknown_cpu_tier_is_refused():
    from neuromem.bench.core_speed import main

    with pytest.raises(SystemExit) as exit_:
        main(["--tiers", "tuned,avx9000", "--quick"])
    assert exit_.value.code == 2
