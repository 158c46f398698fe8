"""`python -m benchmarks.core_speed [--quick] [--device auto|cpu|cuda] [--configs ...]`

Times the same spiking networks in neuromem, snnTorch and Norse in one process
and rewrites benchmarks/RESULTS.md next to this file. See neuromem.bench.core_speed.
"""

from pathlib import Path

from neuromem.bench.core_speed import main

if __name__ == "__main__":
    main(default_out=Path(__file__).resolve().parent / "RESULTS.md")
