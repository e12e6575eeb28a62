"""Jupyter's remote-kernel protocol on JupyCell's own /api, with a real websocket client, real containers."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from testing.harness import Api, GatewayProcess, stdout_of, wait_for
from testing.jupyter import KernelWebsocket, ws_url


@pytest.fixture
def jkernel(api: Api) -> Iterator[dict]:
    """A kernel started through Jupyter's API; its model."""
    response = api.http.post("/api/kernels", json={"name": "python3"})
    assert response.status_code == 201, response.text
    model = response.json()
    yield model
    api.http.delete(f"/api/kernels/{model['id']}")


def _channels(gateway: GatewayProcess, kernel_id: str, **kwargs: object) -> KernelWebsocket:
    return KernelWebsocket(f"{ws_url(gateway.url)}/api/kernels/{kernel_id}/channels", **kwargs)


def test_api_and_kernelspecs(api: Api) -> None:
    assert "version" in api.http.get("/api").json()
    specs = api.http.get("/api/kernelspecs").json()
    assert specs["default"] == "python3"
    spec = specs["kernelspecs"]["python3"]
    assert spec == api.http.get("/api/kernelspecs/python3").json()
    assert spec["spec"]["metadata"]["jupycell"]["network"] == "none"
    for path in spec["resources"].values():
        logo = api.http.get(path)
        assert logo.status_code == 200 and logo.headers["content-type"] == "image/png"
        assert logo.content.startswith(b"\x89PNG")
    missing = api.http.get("/api/kernelspecs/ir")
    assert missing.status_code == 404 and "available: python3" in missing.json()["message"]
    assert api.http.get("/kernelspecs/python3/kernel.js").status_code == 404


def test_kernel_model_and_either_id_reaches_the_kernel(api: Api, jkernel: dict) -> None:
    assert set(jkernel) >= {"id", "name", "last_activity", "execution_state", "connections"}
    assert jkernel["name"] == "python3" and jkernel["execution_state"] == "idle" and jkernel["connections"] == 0
    datetime.strptime(jkernel["last_activity"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert api.http.get(f"/api/kernels/{jkernel['id']}").json()["id"] == jkernel["id"]
    assert api.http.get(f"/api/kernels/{jkernel['kernel_id']}").json()["id"] == jkernel["id"]
    assert jkernel["id"] in [k["id"] for k in api.http.get("/api/kernels").json()]
    # the seed API reaches a kernel started through Jupyter's API, and the other way round
    assert api.http.get(f"/kernels/{jkernel['kernel_id']}").json()["jupyter_id"] == jkernel["id"]
    seed_id = api.start()
    try:
        jupyter_id = api.http.get(f"/kernels/{seed_id}").json()["jupyter_id"]
        assert api.http.get(f"/api/kernels/{jupyter_id}").json()["kernel_id"] == seed_id
        assert jupyter_id in [k["id"] for k in api.http.get("/api/kernels").json()]
    finally:
        api.shutdown(seed_id)
    missing = api.http.get("/api/kernels/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["reason"] == "Not Found"


def test_env_allowed_names_reach_the_kernel_others_are_refused(api: Api, gateway: GatewayProcess) -> None:
    refused = api.http.post("/api/kernels", json={"env": {"LD_PRELOAD": "/x.so", "JC_GREETING": "hi"}})
    assert refused.status_code == 400
    assert "not allowed: LD_PRELOAD" in refused.json()["message"]
    assert api.http.post("/api/kernels", json={"name": "R"}).status_code == 400
    assert api.http.post("/api/kernels", json={"env": {"JC_GREETING": 3}}).status_code == 422

    assert api.http.post("/api/kernels", content=b"{not json").status_code == 422

    body = {"name": "python3", "env": {"JC_GREETING": "hello sandbox", "KERNEL_USERNAME": "ann"}}
    # JupyterLab's client sends the body as text/plain: it is read as JSON all the same
    plain = {"Content-Type": "text/plain;charset=UTF-8"}
    created = api.http.post("/api/kernels", content=json.dumps(body), headers=plain)
    assert created.status_code == 201, created.text
    model = created.json()
    try:
        code = "import os; print(os.environ.get('JC_GREETING'), os.environ.get('KERNEL_USERNAME'))"
        with _channels(gateway, model["id"]) as ws:
            assert ws.execute(code).stdout == "hello sandbox None\n"
        # a restart starts the new container with the same environment
        assert api.http.post(f"/api/kernels/{model['id']}/restart").status_code == 200
        with _channels(gateway, model["id"]) as ws:
            assert ws.execute(code).stdout == "hello sandbox None\n"
    finally:
        api.http.delete(f"/api/kernels/{model['id']}")


@pytest.mark.parametrize("v1", [False, True], ids=["legacy", "v1"])
def test_execute_over_the_websocket(api: Api, gateway: GatewayProcess, jkernel: dict, v1: bool) -> None:
    with _channels(gateway, jkernel["id"], v1=v1) as ws:
        assert ws.v1 is v1
        result = ws.execute("print('hello'); 6 * 7")
        assert result.reply["status"] == "ok"
        assert result.stdout == "hello\n"
        assert ("execute_result", "42") in [(t, c.get("data", {}).get("text/plain")) for t, c in result.iopub]
        assert api.http.get(f"/api/kernels/{jkernel['id']}").json()["connections"] == 1
        failed = ws.execute("1/0")
        assert failed.reply["status"] == "error" and failed.error == "ZeroDivisionError"
    connections = lambda: api.http.get(f"/api/kernels/{jkernel['id']}").json()["connections"]  # noqa: E731
    wait_for("the closed websocket to be counted off", lambda: connections() == 0, timeout=60, interval=0.05)


def test_seed_api_and_websocket_share_the_kernel(api: Api, gateway: GatewayProcess, kernel: int) -> None:
    jupyter_id = api.http.get(f"/kernels/{kernel}").json()["jupyter_id"]
    with _channels(gateway, jupyter_id) as ws, _channels(gateway, str(kernel)) as other:
        assert ws.execute("shared = 20").reply["status"] == "ok"
        assert stdout_of(api.execute(kernel, "shared += 1; print(shared)")) == "21\n"
        assert ws.execute("print(shared * 2)").stdout == "42\n"
        assert other.execute("print(shared)").stdout == "21\n"  # a second websocket on the same kernel


def test_stdin_is_off_even_when_the_client_allows_it(gateway: GatewayProcess, jkernel: dict) -> None:
    with _channels(gateway, jkernel["id"]) as ws:
        result = ws.execute("input('name? ')", allow_stdin=True, timeout=30)
        assert result.error == "StdinNotImplementedError"


def test_interrupt_and_restart_through_the_api(api: Api, gateway: GatewayProcess, jkernel: dict) -> None:
    kid = jkernel["id"]
    with _channels(gateway, kid) as ws:
        assert ws.execute("x = 1").reply["status"] == "ok"
        msg_id = ws.send("shell", "execute_request", {"code": "import time\nwhile True: time.sleep(0.05)"})
        ws.until(lambda ch, m: m["msg_type"] == "execute_input")
        assert api.http.get(f"/api/kernels/{kid}").json()["execution_state"] == "busy"
        assert api.http.post(f"/api/kernels/{kid}/interrupt").status_code == 204
        assert ws.collect(msg_id, timeout=60).error == "KeyboardInterrupt"
        assert ws.execute("print(x)").stdout == "1\n"

        restarted = api.http.post(f"/api/kernels/{kid}/restart")
        assert restarted.status_code == 200 and restarted.json()["id"] == kid
        # the open websocket is relayed to the new container; a restart the user asked for is not reported as
        # "restarting" (Jupyter clients take that for a crash: JupyterLab's "kernel appears to have died" dialog)
        ws.wait_ready()
        assert ws.execute("print(x)").error == "NameError"
        assert ws.execute("print('after')").stdout == "after\n"
        statuses = [json.loads(f)["content"].get("execution_state") for f in ws.frames if isinstance(f, str)]
        assert "restarting" not in statuses


def test_shutdown_closes_the_websocket(api: Api, gateway: GatewayProcess) -> None:
    model = api.http.post("/api/kernels").json()
    with _channels(gateway, model["id"]) as ws:
        assert ws.execute("1").reply["status"] == "ok"
        assert api.http.delete(f"/api/kernels/{model['id']}").status_code == 204
        with pytest.raises(ConnectionClosed):
            ws.until(lambda ch, m: False, timeout=120)
        assert ws.ws.close_code == 1000
    assert api.http.get(f"/api/kernels/{model['id']}").status_code == 404
    assert api.http.delete(f"/api/kernels/{model['id']}").status_code == 404
    assert api.http.get(f"/kernels/{model['kernel_id']}").status_code == 404


def test_websocket_to_an_unknown_kernel_is_refused_cleanly(gateway: GatewayProcess) -> None:
    unknown = "5e0f1c1a-0000-4000-8000-000000000000"
    with pytest.raises(InvalidStatus) as refused:
        _channels(gateway, unknown)
    assert refused.value.response.status_code == 404
    assert b"Kernel " + unknown.encode() + b" not found" in refused.value.response.body
    log = gateway.log()
    assert f"/api/kernels/{unknown}/channels" in log
    assert "without completing handshake" not in log and "Exception in ASGI application" not in log


def test_a_bad_frame_closes_the_websocket_with_a_reason(gateway: GatewayProcess, jkernel: dict) -> None:
    with _channels(gateway, jkernel["id"]) as ws:
        ws.ws.send(json.dumps({"channel": "shell", "header": "nope"}))
        with pytest.raises(ConnectionClosed):
            ws.until(lambda ch, m: False, timeout=120)
        assert ws.ws.close_code == 1007 and "msg_id" in ws.ws.close_reason
    with _channels(gateway, jkernel["id"]) as ws:  # the seed API's code size cap holds here too
        ws.send("shell", "execute_request", {"code": "#" * (2**20 + 1)})
        with pytest.raises(ConnectionClosed):
            ws.until(lambda ch, m: False, timeout=120)
        assert ws.ws.close_code == 1009 and "code too large" in ws.ws.close_reason
    with _channels(gateway, jkernel["id"]) as ws:  # the kernel is fine
        assert ws.execute("print(1)").stdout == "1\n"


def test_the_kernels_key_never_reaches_a_client(api: Api, gateway: GatewayProcess, jkernel: dict) -> None:
    connection_file = gateway.kernels_dir / gateway.instance / str(jkernel["kernel_id"]) / "kernel.json"
    key = json.loads(Path(connection_file).read_text())["key"]
    seen = [api.http.get(path).text for path in ("/api/kernels", f"/api/kernels/{jkernel['id']}", "/kernels")]
    with _channels(gateway, jkernel["id"]) as ws:
        ws.execute("import json; print(json.dumps({'k': 1}))")
        ws.send("shell", "connect_request", {})
        ws.until(lambda ch, m: m["msg_type"] == "connect_reply")
        ws.wait_ready()
        seen += [f if isinstance(f, str) else f.decode(errors="replace") for f in ws.frames]
    assert all(key not in text for text in seen)


def test_concurrent_websocket_clients_each_get_their_own_replies(gateway: GatewayProcess, jkernel: dict) -> None:
    results: dict[int, str] = {}

    def client(n: int) -> None:
        with _channels(gateway, jkernel["id"]) as ws:
            results[n] = "".join(ws.execute(f"print({n} * 100)").stdout for _ in range(3))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert results == {n: f"{n * 100}\n" * 3 for n in range(4)}


def test_websocket_follows_the_kernel_through_a_crash(api: Api, gateway: GatewayProcess, jkernel: dict) -> None:
    with _channels(gateway, jkernel["id"]) as ws:
        assert ws.execute("lost = 1").reply["status"] == "ok"
        ws.send("shell", "execute_request", {"code": "import os; os._exit(3)"})
        # the container dies, the gateway starts a fresh one, and this websocket is relayed to it
        ws.until(lambda ch, m: m["msg_type"] == "status" and m["content"]["execution_state"] == "restarting")
        ws.wait_ready()
        assert ws.execute("print('alive')").stdout == "alive\n"
        assert ws.execute("lost").error == "NameError"
    assert "exited with code 3" in (api.http.get(f"/kernels/{jkernel['kernel_id']}").json()["last_death"] or "")
