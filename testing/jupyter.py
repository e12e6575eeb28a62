"""Test helpers for Jupyter's protocol: a kernel websocket client, and `jupyter server --gateway-url` in a process."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

V1 = "v1.kernel.websocket.jupyter.org"


def ws_url(http_url: str) -> str:
    return "ws" + http_url.removeprefix("http")


@dataclass
class Execution:
    """What one execute_request produced: IOPub messages (type, content) and the execute_reply's content."""

    iopub: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reply: dict[str, Any] = field(default_factory=dict)

    @property
    def stdout(self) -> str:
        return "".join(c["text"] for t, c in self.iopub if t == "stream" and c["name"] == "stdout")

    @property
    def error(self) -> str | None:
        return next((c["ename"] for t, c in self.iopub if t == "error"), None)


class KernelWebsocket:
    """A Jupyter client over ``/api/kernels/{id}/channels`` (legacy JSON framing, or v1 when asked for).

    Every frame received is kept in ``frames`` (tests look for things that must never appear).
    """

    def __init__(self, url: str, *, v1: bool = False, headers: dict[str, str] | None = None) -> None:
        self.session = uuid.uuid4().hex
        self._connecting = connect(
            url, subprotocols=[V1] if v1 else None, additional_headers=headers, open_timeout=60, max_size=2**26
        )
        self.ws: ClientConnection = self._connecting.__enter__()
        self.v1 = self.ws.subprotocol == V1
        self.frames: list[str | bytes] = []

    def close(self) -> None:
        self._connecting.__exit__(None, None, None)

    def __enter__(self) -> KernelWebsocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, channel: str, msg_type: str, content: dict[str, Any]) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "msg_type": msg_type, "username": "test", "session": self.session,
                  "date": "2026-01-01T00:00:00.000000Z", "version": "5.3"}  # fmt: skip
        if self.v1:
            parts = [json.dumps(p).encode() for p in (header, {}, {}, content)]
            self.ws.send(_v1_frame(channel, parts))
        else:
            msg = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": channel}
            self.ws.send(json.dumps(msg))
        return msg_id

    def receive(self, timeout: float = 60) -> tuple[str, dict[str, Any]]:
        frame = self.ws.recv(timeout=timeout)
        self.frames.append(frame)
        if self.v1:
            channel, parts = _v1_parts(frame)
            header, parent, metadata, content = (json.loads(p) for p in parts[:4])
            return channel, {"header": header, "msg_type": header["msg_type"], "parent_header": parent,
                             "metadata": metadata, "content": content}  # fmt: skip
        msg = json.loads(frame)
        return msg["channel"], msg

    def until(self, predicate: Any, timeout: float = 120) -> tuple[str, dict[str, Any]]:
        """Receive until a message matches ``predicate(channel, msg)``; return it."""
        deadline = time.monotonic() + timeout
        while True:
            channel, msg = self.receive(max(0.1, deadline - time.monotonic()))
            if predicate(channel, msg):
                return channel, msg

    def execute(self, code: str, *, allow_stdin: bool = False, timeout: float = 120) -> Execution:
        """Run ``code``; return once both its reply and its ``idle`` status arrived."""
        msg_id = self.send("shell", "execute_request", {"code": code, "silent": False, "store_history": True,
                                                        "user_expressions": {}, "allow_stdin": allow_stdin,
                                                        "stop_on_error": True})  # fmt: skip
        return self.collect(msg_id, timeout)

    def collect(self, msg_id: str, timeout: float = 120) -> Execution:
        execution = Execution()
        idle = False
        deadline = time.monotonic() + timeout
        while not (idle and execution.reply):
            channel, msg = self.receive(max(0.1, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if channel == "shell":
                execution.reply = msg["content"]
            elif channel == "iopub":
                execution.iopub.append((msg["msg_type"], msg["content"]))
                idle = msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle"
        return execution

    def wait_ready(self, timeout: float = 120) -> None:
        """Send kernel_info requests until one is answered (e.g. after a restart). A request sent before the new
        kernel listened may be lost, so one is sent every 2 s; an answer to any of them counts (a loaded machine
        may take longer than 2 s to answer)."""
        deadline = time.monotonic() + timeout
        sent: set[str] = set()
        while time.monotonic() < deadline:
            sent.add(self.send("shell", "kernel_info_request", {}))
            try:
                self.until(lambda ch, m: ch == "shell" and m["parent_header"].get("msg_id") in sent, 2)
                return
            except TimeoutError:
                continue
        raise TimeoutError("kernel did not answer kernel_info")


def _v1_frame(channel: str, parts: list[bytes]) -> bytes:
    pieces = [channel.encode(), *parts]
    offsets = [8 * (len(pieces) + 2)]
    for piece in pieces:
        offsets.append(offsets[-1] + len(piece))
    return len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets) + b"".join(pieces)


def _v1_parts(frame: bytes) -> tuple[str, list[bytes]]:
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    channel = frame[offsets[0] : offsets[1]].decode()
    return channel, [frame[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]


class JupyterServer:
    """``jupyter server --gateway-url=<gateway>`` (jupyter_server from PyPI, unmodified) on a free loopback port.

    It gets its own config, data and runtime directories and root dir, so nothing of the user's Jupyter set-up is
    read or written, and several run side by side.
    """

    def __init__(self, gateway_url: str, extra_env: dict[str, str] | None = None) -> None:
        self.gateway_url = gateway_url
        self.port: int | None = None
        self.token = secrets.token_hex(16)
        self.home = Path(tempfile.mkdtemp(prefix="jc-jupyter-"))
        self.extra_env = extra_env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.home / "server.log"

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has not been started: its port is not known yet")
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def start(self, timeout: float = 120) -> JupyterServer:
        """Start the server on a port the kernel picks (``--port=0``); return once ``/api/status`` answers. The port
        is read from the server's runtime file (``jpserver-<pid>.json``)."""
        for sub in ("config", "data", "runtime", "root"):
            (self.home / sub).mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "KERNEL_"))}
        env.update(
            HOME=str(self.home),
            JUPYTER_CONFIG_DIR=str(self.home / "config"),
            JUPYTER_DATA_DIR=str(self.home / "data"),
            JUPYTER_RUNTIME_DIR=str(self.home / "runtime"),
            JUPYTER_PLATFORM_DIRS="1",
            **self.extra_env,
        )
        command = [
            sys.executable, "-m", "jupyter_server",
            f"--gateway-url={self.gateway_url}",
            "--GatewayClient.request_timeout=180",
            "--GatewayClient.connect_timeout=60",
            "--ip=127.0.0.1", "--port=0", "--ServerApp.port_retries=0",
            "--no-browser", f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.home / 'root'}",
        ]  # fmt: skip
        if os.geteuid() == 0:  # CI and this machine run tests as root
            command.append("--allow-root")
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open by the process)
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.home)
        runtime_file = self.home / "runtime" / f"jpserver-{self.process.pid}.json"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter server exited with {self.process.returncode}:\n{self.log()}")
            if self.port is None and runtime_file.exists():
                with contextlib.suppress(ValueError, KeyError):  # written, perhaps not completely yet
                    self.port = int(json.loads(runtime_file.read_text())["port"])
            if self.port is not None:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/api/status", headers=self.headers, timeout=5).status_code == 200:
                        return self
            time.sleep(0.2)
        raise RuntimeError(f"jupyter server did not answer within {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""
