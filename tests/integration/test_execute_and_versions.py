"""One-call execution and the notebook version (issue 12), through HTTP against a real gateway and kernels."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from testing.harness import Api, GatewayProcess, remove_instance_containers, stdout_of
from tests.integration.test_streaming import sse_events


def cells_of(api: Api, kernel: int) -> dict[str, Any]:
    response = api.http.get(f"/kernels/{kernel}/cells")
    assert response.status_code == 200, response.text
    return response.json()


def test_execute_appends_a_normal_cell_and_runs_it(api: Api, kernel: int) -> None:
    api.add(kernel, 5, "x = 20")
    api.run(kernel, 5)
    first = api.http.post(f"/kernels/{kernel}/execute", json={"code": "x += 1\nprint(x)"}).json()
    assert first["status"] == "ok" and first["cell_number"] == 6 and stdout_of(first) == "21\n"
    assert first["version"] == 2 and first["execution_count"] == 2
    second = api.http.post(f"/kernels/{kernel}/execute", json={"code": "1/0", "strip_ansi": True}).json()
    assert second["status"] == "error" and second["cell_number"] == 7 and second["version"] == 3
    assert "\x1b" not in "".join(second["outputs"][0]["traceback"])

    listing = cells_of(api, kernel)
    assert [c["number"] for c in listing["cells"]] == [5, 6, 7] and listing["version"] == 3
    assert listing["cells"][1]["code"] == "x += 1\nprint(x)" and listing["cells"][1]["status"] == "ok"
    notebook = api.http.get(f"/kernels/{kernel}/notebook").json()
    assert notebook["metadata"]["jupycell"]["version"] == 3 and len(notebook["cells"]) == 3
    assert api.http.get(f"/kernels/{kernel}").json()["version"] == 3
    # Staleness is tracked as for any cell: editing cell 5 makes cell 6 (which uses x) stale.
    api.cell(kernel, "edit", 5, "x = 100")
    assert cells_of(api, kernel)["cells"][1]["stale"] is True


def test_execute_stream_takes_the_same_body(api: Api, kernel: int) -> None:
    body = {"code": "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.4)"}
    with api.http.stream("POST", f"/kernels/{kernel}/execute/stream", json=body) as response:
        assert response.status_code == 200
        events = list(sse_events(response))
    assert [kind for kind, _ in events][-1] == "done" and len(events) >= 3
    done = events[-1][1]
    assert done["status"] == "ok" and done["cell_number"] == 1 and done["version"] == 1
    assert stdout_of(done) == "0\n1\n2\n"
    stale = api.http.post(f"/kernels/{kernel}/execute/stream", json={**body, "expected_version": 0})
    assert stale.status_code == 409 and stale.json()["version"] == 1


def test_two_writers_one_wins_the_other_gets_409_and_nothing_of_it_is_applied(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "a = 1")
    version = cells_of(api, kernel)["version"]

    async def both() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(api.http.base_url), timeout=60) as http:
            bodies = [
                {
                    "kernel_id": kernel,
                    "action": "edit",
                    "cell_number": 1,
                    "code": f"a = {n}",
                    "expected_version": version,
                }
                for n in (2, 3)
            ]
            return await asyncio.gather(*(http.post("/cell", json=body) for body in bodies))

    responses = asyncio.run(both())
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200)
    loser = next(r for r in responses if r.status_code == 409)
    assert winner.json()["version"] == version + 1
    assert loser.json()["version"] == version + 1 and loser.json()["error"] == "VersionConflict"
    assert "nothing was changed" in loser.json()["detail"]
    listing = cells_of(api, kernel)
    winning_code = "a = 2" if responses[0].status_code == 200 else "a = 3"
    assert listing["version"] == version + 1 and listing["cells"][0]["code"] == winning_code


def test_stale_version_changes_nothing_anywhere(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "a = 1")
    old = cells_of(api, kernel)["version"]
    api.add(kernel, 2, "b = 2")
    conflicts = [
        api.cell(kernel, "add", 3, "c = 3", expected_version=old),
        api.cell(kernel, "edit", 1, "a = 9", expected_version=old),
        api.cell(kernel, "delete", 2, expected_version=old),
        api.http.post(f"/kernels/{kernel}/execute", json={"code": "print(1)", "expected_version": old}),
        api.http.post(
            f"/kernels/{kernel}/notebook",
            params={"expected_version": old},
            json={"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [_code_cell("d = 4")]},
        ),
    ]
    assert [r.status_code for r in conflicts] == [409] * 5, [r.text for r in conflicts]
    listing = cells_of(api, kernel)
    assert listing["version"] == old + 1
    assert [(c["number"], c["code"], c["status"]) for c in listing["cells"]] == [(1, "a = 1", None), (2, "b = 2", None)]
    # With the current version every change goes through and moves the version on.
    current = listing["version"]
    assert api.cell(kernel, "edit", 1, "a = 9", expected_version=current).json()["version"] == current + 1
    imported = api.http.post(
        f"/kernels/{kernel}/notebook",
        params={"expected_version": current + 1},
        json={"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [_code_cell("d = 4")]},
    )
    assert imported.status_code == 200 and imported.json()["version"] == current + 2


def _code_cell(source: str) -> dict[str, Any]:
    return {"cell_type": "code", "metadata": {}, "source": source, "outputs": [], "execution_count": None}


def test_execute_without_waiting_on_a_busy_kernel_adds_no_cell(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "import time; time.sleep(3)")
    runner = threading.Thread(target=lambda: api.run(kernel, 1))
    runner.start()
    try:
        wait_until(lambda: api.http.get(f"/kernels/{kernel}").json()["state"] == "busy", "the kernel to be busy")
        busy = api.http.post(f"/kernels/{kernel}/execute", json={"code": "print(2)", "wait": False})
        assert busy.status_code == 409 and busy.json()["error"] == "KernelBusy"
        assert [c["number"] for c in cells_of(api, kernel)["cells"]] == [1]
    finally:
        runner.join()


def test_bad_execute_bodies_are_refused_with_a_reason(api: Api, kernel: int) -> None:
    assert api.http.post(f"/kernels/{kernel}/execute", json={}).status_code == 422
    assert api.http.post(f"/kernels/{kernel}/execute", json={"code": "1", "timeout": -1}).status_code == 422
    assert api.http.post(f"/kernels/{kernel}/execute", json={"code": "1", "surprise": 1}).status_code == 422
    assert api.http.post("/kernels/12345/execute", json={"code": "1"}).status_code == 404
    too_big = api.http.post(f"/kernels/{kernel}/execute", json={"code": "#" * (1024 * 1024 + 1)})
    assert too_big.status_code == 413 and "Code too large" in too_big.json()["detail"]
    assert cells_of(api, kernel)["cells"] == []


def test_the_version_survives_a_gateway_restart(kernels_root: Path) -> None:
    process = GatewayProcess(kernels_root / "v", mem_limit_mb=512, on_stop="keep").start()
    try:
        with _api(process.url) as api_before:
            kernel = api_before.start()
            api_before.add(kernel, 1, "x = 1")
            api_before.cell(kernel, "edit", 1, "x = 2")
        process.stop()
        process = process.again().start()
        with _api(process.url) as api_after:
            listing = cells_of(api_after, kernel)
            assert listing["version"] == 2 and listing["cells"][0]["code"] == "x = 2"
            assert api_after.cell(kernel, "edit", 1, "x = 3", expected_version=1).status_code == 409
    finally:
        process.stop()
        remove_instance_containers(process.instance)


class _api(Api):
    """``Api`` as a context manager."""

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it holds (a deadline, not a timed assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
