"""CurveZMQ for kernel connections whose connection info says so (kernels relayed by a node agent).

The agents backend puts the agent's public key and the gateway's own keypair into the connection info
(``curve_server_key``, ``curve_client_public``, ``curve_client_secret``, Z85 text); a connection without them is a
plain one (the local backend's ``ipc://`` sockets). Curve sockets also get bounded sends, keepalive and ZMTP
heartbeats (``gateway.agent.client.curve_socket``).
"""

from __future__ import annotations

from typing import Any, TypeVar

import zmq

from gateway.agent.client import CurveKeys, curve_socket
from gateway.agent.keys import Keypair
from gateway.kernels.ports import ConnectionInfo

#: Longest a send to a relayed kernel may wait (no queue to an agent that is gone): then it fails. jupyter_client
#: sends synchronously, so this also bounds how long such a send holds the event loop.
SEND_TIMEOUT_MS = 1000


def curve_keys(info: ConnectionInfo) -> CurveKeys | None:
    """The Curve keys in ``info``, or None for a plain connection."""
    server = info.get("curve_server_key")
    public, secret = info.get("curve_client_public"), info.get("curve_client_secret")
    if not (server and public and secret):
        return None
    return CurveKeys(server.encode(), Keypair(public.encode(), secret.encode()))


S = TypeVar("S", bound=zmq.Socket[Any])


def kernel_socket(context: zmq.Context[S], kind: int, info: ConnectionInfo) -> S:
    """A socket for one of a kernel's channels: a Curve client with a bounded send when ``info`` has Curve keys,
    a plain socket otherwise."""
    keys = curve_keys(info)
    if keys is None:
        return context.socket(kind)
    sock: S = curve_socket(context, kind, keys)  # type: ignore[assignment]
    sock.sndtimeo = SEND_TIMEOUT_MS
    return sock
