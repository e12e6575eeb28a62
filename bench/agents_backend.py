"""``1+1`` through a gateway with ``JUPYCELL_BACKEND=agents`` (the kernel behind a node agent's CurveZMQ relay)
against a gateway with the local backend, in the same run and interleaved: p50 of each, the difference, and the
issue's target (relay within +1.5 ms of local).

Both gateways are real processes on this machine (the agent a plain process on the local engine), each on a
PostgreSQL database of its own from ``scripts/ensure-postgres.sh`` (the agents backend needs it; the local one is
put on it too, so the store's cost is the same on both sides and the difference is the backend's); each run is
``POST /kernels/{id}/execute`` of ``1+1``, so both sides pay the same HTTP cost. Usage:
``python bench/agents_backend.py [runs=200]`` (or ``make bench-agent``); needs ``JUPYCELL_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testing.agents import AgentProcess  # noqa: E402
from testing.harness import (  # noqa: E402
    TEST_POSTGRES_URL,
    Api,
    GatewayProcess,
    agent_keys,
    postgres_database,
    remove_instance_containers,
)

TARGET_MS = 1.5


def main(runs: int) -> None:
    if not TEST_POSTGRES_URL:
        sys.exit("set JUPYCELL_TEST_POSTGRES_URL=$(scripts/ensure-postgres.sh): the agents backend needs PostgreSQL")
    keys = agent_keys()
    with (
        tempfile.TemporaryDirectory(prefix="jcb-") as root,
        postgres_database() as url,
        postgres_database() as local_url,
    ):
        agent = AgentProcess(Path(root), keys).start()
        agents_settings = {
            "backend": "agents", "agents": agent.address, "database_url": url,
            "gateway_curve_secret_file": keys.gateway_secret_file, "agent_curve_public_file": keys.agent_public_file,
        }  # fmt: skip
        gateways = {
            "local": GatewayProcess(Path(root) / "local", audit_log="off", database_url=local_url),
            "agents": GatewayProcess(Path(root) / "agents", audit_log="off", **agents_settings),
        }
        try:
            apis = {name: Api(gateway.start().url) for name, gateway in gateways.items()}
            kernels = {name: api.start() for name, api in apis.items()}
            times: dict[str, list[float]] = {name: [] for name in apis}
            for i in range(runs + 5):  # interleaved, 5 untimed rounds first
                for name, api in apis.items():
                    t0 = time.perf_counter()
                    response = api.http.post(f"/kernels/{kernels[name]}/execute", json={"code": "1+1"})
                    elapsed = (time.perf_counter() - t0) * 1000
                    assert response.status_code == 200 and response.json()["status"] == "ok", response.text
                    if i >= 5:
                        times[name].append(elapsed)
        finally:
            for gateway in gateways.values():
                gateway.stop()
                remove_instance_containers(gateway.instance)
            agent.stop()
            remove_instance_containers(agent.instance)
    local, relayed = statistics.median(times["local"]), statistics.median(times["agents"])
    difference = relayed - local
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"1+1 via POST /kernels/{{id}}/execute, {runs} runs each, interleaved, load {load}")
    print(f"  local backend   p50 {local:7.2f} ms")
    print(f"  agents backend  p50 {relayed:7.2f} ms  ({difference:+.2f} ms)")
    print(f"  target: within +{TARGET_MS} ms of local: {'met' if difference <= TARGET_MS else 'not met'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
