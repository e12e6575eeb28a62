"""Run records, queueing and busy errors, outputs shaped for an LLM (ANSI stripping, image caps)."""

from __future__ import annotations

import contextlib
import os
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import docker

from testing.harness import HOLD_UNTIL_INTERRUPTED, Api, BackgroundRun, GatewayProcess, stdout_of

CGROUP_ROOT = "/sys/fs/cgroup"


def in_background(call) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(response=call()))
    thread.start()
    return thread, box


def parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def test_run_record_in_response_outputs_and_listing(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "import time; time.sleep(0.3); print('done')")
    assert api.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 1}).json()["started"] is None
    run = api.run(kernel, 1).json()
    assert run["status"] == "ok" and run["execution_count"] == 1 and run["stale"] is False
    assert parse(run["ended"]) > parse(run["started"]) and run["duration"] > 0
    outputs = api.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 1}).json()
    listed = api.http.get(f"/kernels/{kernel}/cells").json()["cells"][0]
    for record in (outputs, listed):
        assert {k: record[k] for k in ("status", "execution_count", "started", "ended", "duration", "stale")} == {
            k: run[k] for k in ("status", "execution_count", "started", "ended", "duration", "stale")
        }
    assert stdout_of(outputs) == "done\n"


def test_concurrent_runs_queue_in_order_and_no_wait_is_409(api: Api, kernel: int) -> None:
    # Cell 1 holds the kernel until the test interrupts it (not for a fixed time a slow machine could use up).
    api.add(kernel, 1, HOLD_UNTIL_INTERRUPTED + "\nfirst = True")
    api.add(kernel, 2, "print(first)")
    run = BackgroundRun(api, kernel, 1)
    run.wait_for_output()  # cell 1 is inside its wait
    busy = api.run(kernel, 2, wait=False)
    assert busy.status_code == 409 and "busy" in busy.json()["detail"]
    queued, box = in_background(lambda: api.run(kernel, 2))  # queues behind cell 1
    assert api.http.post(f"/kernels/{kernel}/interrupt").status_code == 200
    first = run.result()
    queued.join()
    second = box["response"]
    assert first["status"] == "ok" and stdout_of(first) == "holding\nreleased\n"
    assert second.status_code == 200 and stdout_of(second.json()) == "True\n"
    assert parse(second.json()["started"]) >= parse(first["ended"])
    assert api.run(kernel, 2, wait=False).status_code == 200  # idle again: no-wait runs go through


def test_ansi_codes_stripped_on_request(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "1 / 0")
    colored = api.run(kernel, 1).json()["outputs"][-1]
    assert any("\x1b[" in line for line in colored["traceback"])
    plain = api.run(kernel, 1, strip_ansi=True).json()["outputs"][-1]
    assert plain["ename"] == "ZeroDivisionError" and not any("\x1b" in line for line in plain["traceback"])
    assert any("ZeroDivisionError" in line for line in plain["traceback"])
    query = {"kernel_id": kernel, "cell_number": 1}
    stored = api.http.get("/cell_outputs", params=query).json()["outputs"][-1]
    assert any("\x1b[" in line for line in stored["traceback"])
    stripped = api.http.get("/cell_outputs", params={**query, "strip_ansi": "true"}).json()["outputs"][-1]
    assert not any("\x1b" in line for line in stripped["traceback"])
    listed = api.http.get(f"/kernels/{kernel}/cells", params={"strip_ansi": "true"}).json()["cells"][0]
    assert not any("\x1b" in line for line in listed["outputs"][-1]["traceback"])


def test_images_kept_as_png_unless_over_the_cap(api: Api, kernel: int) -> None:
    code = (
        "import base64, os\n"
        "from IPython.display import display\n"
        "display({'image/png': base64.b64encode(os.urandom(3000)).decode(), 'text/plain': 'small'}, raw=True)\n"
        "display({'image/png': base64.b64encode(os.urandom(600_000)).decode(), 'text/plain': 'big'}, raw=True)\n"
    )
    small, big = api.execute(kernel, code)["outputs"]
    assert small["data"]["text/plain"] == "small" and len(small["data"]["image/png"]) == 4000
    assert "image/png" not in big["data"]
    assert big["data"]["text/plain"].startswith("big\n[image/png of 800000 bytes dropped: over the")


def test_replacement_after_an_ignored_interrupt_does_not_hold_up_the_reply(api: Api, gateway: GatewayProcess) -> None:
    kernel = api.start()
    code = "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.1)"
    result = api.execute(kernel, code, timeout=1)
    assert result["status"] == "timeout" and result["kernel_state_kept"] is False
    # Shut down while the new container may still be starting: nothing of it may be left behind.
    assert api.shutdown(kernel).status_code == 200
    client = docker.from_env()
    try:
        labels = [f"jupycell.instance={gateway.instance}", f"jupycell.kernel_id={kernel}"]
        left = client.containers.list(all=True, sparse=True, filters={"label": labels})
    finally:
        client.close()
    assert left == []


def cgroup_files_open(gateway: GatewayProcess) -> dict[str, int]:
    """Container id -> how many of its cgroup files the gateway process holds open."""
    assert gateway.process is not None
    held: dict[str, int] = {}
    for fd in Path(f"/proc/{gateway.process.pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith(CGROUP_ROOT) and (found := re.search(r"[0-9a-f]{64}", target)):
                held[found.group()] = held.get(found.group(), 0) + 1
    return held


def test_a_runs_usage_is_measured_and_a_replaced_containers_cgroup_files_are_let_go(
    api: Api, kernel: int, gateway: GatewayProcess
) -> None:
    api.add(kernel, 1, "len(bytearray(96 * 2**20)), sum(i * i for i in range(2_000_000))")  # freed at once
    before = cgroup_files_open(gateway)
    usage = api.run(kernel, 1).json()["usage"]
    assert usage["peak_memory_bytes"] >= 96 * 2**20 and usage["cpu_seconds"] > 0.01, usage
    held = {cid: n for cid, n in cgroup_files_open(gateway).items() if cid not in before}
    assert len(held) == 1, held  # this kernel's container: its run files stay open between runs
    (old,) = held
    api.add(kernel, 2, "y = 1")
    assert api.run(kernel, 2).json()["usage"]["peak_memory_bytes"] < 96 * 2**20  # the peak is the run's own
    assert api.http.post(f"/kernels/{kernel}/restart").status_code == 200
    again = api.run(kernel, 1).json()["usage"]
    assert again["peak_memory_bytes"] >= 96 * 2**20 and again["cpu_seconds"] > 0.01, again
    now = cgroup_files_open(gateway)
    assert old not in now, now  # the replaced container's files were closed
    assert len({cid for cid in now if cid not in before}) == 1
