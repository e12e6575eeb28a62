"""Request validation and error mapping of the HTTP layer, on the core with fake adapters (no Docker)."""

from __future__ import annotations

import json

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
    # the notebook's version moves with every change
    added = {"status": "Cell 1 added.", "version": 1}
    assert post(client, kernel_id=7, cell_number=1, code="x", action="add").json() == added
    updated = {"status": "Cell 1 updated.", "version": 2}
    assert post(client, kernel_id=7, cell_number=1, code="y", action="edit").json() == updated
    assert post(client, kernel_id=7, cell_number=1, action="delete").json() == {
        "status": "Cell 1 deleted.",
        "version": 3,
    }


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
    assert client.app.state.service.get(7).notebook.cells == {}


def test_duplicate_add_is_409(client: TestClient) -> None:
    post(client, kernel_id=7, cell_number=1, code="a", action="add")
    response = post(client, kernel_id=7, cell_number=1, code="b", action="add")
    assert response.status_code == 409
    assert client.app.state.service.get(7).notebook.get(1).code == "a"


def test_non_json_body_is_422(client: TestClient) -> None:
    response = client.post("/cell", content=b"not json", headers={"content-type": "application/json"})
    assert response.status_code == 422


# --- hostile notebooks and the cell cap ------------------------------------------------------------------------


def client_with(**settings: object) -> TestClient:
    app = create_app(Settings(**settings))
    app.state.service = service = fake_service(Settings(**settings))
    kernel_at(service, 7)
    return TestClient(app)


def one_line_cells(count: int) -> bytes:
    cells = [
        {"id": f"c{n}", "cell_type": "code", "source": f"x = x + {n}", "metadata": {}, "outputs": []}
        | {"execution_count": None}
        for n in range(count)
    ]
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 200_000 + b"]" * 200_000,  # a RecursionError in the JSON decoder: was a 500
        b'{"nbformat": 4, "cells": [' + b"[" * 100 + b"]" * 100 + b"]}",  # decodes, but deeper than any notebook
    ],
    ids=["200k-deep", "100-deep"],
)
def test_deeply_nested_notebook_is_refused_with_a_reason(client: TestClient, body: bytes) -> None:
    response = client.post("/kernels/7/notebook", content=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "Invalid notebook: the body is JSON nested more than 64 levels deep (arrays and objects)."
    )


def test_deeply_nested_cell_request_is_a_client_error(client: TestClient) -> None:
    body = b'{"kernel_id": 7, "action": "add", "cell_number": 1, "code": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    response = client.post("/cell", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text


def test_code_too_deeply_nested_to_analyse_is_still_added(client: TestClient) -> None:
    response = post(client, kernel_id=7, cell_number=1, code="a+" * 1500 + "a", action="add")
    assert response.status_code == 200, response.text


def test_adding_past_max_cells_is_409_until_a_cell_is_deleted() -> None:
    client = client_with(max_cells=3)
    for number in (1, 2, 3):
        assert post(client, kernel_id=7, cell_number=number, code="x", action="add").status_code == 200
    refused = post(client, kernel_id=7, cell_number=4, code="x", action="add")
    assert refused.status_code == 409
    assert "this kernel has 3 cells, the limit is 3 (JUPYCELL_MAX_CELLS)" in refused.json()["detail"]
    post(client, kernel_id=7, cell_number=1, action="delete")
    assert post(client, kernel_id=7, cell_number=4, code="x", action="add").status_code == 200


def test_an_import_past_max_cells_is_409_and_adds_nothing() -> None:
    client = client_with(max_cells=10)
    post(client, kernel_id=7, cell_number=1, code="x = 1", action="add")
    response = client.post("/kernels/7/notebook", content=one_line_cells(10))
    assert response.status_code == 409
    assert "this kernel has 1 cells and this request adds 10, the limit is 10" in response.json()["detail"]
    assert list(client.app.state.service.get(7).notebook.cells) == [1]


def test_a_2mb_notebook_of_20000_cells_is_refused_before_any_work(client: TestClient) -> None:
    body = one_line_cells(20_000)
    assert len(body) > 1_500_000
    response = client.post("/kernels/7/notebook", content=body)
    assert response.status_code == 409
    assert "this request adds 20000, the limit is 1000" in response.json()["detail"]
    notebook = client.app.state.service.get(7).notebook
    assert notebook.cells == {} and notebook.work == 0


def test_20000_cells_import_at_a_cost_per_cell_when_the_cap_allows() -> None:
    client = client_with(max_cells=20_000)
    response = client.post("/kernels/7/notebook", content=one_line_cells(20_000))
    assert response.status_code == 200, response.text
    assert response.json()["cells"] == list(range(1, 20_001)) and response.json()["warnings"] == []
    notebook = client.app.state.service.get(7).notebook
    assert len(notebook.cells) == 20_000
    assert notebook.work <= 8 * 20_000  # a few index steps per cell (was: the whole graph rebuilt for every add)
