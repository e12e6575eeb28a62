"""Test helpers: a real gateway process on a free port, and a small HTTP client for the seed API."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import httpx
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_instance(prefix: str = "t") -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}-{worker}-{uuid.uuid4().hex[:8]}"


def remove_instance_containers(instance: str) -> int:
    """Safety net: remove every container labelled with this gateway instance."""
    client = docker.from_env()
    try:
        # sparse: no inspect per container, so one removed meanwhile (by its gateway) is no error
        containers = client.containers.list(all=True, sparse=True, filters={"label": f"jupycell.instance={instance}"})
        for container in containers:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
        return len(containers)
    finally:
        client.close()


#: Admin URL of a PostgreSQL server the tests may create databases in (scripts/ensure-postgres.sh prints one).
TEST_POSTGRES_URL = os.environ.get("JUPYCELL_TEST_POSTGRES_URL")
NO_POSTGRES = "no PostgreSQL for tests: set JUPYCELL_TEST_POSTGRES_URL (e.g. $(scripts/ensure-postgres.sh))"


def skip_without_postgres() -> None:
    """Skip the calling test when no test server is configured; fail instead where one is required (CI)."""
    import pytest

    if TEST_POSTGRES_URL:
        return
    if os.environ.get("JUPYCELL_REQUIRE_POSTGRES"):
        pytest.fail(NO_POSTGRES + " (JUPYCELL_REQUIRE_POSTGRES is set)")
    pytest.skip(NO_POSTGRES)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server; its URL. Dropped afterwards."""
    import psycopg

    admin = make_url(TEST_POSTGRES_URL or "")
    name = f"jc_{uuid.uuid4().hex[:16]}"

    def run(statement: str) -> None:
        with psycopg.connect(_libpq(admin), autocommit=True) as connection:
            connection.execute(statement)

    run(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _libpq(url: Any) -> str:
    """A libpq connection string for a SQLAlchemy URL (psycopg does not read ``postgresql+psycopg://``)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class GatewayProcess:
    """``uvicorn --factory gateway.main:create_app`` in a subprocess, configured by JUPYCELL_* variables.

    Each gateway gets its own data directory (SQLite file) next to its kernels directory unless ``data_dir`` or
    ``database_url`` is given; pass the same ``instance``, ``kernels_dir`` and ``data_dir`` to start the same
    gateway again (``again()`` does).
    """

    def __init__(self, kernels_dir: Path, **settings: Any) -> None:
        self.instance = settings.pop("instance", None) or unique_instance()
        # Warm pool off unless a test asks for one: a kernel's container is then exactly the one /start made,
        # named after its id, and no idle containers load the shared machine.
        settings.setdefault("pool_size", 0)
        self.kernels_dir = kernels_dir
        settings.setdefault("data_dir", kernels_dir.parent / f"data-{self.instance}")
        self.settings = settings
        self.data_dir = Path(settings["data_dir"])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = kernels_dir.parent / f"gateway-{self.instance}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("JUPYCELL_DATABASE_URL", "JUPYCELL_DATA_DIR")},
            "JUPYCELL_INSTANCE": self.instance,
            "JUPYCELL_KERNELS_DIR": str(kernels_dir),
            **{f"JUPYCELL_{k.upper()}": str(v) for k, v in settings.items() if v is not None},
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> GatewayProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "gateway.main:create_app",
                "--ws",
                "gateway.api.websocket_protocol:WebSocketProtocol",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"gateway did not answer within {timeout} s:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    @contextmanager
    def serving(self) -> Iterator[GatewayProcess]:
        """Start it; at the end stop it and remove every container of its instance."""
        self.start()
        try:
            yield self
        finally:
            self.stop()
            remove_instance_containers(self.instance)

    def again(self, **changes: Any) -> GatewayProcess:
        """A new process of the same gateway (instance, kernels dir, data dir, database), not yet started."""
        return GatewayProcess(self.kernels_dir, instance=self.instance, **{**self.settings, **changes})

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""


class Api:
    """The seed API as plain method calls. Each returns the ``httpx.Response``."""

    def __init__(self, url: str, timeout: float = 120, key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url, timeout=timeout, headers=headers)

    def close(self) -> None:
        self.http.close()

    def start(self) -> int:
        response = self.http.post("/start")
        assert response.status_code == 200, response.text
        return response.json()["kernel_id"]

    def cell(
        self, kernel_id: int, action: str, cell_number: int | None = None, code: str | None = None, **extra: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"kernel_id": kernel_id, "action": action, **extra}
        if cell_number is not None:
            body["cell_number"] = cell_number
        if code is not None:
            body["code"] = code
        return self.http.post("/cell", json=body)

    def add(self, kernel_id: int, cell_number: int, code: str) -> httpx.Response:
        return self.cell(kernel_id, "add", cell_number, code)

    def run(self, kernel_id: int, cell_number: int, **extra: Any) -> httpx.Response:
        return self.cell(kernel_id, "run", cell_number, **extra)

    def execute(self, kernel_id: int, code: str, **extra: Any) -> dict[str, Any]:
        """Add ``code`` as a new cell, run it, return the run's JSON."""
        cells = self.http.get(f"/kernels/{kernel_id}/cells").json()["cells"]
        number = max((c["number"] for c in cells), default=0) + 1
        assert self.add(kernel_id, number, code).status_code == 200
        response = self.run(kernel_id, number, **extra)
        assert response.status_code == 200, response.text
        return response.json()

    def shutdown(self, kernel_id: int) -> httpx.Response:
        return self.http.delete(f"/kernels/{kernel_id}")


def stdout_of(result: dict[str, Any]) -> str:
    return "".join(o["text"] for o in result["outputs"] if o.get("output_type") == "stream" and o["name"] == "stdout")
