"""``LeanSession``: jupyter_client's ``Session`` (same bytes on the wire, same HMAC signature), built with less Python.

Switches of ``JupyCellKernelApp``:

- ``lean_session``: each JSON part is packed by one ``json.JSONEncoder`` made once, with exactly the options
  ``jupyter_client.session.json_packer`` passes to ``json.dumps`` (which builds that same encoder on every call;
  its fallback, ``json_clean`` plus a warning, is still what a failing part gets); and the parent header, the same
  for every message of one request, is packed once per request (reused only for the same header object with the
  same items in the same order). Another packer (``Session.packer``) takes ``Session.serialize`` unchanged.
- ``fast_send``: a reply on the shell stream (a ``ZMQStream``) whose queue is empty is sent at once, from the main
  thread that runs that stream, through ``frames.send_frames``, instead of being queued for the stream's
  event-loop handler (which ipykernel's ``_publish_status_and_flush`` flushes right after the idle status
  anyway); so the reply leaves just before the idle status on IOPub rather than just after it (the protocol orders
  messages within a channel only; each channel's messages are unchanged). Like ``ZMQStream`` after each of its
  sends, it then has the stream read whatever is waiting on the socket (ZMQ's descriptor is edge-triggered: the
  send took those events in, and the event loop will not be woken for them).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import zmq
from jupyter_client.jsonutil import json_default
from jupyter_client.session import DELIM, Session, json_packer
from zmq.eventloop.zmqstream import ZMQStream, gen_log

from jupycell_kernel.frames import readable, send_frames


class LeanSession(Session):
    """``Session`` with the ``lean_session`` and ``fast_send`` switches (see the module docstring)."""

    def __init__(self, *, lean: bool = True, fast_send: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lean = lean
        self.fast_send = fast_send
        # json.dumps(obj, default=json_default, ensure_ascii=False, allow_nan=False) builds exactly this encoder.
        self._encoder = json.JSONEncoder(default=json_default, ensure_ascii=False, allow_nan=False)
        self._parent_packed: tuple[dict[str, Any], list[tuple[str, Any]], bytes] | None = None
        self._direct_streams: dict[ZMQStream, threading.Thread] = {}

    # --- packing ------------------------------------------------------------------------------------------

    def _pack_json(self, obj: Any) -> bytes:
        try:
            return self._encoder.encode(obj).encode("utf8", errors="surrogateescape")
        except (TypeError, ValueError):
            return json_packer(obj)  # its json_clean fallback and deprecation warning, unchanged

    def _pack_parent(self, parent: dict[str, Any]) -> bytes:
        cached = self._parent_packed
        items = list(parent.items())
        if cached is not None and cached[0] is parent and cached[1] == items:
            return cached[2]
        packed = self._pack_json(parent)
        self._parent_packed = (parent, items, packed)
        return packed

    def serialize(self, msg: dict[str, Any], ident: list[bytes] | bytes | None = None) -> list[bytes]:
        """``Session.serialize``, the same frames (see the module docstring)."""
        if not self.lean or self.pack is not json_packer:
            return super().serialize(msg, ident)
        content = msg.get("content", {})
        if content is None:
            content = self.none
        elif isinstance(content, dict):
            content = self._pack_json(content)
        elif isinstance(content, bytes):
            pass  # already packed, as in a relayed message
        elif isinstance(content, str):
            content = content.encode("utf8")
        else:
            raise TypeError(f"Content incorrect type: {type(content)}")
        parent = msg["parent_header"]
        real_message = [
            self._pack_json(msg["header"]),
            self._pack_parent(parent) if type(parent) is dict else self._pack_json(parent),
            self._pack_json(msg["metadata"]),
            content,
        ]
        to_send: list[bytes] = []
        if isinstance(ident, list):
            to_send.extend(ident)
        elif ident is not None:
            to_send.append(ident)
        to_send.append(DELIM)
        to_send.append(self.sign(real_message))
        to_send.extend(real_message)
        return to_send

    # --- sending ------------------------------------------------------------------------------------------

    def send_directly_on(self, stream: ZMQStream) -> None:
        """Let replies on ``stream`` skip its queue when it is empty; the calling thread is the one whose event
        loop runs ``stream`` (the only thread that ever sends on it)."""
        self._direct_streams[stream] = threading.current_thread()

    def send(self, stream: Any, msg_or_type: Any, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        if (
            self.fast_send
            and isinstance(stream, ZMQStream)
            and self._direct_streams.get(stream) is threading.current_thread()
            and not stream.sending()
        ):
            stream = _DirectStream(stream)
        return super().send(stream, msg_or_type, *args, **kwargs)


class _DirectStream:
    """A ``ZMQStream`` with nothing queued, sending at once as its send handler would: errors logged, not raised,
    then its send callback (if any) run."""

    def __init__(self, stream: ZMQStream) -> None:
        self.stream = stream

    def send_multipart(self, frames: list[Any], **kwargs: Any) -> None:
        socket = self.stream.socket
        if socket is None or socket.closed:
            self.stream.send_multipart(frames, **kwargs)  # ZMQStream's own complaint
            return
        status: Any = None
        try:
            send_frames(socket, frames, **kwargs)
        except zmq.ZMQError as error:  # as ZMQStream._handle_send
            gen_log.error("SEND Error: %s", error)
            status = error
        self._handle_waiting_requests(socket)
        if self.stream._send_callback:
            self.stream._run_callback(self.stream._send_callback, frames, status)

    def _handle_waiting_requests(self, socket: zmq.Socket[Any]) -> None:
        """After a send: have the stream read what is waiting, as ``ZMQStream`` does after each of its own sends.

        A ZMQ socket's file descriptor is edge-triggered: any operation on the socket, a send included, takes in
        the socket's pending events (a request that arrived meanwhile, a client newly connected), after which the
        descriptor no longer wakes the event loop for them. ``ZMQStream`` checks the socket's events after each
        send it makes and schedules its handler if something is readable; a send that bypasses the stream must
        do the same, else a request that arrived while a cell ran (a new client's ``kernel_info``, say) waits
        unread until some other client's message wakes the loop."""
        stream = self.stream
        if not socket.closed and stream.receiving() and readable(socket):
            stream.io_loop.add_callback(stream._handle_events, socket, 0)
