"""Request validation and error mapping of the HTTP layer, on the core with fake adapters (no Docker)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.main import create_app
from gateway.settings import Settings
from tests.fakes import fake_service, kernel_at


@pytest.fixture
def client() -> TestClient:
    app = create_app(Settings())
    app.state.service = service = fake_service(Settings())
    kernel_at(service, 7)
    return TestClient(app)  # no lifespan: no Docker


def post(client: TestClient, **body: object):
    return client.post("/cell", json=body)


def test_add_edit_delete_messages(client: TestClient) -> None:
    assert post(client, kernel_id=7, cell_number=1, code="x", action="add").json() == {"status": "Cell 1 added."}
    assert post(client, kernel_id=7, cell_number=1, code="y", action="edit").json() == {"status": "Cell 1 updated."}
    assert post(client, kernel_id=7, cell_number=1, action="delete").json() == {"status": "Cell 1 deleted."}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"kernel_id": 8, "cell_number": 1, "code": "x", "action": "add"}, 404, "Kernel 8 not found."),
        ({"kernel_id": 7, "cell_number": 1, "action": "add"}, 422, "code: Field required"),
        ({"kernel_id": 7, "cell_number": 1, "action": "fly"}, 422, "'fly'"),
        ({"kernel_id": 7, "cell_number": 1}, 422, "action"),
        ({"kernel_id": "x", "action": "run_all"}, 422, "kernel_id"),
        ({"kernel_id": 7, "cell_number": -1, "action": "run"}, 422, "cell_number"),
        ({"kernel_id": 7, "cell_number": 5, "action": "delete"}, 404, "Cell 5 not found."),
        ({"kernel_id": 7, "action": "edit", "code": "x"}, 422, "cell_number"),
        ({"kernel_id": 7, "cell_number": 1, "action": "run", "timeout": 0}, 422, "timeout"),
    ],
)
def test_bad_requests(client: TestClient, body: dict, status: int, fragment: str) -> None:
    response = client.post("/cell", json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["detail"]
    assert client.app.state.service.get(7).notebook.cells == {}


def test_duplicate_add_is_409(client: TestClient) -> None:
    post(client, kernel_id=7, cell_number=1, code="a", action="add")
    response = post(client, kernel_id=7, cell_number=1, code="b", action="add")
    assert response.status_code == 409
    assert client.app.state.service.get(7).notebook.get(1).code == "a"


def test_non_json_body_is_422(client: TestClient) -> None:
    response = client.post("/cell", content=b"not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
