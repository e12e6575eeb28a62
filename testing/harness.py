"""A real gateway process for tests and benchmarks, a small HTTP client for the seed API, and helpers around them.

``GatewayProcess`` runs ``uvicorn --factory gateway.main:create_app`` in a subprocess, configured by ``JUPYCELL_*``
variables, on a port the kernel picks (no bind-release-reuse race). Use it as a context manager: leaving the block
stops the process and removes every container labelled with its instance.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import docker
import httpx
from sqlalchemy import make_url

if TYPE_CHECKING:
    from testing.agents import AgentKeys, AgentProcess

#: The checkout whose gateway is run (``bench/store_overhead.py`` points it at another one).
ROOT = Path(__file__).resolve().parent.parent

T = TypeVar("T")
AuditRecord = dict[str, Any]

#: The gateway's command line as the image runs it (Dockerfile CMD), without host and port.
GATEWAY_COMMAND = [
    "-m", "uvicorn", "--factory", "gateway.main:create_app", "--ws", "gateway.api.websocket_protocol:WebSocketProtocol",
    "--no-access-log",
]  # fmt: skip


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 120, interval: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; return that. A deadline for slow machines, not a timing
    assertion: ``timeout`` should be generous (minutes under load), and the failure names ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        if value := check():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout} s")
        time.sleep(interval)


def free_port() -> int:
    """A loopback port free at the time of the call. Another process may take it before the caller binds it:
    only for servers that cannot bind port 0 and report the port they got (``GatewayProcess`` and
    ``JupyterServer`` do not use it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_instance(prefix: str = "t") -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{prefix}-{worker}-{uuid.uuid4().hex[:8]}"


def instance_containers(instance: str) -> list[dict[str, Any]]:
    """The instance's containers (running or not) as the engine lists them: ``Id``, ``Names``, ``Labels``, ``State``.

    One engine call, no per-container look-up that could race a removal."""
    client = docker.APIClient()
    try:
        return client.containers(all=True, filters={"label": f"jupycell.instance={instance}"})
    finally:
        client.close()


def remove_instance_containers(instance: str) -> int:
    """Safety net: remove every container labelled with this gateway instance (and stop its own agent, drop its
    database: see ``TEST_BACKEND``)."""
    release_agent(instance)
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


#: ``JUPYCELL_TEST_BACKEND=agents``: every gateway a test starts without a ``backend`` setting of its own runs its
#: kernels through a node agent of its own (a plain process on the local engine, with the gateway's instance name,
#: kernels directory and kernel settings, so its containers look like the local backend's) and keeps them in a
#: PostgreSQL database of its own (the agents backend needs one). ``local`` (default): the gateway's own engine.
TEST_BACKEND = os.environ.get("JUPYCELL_TEST_BACKEND", "local")


@dataclass
class _OwnAgent:
    agent: AgentProcess
    database_url: str
    resources: ExitStack


_own_agents: dict[str, _OwnAgent] = {}
_agent_keys: list[AgentKeys] = []


def agent_keys() -> AgentKeys:
    """The test session's Curve keys (agents' and gateways'), made once."""
    from testing.agents import AgentKeys

    if not _agent_keys:
        _agent_keys.append(AgentKeys(Path(tempfile.mkdtemp(prefix="jc-keys-"))))
    return _agent_keys[0]


def agents_backend_env(keys: AgentKeys, addresses: list[str], database_url: str) -> dict[str, str]:
    """A gateway's ``JUPYCELL_*`` variables for the agents backend."""
    return {
        "JUPYCELL_BACKEND": "agents",
        "JUPYCELL_AGENTS": ",".join(addresses),
        "JUPYCELL_DATABASE_URL": database_url,
        "JUPYCELL_GATEWAY_CURVE_SECRET_FILE": str(keys.gateway_secret_file),
        "JUPYCELL_AGENT_CURVE_PUBLIC_FILE": str(keys.agent_public_file),
    }


def _own_agent(gateway: GatewayProcess) -> dict[str, str]:
    """Start (once per instance) the gateway's own agent and database; the gateway's variables to use them."""
    own = _own_agents.get(gateway.instance)
    if own is None:
        from testing.agents import AgentProcess

        if not TEST_POSTGRES_URL and not gateway.settings.get("database_url"):
            raise RuntimeError(NO_POSTGRES + " (JUPYCELL_TEST_BACKEND=agents needs it)")

        resources = ExitStack()
        try:
            url = gateway.settings.get("database_url") or resources.enter_context(postgres_database())
            agent = AgentProcess(
                gateway.kernels_dir.parent, agent_keys(), instance=gateway.instance,
                kernels_dir=gateway.kernels_dir,
                env={**gateway.env, "JUPYCELL_AGENT_MAX_KERNELS": str(_one_node_cap(gateway))},
            )  # fmt: skip
            resources.callback(agent.stop)
            agent.start()
        except BaseException:
            resources.close()
            raise
        own = _own_agents[gateway.instance] = _OwnAgent(agent, str(url), resources)
    if not own.agent.alive():
        own.agent.start()
    env = agents_backend_env(agent_keys(), [own.agent.address], own.database_url)
    if "max_kernels_per_node" not in gateway.settings:
        env["JUPYCELL_MAX_KERNELS_PER_NODE"] = str(_one_node_cap(gateway))
    return env


def _one_node_cap(gateway: GatewayProcess) -> int:
    """The kernels one node may run when it is the gateway's only one: as on the local backend, the gateway's own
    ``max_kernels`` (pool containers on top) is the only limit a suite meets."""
    settings = gateway.settings
    return int(settings.get("max_kernels", 256)) + int(settings.get("pool_size", 0))


def own_agent(instance: str) -> AgentProcess | None:
    """The agent a gateway of ``instance`` runs its kernels through under ``TEST_BACKEND=agents``."""
    own = _own_agents.get(instance)
    return own.agent if own is not None else None


def release_agent(instance: str) -> None:
    """Stop the instance's own agent and drop its database (no-op without one)."""
    own = _own_agents.pop(instance, None)
    if own is not None:
        own.resources.close()


@atexit.register
def _release_all_agents() -> None:
    for instance in list(_own_agents):
        with contextlib.suppress(Exception):
            release_agent(instance)


def render_keys(keys: dict[str, str], admins: Collection[str] = ()) -> str:
    """The ``JUPYCELL_API_KEYS`` value for key ids mapped to secrets, ``admins`` naming the admin keys."""
    unknown = set(admins) - set(keys)
    if unknown:
        raise ValueError(f"admin key ids without a key: {sorted(unknown)}")
    return ",".join(f"{key_id}:{secret}" + (":admin" if key_id in admins else "") for key_id, secret in keys.items())


_LISTENING = re.compile(rb"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class GatewayProcess:
    """``uvicorn --factory gateway.main:create_app`` in a subprocess, configured by JUPYCELL_* variables.

    ``keys`` (key id → secret, the ids in ``admins`` as admin keys) become ``JUPYCELL_API_KEYS``; any other keyword
    is a setting (``mem_limit_mb=512`` → ``JUPYCELL_MEM_LIMIT_MB=512``). The audit log goes to ``audit_path`` (a file
    next to the kernels directory) unless ``audit_log`` says otherwise. Each gateway gets its own data directory
    (SQLite file) unless ``data_dir`` or ``database_url`` is given; ``again()`` makes a process of the same gateway
    (instance, kernels dir, data dir, database, keys) to start after this one stopped.
    """

    def __init__(
        self,
        kernels_dir: Path,
        *,
        keys: dict[str, str] | None = None,
        admins: Collection[str] = (),
        listen_port: int = 0,
        **settings: Any,
    ) -> None:
        self.listen_port = listen_port  # 0: the kernel picks one; a replica's own URL needs it known (issue 11)
        self.instance: str = settings.pop("instance", None) or unique_instance()
        self.keys = dict(keys or {})
        self.admins = frozenset(admins)
        # Warm pool off unless a test asks for one: a kernel's container is then exactly the one /start made,
        # named after its id, and no idle containers load the shared machine.
        settings.setdefault("pool_size", 0)
        # Tests and benchmarks share a loaded machine: 30 kernels starting at once there can take minutes, so a
        # kernel's first answer gets 240 s (the product default, 60 s, is for one gateway on a machine of its own).
        settings.setdefault("kernel_start_timeout", 240)
        settings.setdefault("data_dir", kernels_dir.parent / f"data-{self.instance}")
        settings.setdefault("audit_log", kernels_dir.parent / f"audit-{self.instance}.jsonl")
        # Packages on demand (issue 13): each gateway its own wheel cache unless a test shares one.
        settings.setdefault("packages_dir", kernels_dir.parent / f"packages-{self.instance}")
        self.kernels_dir = kernels_dir
        self.settings = settings
        self.data_dir = Path(settings["data_dir"])
        audit = str(settings["audit_log"])
        self.audit_path: Path | None = None if audit in ("-", "off") else Path(audit)
        self.log_path = kernels_dir.parent / f"gateway-{self.instance}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("JUPYCELL_DATABASE_URL", "JUPYCELL_DATA_DIR")},
            "JUPYCELL_INSTANCE": self.instance,
            "JUPYCELL_KERNELS_DIR": str(kernels_dir),
            **{f"JUPYCELL_{k.upper()}": str(v) for k, v in settings.items() if v is not None},
        }
        if self.keys:
            self.env["JUPYCELL_API_KEYS"] = render_keys(self.keys, self.admins)
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the gateway has not been started: its port is not known yet")
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GatewayProcess:
        if self.process is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            remove_instance_containers(self.instance)

    def start(self, timeout: float = 120) -> GatewayProcess:
        """Start the process; return once it answers ``/health``. uvicorn binds port 0 (the kernel picks a free
        one, so parallel workers never race for a port) and logs the port it got, which is read from the log."""
        self.kernels_dir.parent.mkdir(parents=True, exist_ok=True)
        if TEST_BACKEND == "agents" and "backend" not in self.settings:
            self.env.update(_own_agent(self))
        log = open(self.log_path, "ab")  # noqa: SIM115 (kept open by the process)
        offset = log.tell()
        self.process = subprocess.Popen(
            [sys.executable, *GATEWAY_COMMAND, "--host", "127.0.0.1", "--port", str(self.listen_port)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.port = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            if self.port is None:
                self.port = self._listening_port(offset)
            if self.port is not None:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                        return self
            time.sleep(0.1)
        log = self.log()
        self.stop()  # nothing left running: a caller whose start failed never reaches its clean-up
        raise RuntimeError(f"gateway did not answer within {timeout} s:\n{log}")

    def _listening_port(self, offset: int) -> int | None:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            found = _LISTENING.search(log.read())
        return int(found.group(1)) if found else None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Send ``sig`` and wait for the exit (SIGKILL after ``timeout``); the exit code, None if never started."""
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

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def again(self, **changes: Any) -> GatewayProcess:
        """A new process of the same gateway (instance, kernels dir, data dir, database, keys), not yet started."""
        settings = {**self.settings, **changes}
        return GatewayProcess(
            self.kernels_dir, instance=self.instance, keys=self.keys, admins=self.admins,
            listen_port=self.listen_port, **settings,
        )  # fmt: skip

    def log(self) -> str:
        """The last 5,000 characters of the process's output."""
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except FileNotFoundError:
            return ""

    def audit_records(
        self, until: Callable[[list[AuditRecord]], bool] | None = None, timeout: float = 60
    ) -> list[AuditRecord]:
        """The audit log's records; with ``until``, once ``until(records)`` holds (the log is written by a thread,
        a moment after the response), failing after ``timeout`` seconds with the records seen."""
        if self.audit_path is None:
            raise RuntimeError(f"gateway {self.instance} writes no audit file (audit_log={self.settings['audit_log']})")
        path = self.audit_path

        def read() -> list[AuditRecord]:
            try:
                text = path.read_text()
            except FileNotFoundError:
                return []
            # the writer may be mid-line: only complete lines count
            return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]

        if until is None:
            return read()
        records: list[AuditRecord] = []

        def satisfied() -> list[AuditRecord] | None:
            nonlocal records
            records = read()
            return records if until(records) else None

        try:
            return wait_for("the audit records", satisfied, timeout, interval=0.05)
        except AssertionError:
            raise AssertionError(
                f"the audit log never satisfied the condition in {timeout} s: {records[-20:]}"
            ) from None


class Api:
    """The seed API as plain method calls. Each returns the ``httpx.Response``."""

    def __init__(self, url: str, timeout: float = 300, key: str | None = None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url, timeout=timeout, headers=headers)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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


def sse_events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """(event, data) pairs of an event stream, as they arrive; comments (keep-alives) skipped."""
    kind, data = "message", list[str]()  # the event's type and its data lines so far
    for line in response.iter_lines():
        if not line:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif line.startswith("event:"):
            kind = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())


#: Cell code that prints ``holding``, then blocks until interrupted, then prints ``released`` (and ends ``ok``).
HOLD_UNTIL_INTERRUPTED = """import time
try:
    print("holding", flush=True)
    time.sleep(3600)
except KeyboardInterrupt:
    print("released")"""


class BackgroundRun:
    """A cell run streamed (``POST /cell/stream``) in a thread of its own.

    ``wait_for_output()`` returns once the cell has sent its first output: the run is then certainly executing
    (a test can make a cell print, then block until it interrupts it, instead of guessing with a sleep).
    ``result()`` is the run's ``done`` body.
    """

    def __init__(self, api: Api, kernel_id: int, cell_number: int) -> None:
        self._api, self._body = api, {"kernel_id": kernel_id, "cell_number": cell_number}
        self._first_output = threading.Event()
        self._result: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with self._api.http.stream("POST", "/cell/stream", json=self._body) as response:
                assert response.status_code == 200, response.read().decode(errors="replace")
                for kind, data in sse_events(response):
                    if kind == "output":
                        self._first_output.set()
                    elif kind == "done":
                        self._result = data
                    elif kind == "error":
                        raise AssertionError(f"the run failed: {data}")
        except BaseException as error:  # handed to the test by result()
            self._error = error
        finally:
            self._first_output.set()  # never leave a waiter hanging

    def wait_for_output(self, timeout: float = 120) -> None:
        if not self._first_output.wait(timeout):
            raise AssertionError(f"the cell sent no output within {timeout} s")
        if self._error is not None:
            raise self._error

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self, timeout: float = 300) -> dict[str, Any]:
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise AssertionError(f"the run did not end within {timeout} s (or its stream had no done event)")
        return self._result


def client_for(gateway: GatewayProcess, key_id: str | None = None, timeout: float = 300) -> Api:
    """A seed-API client of ``gateway`` authenticated with its key ``key_id`` (no key when None)."""
    return Api(gateway.url, timeout=timeout, key=gateway.keys[key_id] if key_id is not None else None)


def stdout_of(result: dict[str, Any]) -> str:
    return "".join(o["text"] for o in result["outputs"] if o.get("output_type") == "stream" and o["name"] == "stdout")
