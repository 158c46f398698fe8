"""The Loihi neuron alone, forward + backward: its compiled path (`functional/loihi_kernels.py`) against its
reference loop (`loihi_reference_sequence`, what every device ran before) and against the float LIF's fused
kernels on the same shape. Main-thread CPU time (`time.thread_time`: one torch thread, the numba kernels run on
it), min over calls, so a loaded shared machine distorts it less than wall time.

    .venv/bin/python benchmarks/loihi_neuron.py [--steps 100 --batch 64 --size 256 --calls 10]
"""

from __future__ import annotations

import argparse
import time

import torch

from neuromem.neurons.functional.loihi import LoihiParameters, loihi_reference_sequence, loihi_sequence
from neuromem.neurons.functional.neuron import neuron_sequence
from neuromem.neurons.models import get_neuron


def _min_thread_time(fn, calls: int) -> float:
    fn()  # compile / warm up
    best = float("inf")
    for _ in range(calls):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--calls", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    shape = (args.steps, args.batch, args.size)
    # activations of ~5-10% firing at the grid's hidden settings (du 511, dv 256, vth 1024, slope 1)
    activations = torch.randint(-150, 190, shape).double()
    weight = 2.0 * torch.randint(-24, 24, (args.size, args.size)).double()
    p = LoihiParameters(du=511, dv=256, vth=1024, surrogate_slope=1.0)
    lif = get_neuron("lif")
    lif_p = lif.make_parameters()
    lif_inputs = (activations / 150.0).float()

    def loihi(sequence, recurrent):
        def run():
            a = activations.clone().requires_grad_()
            w = weight.clone().requires_grad_() if recurrent else None
            spikes, _, _ = sequence(a, p, w, 0)
            spikes.sum().backward()
        return run

    def float_lif(recurrent):
        def run():
            x = lif_inputs.clone().requires_grad_()
            w = (weight / 2000.0).float().requires_grad_() if recurrent else None
            spikes, _ = neuron_sequence(lif, x, lif_p, w)
            spikes.sum().backward()
        return run

    with torch.no_grad():
        rate = loihi_sequence(activations, p)[0].mean().item()
    print(f"shape {shape}, Loihi firing {rate:.3f} per neuron-step; ms (min thread time of {args.calls} calls)")
    print("| | Loihi reference loop | Loihi compiled | float LIF (float32, fused kernels) | compiled / LIF |")
    print("|---|---|---|---|---|")
    for recurrent in (False, True):
        reference = _min_thread_time(loihi(loihi_reference_sequence, recurrent), max(2, args.calls // 3))
        compiled = _min_thread_time(loihi(loihi_sequence, recurrent), args.calls)
        float_ = _min_thread_time(float_lif(recurrent), args.calls)
        name = "recurrent" if recurrent else "feed-forward"
        print(f"| {name} | {reference:.1f} | {compiled:.1f} | {float_:.1f} | {compiled / float_:.2f}x |")


if __name__ == "__main__":
    main()
