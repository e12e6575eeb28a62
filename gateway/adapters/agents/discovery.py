"""Where the agents are: ``JUPYCELL_AGENTS`` parsed, and resolved to one address per agent.

The setting is a comma-separated list of ``host[:port]`` (the port is the agent's control port, 7700 by default).
A host may be a DNS name that resolves to several addresses, one per agent: Swarm's ``tasks.<service>`` does
that for a service's tasks. Names are resolved again at every refresh, so agents that come and go are followed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_CONTROL_PORT = 7700
_RESOLVE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Target:
    host: str
    port: int


def parse_targets(spec: str) -> list[Target]:
    """``host[:port]`` entries (``[v6]:port`` for IPv6); ValueError naming a bad one."""
    targets = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        host, port = entry, DEFAULT_CONTROL_PORT
        if entry.startswith("["):
            host, _, rest = entry[1:].partition("]")
            if rest:
                port = _port(entry, rest.removeprefix(":"))
        elif entry.count(":") == 1:
            host, text = entry.split(":")
            port = _port(entry, text)
        if not host:
            raise ValueError(f"agent address {entry!r} has no host")
        targets.append(Target(host, port))
    if not targets:
        raise ValueError("no agent address given")
    return targets


def _port(entry: str, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"agent address {entry!r}: the port must be a number from 1 to 65535")
    return int(text)


async def resolve(targets: list[Target]) -> set[tuple[str, int]]:
    """Every address the targets resolve to now, as ``(ip, port)``; a name that does not resolve gives none."""
    loop = asyncio.get_running_loop()

    async def one(target: Target) -> set[tuple[str, int]]:
        try:
            async with asyncio.timeout(_RESOLVE_TIMEOUT):
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as error:
            log.debug("agent address %s does not resolve: %s", target.host, error)
            return set()
        return {(str(info[4][0]), target.port) for info in infos}

    found: set[tuple[str, int]] = set()
    for addresses in await asyncio.gather(*(one(t) for t in targets)):
        found |= addresses
    return found
