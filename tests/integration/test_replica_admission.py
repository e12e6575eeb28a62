"""Two gateway processes of one deployment (same instance, same PostgreSQL, one engine), issue 11: 30 concurrent
starts spread over both all succeed, each kernel handed out once; a per-key limit exact across the two; the leader
killed, the other replica fills the shared pool."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from testing.harness import (
    GatewayProcess,
    instance_containers,
    postgres_database,
    skip_without_postgres,
    unique_instance,
    wait_for,
)
from tests.conftest import TEST_SETTINGS, GatewayFactory

POOL_SIZE = 3
PER_KEY = 3
KEYS = {f"k{n}": f"k{n}-secret-0123456789" for n in range(10)} | {"eve": "eve-secret-0123456789"}


@pytest.fixture
def database() -> Iterator[str]:
    skip_without_postgres()
    with postgres_database() as url:
        yield url


def replicas(factory: GatewayFactory, database: str, **settings: Any) -> list[GatewayProcess]:
    """Two started gateways of one deployment: same instance, kernels dir and database; a log file each."""
    instance = unique_instance("rep")
    started = []
    for name in ("a", "b"):
        gateway = GatewayProcess(
            factory.kernels_root / "replicas", instance=instance, database_url=database, keys=KEYS,
            **{**TEST_SETTINGS, "mem_limit_mb": 256, **settings},
        )  # fmt: skip
        gateway.log_path = gateway.log_path.with_name(f"gateway-{instance}-{name}.log")
        started.append(factory.start(gateway))
    return started


def client(gateway: GatewayProcess, key: str) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, timeout=300, headers={"Authorization": f"Bearer {KEYS[key]}"})


def start(gateway: GatewayProcess, key: str) -> httpx.Response:
    with client(gateway, key) as http:
        return http.post("/start")


def pool(gateway: GatewayProcess) -> dict[str, Any]:
    with client(gateway, "k0") as http:
        response = http.get("/pool")
    assert response.status_code == 200, response.text
    return response.json()


def full(gateway: GatewayProcess) -> dict[str, Any]:
    return wait_for("a full shared pool", lambda: (s := pool(gateway))["ready"] == POOL_SIZE and s, timeout=240)


def kernel_containers(instance: str) -> dict[int, list[str]]:
    """Kernel id → the ids of the containers labelled with it."""
    found: dict[int, list[str]] = {}
    for container in instance_containers(instance):
        found.setdefault(int(container["Labels"]["jupycell.kernel_id"]), []).append(container["Id"])
    return found


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_thirty_concurrent_starts_over_two_replicas_all_succeed_and_each_kernel_is_handed_out_once(
    gateway_factory: GatewayFactory, database: str
) -> None:
    gateways = replicas(gateway_factory, database, pool_size=POOL_SIZE, max_kernels_per_key=PER_KEY)
    full(gateways[1])
    pooled_before = {k for k, _ in kernel_containers(gateways[0].instance).items()}
    asks = [(gateways[n % 2], f"k{n % 10}") for n in range(30)]  # 10 keys x 3: every key at its limit
    with ThreadPoolExecutor(30) as threads:
        responses = list(threads.map(lambda ask: start(*ask), asks))
    assert [r.status_code for r in responses] == [200] * 30, [r.text for r in responses if r.status_code != 200]
    kernel_ids = [r.json()["kernel_id"] for r in responses]
    assert len(set(kernel_ids)) == 30
    containers = kernel_containers(gateways[0].instance)
    assert all(len(containers[k]) == 1 for k in kernel_ids)  # one container per kernel...
    assert len({containers[k][0] for k in kernel_ids}) == 30  # ...and no container handed out twice
    assert pooled_before & set(kernel_ids), "no start was served from the shared pool"
    assert sum(pool(g)["hits"] for g in gateways) >= 1
    # Each kernel answers its own replica with its own memory.
    for (gateway, key), kernel_id in zip(asks, kernel_ids, strict=True):
        with client(gateway, key) as http:
            body = {"kernel_id": kernel_id, "action": "add", "cell_number": 1, "code": f"x = {kernel_id}\nx"}
            assert http.post("/cell", json=body).status_code == 200
            run = http.post("/cell", json={"kernel_id": kernel_id, "action": "run", "cell_number": 1})
            assert run.status_code == 200, run.text
            assert run.json()["outputs"][0]["data"]["text/plain"] == str(kernel_id)
    # Every key is at its limit on both replicas together.
    assert start(gateways[0], "k0").status_code == 429 and start(gateways[1], "k9").status_code == 429


@pytest.mark.timeout(600)
def test_the_per_key_limit_is_exact_across_two_replicas_under_concurrent_starts(
    gateway_factory: GatewayFactory, database: str
) -> None:
    gateways = replicas(gateway_factory, database, pool_size=1, max_kernels_per_key=PER_KEY)
    extra = 5
    with ThreadPoolExecutor(PER_KEY + extra) as threads:
        responses = list(threads.map(lambda n: start(gateways[n % 2], "eve"), range(PER_KEY + extra)))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * PER_KEY + [429] * extra, [r.text for r in responses]
    refusal = next(r for r in responses if r.status_code == 429).json()
    assert "max_kernels_per_key" in str(refusal)
    # Another key is not held back; eve gets a slot back when one of hers is shut down, on either replica.
    assert start(gateways[1], "k1").status_code == 200
    first = next(r for r in responses if r.status_code == 200)
    owner = gateways[responses.index(first) % 2]
    with client(owner, "eve") as http:
        assert http.delete(f"/kernels/{first.json()['kernel_id']}").status_code == 200
    assert start(gateways[1 - responses.index(first) % 2], "eve").status_code == 200


@pytest.mark.timeout(600)
def test_when_the_leader_is_killed_the_other_replica_takes_over_and_fills_the_pool(
    gateway_factory: GatewayFactory, database: str
) -> None:
    gateways = replicas(gateway_factory, database, pool_size=POOL_SIZE)
    full(gateways[0])
    leaders = [g for g in gateways if pool(g)["leader"]]
    assert len(leaders) == 1
    leader, other = leaders[0], next(g for g in gateways if g is not leaders[0])
    leader.stop(signal.SIGKILL)
    wait_for("the other replica to lead", lambda: pool(other)["leader"], timeout=60)
    # The killed leader's pool kernels are still claimable; the new leader refills behind the claims.
    claimed = [start(other, f"k{n}") for n in range(POOL_SIZE + 1)]
    assert [r.status_code for r in claimed] == [200] * (POOL_SIZE + 1)
    assert pool(other)["hits"] >= POOL_SIZE
    status = full(other)
    assert status["leader"] is True
    fresh = [k for k in kernel_containers(other.instance) if k not in {r.json()["kernel_id"] for r in claimed}]
    assert len(fresh) >= POOL_SIZE
