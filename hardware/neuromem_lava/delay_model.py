"""Lava's bit-accurate DelaySparse model with its per-delay weight stack built once.

lava-nc 0.10's `PyDelaySparseModelBitAcc.calc_act` rebuilds, at every time step, the stack of
(max_delay + 1) masked copies of the weights (`get_delay_wgts_mat`: the weights whose delay is k, for
each k), a pure function of the weights and delays. An exported network's weights and delays never
change during a run, so this subclass builds the stack at the first step (after Lava's own clipping
and truncation of the weights, which run first) and reuses it; everything else, the arithmetic
included, is Lava's. On a 700 -> 256 -> 256 SHD cell with delays up to 24 steps the stack was nearly
all of the run's time. `NEUROMEM_LAVA_STOCK_DELAYS=1` runs Lava's model unchanged instead.
"""

from __future__ import annotations

from lava.proc.sparse.models import PyDelaySparseModelBitAcc


class PyDelaySparseModelBitAccStatic(PyDelaySparseModelBitAcc):
    """`PyDelaySparseModelBitAcc` for weights and delays that stay as they were at the first step."""

    _stack = None

    def get_delay_wgts_mat(self, weights, delays, max_delay):
        if self._stack is None:
            self._stack = PyDelaySparseModelBitAcc.get_delay_wgts_mat(weights, delays, max_delay)
        return self._stack
