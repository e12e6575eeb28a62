"""Issue 11: a listing gathered from every replica (``gateway.api.listings``): each kernel once, in id order; a
replica that answers late, wrongly or not at all has its kernels listed from the store, for the caller's key only."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import httpx
import pytest
from starlette.responses import Response

from gateway.api.listings import Listing, ReplicaListings, checked, merge
from gateway.kernels.kernel import Kernel
from gateway.kernels.ports import ReplicaPeer
from gateway.security.keys import Caller


class FakeService:
    """The two things a listing asks the core: the other live replicas, and what the store knows of the kernels
    that no answering replica serves."""

    def __init__(self, peers: list[str], stored: dict[str, list[Kernel]]) -> None:
        self.peers = [ReplicaPeer(name, f"http://{name}:8000") for name in peers]
        self.stored = stored
        self.answered: list[str] = []

    async def other_replicas(self) -> list[ReplicaPeer]:
        return self.peers

    async def kernels_stored_elsewhere(self, answered: Collection[str], owns: Any) -> list[Kernel]:
        self.answered = sorted(answered)
        return [k for name, ks in self.stored.items() if name not in answered for k in ks if owns(k.owner)]


def entry(kernel: Kernel, where: str) -> dict[str, Any]:
    return {"kernel_id": kernel.id, "owner": kernel.owner, "from": where}


def test_merge_lists_each_kernel_once_the_first_listing_winning_in_id_order() -> None:
    merged = merge([[{"kernel_id": 5, "from": "here"}], [{"kernel_id": 5, "from": "b"}, {"kernel_id": 2}], []])
    assert merged == [{"kernel_id": 2}, {"kernel_id": 5, "from": "here"}]


@pytest.mark.parametrize(
    "body",
    [{"kernels": []}, None, "x", [1], [{"id": "u"}], [{"kernel_id": "7"}], [{"kernel_id": True}], [{"kernel_id": 1.0}]],
)
def test_anything_but_a_list_of_kernel_entries_is_refused(body: Any) -> None:
    with pytest.raises(ValueError, match="not a listing"):
        checked(body)


def test_a_listing_gathers_the_answering_replicas_and_the_store_for_the_others() -> None:
    alice = Caller(key_id="alice")
    kernels = {i: Kernel(id=i, owner="bob" if i == 9 else "alice") for i in range(1, 10)}
    requests: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        host = request.url.host
        if host == "good":  # kernel 5 is listed here too (it just moved here): listed once, this replica's entry
            return httpx.Response(200, json={"kernels": [entry(kernels[2], "good"), entry(kernels[5], "good")]})
        if host == "broken":
            return httpx.Response(500, text="boom")
        if host == "garbage":
            return httpx.Response(200, json={"kernels": [{"kernel_id": "3"}]})
        if host == "refused":
            raise httpx.ConnectError("connection refused", request=request)
        await asyncio.sleep(60)  # "slow": never answers in time
        raise AssertionError("not reached")

    stored = {
        "good": [kernels[2]],  # never asked of the store: good answered
        "broken": [kernels[3]],
        "garbage": [kernels[4], kernels[9]],  # 9 is bob's: not listed for alice
        "refused": [kernels[6]],
        "slow": [kernels[7]],
        "dead": [kernels[8]],  # a replica whose lease expired, kernel not adopted yet
    }
    service = FakeService(["broken", "garbage", "good", "refused", "slow"], stored)

    async def scenario() -> Listing:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        listings = ReplicaListings("here", timeout=0.5, client=client)
        try:
            return await listings.gather(
                service, alice, "Bearer alice-secret", "/kernels",  # type: ignore[arg-type]
                lambda: [entry(kernels[1], "here"), entry(kernels[5], "here")], lambda body: body["kernels"],
                lambda kernel: entry(kernel, "store"),
            )  # fmt: skip
        finally:
            await listings.close()

    listing = asyncio.run(scenario())
    assert [(e["kernel_id"], e["from"]) for e in listing.entries] == [
        (1, "here"), (2, "good"), (3, "store"), (4, "store"), (5, "here"), (6, "store"), (7, "store"), (8, "store"),
    ]  # fmt: skip
    assert listing.unanswered == ["broken", "garbage", "refused", "slow"]
    assert service.answered == ["good"]
    assert sorted(r.url.host for r in requests) == ["broken", "garbage", "good", "refused", "slow"]
    for request in requests:  # the caller's own key, and the mark that makes the other replica answer alone
        assert request.url.path == "/kernels"
        assert request.headers["authorization"] == "Bearer alice-secret"
        assert request.headers["x-jupycell-forwarded-by"] == "here"

    response = Response()
    listing.mark(response)
    assert response.headers["x-jupycell-replicas-unanswered"] == "broken, garbage, refused, slow"


def test_without_other_replicas_nothing_is_asked_and_the_listing_is_this_replica_s() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no replica to ask")

    async def scenario() -> Listing:
        listings = ReplicaListings("here", 0.5, client=httpx.AsyncClient(transport=httpx.MockTransport(handler)))
        local = [{"kernel_id": 3}, {"kernel_id": 1}]
        listing = await listings.gather(
            FakeService([], {}), Caller(key_id=None), None, "/api/kernels", lambda: local,  # type: ignore[arg-type]
            lambda body: body, lambda kernel: {},
        )  # fmt: skip
        await listings.close()
        return listing

    listing = asyncio.run(scenario())
    assert listing.entries == [{"kernel_id": 1}, {"kernel_id": 3}] and listing.unanswered == []
    response = Response()
    listing.mark(response)
    assert "x-jupycell-replicas-unanswered" not in response.headers
