"""Room for many ZMQ sockets (``gateway.protocol.socket_budget``): a node agent holds the relays of its whole
``max_kernels`` (libzmq's default of 1023 sockets per context ran out near 50 kernels: 'Too many open files')."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from gateway.agent.keys import Keypair
from gateway.agent.relay import Relays
from gateway.agent.server import relay_context
from gateway.protocol.socket_budget import DEFAULT_MAX_SOCKETS, allow_sockets

KERNELS = 64  # the agent's default max_kernels


@pytest.fixture
def low_soft_limit() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def relays_in(context: zmq.Context) -> Relays:  # type: ignore[type-arg]
    public, secret = zmq.curve_keypair()
    return Relays(
        context, Keypair(public, secret), bind_host="127.0.0.1", port_range=(20000, 40000), max_message_bytes=2**20
    )


def open_kernels(relays: Relays, tmp_path: Path, count: int) -> None:
    for kernel_id in range(1, count + 1):
        relays.open(kernel_id, str(tmp_path / f"k{kernel_id}"))


def test_the_limit_is_raised_for_the_sockets_asked_for_and_never_lowered(low_soft_limit: int) -> None:
    context = zmq.Context()
    try:
        assert allow_sockets(context, 5000) == 5000
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(low_soft_limit, 5000 * 3 + 256)
        assert allow_sockets(context, 10) == DEFAULT_MAX_SOCKETS  # libzmq's default at least
    finally:
        context.term()


def test_an_agent_s_context_holds_the_relays_of_its_maximum_of_kernels(tmp_path: Path, low_soft_limit: int) -> None:
    context = relay_context(KERNELS)
    relays = relays_in(context)
    try:
        open_kernels(relays, tmp_path, KERNELS)
        assert len(relays.ports()) == KERNELS
    finally:
        relays.stop()
        context.term()


def test_libzmq_s_default_does_not(tmp_path: Path) -> None:
    """What the test above guards against: the same relays in a context left as libzmq makes it."""
    context = zmq.Context()
    relays = relays_in(context)
    try:
        with pytest.raises(zmq.ZMQError, match="Too many open files"):
            open_kernels(relays, tmp_path, KERNELS)
    finally:
        relays.stop()
        context.term()
