"""Issue 11: a kernel listing shows the kernels of every replica of the deployment, whichever replica is asked.

With several replicas (``app.state.listings`` is set; never with SQLite), a listing (``GET /kernels``,
``GET /api/kernels``, the MCP tool ``list_kernels``) is made of:

1. this replica's own kernels;
2. each other live replica's own listing (lease alive, from the store), asked over HTTP, all at once, at the same
   listing path with the caller's ``Authorization`` header, so that the other replica authenticates the caller and
   filters by key exactly as this one does, and with ``x-jupycell-forwarded-by``, so that it answers with its own
   kernels only (a fan-out never fans out again);
3. from the store, the kernels of the replicas that did not answer within ``replica_listing_timeout`` (or answered
   anything but a well-formed listing), and of replicas that died and whose kernels are not adopted yet: as last
   stored (state, cells, activity), listed for the caller's key only. The answer then names those replicas in the
   ``x-jupycell-replicas-unanswered`` header, and a warning is logged.

Each kernel is listed once (by ``kernel_id``: this replica's entry first, then another replica's, then the store's),
in ascending ``kernel_id``. A client that sends ``x-jupycell-forwarded-by`` itself gets this replica's own kernels
only, under its own key: a smaller listing, nothing more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.replicas import FORWARDED_BY
from gateway.kernels.kernel import Kernel
from gateway.kernels.ports import ReplicaPeer
from gateway.kernels.service import KernelService
from gateway.security.keys import Caller

log = logging.getLogger(__name__)

Entry = dict[str, Any]
#: A listing's JSON body (as another replica answers it) to its entries; raises on anything else.
Parse = Callable[[Any], list[Entry]]
#: A kernel known from the store only, as an entry of the listing.
Render = Callable[[Kernel], Entry]
#: This replica's own entries.
Local = Callable[[], list[Entry]]

UNANSWERED_HEADER = "x-jupycell-replicas-unanswered"


@dataclass(frozen=True)
class Listing:
    """The entries of a listing, and the replicas that did not answer (their kernels are listed as last stored)."""

    entries: list[Entry]
    unanswered: list[str]

    def mark(self, response: Response) -> None:
        """Name the replicas that did not answer in the response's headers."""
        if self.unanswered:
            response.headers[UNANSWERED_HEADER] = ", ".join(self.unanswered)


class ReplicaListings:
    """Asks the other live replicas for their own listings (one HTTP client, bounded in time)."""

    def __init__(self, replica_id: str, timeout: float, client: httpx.AsyncClient | None = None) -> None:
        self.replica_id = replica_id
        self.timeout = timeout
        self._client = client  # None: made on first use

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:  # made on first use: on the serving loop
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, trust_env=False)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def gather(
        self, service: KernelService, caller: Caller, authorization: str | None, path: str,
        local: Local, parse: Parse, render: Render,
    ) -> Listing:  # fmt: skip
        """This replica's entries (``local()``) with every other replica's (asked at ``path``) and the store's.

        ``local()`` is read last: a kernel this replica adopted meanwhile is in its registry by then (an adoption
        registers the kernel as soon as the store's transaction is done, and the store answers in order)."""
        peers = await service.other_replicas()
        answers = await asyncio.gather(*(self._ask(peer, path, authorization, parse) for peer in peers))
        answered = [peer.replica_id for peer, answer in zip(peers, answers, strict=True) if answer is not None]
        unanswered = [peer.replica_id for peer, answer in zip(peers, answers, strict=True) if answer is None]
        stored = await service.kernels_stored_elsewhere(answered, caller.owns)
        entries = merge([local(), *(answer for answer in answers if answer is not None), map(render, stored)])
        return Listing(entries, unanswered)

    async def _ask(self, peer: ReplicaPeer, path: str, authorization: str | None, parse: Parse) -> list[Entry] | None:
        """The peer's own listing, or None if it does not give a well-formed one in time."""
        headers = {FORWARDED_BY.decode(): self.replica_id, "accept": "application/json"}
        if authorization is not None:
            headers["authorization"] = authorization
        try:
            async with asyncio.timeout(self.timeout):  # the whole exchange, not each read
                response = await self.client.get(peer.url + path, headers=headers)
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            return checked(parse(response.json()))
        except (httpx.HTTPError, TimeoutError, ValueError, KeyError, TypeError) as error:
            why = str(error) or type(error).__name__
            log.warning(
                "replica %s did not list its kernels at %s (%s): they are listed as last stored",
                peer.replica_id, peer.url, why,
            )  # fmt: skip
            return None


async def everywhere(
    request: Request, caller: Caller, local: Local, parse: Parse, render: Render,
    path: str | None = None, app: Starlette | None = None,
) -> Listing:  # fmt: skip
    """The listing of the deployment's kernels the caller may see: this replica's (``local()``) alone for a single
    gateway or a request another replica sent (``x-jupycell-forwarded-by``), else gathered from every replica.
    ``path``: where the other replicas serve the same listing (default: this request's path); ``app``: the
    gateway's app (default: the request's; a mounted app, such as the MCP server's, has its own)."""
    state = (app or request.app).state
    listings: ReplicaListings | None = getattr(state, "listings", None)
    if listings is None or FORWARDED_BY.decode() in request.headers:
        return Listing(local(), [])
    service: KernelService = state.service
    authorization = request.headers.get("authorization")
    return await listings.gather(service, caller, authorization, path or request.url.path, local, parse, render)


def merge(listings: Iterable[Iterable[Entry]]) -> list[Entry]:
    """Each kernel once, the first listing that names it winning, in ascending ``kernel_id``."""
    by_id: dict[int, Entry] = {}
    for listing in listings:
        for entry in listing:
            by_id.setdefault(entry["kernel_id"], entry)
    return [by_id[kernel_id] for kernel_id in sorted(by_id)]


def checked(entries: Any) -> list[Entry]:
    """``entries`` if it is a list of objects each with an integer ``kernel_id``; ValueError otherwise."""
    if not isinstance(entries, list) or not all(
        isinstance(entry, dict) and type(entry.get("kernel_id")) is int for entry in entries
    ):
        raise ValueError("not a listing of kernels")
    return entries
