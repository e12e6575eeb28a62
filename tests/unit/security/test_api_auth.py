"""The HTTP gate with a fake kernel manager (no Docker): keys, ownership, size and rate limits, CORS, audit."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient

from gateway.errors import KernelNotFound
from gateway.kernels.kernel import Kernel
from gateway.main import create_app
from gateway.sandbox.docker_sandbox import SandboxSpec
from gateway.settings import Settings

ALICE = "alice-secret-0123456789"
BOB = "bob-secret-0123456789xyz"
ROOT = "root-secret-0123456789ab"
KEYS = f"alice:{ALICE},bob:{BOB},root:{ROOT}:admin"


class FakeManager:
    def __init__(self) -> None:
        self.kernels = {
            7: Kernel(id=7, socket_dir=Path("/nonexistent/7"), owner="alice", state="idle"),
            8: Kernel(id=8, socket_dir=Path("/nonexistent/8"), owner="bob", state="idle"),
        }
        self.sandbox = SimpleNamespace(spec=SandboxSpec.from_settings(Settings()), ping=self._ping)

    async def _ping(self) -> None:
        return None

    def get(self, kernel_id: int):
        if kernel_id not in self.kernels:
            raise KernelNotFound(kernel_id)
        return self.kernels[kernel_id]

    async def add_cell(self, kernel: Kernel, number: int, code: str, *, expected_version: int | None = None) -> None:
        kernel.notebook.add(number, code)

    async def edit_cell(self, kernel: Kernel, number: int, code: str, *, expected_version: int | None = None) -> None:
        kernel.notebook.edit(number, code)

    async def delete_cell(self, kernel: Kernel, number: int, *, expected_version: int | None = None) -> None:
        kernel.notebook.delete(number)

    async def interrupt(self, kernel: Kernel) -> None:
        return None


def make_client(tmp_path: Path, **settings: object) -> TestClient:
    values = {"api_keys": KEYS, "audit_log": str(tmp_path / "audit.jsonl"), **settings}
    app = create_app(Settings(**values))
    app.state.manager = FakeManager()
    return TestClient(app)  # no lifespan: no Docker


def auth(secret: str, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {secret}"}


def add(client: TestClient, kernel_id: int, secret: str | None, code: str = "x = 1", cell: int = 1):
    headers = auth(secret) if secret else {}
    body = {"kernel_id": kernel_id, "cell_number": cell, "code": code, "action": "add"}
    return client.post("/cell", json=body, headers=headers)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    return make_client(tmp_path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/start"),
        ("POST", "/cell"),
        ("GET", "/cell_outputs?kernel_id=7&cell_number=1"),
        ("GET", "/kernels"),
        ("GET", "/kernels/7"),
        ("DELETE", "/kernels/7"),
        ("POST", "/kernels/7/restart"),
        ("GET", "/kernels/7/cells"),
        ("GET", "/no-such-route"),
    ],
)
@pytest.mark.parametrize(
    "headers", [{}, auth("wrong-secret-0123456789"), auth(ALICE, "Basic"), {"Authorization": ALICE}]
)
def test_every_endpoint_needs_a_valid_key(client: TestClient, method: str, path: str, headers: dict) -> None:
    response = client.request(method, path, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "API key" in response.json()["detail"]


def test_health_and_docs_are_open(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/health").status_code == 200


@pytest.mark.parametrize("scheme", ["Bearer", "token", "bearer"])
def test_bearer_and_jupyter_token_schemes(client: TestClient, scheme: str) -> None:
    assert client.get("/kernels/7", headers=auth(ALICE, scheme)).status_code == 200


def test_other_keys_kernels_do_not_exist(client: TestClient) -> None:
    assert add(client, 7, ALICE).status_code == 200
    for method, path in [
        ("GET", "/kernels/7"),
        ("DELETE", "/kernels/7"),
        ("GET", "/kernels/7/cells"),
        ("POST", "/kernels/7/restart"),
        ("POST", "/kernels/7/interrupt"),
        ("GET", "/cell_outputs?kernel_id=7&cell_number=1"),
    ]:
        mine_elsewhere = client.request(method, path, headers=auth(BOB))
        never_issued = client.request(method, path.replace("7", "9"), headers=auth(BOB))
        assert mine_elsewhere.status_code == never_issued.status_code == 404, (method, path)
        assert mine_elsewhere.json()["detail"] == "Kernel 7 not found."
    assert add(client, 7, BOB, cell=2).status_code == 404
    assert client.app.state.manager.kernels[7].notebook.cells.keys() == {1}


def test_listing_shows_own_kernels_and_admin_sees_all(client: TestClient) -> None:
    def ids(secret: str) -> list[int]:
        return [k["kernel_id"] for k in client.get("/kernels", headers=auth(secret)).json()["kernels"]]

    assert ids(ALICE) == [7] and ids(BOB) == [8] and ids(ROOT) == [7, 8]
    assert client.get("/kernels/8", headers=auth(ROOT)).json()["owner"] == "bob"


def test_request_and_code_size_limits(tmp_path: Path) -> None:
    client = make_client(tmp_path, max_request_bytes=4096, max_code_bytes=100)
    response = add(client, 7, ALICE, code="x" * 5000)
    assert response.status_code == 413 and "limit is 4096 bytes" in response.json()["detail"]
    response = add(client, 7, ALICE, code="x" * 101)
    assert (
        response.status_code == 413
        and response.json()["detail"] == "Code too large: 101 bytes, the limit is 100 bytes."
    )
    assert add(client, 7, ALICE, code="x" * 100).status_code == 200
    chunked = client.post(
        "/cell",
        content=iter([b"{" + b" " * 3000, b" " * 3000 + b"}"]),
        headers={**auth(ALICE), "content-type": "application/json"},
    )
    assert chunked.status_code == 413


def test_rate_limit_per_key_with_retry_after(tmp_path: Path) -> None:
    client = make_client(tmp_path, rate_limit_per_second=0.01, rate_limit_burst=3)
    statuses = [client.get("/kernels", headers=auth(ALICE)).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/kernels", headers=auth(ALICE))
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert "Rate limit" in refused.json()["detail"] and "'alice'" in refused.json()["detail"]
    assert client.get("/kernels", headers=auth(BOB)).status_code == 200


def test_cors_is_off_unless_origins_are_configured(tmp_path: Path) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    closed = make_client(tmp_path)
    assert "access-control-allow-origin" not in closed.options("/cell", headers=preflight).headers
    assert (
        "access-control-allow-origin"
        not in closed.get("/kernels", headers={**auth(ALICE), "Origin": "https://app.example"}).headers
    )
    opened = make_client(tmp_path, cors_origins="https://app.example")
    assert opened.options("/cell", headers=preflight).headers["access-control-allow-origin"] == "https://app.example"
    assert (
        "access-control-allow-origin"
        not in opened.options("/cell", headers={**preflight, "Origin": "https://evil.example"}).headers
    )


def test_audit_log_has_one_line_per_action_and_no_secrets(tmp_path: Path) -> None:
    client = make_client(tmp_path)
    add(client, 7, ALICE, code="print('hi')")
    add(client, 8, ALICE)
    client.get("/kernels", headers=auth("wrong-secret-0123456789"))
    client.get("/health")
    client.app.state.manager = None
    client.close()
    text = (tmp_path / "audit.jsonl").read_text()
    for _ in range(50):  # the writer thread may lag a moment behind
        if len(text.splitlines()) >= 3:
            break
        import time

        time.sleep(0.05)
        text = (tmp_path / "audit.jsonl").read_text()
    records = [json.loads(line) for line in text.splitlines()]
    assert len(records) == 3  # /health is not audited
    added, denied_kernel, unauthenticated = records
    assert added["key_id"] == "alice" and added["action"] == "cell.add" and added["kernel"] == 7
    assert added["code_bytes"] == 11 and added["outcome"] == "ok" and added["status"] == 200
    assert "duration_ms" in added and "time" in added
    assert denied_kernel["status"] == 404 and denied_kernel["kernel"] == 8
    assert unauthenticated["key_id"] is None and unauthenticated["outcome"] == "unauthenticated"
    assert ALICE not in text and "wrong-secret" not in text and "print('hi')" not in text


def test_open_api_without_keys(tmp_path: Path) -> None:
    app = create_app(Settings(audit_log="off"))
    app.state.manager = FakeManager()
    client = TestClient(app)
    assert add(client, 7, None).status_code == 200
    assert [k["kernel_id"] for k in client.get("/kernels").json()["kernels"]] == [7, 8]
