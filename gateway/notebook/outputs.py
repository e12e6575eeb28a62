"""Turning a kernel's IOPub messages into nbformat-shaped outputs, capped to a size an LLM can take.

Output shapes follow nbformat v4: ``stream`` (``name``, ``text``), ``display_data`` / ``execute_result``
(``data`` mime bundle, ``metadata``), ``error`` (``ename``, ``evalue``, ``traceback``).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Callable
from typing import Any, TypedDict


class Output(TypedDict, total=False):
    """One nbformat v4 output; which keys it has depends on ``output_type``."""

    output_type: str  # "stream" | "display_data" | "execute_result" | "error"
    name: str  # stream: "stdout" | "stderr"
    text: str  # stream
    data: dict[str, Any]  # display_data, execute_result: the mime bundle
    metadata: dict[str, Any]
    execution_count: int | None  # execute_result
    ename: str  # error
    evalue: str
    traceback: list[str]


OutputCallback = Callable[[Output], None]

# CSI sequences (colours, cursor moves), OSC sequences (titles, links) and two-byte escapes.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")

OUTPUT_MESSAGE_TYPES = frozenset({"stream", "display_data", "execute_result", "error", "update_display_data"})


def output_from_message(msg_type: str, content: dict[str, Any]) -> Output | None:
    """The nbformat output for one IOPub message, or None if the message carries no output."""
    if msg_type == "stream":
        return {
            "output_type": "stream",
            "name": str(content.get("name", "stdout")),
            "text": str(content.get("text", "")),
        }
    if msg_type in ("display_data", "update_display_data"):
        return {
            "output_type": "display_data",
            "data": dict(content.get("data", {})),
            "metadata": dict(content.get("metadata", {})),
        }
    if msg_type == "execute_result":
        return {
            "output_type": "execute_result",
            "execution_count": content.get("execution_count"),
            "data": dict(content.get("data", {})),
            "metadata": dict(content.get("metadata", {})),
        }
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": str(content.get("ename", "")),
            "evalue": str(content.get("evalue", "")),
            "traceback": [str(line) for line in content.get("traceback", [])],
        }
    return None


def strip_ansi_text(text: str) -> str:
    return _ANSI.sub("", text)


def strip_ansi(outputs: list[Output]) -> list[Output]:
    """Copies of ``outputs`` with ANSI escape codes removed from tracebacks, error values and stream text."""
    cleaned = []
    for original in outputs:
        output = original.copy()
        if output.get("output_type") == "error":
            output["traceback"] = [strip_ansi_text(line) for line in output.get("traceback", [])]
            output["evalue"] = strip_ansi_text(output.get("evalue", ""))
        elif output.get("output_type") == "stream":
            output["text"] = strip_ansi_text(output.get("text", ""))
        cleaned.append(output)
    return cleaned


def cap_images(output: Output, max_image_bytes: int) -> Output:
    """``output`` with every ``image/*`` entry larger than ``max_image_bytes`` (as sent, base64) replaced by a
    ``text/plain`` marker saying what was dropped. Smaller images are kept as they are."""
    data = output.get("data")
    if not isinstance(data, dict):
        return output
    too_big = {
        mime: len(str(value).encode())
        for mime, value in data.items()
        if mime.startswith("image/") and len(str(value).encode()) > max_image_bytes
    }
    if not too_big:
        return output
    kept = {mime: value for mime, value in data.items() if mime not in too_big}
    notes = [
        f"[{mime} of {size} bytes dropped: over the {max_image_bytes}-byte image cap]" for mime, size in too_big.items()
    ]
    previous = kept.get("text/plain")
    kept["text/plain"] = "\n".join(([str(previous)] if previous else []) + notes)
    return {**output, "data": kept}


def output_size(output: Output) -> int:
    """Bytes an output takes when sent back: the measure the caps count in."""
    if output["output_type"] == "stream":
        return len(output["text"].encode())
    return len(json.dumps(output, separators=(",", ":")).encode())


def _is_stream(output: Output, name: str | None = None) -> bool:
    return output["output_type"] == "stream" and (name is None or output["name"] == name)


class OutputCollector:
    """Collects one run's outputs within caps on bytes and on count.

    Consecutive stream chunks of the same stream are merged. Past the caps, the middle of the output is dropped:
    the first half of each budget is kept from the start, the second half from the end, and a marker output
    (a ``stderr`` stream) says how much was dropped. Memory use stays within the caps whatever the kernel sends.

    Images larger than ``max_image_bytes`` are replaced by a marker (``cap_images``). ``on_output``, if given, is
    called with each output as it arrives while the head has room, then once with a notice that the rest is
    truncated: a live view for streaming clients, bounded like the stored one.
    """

    def __init__(
        self,
        max_bytes: int,
        max_outputs: int,
        *,
        max_image_bytes: int | None = None,
        on_output: OutputCallback | None = None,
    ) -> None:
        self._limits = (max_bytes, max_outputs)
        self._max_image_bytes = max_image_bytes
        self._on_output = on_output
        self.changes = 0  # counts add() and clear() calls: tells a reader whether anything is new
        self._reset()

    def _reset(self) -> None:
        max_bytes, max_outputs = self._limits
        self._head_bytes_budget = max_bytes // 2
        self._tail_bytes_budget = max_bytes - self._head_bytes_budget
        self._head_count_budget = max(1, max_outputs // 2)
        self._tail_count_budget = max(1, max_outputs - self._head_count_budget)
        self._head: list[Output] = []
        self._head_bytes = 0
        self._tail: deque[Output] = deque()
        self._tail_bytes = 0
        self._overflowed = False
        self.dropped_bytes = 0
        self.dropped_outputs = 0

    def clear(self) -> None:
        """What ``clear_output`` asks for: forget everything shown so far."""
        self.changes += 1
        self._reset()

    def add(self, output: Output) -> None:
        if self._max_image_bytes is not None:
            output = cap_images(output, self._max_image_bytes)
        self.changes += 1
        size = output_size(output)
        if not self._overflowed:
            if self._fits_head(output, size):
                self._append(self._head, output)
                self._head_bytes += size
                self._notify(output)
                return
            self._overflowed = True
            if _is_stream(output):
                output = self._split_stream_into_head(output)
                size = output_size(output)
            self._notify(
                {
                    "output_type": "stream",
                    "name": "stderr",
                    "text": "\n[... output over the caps: the middle is dropped, the end comes with the result ...]\n",
                }
            )
        self._append(self._tail, output)
        self._tail_bytes += size
        self._trim_tail()

    @property
    def truncated(self) -> bool:
        return bool(self.dropped_bytes or self.dropped_outputs)

    def outputs(self) -> list[Output]:
        """The kept outputs, with a truncation marker between head and tail when anything was dropped."""
        result = [o.copy() for o in self._head]
        if self.truncated:
            result.append(self.marker())
        for output in self._tail:
            if result and _is_stream(output) and _is_stream(result[-1], output["name"]) and not self.truncated:
                result[-1]["text"] += output["text"]
            else:
                result.append(output.copy())
        return result

    def marker(self) -> Output:
        parts = [f"{self.dropped_bytes} bytes"]
        if self.dropped_outputs:
            parts.append(f"{self.dropped_outputs} outputs")
        return {
            "output_type": "stream",
            "name": "stderr",
            "text": f"\n[... output truncated: {' and '.join(parts)} dropped from the middle ...]\n",
        }

    # --- internals ------------------------------------------------------------------------------------------

    def _notify(self, output: Output) -> None:
        if self._on_output is not None:
            self._on_output(output.copy())

    def _fits_head(self, output: Output, size: int) -> bool:
        if self._head_bytes + size > self._head_bytes_budget:
            return False
        mergeable = _is_stream(output) and self._head and _is_stream(self._head[-1], output["name"])
        return bool(mergeable) or len(self._head) < self._head_count_budget

    def _split_stream_into_head(self, output: Output) -> Output:
        """Put as much of a stream chunk as fits into the head; return the rest."""
        room = self._head_bytes_budget - self._head_bytes
        mergeable = self._head and _is_stream(self._head[-1], output["name"])
        if room <= 0 or not (mergeable or len(self._head) < self._head_count_budget):
            return output
        data = output["text"].encode()
        head_part = data[:room].decode(errors="ignore")
        self._append(self._head, {**output, "text": head_part})
        self._notify({**output, "text": head_part})
        used = len(head_part.encode())
        self._head_bytes += used
        return {**output, "text": data[used:].decode(errors="ignore")}

    @staticmethod
    def _append(target: list[Output] | deque[Output], output: Output) -> None:
        if _is_stream(output) and target and _is_stream(target[-1], output["name"]):
            target[-1] = {**target[-1], "text": target[-1]["text"] + output["text"]}
        else:
            target.append(output)

    def _trim_tail(self) -> None:
        while self._tail and (len(self._tail) > self._tail_count_budget or self._tail_bytes > self._tail_bytes_budget):
            first = self._tail[0]
            excess = self._tail_bytes - self._tail_bytes_budget
            if _is_stream(first) and 0 < excess < output_size(first) and len(self._tail) <= self._tail_count_budget:
                data = first["text"].encode()
                kept = data[excess:].decode(errors="ignore")
                self._tail[0] = {**first, "text": kept}
                cut = len(data) - len(kept.encode())
                self._tail_bytes -= cut
                self.dropped_bytes += cut
                return
            self._tail.popleft()
            size = output_size(first)
            self._tail_bytes -= size
            self.dropped_bytes += size
            self.dropped_outputs += 1
