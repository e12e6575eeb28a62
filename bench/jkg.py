"""Jupyter Kernel Gateway (from PyPI, in bench/.venv) doing the same work over its REST + websocket API.

Kernels are local ipykernel processes (its default), so this baseline pays no container at all.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import websocket

from bench.procs import free_port, rss_mb


class JkgServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="jcb-jkg-"))
        executable = Path(sys.executable).with_name("jupyter-kernelgateway")
        if not executable.exists():
            raise RuntimeError(f"{executable} not found: run the benchmark with `make bench` (it installs JKG)")
        env = {
            **os.environ,
            "JUPYTER_RUNTIME_DIR": str(self.dir / "runtime"),
            "JUPYTER_DATA_DIR": str(self.dir / "data"),
            "JUPYTER_CONFIG_DIR": str(self.dir / "config"),
            "IPYTHONDIR": str(self.dir / "ipython"),
        }
        self.log = open(self.dir / "jkg.log", "wb")
        self.process = subprocess.Popen(
            [str(executable), "--KernelGatewayApp.ip=127.0.0.1", f"--KernelGatewayApp.port={self.port}"],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.http = httpx.Client(base_url=self.url, timeout=60)
        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JKG exited: {(self.dir / 'jkg.log').read_text()[-2000:]}")
            try:
                if self.http.get("/api").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("JKG did not answer")

    def start_kernel(self) -> tuple[JkgKernel, float]:
        """POST /api/kernels, open its channels websocket, run ``1+1``: seconds until the result arrived."""
        start = time.perf_counter()
        response = self.http.post("/api/kernels", json={"name": "python3"})
        response.raise_for_status()
        kernel = JkgKernel(self, response.json()["id"])
        kernel.execute("1+1", until="execute_result")
        return kernel, time.perf_counter() - start

    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    def close(self) -> None:
        self.http.close()
        if self.process.poll() is None:  # it shuts its kernels down on SIGTERM
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class JkgKernel:
    def __init__(self, server: JkgServer, kernel_id: str) -> None:
        self.server = server
        self.id = kernel_id
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels", timeout=60
        )

    def _message(self, code: str) -> tuple[str, str]:
        msg_id = uuid.uuid4().hex
        message: dict[str, Any] = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "session": self.session,
                "username": "bench",
                "version": "5.3",
                "date": "",
            },
            "parent_header": {},
            "metadata": {},
            "content": {"code": code, "silent": False, "store_history": True, "allow_stdin": False},
            "channel": "shell",
            "buffers": [],
        }
        return msg_id, json.dumps(message)

    def execute(self, code: str, until: str = "done") -> None:
        """Send an execute_request; return at ``execute_result`` (until='execute_result') or once both the
        reply and the idle status arrived (until='done', what JupyCell's POST /cell run waits for too)."""
        msg_id, text = self._message(code)
        self.ws.send(text)
        replied = idle = False
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            msg_type = msg["msg_type"] if "msg_type" in msg else msg["header"]["msg_type"]
            if msg_type == until:
                return
            if msg_type == "execute_reply":
                replied = True
            elif msg_type == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
            if replied and idle:
                return

    def shutdown(self) -> None:
        self.ws.close()
        self.server.http.delete(f"/api/kernels/{self.id}")
