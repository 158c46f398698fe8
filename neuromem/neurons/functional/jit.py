"""numba when installed (it comes with tonic) and the one way neuromem compiles its CPU kernels.

`kernel`: cached on disk, releases the GIL, and error_model="numpy": a float division is the
IEEE one, without numba's zero-divisor check, whose branch kept loops from vectorising (N-MNIST
conv1 LIF backward: 18.2 -> 7.7 ms; the kernels' divisors are >= 1 or strides, so values are
unchanged). No fastmath: kernels run the float operations of the torch reference in the same
order, so forward values stay bit-for-bit equal to it.

numba's disk cache checks only the source file of the function it compiled, but kernels here
inline kernels of sibling files (the fused conv + LIF inlines the sparse scatter and the LIF
rows). Edit one file and a stale copy of it would live on inside the others' cached code: seen
while measuring, the kernels of an unchanged file kept running the old version of a changed
one. So the cache entries of these files are stamped with the contents of all of them, and of
the neuron-model and surrogate files whose functions the kernels inline (`neuromem/neurons/models`,
`neuromem/neurons/surrogates`), and with the CPU tier (`neuromem/cpu_tier.py`), whose choices are
compiled in; the portable tier's entries live in a subfolder of their own.

`specialize(template, suffix, **names)`: a kernel written once as a template (a plain function
whose helpers are module globals) compiled for one choice of those helpers, e.g. one neuron
model's update and one surrogate's derivative. numba reads a function's globals at compile time,
so the choice is a compile-time constant (inlined, no branch, no indirect call); the copy gets
its own name (`<template>__<suffix>`), so each choice is cached on disk under its own entry.
"""

from __future__ import annotations

import hashlib
import os
import types
from pathlib import Path

from neuromem import cpu_tier

cpu_tier.check()  # a misspelt NEUROMEM_CPU_TIER is an error here, not a silent default

try:
    import numba
except ImportError:  # pragma: no cover - numba comes with tonic
    numba = None

_KERNEL_DIR = Path(__file__).resolve().parent
# files whose plain functions the kernels inline (neuron models, surrogates): part of the stamp
_INLINED_DIRS = (_KERNEL_DIR.parent / "models", _KERNEL_DIR.parent / "surrogates")


def _kernel_sources_stamp() -> str:
    digest = hashlib.sha256(cpu_tier.TIER.encode())
    for folder in (_KERNEL_DIR, *_INLINED_DIRS):
        for path in sorted(folder.glob("*.py")):
            digest.update(folder.name.encode() + b"/" + path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _stamped_with_all_kernel_sources(locator_class: type, stamp: str) -> type:
    class KernelSourcesLocator(locator_class):
        def get_source_stamp(self):
            return stamp

        def get_cache_path(self):
            # kernels compile the CPU tier's choices in as constants: each tier keeps its own cache
            path = super().get_cache_path()
            return path if cpu_tier.TUNED else os.path.join(path, cpu_tier.TIER)

        @classmethod
        def from_function(cls, py_func, py_file):
            if Path(py_file).resolve().parent != _KERNEL_DIR:
                return None  # not a kernel file: numba's own locators
            return super().from_function(py_func, py_file)

    KernelSourcesLocator.__name__ = f"KernelSources{locator_class.__name__}"
    return KernelSourcesLocator


def _cache_impl():
    from numba.core import caching

    return getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")  # newer numba | older


def _install_cache_locators() -> None:
    from numba.core import caching

    cache_impl = _cache_impl()
    names = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
    bases = [getattr(caching, name, None) or getattr(caching, "_" + name) for name in names]
    if any(getattr(locator, "__name__", "").startswith("KernelSources") for locator in cache_impl._locator_classes):
        return
    stamp = _kernel_sources_stamp()
    cache_impl._locator_classes[:0] = [_stamped_with_all_kernel_sources(base, stamp) for base in bases]


if numba is not None:
    try:
        _install_cache_locators()
        _cache = True
    except (AttributeError, TypeError):  # numba's private cache layout changed: compile every run
        _cache = False
    kernel = numba.njit(cache=_cache, nogil=True, error_model="numpy")
    # small helpers called in hot loops: inlined by numba itself (LLVM did not always inline them)
    inline_kernel = numba.njit(cache=_cache, nogil=True, error_model="numpy", inline="always")
else:  # pragma: no cover
    kernel = inline_kernel = None


def specialize(template, suffix: str, inline: bool = False, **names):
    """`template` compiled with the module globals `names` replaced (see the module doc)."""
    function = types.FunctionType(
        template.__code__, {**template.__globals__, **names}, f"{template.__name__}__{suffix}",
        template.__defaults__, template.__closure__,
    )
    function.__qualname__ = f"{template.__qualname__}__{suffix}"
    function.__module__ = template.__module__
    return (inline_kernel if inline else kernel)(function)
