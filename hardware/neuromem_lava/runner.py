"""Build Lava processes for a network description and run samples on Loihi2SimCfg(select_tag='fixed_pt').

Per layer: `lava.proc.sparse.Sparse` (integer weights, shared `weight_exp`, mixed sign mode)
into `lava.proc.lif.LIF` (du, dv, vth, bias); a recurrent layer adds a second Sparse
from the LIF's spikes back to its own input; a convolution is its equivalent sparse
matrix. Input spikes come from `lava.proc.io.source.RingBuffer`; every layer's spikes go
to a `lava.proc.io.sink.RingBuffer`.

Several samples per run: `parallel` copies of the network side by side in the same
processes (block-diagonal weights: each copy's neurons see only their own copy's inputs,
so every copy computes exactly what a lone network would), fed `parallel` samples at
once. Groups of samples run one after another for T steps each; between groups the
state every process keeps (u, v, the synapses' a_buff) is set back to zero, so each
sample starts from rest, as the torch model does.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np

from neuromem_lava.netfile import DenseLayer


def _block_diagonal(weight, copies: int):
    from scipy.sparse import block_diag, csr_matrix

    return csr_matrix(block_diag([csr_matrix(weight)] * copies, format="csr"), dtype=np.int32)


def run_network(
    input_size: int,
    layers: list[DenseLayer],
    spikes: np.ndarray,
    record_voltages: bool = False,
    parallel: int = 1,
) -> dict[str, np.ndarray]:
    """spikes (S, T, input_size) binary -> {"spikes_<i>": (S, T, N_i), "final_voltage": (S, N_last), ...}."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as SpikeSink
    from lava.proc.io.source import RingBuffer as SpikeSource
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode

    samples, steps = spikes.shape[:2]
    spikes = spikes.reshape(samples, steps, -1)
    if spikes.shape[2] != input_size:
        raise ValueError(f"inputs have {spikes.shape[2]} channels, the network expects {input_size}")
    copies = max(1, min(int(parallel), samples))
    groups = -(-samples // copies)
    padded = np.zeros((groups * copies, steps, input_size), dtype=np.int32)
    padded[:samples] = spikes > 0
    # (groups, copies, T, C) -> columns: time step g*T + t, rows: copy-major channels
    data = padded.reshape(groups, copies, steps, input_size).transpose(0, 2, 1, 3).reshape(groups * steps, copies * input_size).T
    total = groups * steps
    source = SpikeSource(data=np.ascontiguousarray(data))
    previous = source.s_out
    synapses, neurons, sinks = [], [], []
    for layer in layers:
        size = layer.size * copies
        synapse = Sparse(weights=_block_diagonal(layer.weight, copies), weight_exp=layer.weight_exp,
                         num_weight_bits=8, sign_mode=SignMode.MIXED)
        neuron = LIF(
            shape=(size,), du=layer.du, dv=layer.dv, vth=layer.vth,
            bias_mant=np.full(size, layer.bias_mant), bias_exp=np.full(size, layer.bias_exp),
        )
        previous.connect(synapse.s_in)
        synapse.a_out.connect(neuron.a_in)
        synapses.append(synapse)
        if layer.recurrent_weight is not None:
            recurrent = Sparse(weights=_block_diagonal(layer.recurrent_weight, copies), weight_exp=layer.recurrent_exp,
                               num_weight_bits=8, sign_mode=SignMode.MIXED)
            neuron.s_out.connect(recurrent.s_in)
            recurrent.a_out.connect(neuron.a_in)
            synapses.append(recurrent)
        sink = SpikeSink(shape=(size,), buffer=total)
        neuron.s_out.connect(sink.a_in)
        neurons.append(neuron)
        sinks.append(sink)
        previous = neuron.s_out
    monitor: Optional[Monitor] = None
    if record_voltages:
        monitor = Monitor()
        monitor.probe(neurons[-1].v, total)

    run_cfg = Loihi2SimCfg(select_tag="fixed_pt")
    outputs = layers[-1].size
    final_voltage = np.zeros((groups, copies, outputs), dtype=np.int64)
    started = time.perf_counter()

    def per_sample(array: np.ndarray, width: int) -> np.ndarray:
        """(total, copies*width) -> (samples, T, width)."""
        blocks = array.reshape(groups, steps, copies, width).transpose(0, 2, 1, 3)
        return blocks.reshape(groups * copies, steps, width)[:samples]

    try:
        for group in range(groups):
            neurons[0].run(condition=RunSteps(num_steps=steps), run_cfg=run_cfg)
            final_voltage[group] = np.asarray(neurons[-1].v.get()).astype(np.int64).reshape(copies, outputs)
            for neuron in neurons:
                neuron.u.set(np.zeros(neuron.u.shape, dtype=np.int32))
                neuron.v.set(np.zeros(neuron.v.shape, dtype=np.int32))
            for synapse in synapses:
                synapse.a_buff.set(np.zeros(synapse.a_buff.shape, dtype=np.int32))
        results = {
            f"spikes_{i}": per_sample(np.asarray(sink.data.get()).T, layer.size).astype(np.uint8)
            for i, (sink, layer) in enumerate(zip(sinks, layers))
        }
        if monitor is not None:
            trace = np.asarray(monitor.get_data()[neurons[-1].name]["v"])  # (total, copies*N)
            results["voltages"] = per_sample(trace, outputs).astype(np.int64)
    finally:
        neurons[0].stop()
    results["final_voltage"] = final_voltage.reshape(groups * copies, outputs)[:samples]
    results["seconds"] = np.array(time.perf_counter() - started)
    return results
