"""JupyCell: an HTTP gateway that runs notebook cells in sandboxed, per-kernel Docker containers."""
