"""The firing-rate ceiling (`neuromem.train.rate_penalty`, `neuromem ablate --rate-option`)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from neuromem.errors import NeuromemError
from neuromem.neurons.loihi import LoihiLinear
from neuromem.train.config import CellConfig
from neuromem.train.rate_penalty import RateOptions, RateRecorder, spiking_layers, with_rate_options


def _cell(layer_factory) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(layer_factory(16, 32, init_scale=1.0), layer_factory(32, 8, init_scale=1.0))


def _inputs() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return (torch.rand(20, 8, 16, generator=generator) < 0.5).float()  # (T, batch, in)


def _rate(cell: nn.Module, inputs: torch.Tensor) -> float:
    with torch.no_grad(), RateRecorder(cell) as recorder:
        cell(inputs)
    rates = recorder.rates()
    return float(sum(rates.values()) / len(rates))


def test_penalty_lowers_the_rate_of_a_loihi_cell():
    cell, inputs = _cell(LoihiLinear), _inputs()
    options = RateOptions(target=0.02, weight=1.0)
    before = _rate(cell, inputs)
    assert before > 0.1  # the test means something: the cell starts well above the target
    optimizer = torch.optim.Adam(cell.parameters(), lr=1e-2)
    for _ in range(30):
        with RateRecorder(cell) as recorder:
            cell(inputs)
        loss = recorder.penalty(options)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _rate(cell, inputs)
    assert after < 0.5 * before
    assert len(spiking_layers(cell)) == 2  # both layers are covered


def test_penalty_is_zero_when_off_or_below_target():
    cell, inputs = _cell(LoihiLinear), _inputs()
    with torch.no_grad(), RateRecorder(cell) as recorder:
        cell(inputs)
    rate = max(float(r.detach()) for r in recorder.rates().values())
    assert float(recorder.penalty(RateOptions(target=0.02, weight=1.0))) > 0.0
    assert float(recorder.penalty(RateOptions(target=0.02, weight=0.0))) == 0.0
    assert float(recorder.penalty(RateOptions(target=min(0.99, rate + 0.01), weight=1.0))) == 0.0
    # hooks are gone once the recorder closes: the cell runs as before, nothing recorded
    sums = dict(recorder.sums)
    cell(inputs)
    assert recorder.sums.keys() == sums.keys() and all(recorder.sums[k] is sums[k] for k in sums)


def test_penalty_value_is_the_relative_excess_squared():
    layer = nn.Module()
    layer.synapse = nn.Linear(2, 4)
    layer.forward = lambda x: x  # "spikes" given directly
    recorder = RateRecorder(layer)
    with recorder:
        layer(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))  # rate 0.25
    assert float(recorder.penalty(RateOptions(target=0.125, weight=2.0))) == pytest.approx(2.0)


def test_cell_identity_changes_only_when_set():
    plain = CellConfig(modality="shd", memory="hopfield-spiking", neuron="loihi")
    assert "rate_options" not in plain.to_dict()
    assert with_rate_options([plain], {}) == [plain]
    swept = with_rate_options([plain], {"target": [0.02, 0.04], "weight": [1.0]})
    assert [dict(c.rate_options) for c in swept] == [{"target": 0.02, "weight": 1.0}, {"target": 0.04, "weight": 1.0}]
    assert len({c.cell_id for c in [plain, *swept]}) == 3
    assert "rate_target=0.02" in swept[0].variant
    assert CellConfig.from_dict(swept[0].to_dict()) == swept[0]
    assert dataclasses.replace(swept[0], rate_options=()).cell_id == plain.cell_id


@pytest.mark.parametrize("axes, needle", [({"target": [0.0]}, "target must be in (0, 1)"),
                                          ({"weight": [-1.0]}, "weight must be"),
                                          ({"rate": [0.1]}, "unknown key 'rate'; valid: target, weight")])
def test_bad_rate_options_are_one_line(axes, needle):
    with pytest.raises(NeuromemError) as error:
        with_rate_options([CellConfig(modality="shd", memory="hopfield")], axes)
    assert needle in str(error.value) and "--rate-option" in str(error.value) and "\n" not in str(error.value)
