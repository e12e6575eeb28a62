"""Request bodies decoded as untrusted JSON: size-capped, depth-limited, off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Request

from gateway import safe_json
from gateway.api.files import read_body


async def read_json(request: Request, limit: int, *, max_depth: int = safe_json.DEFAULT_MAX_DEPTH) -> Any:
    """The request body decoded as JSON. Raises FileTooLarge (413) past ``limit`` bytes, and ``safe_json``'s
    NotJSON or TooDeep for a body that is not JSON or is nested more than ``max_depth`` levels deep."""
    body = await read_body(request, limit)
    return await asyncio.to_thread(safe_json.loads, body, max_depth=max_depth)
