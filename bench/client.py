"""A minimal HTTP/1.1 keep-alive JSON client on asyncio streams.

The benchmark measures the gateway, not the client: httpx costs a few hundred microseconds of CPU per request on
this machine, this costs a few tens, which matters on 2 cores shared with the gateway and the kernels.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class HttpError(Exception):
    pass


class Connection:
    """One keep-alive connection to ``127.0.0.1:port``; one request at a time."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request, return (status, parsed JSON body). A keep-alive connection the server closed
        while idle (uvicorn: after 5 s) is reopened and the request sent again (it never reached the server)."""
        reused = self._writer is not None
        try:
            return await self._request(method, path, body)
        except (HttpError, ConnectionError):
            if not reused:
                raise
            await self.close()
            return await self._request(method, path, body)

    async def _request(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self._writer.write(head.encode() + payload)
        status_line = await self._reader.readline()
        if not status_line:
            await self.close()
            raise HttpError("connection closed by the server")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        data = await self._reader.readexactly(length) if length else b""
        return status, (json.loads(data) if data else None)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except OSError:
                pass
        self._reader = self._writer = None
