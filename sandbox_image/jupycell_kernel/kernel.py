"""``JupyCellKernel``: ipykernel's ``IPythonKernel``, able to run without the shell channel thread.

ipykernel 7 receives every shell message on a "Shell channel" thread that forwards it to the main thread over an
inproc socket, and the reply takes the same way back: two thread hand-offs per request, there to serve kernel
subshells (protocol 5.5, concurrent shell requests on other threads). With ``JupyCellKernelApp.subshells`` off, the
main thread owns the shell socket, as in ipykernel 6: ``NoShellChannelThread`` stands where the thread was (falsy,
so ipykernel takes its no-subshell paths, and it names the main thread as the one that runs cells), and
``kernel_info`` does not list "kernel subshells".
"""

from __future__ import annotations

import threading
from typing import Any

from ipykernel.ipkernel import IPythonKernel

from jupycell_kernel.cells import CellPreparation


class NoShellChannelThread:
    """Stands in for ipykernel's ``ShellChannelThread`` when there is none: false in a boolean context."""

    def __init__(self) -> None:
        self.parent_thread = threading.current_thread()  # the thread that runs cells (ipykernel asks for it)

    def __bool__(self) -> bool:
        return False


class JupyCellKernel(IPythonKernel):
    """``IPythonKernel`` that counts a ``NoShellChannelThread`` as no shell channel thread, and prepares each cell
    once (``prepare_cells_once``, the ``lean_run_cell`` switch: ``cells.py``)."""

    _cell_preparation: CellPreparation | None = None

    def prepare_cells_once(self) -> None:
        self._cell_preparation = CellPreparation(self.shell)

    @property
    def _supports_kernel_subshells(self) -> bool:
        return bool(self.shell_channel_thread)

    async def do_execute(  # type: ignore[override]
        self,
        code: str,
        silent: bool,
        store_history: bool = True,
        user_expressions: dict[str, Any] | None = None,
        allow_stdin: bool = False,
        *,
        cell_meta: dict[str, Any] | None = None,
        cell_id: str | None = None,
    ) -> dict[str, Any]:
        """ipykernel's ``do_execute``, within ``CellPreparation.request`` when ``lean_run_cell`` is on."""
        run = super().do_execute(
            code, silent, store_history, user_expressions, allow_stdin, cell_meta=cell_meta, cell_id=cell_id
        )
        if self._cell_preparation is None:
            return await run
        with self._cell_preparation.request():
            return await run
