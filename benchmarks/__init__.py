"""Runnable benchmarks (`python -m benchmarks.<name>`); the logic lives in `neuromem.bench`."""
