"""Benchmarks (`remoteclip-explorer bench ...`): each prints its figures and writes them to `benchmarks/results/`."""
