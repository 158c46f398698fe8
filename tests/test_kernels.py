"""The compile layer of the CPU kernels: the vector add, the cache stamp."""

import numpy as np
import pytest

from neuromem.neurons.functional import jit

pytestmark = pytest.mark.skipif(jit.numba is None, reason="numba not installed")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [3, 8, 16, 20, 32])
def test_add_scaled_equals_the_scalar_loop_bit_for_bit(dtype, width):
    """Lanes of 8 as one vector operation, the rest one by one: multiply then add, as the loop."""
    from neuromem.neurons.functional.simd import add_scaled

    generator = np.random.default_rng(width)
    target = generator.standard_normal((5, width)).astype(dtype)
    source = generator.standard_normal((7, width)).astype(dtype)
    scale = dtype(generator.standard_normal())
    expected = target.copy()
    for column in range(width):  # the scalar loop, float operation by float operation
        expected[3, column] = expected[3, column] + scale * source[6, column]
    add_scaled(target, 3, source, 6, scale)
    assert np.array_equal(target, expected)
    assert np.array_equal(np.delete(target, 3, axis=0), np.delete(expected, 3, axis=0))  # other rows untouched


def test_kernel_cache_entries_are_stamped_with_every_kernel_file(tmp_path):
    """numba stamps a cached function with its own file only; kernels inline kernels of sibling
    files, so neuromem's stamp covers all of them (and leaves other files to numba)."""
    from neuromem.neurons.functional import lif, sparse

    stamp = jit._kernel_sources_stamp()
    locator_classes = [
        c for c in jit._cache_impl()._locator_classes if c.__name__.startswith("KernelSources")
    ]
    assert locator_classes
    found = [c.from_function(sparse._scatter_conv.py_func, sparse.__file__) for c in locator_classes]
    assert any(locator is not None and locator.get_source_stamp() == stamp for locator in found)
    other = tmp_path / "elsewhere.py"
    other.write_text("def f():\n    return 1\n")
    assert all(c.from_function(lif.LIFParameters.__init__, str(other)) is None for c in locator_classes)
    (tmp_path / "copy.py").write_text("x = 1\n")  # the stamp is of the kernel folder's files only
    assert jit._kernel_sources_stamp() == stamp


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [7, 16, 37, 300])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_both_nonzero_scans_list_the_entries_of_numpy_nonzero(dtype, size, index_dtype):
    """The compress-store scan (AVX-512 CPUs; lane by lane elsewhere) and the plain scan list the
    same entries, in order, with their values; -0.0 counts as an entry (it adds 0 x w, as the dense
    product)."""
    from neuromem.neurons.functional import nonzero

    compress, plain = nonzero.SCAN_COMPRESS, nonzero.SCAN_PLAIN

    @jit.numba.njit
    def scans(row, bits, indices, values):
        counts = np.empty(4, dtype=np.int64)
        counts[0] = nonzero._scan(bits, indices[0], row, None, compress)
        counts[1] = nonzero._scan(bits, indices[1], row, None, plain)
        counts[2] = nonzero._scan(bits, indices[2], row, values[0], compress)
        counts[3] = nonzero._scan(bits, indices[3], row, values[1], plain)
        return counts

    generator = np.random.default_rng(size)
    row = np.where(generator.random(size) < 0.3, generator.standard_normal(size), 0).astype(dtype)
    row[size // 2] = -0.0
    bits = row.view(np.uint32 if dtype == np.float32 else np.uint64)
    indices, values = np.full((4, size), -1, dtype=index_dtype), np.zeros((2, size), dtype=dtype)
    expected = np.flatnonzero(bits)
    counts = scans(row, bits, indices, values)
    assert list(counts) == [expected.size] * 4
    for listed in indices:
        assert np.array_equal(listed[:expected.size], expected)
    for listed in values:
        assert np.array_equal(listed[:expected.size].view(bits.dtype), bits[expected])
