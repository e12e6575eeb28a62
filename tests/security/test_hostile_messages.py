"""A kernel that writes raw junk to its own sockets: the gateway must drop it, stay up and keep serving others.

The hostile code uses the kernel's own IOPub socket (it holds the connection's HMAC key, so it can also sign
malformed messages): garbage frames, bad signatures, non-JSON, wrong JSON shapes, deeply nested JSON, a flood of
messages, and a message over the size cap.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from testing.harness import Api, stdout_of
from tests.security.conftest import LIMITS

JUNK = r"""
import json
k = get_ipython().kernel
sock, session = k.iopub_socket, k.session
parent = k.get_parent()["header"]["msg_id"]
D = b"<IDS|MSG>"

def signed(header, parent_header, content, metadata=b"{}"):
    signature = session.sign([header, parent_header, metadata, content])
    return [D, signature, header, parent_header, metadata, content]

def header(msg_type):
    return json.dumps({"msg_id": "junk", "msg_type": msg_type, "session": "x", "username": "x",
                       "date": "2020-01-01T00:00:00Z", "version": "5.3"}).encode()

ours = json.dumps({"msg_id": parent}).encode()
junk = [
    [b"garbage"],
    [b"\xff" * 100, b"\x00"],
    [D],
    [D, b"deadbeef", b"{}", b"{}", b"{}", b"{}"],
    signed(b"[1, 2]", b"{}", b"{}"),
    signed(b"not json", b"{}", b"{}"),
    signed(header("stream"), b'"a string"', b"{}"),
    signed(header("stream"), ours, b"not json"),
    signed(header("stream"), ours, b"[" * 100000 + b"]" * 100000),
    signed(header("stream"), ours, b'"a string"'),
    signed(header("display_data"), ours, b'{"data": "not a dict", "metadata": 5}'),
    signed(header("stream"), ours, b'{"name": 5, "text": {"a": 1}}'),
    signed(header("error"), ours, b'{"traceback": 7}'),
    signed(header("status"), ours, b'{"execution_state": ["idle"]}'),
    signed(header("execute_input"), ours, b'{"execution_count": "NaN"}'),
]
for frames in junk:
    sock.send_multipart(frames)
FLOOD = {flood}
other = json.dumps({{"msg_id": "someone-else"}}).encode()
for i in range(FLOOD):
    sock.send_multipart(signed(header("status"), other, b'{{"execution_state": "busy"}}'))
print("done")
"""


@pytest.mark.slow
def test_junk_and_a_flood_on_iopub_are_dropped(api: Api, victim: int, bystander: int, bystander_api: Api) -> None:
    latencies: list[float] = []

    def bystander_runs() -> None:
        for _ in range(10):
            started = time.perf_counter()
            result = bystander_api.execute(bystander, "1+1")
            latencies.append(time.perf_counter() - started)
            assert result["status"] == "ok"

    with ThreadPoolExecutor(1) as pool:
        hostile = pool.submit(
            api.execute, victim, JUNK.replace("{flood}", "100_000").replace("{{", "{").replace("}}", "}"), timeout=60
        )
        time.sleep(0.5)
        bystander_runs()
        result = hostile.result()
    print(
        f"\nbystander 1+1 during the junk flood: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.1f} ms"
    )
    assert result["status"] == "ok", result
    assert "done\n" in stdout_of(result)
    assert stdout_of(api.execute(victim, "print('clean')")) == "clean\n"


def test_an_oversized_message_is_refused_and_the_kernel_recovers(api: Api, victim: int) -> None:
    size = (LIMITS["max_message_mb"] + 1) * 2**20
    code = f"""
import time
get_ipython().kernel.iopub_socket.send_multipart([b"<IDS|MSG>", b"x" * {size}])
time.sleep(1)
print("after")
"""
    result = api.execute(victim, code, timeout=10)
    # The gateway drops the connection that carried it and reconnects: the run either ends normally or, if the
    # drop lost its end, at its deadline with a clear timeout.
    assert result["status"] in ("ok", "timeout"), result
    if result["status"] == "timeout":
        assert result["detail"]
    assert stdout_of(api.execute(victim, "print('works')")) == "works\n"
