"""Pre-warming: what a fresh kernel's first ``execute_request`` pays, paid before the kernel answers anyone.

A fresh ipykernel's first execute is several times slower than the next ones: the first pass through ipykernel's
and IPython's execute path (code objects run for the first time, lazily built caches and imports such as
``IPython.core.logger``, the display formatters' type lookups, the JSON encoder and HMAC of the reply). ``prewarm``
runs that path once, at start-up, before the event loop takes any request: a *silent* execute of ``1+1`` (IPython
then runs no displayhook, stores no history, and ipykernel increments no execution count and publishes nothing), a
formatting of a value by the display formatter (which changes no state), and the serialisation of a reply that is
never sent. So the user's first cell is ``In[1]``, ``In``/``Out``/``_``/history are empty and no variable exists.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

WARM_UP_CODE = "1+1"


async def prewarm(kernel: Any) -> None:
    """Run the execute path once without a trace visible to the user; a failure is logged, never raised."""
    try:
        await kernel.do_execute(WARM_UP_CODE, silent=True, store_history=False, user_expressions={}, allow_stdin=False)
        kernel.shell.display_formatter.format(2)
        session = kernel.session
        session.serialize(session.msg("execute_reply", {"status": "ok", "execution_count": 1}))
    except Exception:  # the kernel must start anyway, only less warm
        log.warning("pre-warm failed", exc_info=True)
