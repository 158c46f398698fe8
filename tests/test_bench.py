"""The benchmark runs end to end on tiny shapes (a smoke test: no timing is asserted)."""

import pytest
import torch

pytest.importorskip("snntorch")
pytest.importorskip("norse")

from neuromem.bench.core_speed import run_benchmark  # noqa: E402
from neuromem.bench.networks import FRAMEWORKS, build_network, nmnist_config, quick_config_for_tests  # noqa: E402
from neuromem.bench.peak_memory import measure  # noqa: E402


def test_quick_benchmark_writes_results(tmp_path):
    out = tmp_path / "RESULTS.md"
    results, markdown = run_benchmark(
        quick=True, device="cpu", data="random", repetitions=1, warmup=1,
        config_names=["shd-feedforward", "shd-recurrent", "shd-memory-hopfield"], peak_memory=False, out=out,
        log=lambda line: None,
    )
    assert out.read_text().strip() == markdown.strip()
    assert [r.config.name for r in results] == ["shd-feedforward", "shd-recurrent", "shd-memory-hopfield"]
    for result in results:
        assert result.error is None
        assert set(result.timings) == {"neuromem", "neuromem-reference", "snntorch", "norse"}
        for timing in result.timings.values():
            assert len(timing.train_ms) == 1 and len(timing.infer_ms) == 1
            assert all(loss == loss for loss in timing.losses)  # finite, not NaN
    assert "| neuromem |" in markdown and "torch" in markdown and "Quick smoke run" in markdown


def test_unknown_configuration_is_refused():
    with pytest.raises(ValueError, match="unknown configuration"):
        run_benchmark(quick=True, device="cpu", data="random", config_names=["nope"], peak_memory=False)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_nmnist_networks_agree_on_shapes(framework):
    config = quick_config_for_tests(nmnist_config())
    network = build_network(framework, config)
    inputs = (torch.rand(config.steps, config.batch, *config.input_shape) < 0.1).float()
    assert network(inputs).shape == (config.batch, config.classes)


def test_peak_memory_measure_in_process():
    config = quick_config_for_tests(nmnist_config())
    result = measure(config, "neuromem", torch.device("cpu"), steps=1)
    assert result["peak_mb"] >= result["rss_before_mb"] > 0 and result["extra_mb"] >= 0
