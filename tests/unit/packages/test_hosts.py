"""The ``PackageHost`` seam: ``PackageService`` over a fake host (single-flight per site, the host's index in the
error, a wheel evicted before linking), ``AgentPackageHost`` over a fake node (what it asks the agent, how it reads
the answers, bounded in time), and the agent's ``NodePackages`` on a real wheel cache with a fake fetch helper (its
own policy, its own caps, untrusted wheels). The real agent and index: tests/integration/test_agent_packages.py."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.agents.packages import FETCH_MARGIN, AgentPackageHost
from gateway.agent.client import AgentRefused
from gateway.agent.packages import NodePackages
from gateway.agent.protocol import PackagesLinkRequest, PackagesResolveRequest
from gateway.errors import SandboxUnavailable
from gateway.packages import errors
from gateway.packages.cache import CacheMiss, Wheel
from gateway.packages.host import Fetched
from gateway.packages.service import PackageService
from gateway.packages.settings import PackageSettings
from gateway.settings import Settings
from tests.unit.packages.test_service import FakeFetcher, FakeStore, kernel

SHA = "0" * 64


def wheel(name: str) -> Wheel:
    return Wheel(name, "1.0", f"{name}-1.0-py3-none-any.whl", SHA, 10)


class FakeHost:
    """A ``PackageHost`` that resolves each requirement to one wheel, slowly, counting its fetches per site."""

    def __init__(self, sites: dict[int, str] | None = None, failure: dict[str, Any] | None = None) -> None:
        self.sites = sites or {}
        self.failure = failure
        self.fetches: list[tuple[int, list[str]]] = []
        self.links: list[tuple[int, list[str]]] = []
        self.remembered: dict[tuple[str, tuple[str, ...]], list[Wheel]] = {}
        self.evict_before_next_link = False

    def site(self, sandbox_id: int) -> str:
        return self.sites.get(sandbox_id, "")

    async def start_up(self, keep: set[int]) -> None:
        return None

    async def lookup(self, sandbox_id: int, image: str | None, requirements: list[str]) -> list[Wheel] | None:
        return self.remembered.get((self.site(sandbox_id), tuple(requirements)))

    async def fetch(
        self, sandbox_id: int, image: str | None, requirements: list[str], max_bytes: int, deny: list[str]
    ) -> Fetched:
        self.fetches.append((sandbox_id, requirements))
        await asyncio.sleep(0.05)  # long enough for a concurrent request to wait on the same flight
        if self.failure is not None:
            return Fetched([], self.failure, "https://node.example/simple", 0.05, "node n1")
        wheels = [wheel(text) for text in requirements]
        self.remembered[(self.site(sandbox_id), tuple(requirements))] = wheels
        return Fetched(wheels, None, "https://node.example/simple", 0.05, "node n1")

    async def link(self, sandbox_id: int, wheels: list[Wheel], requirements: list[str]) -> None:
        if self.evict_before_next_link:
            self.evict_before_next_link = False
            raise CacheMiss(wheels[0].filename)
        self.links.append((sandbox_id, [w.filename for w in wheels]))

    async def holds(self, sandbox_id: int, wheels: list[Wheel]) -> bool:
        return False

    async def remove(self, sandbox_ids: set[int]) -> None:
        return None

    def close(self) -> None:
        return None


def service(host: FakeHost, **config: Any) -> PackageService:
    settings = Settings(instance="unit", kernels_dir=Path("/tmp/jc-unit"))
    return PackageService(settings, FakeStore(), PackageSettings(**config), host)


def test_fetches_are_single_flight_per_site_and_request() -> None:
    async def scenario() -> None:
        host = FakeHost({1: "n1", 2: "n1", 3: "n2"})
        packages = service(host)
        await asyncio.gather(*(packages.before_run(kernel(k), "%pip install tabulate") for k in (1, 2, 3)))
        assert sorted(sandbox for sandbox, _ in host.fetches) in ([1, 3], [2, 3])  # one per node
        assert sorted(sandbox for sandbox, _ in host.links) == [1, 2, 3]

    asyncio.run(scenario())


def test_a_helper_failure_names_the_index_the_host_asked() -> None:
    async def scenario() -> None:
        packages = service(FakeHost(failure={"kind": "unreachable", "message": "no route"}))
        refused = await packages.before_run(kernel(1), "%pip install tabulate")
        assert refused is not None and refused["ename"] == "PackageIndexUnreachable"
        assert "https://node.example/simple could not be reached" in str(refused["evalue"])

    asyncio.run(scenario())


def test_a_wheel_evicted_before_linking_is_fetched_again() -> None:
    async def scenario() -> None:
        host = FakeHost()
        host.evict_before_next_link = True
        packages = service(host)
        assert await packages.before_run(kernel(1), "%pip install tabulate") is None
        assert len(host.fetches) == 2 and host.links == [(1, ["tabulate-1.0-py3-none-any.whl"])]

    asyncio.run(scenario())


# --- the agents' adapter --------------------------------------------------------------------------------------


class FakeClient:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, float | None, dict[str, Any]]] = []

    async def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        self.asked.append((op, timeout, fields))
        answer = self.answers[op]
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)


class FakeNode:
    name = "n1"

    def __init__(self, client: FakeClient) -> None:
        self.client = client

    async def call(self, request: Callable[[Any], Awaitable[Any]]) -> Any:
        return await request(self.client)


class FakeBackend:
    def __init__(self, node: FakeNode | None) -> None:
        self.node = node

    def node_serving(self, kernel_id: int) -> FakeNode:
        if self.node is None:
            raise SandboxUnavailable(f"kernel {kernel_id} is on no known node")
        return self.node


def agent_host(answers: dict[str, Any]) -> tuple[AgentPackageHost, FakeClient]:
    client = FakeClient(answers)
    return AgentPackageHost(FakeBackend(FakeNode(client)), fetch_timeout=100), client  # type: ignore[arg-type]


def test_the_agent_adapter_asks_the_kernels_node_within_the_fetch_deadline() -> None:
    async def scenario() -> None:
        tabulate = wheel("tabulate").as_json()
        host, client = agent_host(
            {
                "packages_fetch": {"wheels": [tabulate], "failure": None, "index_url": "https://i/s", "seconds": 2},
                "packages_lookup": {"wheels": None},
                "packages_link": {"cache_miss": tabulate["filename"]},
                "packages_holds": {"holds": True},
            }
        )
        assert host.site(5) == "n1"
        assert await host.lookup(5, None, ["tabulate"]) is None
        fetched = await host.fetch(5, None, ["tabulate"], 1000, ["evil"])
        assert fetched.wheels == [wheel("tabulate")] and fetched.where == "node n1" and fetched.seconds == 2
        op, timeout, fields = client.asked[-1]
        assert op == "packages_fetch" and timeout == 100 + FETCH_MARGIN
        assert fields == {"kernel_id": 5, "requirements": ["tabulate"], "max_bytes": 1000, "deny": ["evil"]}
        with pytest.raises(CacheMiss):
            await host.link(5, [wheel("tabulate")], ["tabulate"])
        assert await host.holds(5, [wheel("tabulate")]) is True
        assert client.asked[-1][1] is None  # the backend's request timeout

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("answer", "expected", "text"),
    [
        ({"package_error": {"ename": "PackageNotAllowed", "message": "deny list"}}, errors.PackageNotAllowed, "deny"),
        ({"package_error": {"ename": "SystemExit", "message": "x"}}, errors.PackageFetchFailed, "x"),
        ({"wheels": [{"filename": "../x-1.0-py3-none-any.whl"}]}, errors.PackageFetchFailed, "unusable wheels"),
        ({"wheels": "nope"}, errors.PackageFetchFailed, "unusable wheels"),
        (AgentRefused("not_found", "kernel 5 is not running"), errors.PackageFetchFailed, "refused"),
        (SandboxUnavailable("no answer"), errors.PackageFetchFailed, "did not answer"),
    ],
)
def test_the_agents_answers_are_untrusted(answer: Any, expected: type[Exception], text: str) -> None:
    host, _ = agent_host({"packages_lookup": answer})
    with pytest.raises(expected, match=text):
        asyncio.run(host.lookup(5, None, ["tabulate"]))


def test_a_kernel_on_no_known_node_is_a_clear_error() -> None:
    host = AgentPackageHost(FakeBackend(None), fetch_timeout=100)  # type: ignore[arg-type]
    assert host.site(5) == ""
    with pytest.raises(errors.PackageFetchFailed, match="no known node"):
        asyncio.run(host.holds(5, []))


# --- the agent's side -----------------------------------------------------------------------------------------


def node_packages(tmp_path: Path, **config: Any) -> tuple[NodePackages, FakeFetcher]:
    settings = Settings(instance="node", kernels_dir=Path("/tmp/jc-unit"))
    packages = NodePackages(settings, PackageSettings(packages_dir=tmp_path / "packages", **config), max_fetches=1)
    packages.host.fetcher.close()
    fetcher = FakeFetcher()

    async def container_image(name: str) -> str:
        return "sha256:kernel-image"

    fetcher.container_image = container_image  # type: ignore[attr-defined]
    packages.host.fetcher = fetcher  # type: ignore[assignment]
    packages.host.index_url = "https://index.example/simple"
    return packages, fetcher


def resolve(op: str, requirements: list[str], **fields: Any) -> PackagesResolveRequest:
    return PackagesResolveRequest(v=1, id="r", op=op, kernel_id=5, requirements=requirements, **fields)  # type: ignore[arg-type]


def link(op: str, wheels: list[dict[str, Any]], requirements: list[str] | None = None) -> PackagesLinkRequest:
    return PackagesLinkRequest(v=1, id="l", op=op, kernel_id=5, wheels=wheels, requirements=requirements or [])  # type: ignore[arg-type]


def test_the_node_fetches_within_its_own_caps_and_deny_list_and_links_checked_wheels(tmp_path: Path) -> None:
    async def scenario() -> None:
        packages, fetcher = node_packages(tmp_path, packages_deny="evil", packages_max_request_mb=1)
        body = await packages.answer(resolve("packages_fetch", ["tabulate"], max_bytes=10**9, deny=["Other"]), "c")
        (job,) = fetcher.jobs
        assert job.max_bytes == 2**20 and job.deny == ["evil", "other"] and job.image == "sha256:kernel-image"
        assert body["failure"] is None and body["index_url"] == "https://index.example/simple"
        (tabulate,) = body["wheels"]
        looked_up = await packages.answer(resolve("packages_lookup", ["tabulate"]), "c")
        assert looked_up == {"wheels": [tabulate]}
        assert await packages.answer(link("packages_holds", [tabulate]), "c") == {"holds": False}
        assert await packages.answer(link("packages_link", [tabulate], ["tabulate"]), "c") == {}
        assert await packages.answer(link("packages_holds", [tabulate]), "c") == {"holds": True}
        assert packages.container_mounts(5)["volumes"]  # the kernel's wheel directory, mounted read-only
        await packages.remove(5)
        assert await packages.answer(link("packages_holds", [tabulate]), "c") == {"holds": False}

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("request_", "ename"),
    [
        (resolve("packages_fetch", ["evil"]), "PackageNotAllowed"),
        (resolve("packages_lookup", ["tabulate", "EVIL==1"]), "PackageNotAllowed"),
        (resolve("packages_fetch", ["https://x.example/evil.whl"]), "InvalidPackageRequest"),
        (link("packages_link", [{"filename": "/etc/passwd"}]), "PackageFetchFailed"),
        (link("packages_link", [], ["evil"]), "PackageNotAllowed"),
    ],
)
def test_the_node_refuses_on_its_own(tmp_path: Path, request_: Any, ename: str) -> None:
    packages, fetcher = node_packages(tmp_path, packages_deny="evil")
    body = asyncio.run(packages.answer(request_, "c"))
    assert body["package_error"]["ename"] == ename and fetcher.jobs == []


def test_packages_off_on_the_node_refuses_and_mounts_nothing(tmp_path: Path) -> None:
    packages, fetcher = node_packages(tmp_path, packages="off")
    body = asyncio.run(packages.answer(resolve("packages_fetch", ["tabulate"]), "c"))
    assert body["package_error"]["ename"] == "PackageNotAllowed" and "JUPYCELL_PACKAGES=off" in str(body)
    assert packages.container_mounts(5) == {} and fetcher.jobs == []


def test_fetches_over_the_nodes_limit_are_refused_at_once(tmp_path: Path) -> None:
    async def scenario() -> None:
        packages, fetcher = node_packages(tmp_path)
        release = asyncio.Event()
        run = fetcher.run

        async def slow(job: Any) -> None:
            await release.wait()
            await run(job)

        fetcher.run = slow  # type: ignore[method-assign]
        first = asyncio.ensure_future(packages.answer(resolve("packages_fetch", ["tabulate"], max_bytes=10**6), "c"))
        while not fetcher.jobs and packages._fetching == 0:
            await asyncio.sleep(0.01)
        second = await packages.answer(resolve("packages_fetch", ["pyyaml"], max_bytes=10**6), "c")
        assert "package fetches already" in second["package_error"]["message"]
        release.set()
        assert (await first)["failure"] is None

    asyncio.run(scenario())
