"""KernelChannels against a fake kernel made of real ZMQ sockets: signing, verification, probing."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import zmq
import zmq.asyncio
from jupyter_client.session import Session

from gateway.protocol.channels import KernelChannels

KEY = "k" * 64
PORTS = {"shell_port": 1, "iopub_port": 2, "stdin_port": 3, "control_port": 4, "hb_port": 5}


class FakeKernel:
    """The kernel's side of the sockets (ROUTER for shell/control/stdin, PUB for IOPub), signing with ``KEY``."""

    def __init__(self, context: zmq.asyncio.Context, directory: Path) -> None:
        self.info = {**PORTS, "transport": "ipc", "ip": str(directory / "k"), "key": KEY,
                     "signature_scheme": "hmac-sha256"}  # fmt: skip
        self.session = Session(key=KEY.encode(), signature_scheme="hmac-sha256", check_pid=False)
        self.shell = context.socket(zmq.ROUTER)
        self.shell.bind(f"ipc://{directory}/k-1")
        self.iopub = context.socket(zmq.PUB)
        self.iopub.bind(f"ipc://{directory}/k-2")
        self.control = context.socket(zmq.ROUTER)
        self.control.bind(f"ipc://{directory}/k-4")

    async def receive(self, socket: zmq.asyncio.Socket) -> tuple[list[bytes], dict]:
        frames = await socket.recv_multipart()
        idents, signed = self.session.feed_identities(frames)
        return idents, self.session.deserialize(signed)  # raises on a bad signature

    def close(self) -> None:
        for socket in (self.shell, self.iopub, self.control):
            socket.close(linger=0)


def _run(test: Callable[[zmq.asyncio.Context, FakeKernel], Awaitable[None]]) -> None:
    async def main() -> None:
        context = zmq.asyncio.Context()
        with tempfile.TemporaryDirectory(prefix="jc-") as directory:
            kernel = FakeKernel(context, Path(directory))
            try:
                await asyncio.wait_for(test(context, kernel), 20)
            finally:
                kernel.close()
                context.destroy(linger=0)

    asyncio.run(main())


def _client_msg(msg_type: str, content: dict) -> dict:
    header = {"msg_id": f"client-{msg_type}", "msg_type": msg_type, "session": "client", "username": "u",
              "version": "5.3", "date": "2026-01-01T00:00:00.000000Z"}  # fmt: skip
    return {"header": header, "parent_header": {}, "metadata": {}, "content": content, "buffers": []}


async def _answer_probe(kernel: FakeKernel) -> None:
    """Answer one kernel_info probe: reply on shell and busy/idle on IOPub (repeated until the SUB has joined)."""
    idents, probe = await kernel.receive(kernel.shell)
    kernel.session.send(kernel.shell, "kernel_info_reply", {"status": "ok"}, parent=probe, ident=idents)
    for state in ("busy", "idle"):
        kernel.session.send(kernel.iopub, "status", {"execution_state": state}, parent=probe)


def test_client_messages_are_signed_with_the_kernels_key() -> None:
    async def test(context: zmq.asyncio.Context, kernel: FakeKernel) -> None:
        channels = KernelChannels(context, kernel.info, stdin=False, max_message_bytes=2**20)
        try:
            await channels.send("control", _client_msg("interrupt_request", {}))
            await channels.send("shell", {**_client_msg("comm_msg", {"data": {}}), "buffers": [b"raw"]})
            _, interrupt = await kernel.receive(kernel.control)
            assert interrupt["msg_type"] == "interrupt_request"
            assert interrupt["header"]["session"] == "client"  # the client's header, re-signed
            _, comm = await kernel.receive(kernel.shell)
            assert [bytes(b) for b in comm["buffers"]] == [b"raw"]
            assert "stdin" not in channels.sockets
        finally:
            channels.close()

    _run(test)


def test_only_messages_signed_with_the_key_get_through_and_probes_are_not_relayed() -> None:
    async def test(context: zmq.asyncio.Context, kernel: FakeKernel) -> None:
        channels = KernelChannels(context, kernel.info, stdin=False, max_message_bytes=2**20)
        try:
            # the probe loop resends until IOPub delivers: answer every probe until the channels are ready
            waiting = asyncio.create_task(channels.wait_iopub(10))
            while not waiting.done():
                answer = asyncio.create_task(_answer_probe(kernel))
                await asyncio.wait({waiting, answer}, return_when=asyncio.FIRST_COMPLETED)
                if not answer.done():
                    answer.cancel()
            assert waiting.result() is True

            forger = Session(key=b"not-the-key", signature_scheme="hmac-sha256", check_pid=False)
            forger.send(kernel.iopub, "stream", {"name": "stdout", "text": "forged"})
            unsigned = Session(key=b"", check_pid=False)
            unsigned.send(kernel.iopub, "stream", {"name": "stdout", "text": "unsigned"})
            kernel.iopub.send_multipart([b"garbage"])
            kernel.session.send(kernel.iopub, "stream", {"name": "stdout", "text": "genuine"})

            relayed = channels.messages()
            channel, msg = await anext(relayed)
            # late answers to the probes (reply, statuses) and the forged messages were all left out
            assert (channel, msg["msg_type"], msg["content"]["text"]) == ("iopub", "stream", "genuine")
        finally:
            channels.close()

    _run(test)
