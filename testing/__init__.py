"""Harness shared by the test suite and the benchmarks: real gateway processes, clients, Jupyter helpers."""
