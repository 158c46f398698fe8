"""Whole grid cells on Lava: a small Loihi cell of each modality (front end + spiking memory + readout),
trained a few steps, exported as one chain and run on Loihi2SimCfg(select_tag='fixed_pt'): every layer's
spikes at every neuron and step, and the readout voltages, equal torch's; so do the cell's own decisions."""

import numpy as np
import pytest
import torch

from neuromem.export.hardware import verify_on_lava
from neuromem.export.lava import export_lava, model_from_lava
from neuromem.export.model import binary_time_major, chip_network
from neuromem.export.hardware import lava_available
from conftest import train_tiny_cell

pytestmark = pytest.mark.skipif(not lava_available(), reason="Lava environment missing (make lava)")


@pytest.mark.parametrize("modality,shape,steps,memory,options", [
    ("shd", (30,), 14, "hopfield-spiking", {"relay": 0}),  # the pure retrieval
    ("shd", (30,), 14, "hopfield-spiking", {"relay": 6}),  # relay neurons beside the patterns: one chain still
    ("nmnist", (2, 10, 10), 9, "scl-spiking", {}),
])
def test_small_trained_cell_is_bit_exact_on_lava(tmp_path, modality, shape, steps, memory, options):
    # a few real training steps move the weights off their initialisation
    net, inputs, labels = train_tiny_cell(modality, shape, memory, {"dim": 8, **options}, neuron="loihi",
                                          steps=steps, samples=24, max_count=1)
    with torch.no_grad():
        cell_decisions = net({modality: torch.as_tensor(inputs).float()}).logits[modality].argmax(-1).numpy()
    chain = chip_network(net, modality, shape)
    path = export_lava(chain, tmp_path / "cell.h5", dataset=modality)
    rebuilt = model_from_lava(path)
    with torch.no_grad():
        assert np.array_equal(rebuilt.predict(binary_time_major(inputs)).numpy(), cell_decisions)
    report = verify_on_lava(path, inputs[:6], labels[:6], record_voltages=True, workers=1, parallel=3)
    assert report.mismatches == 0 and report.voltages_equal and report.predictions_equal
    assert sum(report.spikes_per_layer[:-1]) > 0  # the comparison saw spikes, not silence
    assert len(report.spikes_per_layer) == len(chain.layers)
    assert report.torch_accuracy == report.lava_accuracy
