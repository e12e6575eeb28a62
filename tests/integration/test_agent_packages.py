"""Packages on demand through a node agent's control requests (``gateway.agent.packages``), the agent a plain process
on the local engine with its own wheel cache and a deny list of its own: malformed requests, unknown kernels and
requirements its own policy refuses get errors and fetch nothing; a real fetch (the real index) runs without holding
up the agent's other requests, its wheels are linked into the kernel's read-only mount, and the kernel's directory goes
with its container. End to end through a gateway: tests/integration/test_packages.py with JUPYCELL_TEST_BACKEND=agents.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.agent.client import AgentClient, AgentRefused
from testing.harness import remove_instance_containers, wait_for
from tests.integration.test_packages import helper_containers
from tests.support_agent import AgentKeys, AgentProcess, evaluate, relayed_kernel, run, wait_ready

pytestmark = pytest.mark.skipif(
    os.environ.get("JUPYCELL_RUNTIME", "runc") != "runc", reason="runtime-independent: runc run"
)


@pytest.fixture(scope="module")
def agent() -> Iterator[AgentProcess]:
    with tempfile.TemporaryDirectory(prefix="jcap-") as root:
        keys = AgentKeys(Path(root) / "keys")
        process = AgentProcess(Path(root), keys, mem_limit_mb=512, packages_deny="requests").start()
        try:
            yield process
        finally:
            process.stop()
            remove_instance_containers(process.instance)


@pytest.fixture(scope="module")
def kernel(agent: AgentProcess) -> Iterator[tuple[int, str, dict[str, int]]]:
    kernel_id, key = secrets.randbelow(2**40) + 1, secrets.token_hex(32)
    started = run(lambda c: c.start(kernel_id, key), agent)
    yield kernel_id, key, started.ports
    if agent.alive():
        run(lambda c: c.remove(kernel_id), agent)


def packages_dir(agent: AgentProcess) -> Path:
    return Path(agent.env["JUPYCELL_PACKAGES_DIR"])


def cached(agent: AgentProcess) -> set[str]:
    return {p.name for p in (packages_dir(agent) / "cache" / "wheels").glob("*.whl")}


def ask(agent: AgentProcess, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
    return run(lambda c: c.request(op, timeout, **fields), agent)


def refusal(agent: AgentProcess, op: str, **fields: Any) -> AgentRefused:
    with pytest.raises(AgentRefused) as caught:
        ask(agent, op, **fields)
    return caught.value


def test_malformed_package_requests_are_bad_requests_and_the_agent_goes_on(agent, kernel) -> None:
    kernel_id = kernel[0]
    malformed = [
        ("packages_fetch", {"kernel_id": kernel_id, "requirements": "tabulate"}),  # not a list
        ("packages_fetch", {"kernel_id": kernel_id, "requirements": []}),  # nothing asked
        ("packages_fetch", {"kernel_id": kernel_id, "requirements": ["x"] * 101}),  # too many
        ("packages_fetch", {"kernel_id": kernel_id, "requirements": ["a" * 301]}),  # too long
        ("packages_fetch", {"kernel_id": kernel_id, "requirements": ["tabulate"], "max_bytes": -1}),
        ("packages_fetch", {"kernel_id": kernel_id, "requirements": ["tabulate"], "deny": ["a b"]}),
        ("packages_lookup", {"kernel_id": "1; rm -rf /", "requirements": ["tabulate"]}),
        ("packages_lookup", {"kernel_id": 0, "requirements": ["tabulate"]}),
        ("packages_link", {"kernel_id": kernel_id, "wheels": "x"}),
        ("packages_link", {"kernel_id": kernel_id, "wheels": [{}] * 201}),
        ("packages_holds", {"kernel_id": kernel_id, "wheels": [], "extra": True}),
    ]
    for op, fields in malformed:
        assert refusal(agent, op, **fields).type == "bad_request", (op, fields)
    assert cached(agent) == set() and helper_containers(agent.instance) == []
    assert agent.alive() and run(lambda c: c.ping(), agent)


def test_a_kernel_the_agent_does_not_run_is_not_found(agent, kernel) -> None:
    for op, fields in (
        ("packages_lookup", {"requirements": ["tabulate"]}),
        ("packages_fetch", {"requirements": ["tabulate"], "max_bytes": 10**6}),
        ("packages_link", {"wheels": []}),
        ("packages_holds", {"wheels": []}),
    ):
        error = refusal(agent, op, kernel_id=kernel[0] + 1, **fields)
        assert error.type == "not_found" and "not running on this node" in str(error)
    assert helper_containers(agent.instance) == []


@pytest.mark.parametrize(
    ("fields", "ename", "reason"),
    [
        ({"op": "packages_fetch", "requirements": ["requests"]}, "PackageNotAllowed", "JUPYCELL_PACKAGES_DENY"),
        ({"op": "packages_lookup", "requirements": ["tabulate", "Requests>=2"]}, "PackageNotAllowed", "deny list"),
        ({"op": "packages_fetch", "requirements": ["https://evil.example/x.whl"]}, "InvalidPackageRequest", "URL"),
        ({"op": "packages_fetch", "requirements": ["-r /etc/passwd"]}, "InvalidPackageRequest", "option"),
        ({"op": "packages_fetch", "requirements": ["tabulate; id"]}, "InvalidPackageRequest", "metacharacters"),
        (
            {"op": "packages_link", "wheels": [{"filename": "../../etc/x-1.0-py3-none-any.whl", "size": 1}]},
            "PackageFetchFailed",
            "unsafe file name",
        ),
        (
            {"op": "packages_link", "wheels": [], "requirements": ["requests"]},
            "PackageNotAllowed",
            "deny list",
        ),
    ],
)
def test_requirements_and_wheels_are_checked_again_by_the_agent_itself(
    agent, kernel, fields: dict[str, Any], ename: str, reason: str
) -> None:
    """What a gateway let through (a gateway without the node's deny list, or a forged request with the gateway's
    key) is still refused by the node's own policy and parser; nothing is fetched."""
    op = fields.pop("op")
    body = ask(agent, op, kernel_id=kernel[0], max_bytes=10**6, **fields) if op == "packages_fetch" else None
    body = body or ask(agent, op, kernel_id=kernel[0], **fields)
    assert body["package_error"]["ename"] == ename, body
    assert reason in body["package_error"]["message"], body
    assert cached(agent) == set() and helper_containers(agent.instance) == []
    assert agent.alive()


def test_a_fetch_runs_without_holding_up_the_agent_and_its_wheels_reach_the_kernel_read_only(agent, kernel) -> None:
    kernel_id, key, ports = kernel
    assert ask(agent, "packages_lookup", kernel_id=kernel_id, requirements=["tabulate"]) == {"wheels": None}

    async def fetch_while_pinging(client: AgentClient) -> tuple[dict[str, Any], int]:
        fetch = asyncio.ensure_future(
            client.request("packages_fetch", 240, kernel_id=kernel_id, requirements=["tabulate"], max_bytes=10**7)
        )
        answered = 0
        while not fetch.done():  # other requests are answered while the helper runs
            await client.ping(timeout=10)
            answered += 1 if not fetch.done() else 0
            await asyncio.sleep(0.05)
        return await fetch, answered

    fetched, answered_meanwhile = run(fetch_while_pinging, agent)
    assert fetched["failure"] is None and fetched["index_url"].startswith("http"), fetched
    (wheel,) = fetched["wheels"]
    assert wheel["name"] == "tabulate" and cached(agent) == {wheel["filename"]}
    assert answered_meanwhile > 0
    assert ask(agent, "packages_lookup", kernel_id=kernel_id, requirements=["tabulate"])["wheels"] == [wheel]

    assert ask(agent, "packages_holds", kernel_id=kernel_id, wheels=[wheel]) == {"holds": False}
    assert ask(agent, "packages_link", kernel_id=kernel_id, wheels=[wheel], requirements=["tabulate"]) == {}
    assert ask(agent, "packages_holds", kernel_id=kernel_id, wheels=[wheel]) == {"holds": True}

    client = relayed_kernel(agent, key, ports)
    try:
        assert wait_ready(client, 60), agent.log()
        listing = evaluate(client, "sorted(__import__('os').listdir('/run/jupycell-wheels'))")
        assert listing == repr(sorted(["manifest.json", wheel["filename"]]))
        code = "import jupycell_pip\njupycell_pip.install(['tabulate'])\nimport tabulate\ntabulate.__name__"
        assert evaluate(client, code, timeout=120) == "'tabulate'"
        write = "try:\n    open('/run/jupycell-wheels/x', 'w')\n    r = 'written'\n"
        write += "except OSError as e:\n    r = e.strerror\n"
        assert evaluate(client, write + "r") == "'Read-only file system'"
    finally:
        client.stop_channels()

    directory = packages_dir(agent) / "kernels" / agent.instance / str(kernel_id)
    assert directory.is_dir()
    run(lambda c: c.remove(kernel_id), agent)
    wait_for("the kernel's wheel directory removed", lambda: not directory.exists() or None, timeout=30)
    assert cached(agent) == {wheel["filename"]}  # the node's cache keeps it for the next kernel
