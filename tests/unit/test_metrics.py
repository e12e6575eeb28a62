"""The HTTP metrics middleware (route templates, streams counted not timed) and the death-cause labels."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.sse import EventSourceResponse
from fastapi.testclient import TestClient

from gateway.metrics import GatewayMetrics
from gateway.metrics.http import HttpMetricsMiddleware
from gateway.metrics.observer import death_cause


def sample(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def app_with(metrics: GatewayMetrics) -> FastAPI:
    app = FastAPI()

    @app.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @app.get("/stream")
    async def stream() -> EventSourceResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b"data: 1\n\n"

        return EventSourceResponse(events())

    app.add_middleware(HttpMetricsMiddleware, metrics=metrics)
    return app


def test_requests_are_counted_by_route_template_and_streams_are_not_timed() -> None:
    metrics = GatewayMetrics()
    with TestClient(app_with(metrics)) as client:
        for n in range(3):
            assert client.get(f"/things/{n}").status_code == 200
        assert client.get("/things/x").status_code == 422
        assert client.get("/nowhere/12345").status_code == 404
        assert client.get("/stream").status_code == 200
    labels = {"route": "/things/{thing_id}", "method": "GET"}
    assert sample(metrics, "jupycell_http_requests_total", **labels, status="200") == 3
    assert sample(metrics, "jupycell_http_requests_total", **labels, status="422") == 1
    assert sample(metrics, "jupycell_http_request_duration_seconds_count", **labels) == 4
    assert sample(metrics, "jupycell_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert sample(metrics, "jupycell_http_requests_total", route="/stream", method="GET", status="200") == 1
    assert sample(metrics, "jupycell_http_request_duration_seconds_count", route="/stream", method="GET") == 0
    assert sample(metrics, "jupycell_open_streams", kind="sse") == 0  # closed again
    assert b"12345" not in metrics.exposition()


def test_death_causes_are_a_small_fixed_set() -> None:
    assert death_cause("the kernel died: out of memory (limit 512 MiB) while running cell 3") == "oom"
    assert death_cause("its container stopped answering while running cell 1") == "unresponsive"
    assert death_cause("the kernel died: exited with code 1 while running cell 2") == "exit"
    assert death_cause(None) == "other"
    metrics = GatewayMetrics()
    metrics.death("made-up")
    assert sample(metrics, "jupycell_kernel_deaths_total", cause="other") == 1
