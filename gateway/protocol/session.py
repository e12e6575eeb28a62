"""jupyter_client's ``Session`` for the gateway's own kernel connections, without parsing the headers' dates.

``Session.deserialize`` turns every ISO 8601 string of a message's header and parent header into a ``datetime``
(dateutil's parser, a regular expression per value): about 60% of its cost, paid on every message a kernel sends,
while the gateway's kernel client never reads a date. ``DatelessSession.deserialize`` does everything else exactly
as jupyter_client 8 does — the signature is required and checked in constant time, a replayed signature is refused
and remembered, at least five parts, the protocol adapter — and leaves the dates as the strings the kernel sent.
Messages relayed to Jupyter clients (``gateway.protocol.channels``) keep jupyter_client's own ``Session``.
"""

from __future__ import annotations

from hmac import compare_digest
from typing import Any

from jupyter_client.adapter import adapt
from jupyter_client.session import Session

_MIN_PARTS = 5  # signature, header, parent header, metadata, content


class DatelessSession(Session):
    def deserialize(self, msg_list: Any, content: bool = True, copy: bool = True) -> dict[str, Any]:
        """As ``Session.deserialize``, but ``header`` and ``parent_header`` keep their dates as strings."""
        if not copy or not content:  # frames as zmq.Message, or content left packed: jupyter_client's own way
            return super().deserialize(msg_list, content=content, copy=copy)
        if self.auth is not None:
            signature = msg_list[0]
            if not signature:
                raise ValueError("Unsigned Message")
            if signature in self.digest_history:
                raise ValueError(f"Duplicate Signature: {signature!r}")
            self._add_digest(signature)
            if not compare_digest(signature, self.sign(msg_list[1:5])):
                raise ValueError(f"Invalid Signature: {signature!r}")
        if not len(msg_list) >= _MIN_PARTS:
            raise TypeError(f"malformed message, must have at least {_MIN_PARTS} elements")
        header = self.unpack(msg_list[1])
        message = {
            "header": header,
            "msg_id": header["msg_id"],
            "msg_type": header["msg_type"],
            "parent_header": self.unpack(msg_list[2]),
            "metadata": self.unpack(msg_list[3]),
            "content": self.unpack(msg_list[4]),
            "buffers": [memoryview(b) for b in msg_list[5:]],
        }
        return adapt(message)
