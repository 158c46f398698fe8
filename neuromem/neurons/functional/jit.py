"""numba when installed (it comes with tonic) and the one way neuromem compiles its CPU kernels.

`kernel`: cached per machine, releases the GIL, and error_model="numpy": a float division is
the IEEE one, without numba's zero-divisor check, whose branch kept loops from vectorising
(N-MNIST conv1 LIF backward: 18.2 -> 7.7 ms; the kernels' divisors are >= 1 or strides, so
values are unchanged). No fastmath: kernels run the float operations of the torch reference
in the same order, so forward values stay bit-for-bit equal to it.
"""

from __future__ import annotations

try:
    import numba
except ImportError:  # pragma: no cover - numba comes with tonic
    numba = None

kernel = numba.njit(cache=True, nogil=True, error_model="numpy") if numba is not None else None
