"""The gateway's Prometheus metrics, in a registry of their own (one per app, so tests can build several apps).

Names follow Prometheus conventions: ``jupycell_`` prefix, base units, ``_total`` on counters. Labels are few
and bounded (status, source, cause, route template, kind); never a kernel id, key id or path.

Gauges that describe the present (kernels by state, the warm pool) are read when scraped, from callables given
to ``watch_kernels`` / ``watch_pool``; everything else is observed as it happens (see ``gateway.metrics.observer``
and ``gateway.metrics.http``).
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

KERNEL_STATES = ("starting", "idle", "busy", "dead")
RUN_STATUSES = ("ok", "error", "timeout", "died")
DEATH_CAUSES = ("oom", "exit", "unresponsive", "culled", "other")

disable_created_metrics()  # type: ignore[no-untyped-call]  # no ``*_created`` series: they double the exposition for nothing here

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_START_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60)
_STORE_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class _PresentState(Collector):
    """Kernels by state and the warm pool, read at scrape time."""

    def __init__(self) -> None:
        self.kernel_states: Callable[[], Iterable[str]] | None = None
        self.pool_status: Callable[[], dict[str, Any]] | None = None

    def collect(self) -> Iterable[Any]:
        if self.kernel_states is not None:
            family = GaugeMetricFamily("jupycell_kernels", "Kernels of this gateway by state.", labels=["state"])
            tally = Tally(self.kernel_states())
            for state in sorted({*KERNEL_STATES, *tally}):
                family.add_metric([state], tally.get(state, 0))
            yield family
        if self.pool_status is not None:
            status = self.pool_status()
            yield GaugeMetricFamily("jupycell_pool_size", "Warm pool target size.", value=status["size"])
            yield GaugeMetricFamily("jupycell_pool_ready", "Warm kernels ready to claim.", value=status["ready"])
            yield GaugeMetricFamily("jupycell_pool_starting", "Warm kernels being started.", value=status["starting"])
            yield CounterMetricFamily("jupycell_pool_hits", "Starts served from the warm pool.", value=status["hits"])
            yield CounterMetricFamily(
                "jupycell_pool_misses", "Starts that found the pool empty.", value=status["misses"]
            )
            yield CounterMetricFamily(
                "jupycell_pool_failures", "Warm kernels that failed to start.", value=status["failures"]
            )


class GatewayMetrics:
    """Every metric the gateway exposes. Observation methods are cheap and safe to call from the event loop."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._present = _PresentState()
        r.register(self._present)
        self.kernel_start_seconds = Histogram(
            "jupycell_kernel_start_duration_seconds",
            "Time from POST /start to a kernel that answers, by source (pool: claimed warm; cold: new container).",
            ["source"],
            buckets=_START_SECONDS,
            registry=r,
        )
        self.runs = Counter("jupycell_runs", "Cell runs by how they ended.", ["status"], registry=r)
        self.run_seconds = Histogram(
            "jupycell_run_duration_seconds", "Cell run duration by status.", ["status"], buckets=_SECONDS, registry=r
        )
        self.deaths = Counter(
            "jupycell_kernel_deaths",
            "Kernels that died or were shut down by the gateway, by cause.",
            ["cause"],
            registry=r,
        )
        self.deadline_interrupts = Counter(
            "jupycell_deadline_interrupts",
            "Runs interrupted at their deadline (whether or not the kernel then had to be replaced).",
            registry=r,
        )
        self.replacements = Counter(
            "jupycell_kernel_replacements",
            "Kernel containers replaced by fresh ones (deadline passed and interrupt ignored, or died).",
            ["reason"],
            registry=r,
        )
        self.truncations = Counter(
            "jupycell_output_truncations", "Runs whose outputs were cut at the output caps.", registry=r
        )
        self.store_seconds = Histogram(
            "jupycell_store_statement_duration_seconds",
            "Duration of the durable store's SQL statements.",
            buckets=_STORE_SECONDS,
            registry=r,
        )
        self.http_requests = Counter(
            "jupycell_http_requests",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "jupycell_http_request_duration_seconds",
            "HTTP request duration by route template and method (streaming and websocket routes are not timed).",
            ["route", "method"],
            buckets=_SECONDS,
            registry=r,
        )
        self.open_streams = Gauge(
            "jupycell_open_streams",
            "Open long-lived connections: sse (event streams), websocket (Jupyter kernel channels relay).",
            ["kind"],
            registry=r,
        )
        for status in RUN_STATUSES:
            self.runs.labels(status)
        for cause in DEATH_CAUSES:
            self.deaths.labels(cause)
        for kind in ("sse", "websocket"):
            self.open_streams.labels(kind)

    # --- present state, read at scrape time -------------------------------------------------------------------

    def watch_kernels(self, states: Callable[[], Iterable[str]]) -> None:
        self._present.kernel_states = states

    def watch_pool(self, status: Callable[[], dict[str, Any]]) -> None:
        self._present.pool_status = status

    def watch_store(self, engine: Any) -> None:
        """Time every SQL statement of this SQLAlchemy engine (cursor events: in the store's own thread)."""
        from sqlalchemy import event

        def before(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, many: Any) -> None:
            conn.info.setdefault("jupycell_started", []).append(time.perf_counter())

        def after(conn: Any, cursor: Any, statement: Any, parameters: Any, context: Any, many: Any) -> None:
            started = conn.info.get("jupycell_started")
            if started:
                self.store_seconds.observe(time.perf_counter() - started.pop())

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)

    # --- observations ------------------------------------------------------------------------------------------

    def death(self, cause: str) -> None:
        self.deaths.labels(cause if cause in DEATH_CAUSES else "other").inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
