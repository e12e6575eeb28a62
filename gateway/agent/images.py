"""The images a node's agent starts kernels from, and which of them its engine has.

The allow-list is the agent's own: the deployment's sandbox image plus ``JUPYCELL_ALLOWED_IMAGES``, read from the
agent's settings. A gateway's start request names an image, but it is untrusted input: an image not on this list is
refused whatever the gateway allows. Which allowed images the engine has goes into the agent's capacity report
(checked again at most every ``fresh_for`` seconds), so gateways place a kernel only on a node that has its image.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from gateway.errors import SandboxUnavailable

log = logging.getLogger(__name__)


class ImageRefused(Exception):
    """A start request names an image this node's agent does not allow."""


class ImageMissing(Exception):
    """An allowed image this node's engine does not have (it is never pulled: there is no registry)."""


class NodeImages:
    """``allowed``: the deployment's image first, then the other allowed ones; ``has(image)``: whether the engine
    has it (may raise SandboxUnavailable)."""

    def __init__(
        self, node: str, allowed: tuple[str, ...], has: Callable[[str], Awaitable[bool]], *, fresh_for: float = 5.0
    ) -> None:
        if not allowed:
            raise ValueError("the allow-list holds at least the deployment's sandbox image")
        self.node = node
        self.allowed = allowed
        self._has = has
        self._fresh_for = fresh_for
        self._present: list[str] = []
        self._checked_at: float | None = None
        self._missing: set[str] = set()

    def choose(self, image: str | None, *, pool: bool = False) -> str | None:
        """The image a kernel is started from: None for the deployment's own (``image`` None or that image), the
        image itself if it is on the allow-list; ImageRefused otherwise, and for a pool kernel with an image."""
        if image is None or image == self.allowed[0]:
            return None
        if pool:
            raise ImageRefused("a pool kernel runs the deployment's sandbox image: no image of its own")
        if image not in self.allowed[1:]:
            others = ", ".join(self.allowed[1:]) or "none"
            raise ImageRefused(
                f"image {image!r} is not allowed on node {self.node}: its agent allows {self.allowed[0]!r} and, "
                f"in its JUPYCELL_ALLOWED_IMAGES, {others}"
            )
        return image

    async def require(self, image: str) -> None:
        """ImageMissing unless the engine has ``image`` now (asked afresh: a gateway's view may be stale)."""
        if not await self._has(image):
            raise ImageMissing(
                f"image {image!r} is allowed on node {self.node} but not in its engine: load it there "
                "(docker save | docker load; docs/swarm.md)"
            )

    async def present(self) -> list[str]:
        """The allowed images the engine has, in allow-list order (the last answer if the engine does not
        answer now)."""
        now = time.monotonic()
        if self._checked_at is not None and now - self._checked_at < self._fresh_for:
            return list(self._present)
        try:
            found = [image for image in self.allowed if await self._has(image)]
        except SandboxUnavailable as error:
            log.warning("could not list the engine's images: %s", error)
            return list(self._present)
        self._present, self._checked_at = found, now
        missing = set(self.allowed) - set(found)
        if missing - self._missing:
            log.warning(
                "allowed images missing from this node's engine (kernels of those images go to other nodes): %s",
                ", ".join(sorted(missing)),
            )
        self._missing = missing
        return list(found)
