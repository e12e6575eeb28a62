"""``POST /cell/stream``: outputs arrive as Server-Sent Events while the cell runs; a disconnect loses nothing."""

from __future__ import annotations

from testing.harness import Api, sse_events, stdout_of


def test_outputs_arrive_as_separate_events_in_order_then_done(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "import time\nfor i in range(4):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.7)")
    body = {"kernel_id": kernel, "cell_number": 1}
    with api.http.stream("POST", "/cell/stream", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(response))
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"output"}
    outputs = [data["output"] for kind, data in events if kind == "output"]
    assert len(outputs) >= 2  # one event per print, not one at the end
    assert "".join(o["text"] for o in outputs) == "tick 0\ntick 1\ntick 2\ntick 3\n"
    done = events[-1][1]
    assert done["status"] == "ok" and done["cell_number"] == 1 and stdout_of(done) == "tick 0\ntick 1\ntick 2\ntick 3\n"


def test_disconnect_mid_stream_keeps_the_run_going_and_stored(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "import time\nprint('begin', flush=True)\ntime.sleep(2)\nprint('end')\nfinished = True")
    with api.http.stream("POST", "/cell/stream", json={"kernel_id": kernel, "cell_number": 1}) as response:
        kind, data = next(sse_events(response))
        assert kind == "output" and data["output"]["text"] == "begin\n"
    # Disconnected. A run queued behind the streamed one sees its effects once it has finished.
    assert stdout_of(api.execute(kernel, "print(finished)")) == "True\n"
    stored = api.http.get("/cell_outputs", params={"kernel_id": kernel, "cell_number": 1}).json()
    assert stored["status"] == "ok" and stdout_of(stored) == "begin\nend\n"


def test_errors_before_the_run_are_plain_http_errors(api: Api, kernel: int) -> None:
    assert api.http.post("/cell/stream", json={"kernel_id": kernel, "cell_number": 9}).status_code == 404
    assert api.http.post("/cell/stream", json={"kernel_id": kernel}).status_code == 422


def test_stream_with_dependencies_and_stripped_tracebacks(api: Api, kernel: int) -> None:
    api.add(kernel, 1, "x = 2\nprint('one')")
    api.add(kernel, 2, "print(x)\n1 / 0")
    body = {"kernel_id": kernel, "cell_number": 2, "with_dependencies": True, "strip_ansi": True}
    with api.http.stream("POST", "/cell/stream", json=body) as response:
        events = list(sse_events(response))
    outputs = [(data["cell_number"], data["output"]) for kind, data in events if kind == "output"]
    assert [n for n, _ in outputs] == [1, 2, 2]
    assert outputs[-1][1]["ename"] == "ZeroDivisionError"
    assert not any("\x1b" in line for line in outputs[-1][1]["traceback"])
    done = events[-1][1]
    assert done["status"] == "error" and [r["cell_number"] for r in done["dependency_runs"]] == [1]
