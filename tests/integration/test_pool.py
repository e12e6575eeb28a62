"""The warm pool, against real containers: claims, refills, isolation between claimed kernels, deaths, clean-up,
and 30 concurrent starts with the pool warm and with it drained."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from testing.harness import Api, GatewayProcess, instance_containers, stdout_of, wait_for
from tests.conftest import GatewayFactory

POOL_SIZE = 3


@dataclass(frozen=True)
class Container:
    id: str
    name: str
    labels: dict[str, str]


def containers(instance: str) -> list[Container]:
    """The instance's containers, in one engine call (no per-container look-up that could race a removal)."""
    return [Container(c["Id"], c["Names"][0].lstrip("/"), c["Labels"]) for c in instance_containers(instance)]


def kill(container: Container) -> None:
    client = docker.APIClient()
    try:
        client.kill(container.id)
    finally:
        client.close()


@pytest.fixture(scope="module")
def pool_gateway(kernels_root: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(kernels_root / "pool", pool_size=POOL_SIZE, mem_limit_mb=512) as process:
        yield process


@pytest.fixture(scope="module")
def pool_api(pool_gateway: GatewayProcess) -> Iterator[Api]:
    with Api(pool_gateway.url) as client:
        yield client


def pool_status(api: Api) -> dict[str, Any]:
    response = api.http.get("/pool")
    assert response.status_code == 200, response.text
    return response.json()


def wait_full(api: Api) -> dict[str, Any]:
    return wait_for("a full pool", lambda: (s := pool_status(api))["ready"] == s["size"] and s)


def test_start_claims_a_ready_kernel_and_the_pool_refills(pool_api: Api, pool_gateway: GatewayProcess) -> None:
    before = wait_full(pool_api)
    assert before["size"] == POOL_SIZE and before["profile"]["mem_limit_mb"] == 512
    pooled = {c.name: c for c in containers(pool_gateway.instance) if "jupycell.pool" in c.labels}
    assert len(pooled) == POOL_SIZE

    kernel_id = pool_api.start()
    try:
        after = pool_status(pool_api)
        assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]
        # The kernel is one of the pooled containers, made for its id: named and labelled like any kernel's.
        mine = pooled.pop(f"jupycell-{pool_gateway.instance}-{kernel_id}")
        assert mine.labels["jupycell.kernel_id"] == str(kernel_id)
        assert pool_api.execute(kernel_id, "21 * 2")["outputs"][0]["data"]["text/plain"] == "42"
        # The ids of kernels still in the pool reach nothing.
        unclaimed = next(iter(pooled.values())).labels["jupycell.kernel_id"]
        assert pool_api.http.get(f"/kernels/{unclaimed}").status_code == 404
        refilled = wait_full(pool_api)
        now_pooled = {c.id for c in containers(pool_gateway.instance) if c.id != mine.id}
        assert len(now_pooled) == refilled["size"]
    finally:
        assert pool_api.shutdown(kernel_id).status_code == 200
    assert mine.id not in {c.id for c in containers(pool_gateway.instance)}


def test_claimed_kernels_share_nothing(pool_api: Api, pool_gateway: GatewayProcess) -> None:
    wait_full(pool_api)
    first, second = pool_api.start(), pool_api.start()
    try:
        assert first != second
        pool_api.execute(first, "secret = 'mine'\nopen('/work/note.txt', 'w').write('mine')")
        result = pool_api.execute(second, "print(sorted(__import__('os').listdir('/work')))\nsecret")
        assert stdout_of(result) == "[]\n" and result["outputs"][-1]["ename"] == "NameError"
        # Every kernel, claimed or still pooled, has its own connection key.
        keys = [
            json.loads(path.read_text())["key"]
            for path in (pool_gateway.kernels_dir / pool_gateway.instance).glob("*/kernel.json")
        ]
        assert len(keys) >= 2 and len(set(keys)) == len(keys)
    finally:
        pool_api.shutdown(first)
        pool_api.shutdown(second)


def test_a_claimed_kernel_that_dies_is_reported_and_restarted(pool_api: Api) -> None:
    wait_full(pool_api)
    kernel_id = pool_api.start()
    try:
        result = pool_api.execute(kernel_id, "import os; os._exit(3)")
        assert result["status"] == "died" and "exited with code 3" in result["detail"]
        assert pool_api.execute(kernel_id, "1 + 1")["outputs"][0]["data"]["text/plain"] == "2"
    finally:
        pool_api.shutdown(kernel_id)


def test_a_pooled_container_that_dies_is_replaced(pool_api: Api, pool_gateway: GatewayProcess) -> None:
    wait_full(pool_api)
    claimed = {str(k["kernel_id"]) for k in pool_api.http.get("/kernels").json()["kernels"]}
    victim = [
        c
        for c in containers(pool_gateway.instance)
        if "jupycell.pool" in c.labels and c.labels["jupycell.kernel_id"] not in claimed
    ][0]
    kill(victim)
    wait_for(
        "the dead container to be replaced",
        lambda: victim.id not in {c.id for c in containers(pool_gateway.instance)} and wait_full(pool_api),
    )
    kernel_id = pool_api.start()
    try:
        assert pool_api.execute(kernel_id, "1 + 1")["status"] == "ok"
    finally:
        pool_api.shutdown(kernel_id)


def _start_many(api: Api, count: int) -> list[int]:
    with ThreadPoolExecutor(count) as threads:
        responses = list(threads.map(lambda _: api.http.post("/start"), range(count)))
    assert [r.status_code for r in responses] == [200] * count, [r.text for r in responses if r.status_code != 200]
    return [r.json()["kernel_id"] for r in responses]


def _check_and_shut_down(api: Api, kernel_ids: list[int]) -> None:
    try:
        assert len(set(kernel_ids)) == len(kernel_ids)
        with ThreadPoolExecutor(10) as threads:
            results = list(threads.map(lambda k: api.execute(k, "6 * 7"), kernel_ids))
        assert [r["outputs"][0]["data"]["text/plain"] for r in results] == ["42"] * len(kernel_ids)
    finally:
        with ThreadPoolExecutor(10) as threads:
            list(threads.map(api.shutdown, kernel_ids))


@pytest.mark.slow
@pytest.mark.timeout(900)  # 60 kernel starts and runs: minutes on a loaded 2-core machine, more under gVisor
def test_30_concurrent_starts_with_the_pool_warm_then_drained(pool_api: Api, pool_gateway: GatewayProcess) -> None:
    before = wait_full(pool_api)
    warm = _start_many(pool_api, 30)
    drained = _start_many(pool_api, 30)  # the pool is empty or refilling: mostly cold starts
    after = pool_status(pool_api)
    try:
        assert after["hits"] - before["hits"] >= POOL_SIZE
        assert (after["hits"] - before["hits"]) + (after["misses"] - before["misses"]) == 60
    finally:
        _check_and_shut_down(pool_api, warm + drained)
    kernels = pool_api.http.get("/kernels").json()["kernels"]
    assert not {k["kernel_id"] for k in kernels} & set(warm + drained)


def test_pool_size_zero_turns_the_pool_off(api: Api, kernel: int) -> None:
    status = api.http.get("/pool").json()
    assert (status["size"], status["ready"], status["starting"], status["hits"]) == (0, 0, 0, 0)


@pytest.mark.slow
def test_pool_containers_are_removed_on_stop_and_as_leftovers(gateway_factory: GatewayFactory) -> None:
    first = gateway_factory("pool-stop", pool_size=1)
    with Api(first.url) as client:
        wait_full(client)
    assert [c.labels["jupycell.managed"] for c in containers(first.instance)] == ["true"]
    assert first.stop() in (0, -15)
    assert containers(first.instance) == []
    assert not list((first.kernels_dir / first.instance).glob("*/kernel.json"))

    # A gateway killed with SIGKILL leaves its pool behind; the next start of the instance removes it.
    crashed = gateway_factory.again(first)
    with Api(crashed.url) as client:
        wait_full(client)
    crashed.stop(sig=9)
    assert len(containers(first.instance)) == 1
    third = gateway_factory.again(first, pool_size=0)
    assert containers(first.instance) == []
    third.stop()
