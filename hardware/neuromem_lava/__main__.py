"""`python -m neuromem_lava run NET.h5 INPUTS.npz OUT.npz [--record-voltages] [--parallel N] [--sense S]`.

INPUTS.npz holds `spikes` (samples, T, inputs) binary. OUT.npz gets
`spikes_<layer>` (samples, T, neurons) for every layer, `final_voltage`
(samples, outputs), optionally `voltages` (samples, T, outputs), and `seconds`.
Errors: one line on stderr starting with "neuromem_lava: error:", exit code 2.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from neuromem_lava.netfile import NetFileError, read_network


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="neuromem_lava")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a network on Lava's fixed-point Loihi 2 simulator")
    run.add_argument("net")
    run.add_argument("inputs")
    run.add_argument("out")
    run.add_argument("--record-voltages", action="store_true")
    run.add_argument("--parallel", type=int, default=1, help="copies of the network run side by side, one sample each")
    run.add_argument("--sense", default=None, help="the chain of this sense, in a file of several (joint, parallel)")
    sub.add_parser("version", help="print lava-nc's version")
    args = parser.parse_args(argv)
    if args.command == "version":
        from importlib.metadata import version

        print(version("lava-nc"))
        return 0
    try:
        input_size, layers = read_network(args.net, args.sense)
        try:
            with np.load(args.inputs) as data:
                spikes = np.asarray(data["spikes"])
        except (OSError, KeyError, ValueError) as err:
            raise NetFileError(f"{args.inputs}: cannot read input spikes ({err})") from None
        if spikes.ndim < 3:
            raise NetFileError(f"{args.inputs}: spikes must be (samples, T, *input_shape), got shape {spikes.shape}")
        from neuromem_lava.runner import run_network

        try:
            results = run_network(input_size, layers, spikes, record_voltages=args.record_voltages,
                                  parallel=args.parallel)
        except ValueError as err:
            raise NetFileError(str(err)) from None
        np.savez_compressed(args.out, **results)
    except NetFileError as err:
        print(f"neuromem_lava: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
