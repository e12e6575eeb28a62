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

from ipykernel.ipkernel import IPythonKernel


class NoShellChannelThread:
    """Stands in for ipykernel's ``ShellChannelThread`` when there is none: false in a boolean context."""

    def __init__(self) -> None:
        self.parent_thread = threading.current_thread()  # the thread that runs cells (ipykernel asks for it)

    def __bool__(self) -> bool:
        return False


class JupyCellKernel(IPythonKernel):
    """``IPythonKernel`` that counts a ``NoShellChannelThread`` as no shell channel thread."""

    @property
    def _supports_kernel_subshells(self) -> bool:
        return bool(self.shell_channel_thread)
