"""``JupyCellKernelApp``: ipykernel's ``IPKernelApp`` with the round-trip switches of this package.

Switches (traits; ``--JupyCellKernelApp.<name>=False|True`` flips one, which is how each is measured):

The others are on by default:

- ``quick_flush``: ``sys.stdout``/``sys.stderr`` skip a flush that has nothing to wait for (``iopub.py``).
- ``direct_iopub``: a thread sends an IOPub message itself when nothing is queued before it (``iopub.py``).
- ``coalesce_iopub``: one IOPub-thread wake-up per batch of messages, not one per message (``iopub.py``).
- ``no_execute_sleep``: ``Kernel._execute_sleep = 0``: ipykernel sleeps 0.5 ms before every execute reply ("FIXME: on
  rare occasions, the flush doesn't seem to make it"); the flush before it already waits until the IOPub thread has
  sent every message, so the sleep only adds latency.
- ``memory_history``: the history database in memory (``HistoryManager.hist_file = ":memory:"``) instead of a SQLite
  file that a thread writes after every cell. Same ``In``, ``_i``, ``%history`` (with ``-g``/``-n``), same session
  number: a container starts with an empty history file anyway (``IPYTHONDIR`` is on its tmpfs).

- ``lean_session``: each message's JSON packed by one encoder made once, the parent header once per request
  (``session.py``); the same bytes.
- ``fast_send``: frames handed to pyzmq's compiled ``send`` directly (``frames.py``), and the shell reply sent at
  once rather than queued for the event loop (``session.py``).
- ``lean_run_cell``: IPython transforms a cell and checks it for top-level ``await`` once per request, not twice
  (``cells.py``); ``cached_signatures``: ipykernel reads ``run_cell_async``'s signature once, not per execute.
- ``quiet_logging``: the kernel's logger drops debug records itself instead of building each one for a handler
  that drops it (the logger's level is raised to its handlers' lowest level; the same lines are logged).

- ``prewarm``: run the execute path once, invisibly, before the first request (``prewarm.py``).
- ``freeze_gc``: ``gc.freeze()`` once started (after pre-warming): the ~10^5 objects of ipykernel, IPython and
  their imports leave the collector's generations, so the full collections that a cell's allocations trigger now
  and then no longer walk them (their cost shows in the p99). Nothing is freed differently for user objects.
- ``subshells`` (off): ipykernel 7's shell channel thread, there for kernel subshells (protocol 5.5), costs two
  thread hand-offs per request; off, the main thread owns the shell socket, as in ipykernel 6 (``kernel.py``), and
  ``kernel_info`` does not list "kernel subshells" (clients then do not create any; JupyCell's API never does).
  Everything else — outputs, counts, interrupts, ``input()``, requests aborted after an error — is the same
  (tests/integration/test_kernel_equivalence.py). ``--JupyCellKernelApp.subshells=True`` brings the thread back.

Command-line options and config files still win over these defaults.
"""

from __future__ import annotations

import gc
from typing import Any

import zmq
from ipykernel.kernelapp import IPKernelApp
from jupyter_client.session import Session
from tornado import ioloop
from traitlets import Bool, default
from traitlets.config import Config

from jupycell_kernel.cells import cache_signatures
from jupycell_kernel.iopub import QuickIOPubThread
from jupycell_kernel.kernel import NoShellChannelThread
from jupycell_kernel.logs import quiet
from jupycell_kernel.prewarm import prewarm
from jupycell_kernel.session import LeanSession

QUICK_FLUSH_STREAM = "jupycell_kernel.iopub.QuickFlushOutStream"


#: Messages the kernel queues for a slow IOPub subscriber before ZMQ drops (its default: 1000).
IOPUB_SNDHWM = 500_000


class JupyCellKernelApp(IPKernelApp):
    """The sandbox kernel: stock ipykernel with less waiting per request."""

    name = "jupycell-kernel"

    quick_flush = Bool(True, help="Skip stdout/stderr flushes that have nothing to wait for.").tag(config=True)
    direct_iopub = Bool(True, help="Send IOPub messages from the calling thread when nothing is queued.").tag(
        config=True
    )
    coalesce_iopub = Bool(True, help="Wake the IOPub thread once per batch of messages.").tag(config=True)
    no_execute_sleep = Bool(True, help="No 0.5 ms sleep before each execute reply.").tag(config=True)
    memory_history = Bool(True, help="History database in memory, written when read.").tag(config=True)

    lean_session = Bool(True, help="Pack each message with one prepared encoder, the parent header once.").tag(
        config=True
    )
    fast_send = Bool(True, help="Send frames through pyzmq's compiled send; the shell reply without queueing.").tag(
        config=True
    )
    lean_run_cell = Bool(True, help="Transform and check each cell once per request, not twice.").tag(config=True)
    cached_signatures = Bool(True, help="Read run_cell_async's signature once, not per execute.").tag(config=True)
    quiet_logging = Bool(True, help="Build no log record that no handler would emit.").tag(config=True)

    prewarm = Bool(True, help="Run the execute path once, invisibly, before taking requests.").tag(config=True)
    freeze_gc = Bool(True, help="Move start-up objects out of the garbage collector's generations.").tag(config=True)
    subshells = Bool(False, help="Keep ipykernel 7's shell channel thread (kernel subshells).").tag(config=True)

    def init_sockets(self) -> None:
        super().init_sockets()
        if not self.subshells:
            self.shell_channel_thread = NoShellChannelThread()  # never started: the main thread owns the socket

    def initialize(self, argv: list[str] | None = None) -> None:
        self._apply_switch_defaults(argv)
        super().initialize(argv)
        if self.subapp is not None:
            return
        if self.lean_run_cell:
            self.kernel.prepare_cells_once()
        if self.cached_signatures:
            cache_signatures()
        if self.quiet_logging:
            quiet(self.log)

    @default("session")
    def _lean_session(self) -> Session:
        if not (self.lean_session or self.fast_send):
            return Session(parent=self)
        return LeanSession(parent=self, lean=self.lean_session, fast_send=self.fast_send)

    def _apply_switch_defaults(self, argv: list[str] | None) -> None:
        """Read the switches from the command line first (they decide the defaults), then set the defaults as
        config that any command-line option or config file given for the same trait overrides."""
        self.parse_command_line(argv)
        defaults = Config()
        if self.no_execute_sleep:
            defaults.Kernel._execute_sleep = 0.0
        if self.memory_history:
            defaults.HistoryManager.hist_file = ":memory:"
        if self.quick_flush:
            defaults.IPKernelApp.outstream_class = QUICK_FLUSH_STREAM
        defaults.IPKernelApp.kernel_class = "jupycell_kernel.kernel.JupyCellKernel"
        merged = Config(defaults)
        merged.merge(self.config)  # what was given explicitly wins
        self.update_config(merged)

    def init_iopub(self, context: zmq.Context[Any]) -> None:
        """ipykernel's ``init_iopub`` (7.4) with ``QuickIOPubThread``, which ``quick_flush`` needs too."""
        if not (self.direct_iopub or self.coalesce_iopub or self.quick_flush or self.fast_send):
            super().init_iopub(context)
            return
        self.iopub_socket = context.socket(zmq.XPUB)
        self.iopub_socket.linger = 1000
        # A flood (print in a loop) outruns the gateway's reading: queue it here, within the container's memory
        # limit, rather than let ZMQ drop messages past its default 1000, the run's last outputs and idle among them.
        self.iopub_socket.sndhwm = IOPUB_SNDHWM
        self._apply_curve_server_options(self.iopub_socket)
        self.iopub_port = self._bind_socket(self.iopub_socket, self.iopub_port)
        self.log.debug("iopub PUB Channel on port: %i", self.iopub_port)
        self.configure_tornado_logger()
        self.iopub_thread = QuickIOPubThread(
            self.iopub_socket,
            pipe=True,
            session=self.session,
            direct=self.direct_iopub,
            coalesce=self.coalesce_iopub,
            fast_send=self.fast_send,
        )
        self.iopub_thread.start()
        self.iopub_socket = self.iopub_thread.background_socket  # as ipykernel: sends go through the thread

    def start(self) -> None:
        if self.prewarm and self.subapp is None:
            # Before the kernel registers its request handlers: requests that arrive meanwhile wait on the sockets.
            ioloop.IOLoop.current().run_sync(lambda: prewarm(self.kernel))
        if isinstance(self.session, LeanSession) and not self.subshells and self.subapp is None:
            self.session.send_directly_on(self.kernel.shell_stream)  # this (main) thread runs the shell stream
        if self.freeze_gc and self.subapp is None:
            gc.collect()
            gc.freeze()
        super().start()
