"""Request validation and error mapping of the HTTP layer, with a fake kernel manager (no Docker)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from gateway.errors import KernelNotFound
from gateway.main import create_app
from gateway.notebook import Notebook
from gateway.settings import Settings


class FakeKernel:
    def __init__(self, kernel_id: int) -> None:
        self.id = kernel_id
        self.owner = None
        self.notebook = Notebook()


class FakeManager:
    def __init__(self) -> None:
        self.kernels = {7: FakeKernel(7)}

    def get(self, kernel_id: int) -> FakeKernel:
        if kernel_id not in self.kernels:
            raise KernelNotFound(kernel_id)
        return self.kernels[kernel_id]

    async def add_cell(self, kernel: FakeKernel, number: int, code: str) -> None:
        kernel.notebook.add(number, code)

    async def edit_cell(self, kernel: FakeKernel, number: int, code: str) -> None:
        kernel.notebook.edit(number, code)

    async def delete_cell(self, kernel: FakeKernel, number: int) -> None:
        kernel.notebook.delete(number)


@pytest.fixture
def client() -> TestClient:
    app = create_app(Settings())
    app.state.manager = FakeManager()
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
        ({"kernel_id": 7, "cell_number": 1, "action": "edit"}, 422, "code"),
        ({"kernel_id": 7, "cell_number": "one", "code": "x", "action": "add"}, 422, "cell_number"),
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
    assert client.app.state.manager.kernels[7].notebook.cells == {}


def test_duplicate_add_is_409(client: TestClient) -> None:
    post(client, kernel_id=7, cell_number=1, code="a", action="add")
    response = post(client, kernel_id=7, cell_number=1, code="b", action="add")
    assert response.status_code == 409
    assert client.app.state.manager.kernels[7].notebook.get(1).code == "a"


def test_non_json_body_is_422(client: TestClient) -> None:
    response = client.post("/cell", content=b"not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
