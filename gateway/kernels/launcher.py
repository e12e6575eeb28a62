"""The one way a kernel's container is started (cold starts, the warm pool, restarts, replacements) and torn down."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.errors import KernelGone, KernelStartFailed, KernelUnresponsive
from gateway.kernels.ports import KernelConnection, KernelConnector, SandboxBackend, SandboxHandle


@dataclass
class Launched:
    """A started kernel container whose kernel answers, and the connection to it."""

    handle: SandboxHandle
    client: KernelConnection


class KernelLauncher:
    """Starts kernels through the sandbox backend and connects to them."""

    def __init__(self, backend: SandboxBackend, connector: KernelConnector, start_timeout: float) -> None:
        self.backend = backend
        self.connector = connector
        self.start_timeout = start_timeout

    async def launch(
        self, kernel_id: int, jupyter_id: str, runtime: str, env: dict[str, str] | None = None, *,
        pooled: bool = False, image: str | None = None, node: str | None = None,
    ) -> Launched:  # fmt: skip
        """Container, connection, readiness (``kernel_info`` answered and IOPub delivering), then seal. Everything
        is undone on failure (cancellation included); raises KernelStartFailed with the container's log."""
        handle: SandboxHandle | None = None
        client: KernelConnection | None = None
        try:
            handle = await self.backend.start(
                kernel_id, jupyter_id, runtime, dict(env or {}), pooled=pooled, image=image, node=node
            )
            client = self.connector.connect(handle.connection_info)
            try:
                await client.wait_ready(self.start_timeout)
            except (KernelUnresponsive, KernelGone) as error:
                logs = await self.backend.logs(kernel_id)
                raise KernelStartFailed(
                    f"Kernel container did not become ready: {error}. Container log:\n{logs}"
                ) from error
            await self.backend.seal(handle)
        except BaseException:
            if client is not None:
                client.close()
            await asyncio.shield(self.backend.remove(kernel_id))
            raise
        return Launched(handle, client)

    async def teardown(self, kernel_id: int, client: KernelConnection | None) -> None:
        """Close the connection, remove the container and its sockets (idempotent)."""
        if client is not None:
            client.close()
        await self.backend.remove(kernel_id)
