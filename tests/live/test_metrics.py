"""GET /metrics after real work, parsed with prometheus-client's own parser: the counters move as the work says."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from testing.harness import Api, GatewayProcess


def scrape(base: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{base}/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_follow_the_work(gateway: GatewayProcess, api: Api) -> None:
    before = scrape(gateway.url)
    kernel = api.start()
    try:
        api.add(kernel, 1, "print('ok')")
        api.add(kernel, 2, "1/0")
        api.add(kernel, 3, "while True: pass")
        api.add(kernel, 4, "import sys\nfor _ in range(3000): sys.stdout.write('y' * 1000 + '\\n')")
        assert api.run(kernel, 1).json()["status"] == "ok"
        assert api.run(kernel, 2).json()["status"] == "error"
        assert api.run(kernel, 3, timeout=1).json()["status"] == "timeout"
        assert api.run(kernel, 4).json()["truncated"] is True
        assert api.http.get("/kernels/999999999999/cells").status_code == 404

        # An open event stream counts as one SSE connection while it is open.
        with httpx.stream("GET", f"{gateway.url}/kernels/{kernel}/events", timeout=30) as stream:
            lines = stream.iter_lines()  # (closing this iterator would close the stream)
            assert next(lines) == "event: snapshot"
            during = scrape(gateway.url)
        after = scrape(gateway.url)
    finally:
        api.shutdown(kernel)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    # Other tests of this worker ran before, never at the same time: the deltas are this test's.
    assert moved("jupycell_runs_total", status="ok") == 2  # cells 1 and 4
    assert moved("jupycell_runs_total", status="error") == 1
    assert moved("jupycell_runs_total", status="timeout") == 1
    assert moved("jupycell_run_duration_seconds_count", status="ok") == 2
    assert moved("jupycell_deadline_interrupts_total") == 1
    assert moved("jupycell_output_truncations_total") == 1
    assert moved("jupycell_kernel_start_duration_seconds_count", source="cold") == 1
    assert moved("jupycell_store_statement_duration_seconds_count") > 0
    assert moved("jupycell_http_requests_total", route="/cell", method="POST", status="200") >= 8
    assert moved("jupycell_http_requests_total", route="/kernels/{kernel_id}/cells", method="GET", status="404") == 1
    assert moved("jupycell_http_request_duration_seconds_count", route="/cell", method="POST") >= 8
    assert value(during, "jupycell_open_streams", kind="sse") - value(before, "jupycell_open_streams", kind="sse") == 1
    # not timed: no duration sample for the event stream route
    assert (
        value(after, "jupycell_http_request_duration_seconds_count", route="/kernels/{kernel_id}/events", method="GET")
        == 0
    )
    assert value(during, "jupycell_kernels", state="idle") >= 1
    for (name, labels), _ in after.items():  # no kernel ids, keys or raw paths in any label
        assert str(kernel) not in str(labels), (name, labels)


def test_metrics_are_protected_like_the_api_or_by_their_token(secured: GatewayProcess) -> None:
    assert httpx.get(f"{secured.url}/metrics").status_code == 401
    assert httpx.get(f"{secured.url}/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    samples = scrape(secured.url, Authorization="Bearer scrape-token-1234")
    assert ("jupycell_pool_hits_total", ()) in samples
    assert httpx.get(f"{secured.url}/kernels", headers={"Authorization": "Bearer scrape-token-1234"}).status_code == 401
