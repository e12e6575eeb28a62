"""Jupyter's API under API keys: both header forms, ownership across both APIs, and a kernel spec per runtime."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from websockets.exceptions import InvalidStatus

from testing.harness import GatewayProcess, client_for
from testing.jupyter import KernelWebsocket, ws_url
from tests.conftest import TEST_SETTINGS

ALICE = "alice-jupyter-secret-000001"
BOB = "bob-jupyter-secret-0000002"
ROOT = "root-jupyter-secret-000003"


@pytest.fixture(scope="module")
def secured(kernels_root: Path) -> Iterator[GatewayProcess]:
    keys = {"alice": ALICE, "bob": BOB, "root": ROOT}
    # this module's premise: runc by default, runsc on request (whatever JUPYCELL_RUNTIME says)
    settings = {**TEST_SETTINGS, "runtime": "runc", "allowed_runtimes": "runc,runsc"}
    with GatewayProcess(kernels_root / "jsec", keys=keys, admins={"root"}, **settings) as process:
        yield process


CHANNELS = "WEBSOCKET /api/kernels/{kernel_id}/channels"


def _http(gateway: GatewayProcess, header: str | None) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, timeout=180, headers={"Authorization": header} if header else {})


def _channels(gateway: GatewayProcess, kernel_id: str, header: str | None) -> KernelWebsocket:
    url = f"{ws_url(gateway.url)}/api/kernels/{kernel_id}/channels"
    return KernelWebsocket(url, headers={"Authorization": header} if header else None)


def test_keys_and_ownership(secured: GatewayProcess) -> None:
    with (
        _http(secured, None) as anonymous,
        _http(secured, f"token {ALICE}") as alice,
        _http(secured, f"Bearer {BOB}") as bob,
        _http(secured, f"token {ROOT}") as root,
    ):
        for path in ("/api", "/api/kernelspecs", "/api/kernels", "/kernelspecs/python3/logo-32x32.png"):
            assert anonymous.get(path).status_code == 401, path
        assert anonymous.post("/api/kernels").status_code == 401
        assert alice.get("/api/kernelspecs").status_code == 200

        model = alice.post("/api/kernels").json()  # Jupyter's `token` scheme
        kid = model["id"]
        seed_bob = client_for(secured, "bob")
        try:
            assert kid in [k["id"] for k in alice.get("/api/kernels").json()]
            assert kid not in [k["id"] for k in bob.get("/api/kernels").json()]
            assert kid in [k["id"] for k in root.get("/api/kernels").json()]  # admin key sees all
            for path in (f"/api/kernels/{kid}", f"/api/kernels/{model['kernel_id']}"):
                assert bob.get(path).status_code == 404
            assert bob.post(f"/api/kernels/{kid}/interrupt").status_code == 404
            assert bob.post(f"/api/kernels/{kid}/restart").status_code == 404
            assert bob.delete(f"/api/kernels/{kid}").status_code == 404
            assert seed_bob.http.get(f"/kernels/{model['kernel_id']}").status_code == 404  # the seed API agrees
            # a kernel Bob starts through the seed API is his in Jupyter's API too
            bobs = seed_bob.start()
            bobs_uuid = bob.get(f"/api/kernels/{bobs}").json()["id"]
            assert alice.get(f"/api/kernels/{bobs_uuid}").status_code == 404
            assert bob.delete(f"/api/kernels/{bobs_uuid}").status_code == 204

            with pytest.raises(InvalidStatus) as no_key:
                _channels(secured, kid, None)
            assert no_key.value.response.status_code in (401, 403)
            with pytest.raises(InvalidStatus) as not_owner:
                _channels(secured, kid, f"Bearer {BOB}")
            assert not_owner.value.response.status_code == 404
            with _channels(secured, kid, f"Bearer {ALICE}") as ws:  # either header form
                assert ws.execute("print('mine')").stdout == "mine\n"
            # code run over the websocket is audited like code run through the seed API, and so is the websocket
            digest = hashlib.sha256(b"print('mine')").hexdigest()
            lines = secured.audit_records(until=lambda rs: any(r.get("code_sha256") == digest for r in rs) and any(
                r["action"] == CHANNELS and r["key_id"] == "alice" for r in rs
            ))  # fmt: skip
            (line,) = [r for r in lines if r.get("code_sha256") == digest]
            assert line["key_id"] == "alice" and line["action"] == "WEBSOCKET execute_request"
            assert line["kernel"] == model["kernel_id"]
            outcomes = {(r["key_id"], r["status"], r["outcome"]) for r in lines if r["action"] == CHANNELS}
            assert {("alice", 101, "ok"), ("bob", 404, "not found")} <= outcomes
        finally:
            seed_bob.close()
            assert alice.delete(f"/api/kernels/{kid}").status_code == 204


@pytest.mark.gvisor
def test_kernelspec_per_runtime_starts_a_gvisor_kernel(secured: GatewayProcess) -> None:
    with _http(secured, f"token {ALICE}") as alice:
        names = list(alice.get("/api/kernelspecs").json()["kernelspecs"])
        assert names == ["python3", "python3-runsc"]
        created = alice.post("/api/kernels", json={"name": "python3-runsc"})
        assert created.status_code == 201, created.text
        model = created.json()
        try:
            assert model["name"] == "python3-runsc"
            client = docker.from_env()
            try:
                labels = [f"jupycell.instance={secured.instance}", f"jupycell.kernel_id={model['kernel_id']}"]
                (container,) = client.containers.list(filters={"label": labels})
                assert container.attrs["HostConfig"]["Runtime"] == "runsc"
            finally:
                client.close()
            with _channels(secured, model["id"], f"token {ALICE}") as ws:
                assert ws.execute("print(open('/proc/version').read().startswith('Linux'))").stdout == "True\n"
        finally:
            alice.delete(f"/api/kernels/{model['id']}")
