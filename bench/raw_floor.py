"""The raw floor: what a container kernel costs with no gateway at all.

``docker run`` of the sandbox image with exactly the gateway's hardened flags (``SandboxSpec.run_kwargs``), ipykernel
on ipc:// sockets in a bind-mounted directory, and jupyter_client's ``BlockingKernelClient`` talking to it directly.
Ready means what it means in the gateway: a ``kernel_info`` reply on shell and its ``idle`` status on IOPub.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path
from queue import Empty
from typing import Any

import docker
from jupyter_client.blocking import BlockingKernelClient

from gateway.adapters.docker.sandbox import LABEL_INSTANCE, LABEL_MANAGED, SandboxSpec
from gateway.adapters.docker.sockets import CONTAINER_SOCKET_DIR, host_view, new_connection_info, prepare_socket_dir
from gateway.settings import Settings


class RawKernel:
    def __init__(self, container: Any, client: BlockingKernelClient, socket_dir: Path) -> None:
        self.container = container
        self.client = client
        self.socket_dir = socket_dir

    def _until_idle(self, msg_id: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.client.get_iopub_msg(timeout=max(0.0, deadline - time.monotonic()))
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                return

    def _reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            msg = self.client.get_shell_msg(timeout=max(0.0, deadline - time.monotonic()))
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg_id = self.client.kernel_info()
            try:
                self._reply(msg_id, 0.5)
                self._until_idle(msg_id, 0.5)
                return
            except Empty:
                continue
        raise TimeoutError("raw kernel did not answer")

    def execute(self, code: str, timeout: float = 30) -> dict[str, Any]:
        """Run ``code``: wait for its idle status and its reply, as the gateway does."""
        msg_id = self.client.execute(code, store_history=True, allow_stdin=False)
        self._until_idle(msg_id, timeout)
        return self._reply(msg_id, timeout)


class RawFloor:
    """Starts raw kernel containers labelled as a throwaway JupyCell instance, and removes them all at the end."""

    def __init__(self, image: str) -> None:
        self.instance = f"bench-raw-{secrets.token_hex(4)}"
        self.settings = Settings(sandbox_image=image, kernels_dir=Path("/tmp"))
        self.spec = SandboxSpec.from_settings(self.settings)
        self.docker = docker.from_env()
        self.root = Path(tempfile.mkdtemp(prefix="jcb-"))
        self.kernels: list[RawKernel] = []

    def start(
        self, environment: dict[str, str] | None = None, command: list[str] | None = None, stdin: bool = False
    ) -> tuple[RawKernel, float]:
        """One kernel; returns it and the seconds from ``containers.run`` to ready. ``environment`` is added to the
        container's, ``command`` is passed to the image's entrypoint (see ``bench.kernel_floor``); ``stdin`` also
        connects the stdin channel (``input()``)."""
        socket_dir = self.root / secrets.token_hex(4)
        info = new_connection_info()
        prepare_socket_dir(socket_dir, info, self.settings.kernel_uid)
        kwargs = self.spec.run_kwargs()
        kwargs.update(
            name=f"jupycell-{self.instance}-{socket_dir.name}",
            labels={LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance},
            volumes={str(socket_dir): {"bind": CONTAINER_SOCKET_DIR, "mode": "rw"}},
            detach=True,
        )
        kwargs["environment"] = {**kwargs.get("environment", {}), **(environment or {})}
        if command:
            kwargs["command"] = command
        start = time.perf_counter()
        container = self.docker.containers.run(**kwargs)
        client = BlockingKernelClient()
        client.load_connection_info(host_view(info, socket_dir))
        client.start_channels(shell=True, iopub=True, stdin=stdin, hb=False, control=True)
        kernel = RawKernel(container, client, socket_dir)
        self.kernels.append(kernel)
        kernel.wait_ready()
        return kernel, time.perf_counter() - start

    def stop(self, kernel: RawKernel) -> None:
        kernel.client.stop_channels()
        try:
            kernel.container.remove(force=True)
        except docker.errors.NotFound:
            pass
        shutil.rmtree(kernel.socket_dir, ignore_errors=True)
        self.kernels.remove(kernel)

    def close(self) -> None:
        for kernel in list(self.kernels):
            self.stop(kernel)
        for leftover in self.docker.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={self.instance}"}):
            leftover.remove(force=True)
        shutil.rmtree(self.root, ignore_errors=True)
        self.docker.close()
