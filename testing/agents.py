"""Node agents for tests and benchmarks: keys, an agent process on the local engine, a Curve kernel client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import zmq

from gateway.agent.client import (
    AgentClient,
    CurveBlockingKernelClient,
    CurveKeys,
    kernel_client,
    relay_connection_info,
)
from gateway.agent.keys import create_keys, load_keypair, load_public_key
from gateway.errors import SandboxUnavailable
from testing.harness import ROOT, free_port, unique_instance

T = TypeVar("T")

#: What an agent is never given (it refuses to start with API keys or a database), nor a gateway's backend choice.
_NOT_FOR_AGENTS = ("JUPYCELL_API_KEYS", "JUPYCELL_DATABASE", "JUPYCELL_BACKEND", "JUPYCELL_AGENTS", "JUPYCELL_TEST_")


class AgentKeys:
    """An agent keypair, an allowed gateway keypair, and an intruder's keypair (not allowed)."""

    def __init__(self, directory: Path) -> None:
        paths = create_keys(directory)
        self.agent_secret_file = paths["agent_secret"]
        self.agent_public_file = paths["agent_public"]
        self.gateway_secret_file = paths["gateway_secret"]
        self.gateway_public_file = paths["gateway_public"]
        self.gateway = CurveKeys(load_public_key(paths["agent_public"]), load_keypair(paths["gateway_secret"]))
        intruder_public, intruder_secret = zmq.curve_keypair()
        self.intruder = CurveKeys(
            self.gateway.server_public, type(self.gateway.client)(intruder_public, intruder_secret)
        )


class AgentProcess:
    """``python -m gateway.agent`` on the local engine, bound to ``host`` (127.0.0.1; ``start(host=...)`` moves it,
    e.g. to 127.0.0.2, as a Swarm task replaced at a new IP) on free ports (or the (control, events) ``ports``
    given: on a Swarm every agent has the same).

    ``instance`` and ``kernels_dir`` default to a fresh instance and ``root/k`` (a gateway's own agent gets the
    gateway's, so its containers carry the gateway's instance label); ``env`` adds ``JUPYCELL_*`` variables as they
    are (the gateway's kernel settings), ``settings`` as ``JUPYCELL_<NAME>``."""

    def __init__(
        self,
        root: Path,
        keys: AgentKeys,
        *,
        instance: str | None = None,
        kernels_dir: Path | None = None,
        env: dict[str, str] | None = None,
        ports: tuple[int, int] | None = None,
        **settings: Any,
    ) -> None:
        self.instance = instance or unique_instance("agent")
        self.host = "127.0.0.1"
        self.keys = keys
        self.control_port, self.events_port = ports or (free_port(), free_port())
        self.log_path = root / f"agent-{self.instance}.log"
        self.kernels_dir = kernels_dir or root / "k"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(_NOT_FOR_AGENTS)},
            **{k: v for k, v in (env or {}).items() if not k.startswith(_NOT_FOR_AGENTS)},
            "PYTHONPATH": str(ROOT),
            "JUPYCELL_INSTANCE": self.instance,
            "JUPYCELL_KERNELS_DIR": str(self.kernels_dir),
            "JUPYCELL_AGENT_STATE_DIR": str(root / f"state-{self.instance}"),
            "JUPYCELL_AGENT_BIND_HOST": "127.0.0.1",
            "JUPYCELL_AGENT_CONTROL_PORT": str(self.control_port),
            "JUPYCELL_AGENT_EVENTS_PORT": str(self.events_port),
            "JUPYCELL_AGENT_CURVE_SECRET_FILE": str(keys.agent_secret_file),
            "JUPYCELL_AGENT_ALLOWED_CLIENTS": str(keys.gateway_public_file),
            "JUPYCELL_AGENT_HEARTBEAT_INTERVAL": "0.5",
            **{f"JUPYCELL_{k.upper()}": str(v) for k, v in settings.items()},
        }
        # Packages on demand (issue 13): the node's wheel cache (a gateway's own agent gets the gateway's directory).
        self.env.setdefault("JUPYCELL_PACKAGES_DIR", str(root / f"packages-{self.instance}"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """Its control address, as ``JUPYCELL_AGENTS`` takes it."""
        return f"{self.host}:{self.control_port}"

    def start(self, timeout: float = 60, host: str | None = None) -> AgentProcess:
        """Start it (listening on ``host`` from now on, if given); return once it answers."""
        if host is not None:
            self.host = self.env["JUPYCELL_AGENT_BIND_HOST"] = host
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.agent"], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"agent exited with {self.process.returncode}:\n{self.log()}")
            try:
                run(lambda c: c.ping(timeout=1), self)
                return self
            except SandboxUnavailable:
                pass
        raise RuntimeError(f"agent did not answer within {timeout} s:\n{self.log()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no clean-up of any kind."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""


def run(action: Callable[[AgentClient], Awaitable[T]], agent: AgentProcess, keys: CurveKeys | None = None) -> T:
    """Run ``action`` with a fresh control client of ``agent`` (the gateway's keys unless others are given)."""

    async def main() -> T:
        client = AgentClient(agent.host, agent.control_port, keys or agent.keys.gateway, timeout=10)
        try:
            return await action(client)
        finally:
            client.close()

    return asyncio.run(main())


def relayed_kernel(agent: AgentProcess, key: str, ports: dict[str, int], keys: CurveKeys | None = None) -> Any:
    """A started blocking Curve client of a relayed kernel (no hb channel), sends bounded to 1 s."""
    info = relay_connection_info(agent.host, ports, key)
    client = kernel_client(CurveBlockingKernelClient, info, keys or agent.keys.gateway)
    client.send_timeout_ms = 1000
    client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
    return client


def wait_ready(client: Any, timeout: float) -> bool:
    """A ``kernel_info`` reply on shell and its ``idle`` on IOPub (the gateway's readiness rule) in time."""
    deadline = time.monotonic() + timeout
    asked: set[str] = set()
    while time.monotonic() < deadline:
        try:
            asked.add(client.kernel_info())
        except zmq.Again:  # not connected (e.g. refused): the bounded send gave up
            continue
        try:
            while True:
                reply = client.get_shell_msg(timeout=0.25)
                if reply["parent_header"].get("msg_id") in asked:
                    break
            while True:
                msg = client.get_iopub_msg(timeout=0.25)
                if (
                    msg["parent_header"].get("msg_id") in asked
                    and msg["msg_type"] == "status"
                    and msg["content"].get("execution_state") == "idle"
                ):
                    return True
        except Exception:  # queue.Empty: ask again
            continue
    return False


def evaluate(client: Any, code: str, timeout: float = 30) -> str:
    """The ``text/plain`` result of running ``code`` (its last expression)."""
    results: list[str] = []

    def hook(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "execute_result":
            results.append(msg["content"]["data"]["text/plain"])
        elif msg["msg_type"] == "error":
            results.append(f"{msg['content']['ename']}: {msg['content']['evalue']}")

    client.execute_interactive(code, timeout=timeout, output_hook=hook)
    return "".join(results)
