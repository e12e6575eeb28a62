"""``quiet_logging``: a logger whose handlers all drop records below some level need not build them.

The kernel application's logger (traitlets sets it to DEBUG, with one console handler at ``log_level``, WARNING by
default, and no propagation) builds a ``LogRecord`` for each of ipykernel's four ``log.debug`` calls per request
only for the handler to drop it. ``quiet`` raises the logger's own level to its handlers' lowest, so those calls
return at once and exactly the same lines are logged. traitlets resets the level when ``log_level`` changes
(``--debug`` included), so a kernel asked for debug output still logs it.
"""

from __future__ import annotations

import logging


def quiet(log: logging.Logger | logging.LoggerAdapter[logging.Logger]) -> None:
    """Raise ``log``'s level to the lowest level of its handlers, when it has handlers and does not propagate."""
    logger = log.logger if isinstance(log, logging.LoggerAdapter) else log
    if logger.propagate or not logger.handlers:
        return
    lowest = min(handler.level for handler in logger.handlers)
    if lowest > logger.level:
        logger.setLevel(lowest)
