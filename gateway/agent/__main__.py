"""``python -m gateway.agent``: run this node's agent until SIGTERM or SIGINT (kernels keep running)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from gateway.agent.server import Agent
from gateway.agent.settings import AgentSettings
from gateway.settings import Settings


async def main() -> None:
    agent = Agent(AgentSettings(), Settings())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await agent.run(stop)


if __name__ == "__main__":
    logging.basicConfig(
        level=os.environ.get("JUPYCELL_AGENT_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(main())
