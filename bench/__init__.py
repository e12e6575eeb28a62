"""JupyCell's benchmark: ``make bench`` (or ``python -m bench [--quick]`` in bench/.venv). See docs/benchmarks.md."""
