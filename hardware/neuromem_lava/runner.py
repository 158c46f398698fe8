"""Build Lava processes for a network description and run samples on Loihi2SimCfg(select_tag='fixed_pt').

Per layer: `lava.proc.dense.Dense` (integer weights, shared `weight_exp`) into
`lava.proc.lif.LIF` (du, dv, vth, bias); a recurrent layer adds a second Dense
from the LIF's spikes back to its own input. Input spikes come from
`lava.proc.io.source.RingBuffer`; every layer's spikes go to a
`lava.proc.io.sink.RingBuffer`. Samples run one after another for T steps
each; between samples the state every process keeps (u, v, Dense a_buff) is
set back to zero, so each sample starts from rest, as the torch model does.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from neuromem_lava.netfile import DenseLayer


def run_network(
    input_size: int,
    layers: list[DenseLayer],
    spikes: np.ndarray,
    record_voltages: bool = False,
) -> dict[str, np.ndarray]:
    """spikes (S, T, input_size) binary -> {"spikes_<i>": (S, T, N_i), "final_voltage": (S, N_last), ...}."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as SpikeSink
    from lava.proc.io.source import RingBuffer as SpikeSource
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor

    samples, steps, channels = spikes.shape
    if channels != input_size:
        raise ValueError(f"inputs have {channels} channels, the network expects {input_size}")
    total = samples * steps
    # the source plays column t at time step t+1 (Lava counts steps from 1)
    source = SpikeSource(data=(spikes.reshape(total, channels).T > 0).astype(np.int32))
    previous = source.s_out
    denses, neurons, sinks = [], [], []
    for layer in layers:
        dense = Dense(weights=layer.weight, weight_exp=layer.weight_exp, num_weight_bits=8)
        neuron = LIF(
            shape=(layer.size,), du=layer.du, dv=layer.dv, vth=layer.vth,
            bias_mant=np.full(layer.size, layer.bias_mant), bias_exp=np.full(layer.size, layer.bias_exp),
        )
        previous.connect(dense.s_in)
        dense.a_out.connect(neuron.a_in)
        denses.append(dense)
        if layer.recurrent_weight is not None:
            recurrent = Dense(weights=layer.recurrent_weight, weight_exp=layer.recurrent_exp, num_weight_bits=8)
            neuron.s_out.connect(recurrent.s_in)
            recurrent.a_out.connect(neuron.a_in)
            denses.append(recurrent)
        sink = SpikeSink(shape=(layer.size,), buffer=total)
        neuron.s_out.connect(sink.a_in)
        neurons.append(neuron)
        sinks.append(sink)
        previous = neuron.s_out
    monitor: Optional[Monitor] = None
    if record_voltages:
        monitor = Monitor()
        monitor.probe(neurons[-1].v, total)

    run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    final_voltage = np.zeros((samples, layers[-1].size), dtype=np.int64)
    started = time.perf_counter()
    try:
        for sample in range(samples):
            neurons[0].run(condition=RunSteps(num_steps=steps), run_cfg=run_cfg)
            final_voltage[sample] = np.asarray(neurons[-1].v.get()).astype(np.int64)
            for neuron in neurons:
                neuron.u.set(np.zeros(neuron.u.shape, dtype=np.int32))
                neuron.v.set(np.zeros(neuron.v.shape, dtype=np.int32))
            for dense in denses:
                dense.a_buff.set(np.zeros(dense.a_buff.shape, dtype=np.int32))
        results = {
            f"spikes_{i}": np.asarray(sink.data.get()).T.reshape(samples, steps, -1).astype(np.uint8)
            for i, sink in enumerate(sinks)
        }
        if monitor is not None:
            trace = monitor.get_data()[neurons[-1].name]["v"]  # (total, N)
            results["voltages"] = np.asarray(trace).reshape(samples, steps, -1).astype(np.int64)
    finally:
        neurons[0].stop()
    results["final_voltage"] = final_voltage
    results["seconds"] = np.array(time.perf_counter() - started)
    return results
