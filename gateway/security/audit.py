"""The audit log: one JSON line per action, written by a thread of its own (never on the event loop).

Fields: ``time`` (UTC, ISO 8601), ``key_id`` (never the key), ``action``, ``kernel``, ``code_sha256`` and
``code_bytes`` (of code submitted, never the code), ``duration_ms``, ``outcome`` (how it ended), ``status`` (HTTP).
"""

from __future__ import annotations

import hashlib
import json
import queue
import sys
import threading
import time
from datetime import UTC, datetime
from typing import IO, Any


def code_fields(code: str) -> dict[str, Any]:
    """What the audit log keeps of submitted code: its SHA-256 and its size in bytes."""
    data = code.encode(errors="surrogatepass")
    return {"code_sha256": hashlib.sha256(data).hexdigest(), "code_bytes": len(data)}


class AuditLog:
    """Appends records to a file, or writes them to stderr (``-``), or drops them (``off``)."""

    BATCH_SECONDS = 0.05

    def __init__(self, target: str) -> None:
        self.target = target
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._stream: IO[str] | None = None
        self._thread: threading.Thread | None = None
        if target == "off":
            return
        # Opened here, at start-up: a path that cannot be written stops the gateway with a clear error.
        self._stream = sys.stderr if target == "-" else open(target, "a", encoding="utf-8")  # noqa: SIM115
        self._thread = threading.Thread(target=self._write, name="audit-log", daemon=True)
        self._thread.start()

    def record(self, **fields: Any) -> None:
        """Queue one record (returns at once)."""
        if self._thread is None:
            return
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._lines.put(json.dumps({"time": stamp, **fields}, separators=(",", ":"), default=str))

    def _write(self) -> None:
        """Write in batches: wake on the first queued line, gather what arrives within ``BATCH_SECONDS``, write
        and flush once. A busy gateway then pays one wake-up and one write per batch, not per request."""
        assert self._stream is not None
        while True:
            lines = [self._lines.get()]
            if lines[0] is not None:
                time.sleep(self.BATCH_SECONDS)
            while not self._lines.empty():
                lines.append(self._lines.get_nowait())
            done = None in lines
            text = "".join(line + "\n" for line in lines if line is not None)
            if text:
                self._stream.write(text)
                self._stream.flush()
            if done:
                return

    def close(self) -> None:
        """Write what is queued, then stop."""
        if self._thread is None:
            return
        self._lines.put(None)
        self._thread.join(timeout=5)
        self._thread = None
        if self._stream is not None and self._stream is not sys.stderr:
            self._stream.close()
