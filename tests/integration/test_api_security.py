"""API keys, ownership, kernel limits, the audit log and per-kernel runtimes, against a real gateway and kernels."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from testing.harness import Api, GatewayProcess, client_for, stdout_of
from tests.conftest import TEST_SETTINGS

ALICE = "alice-integration-secret-0001"
BOB = "bob-integration-secret-00002"
ROOT = "root-integration-secret-0003"


@pytest.fixture(scope="module")
def secured(kernels_root: Path) -> Iterator[GatewayProcess]:
    keys = {"alice": ALICE, "bob": BOB, "root": ROOT}
    settings = {**TEST_SETTINGS, "max_kernels_per_key": 2, "allowed_runtimes": "runc,runsc"}
    with GatewayProcess(kernels_root / "sec", keys=keys, admins={"root"}, **settings) as process:
        yield process


@pytest.fixture(scope="module")
def alice(secured: GatewayProcess) -> Iterator[Api]:
    with client_for(secured, "alice") as client:
        yield client


@pytest.fixture(scope="module")
def bob(secured: GatewayProcess) -> Iterator[Api]:
    with client_for(secured, "bob") as client:
        yield client


def test_no_key_no_entry_but_health_is_open(secured: GatewayProcess) -> None:
    assert httpx.post(f"{secured.url}/start").status_code == 401
    assert httpx.post(f"{secured.url}/start", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{secured.url}/health").status_code == 200
    assert ALICE not in secured.log() and "alice, bob, root" in secured.log()


def test_a_kernel_belongs_to_its_key(secured: GatewayProcess, alice: Api, bob: Api) -> None:
    kernel = alice.start()
    try:
        code = "secret_value = 41 + 1\nprint(secret_value)"
        assert stdout_of(alice.execute(kernel, code)) == "42\n"
        assert bob.run(kernel, 1).status_code == 404
        assert bob.http.get(f"/kernels/{kernel}").status_code == 404
        assert bob.shutdown(kernel).status_code == 404
        assert kernel not in [k["kernel_id"] for k in bob.http.get("/kernels").json()["kernels"]]
        with client_for(secured, "root") as root:
            assert root.http.get(f"/kernels/{kernel}").json()["owner"] == "alice"
            assert kernel in [k["kernel_id"] for k in root.http.get("/kernels").json()["kernels"]]
        assert stdout_of(alice.execute(kernel, "print(secret_value)")) == "42\n"

        digest = hashlib.sha256(code.encode()).hexdigest()
        wanted = {("alice", "cell.add", "ok", digest), ("alice", "cell.run", "ok", digest)}
        wanted |= {("bob", "cell.run", "not found", None), ("bob", "DELETE /kernels/{kernel_id}", "not found", None)}
        records = secured.audit_records(until=lambda rs: wanted <= set(_actions(rs, kernel)))
        assert wanted <= set(_actions(records, kernel))
        assert all(r["code_bytes"] == len(code) for r in records if r.get("code_sha256") == digest)
    finally:
        alice.shutdown(kernel)


def test_kernels_per_key_limit(alice: Api, bob: Api) -> None:
    kernels = [alice.start(), alice.start()]
    try:
        refused = alice.http.post("/start")
        assert refused.status_code == 429
        assert "max_kernels_per_key" in refused.json()["detail"] and "2" in refused.json()["detail"]
        other = bob.start()  # the limit is per key
        bob.shutdown(other)
    finally:
        for kernel in kernels:
            alice.shutdown(kernel)
    assert alice.http.post("/start").status_code == 200  # room again (this one is cleaned by the module)


@pytest.mark.gvisor
def test_runtime_per_kernel(secured: GatewayProcess, bob: Api) -> None:
    refused = bob.http.post("/start", json={"runtime": "kata"})
    assert refused.status_code == 422 and "'kata' is not allowed" in refused.json()["detail"]
    assert "runc" in refused.json()["detail"] and "runsc" in refused.json()["detail"]
    response = bob.http.post("/start", json={"runtime": "runsc"})
    assert response.status_code == 200, response.text
    kernel = response.json()["kernel_id"]
    try:
        assert stdout_of(bob.execute(kernel, "print(6 * 7)")) == "42\n"
        assert _runtime_of(secured, kernel) == "runsc"
        assert bob.http.get(f"/kernels/{kernel}").json()["runtime"] == "runsc"
        assert bob.http.post(f"/kernels/{kernel}/restart").status_code == 200  # a restart keeps the runtime
        assert _runtime_of(secured, kernel) == "runsc"
        assert stdout_of(bob.execute(kernel, "print(1 + 1)")) == "2\n"
    finally:
        bob.shutdown(kernel)


def test_start_without_body_uses_the_deployment_runtime(secured: GatewayProcess, bob: Api) -> None:
    kernel = bob.start()
    try:
        assert _runtime_of(secured, kernel) == secured.env.get("JUPYCELL_RUNTIME", "runc")
    finally:
        bob.shutdown(kernel)


def _runtime_of(secured: GatewayProcess, kernel: int) -> str:
    client = docker.from_env()
    try:
        return client.containers.get(f"jupycell-{secured.instance}-{kernel}").attrs["HostConfig"]["Runtime"]
    finally:
        client.close()


def _actions(records: list[dict], kernel: int) -> list[tuple]:
    """(key id, action, outcome, code digest) of the records about ``kernel``."""
    about = [r for r in records if r.get("kernel") in (kernel, str(kernel))]
    return [(r["key_id"], r["action"], r.get("outcome"), r.get("code_sha256")) for r in about]
