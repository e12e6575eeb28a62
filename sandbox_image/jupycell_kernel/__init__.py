"""JupyCell's sandbox kernel: stock ipykernel, configured for a short ``execute_request`` round trip.

Nothing here changes what a user sees (outputs, execution counts, ``In``/``Out``/``_``, magics, ``input()``,
interrupts); it only removes waiting that ipykernel does per request. ``python -m jupycell_kernel -f FILE`` starts
it; every switch is a trait of ``JupyCellKernelApp`` (``--JupyCellKernelApp.<switch>=False`` turns one off) so each
change can be measured on its own (``bench/kernel_floor.py``). See docs/benchmarks.md, "The kernel".
"""
