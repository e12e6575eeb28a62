"""JSON from untrusted sources (HTTP bodies, websocket frames), decoded with a limit on nesting.

``json.loads`` of ``[[[...]]]`` a few thousand levels deep raises RecursionError (not a ValueError, so callers that
catch decoding errors let it through as a server error), and a document that decodes but is hundreds of levels deep
makes every recursive consumer downstream (validation, copies, serialisation) a place to fail. ``loads`` turns both
into ``TooDeep`` (and bad JSON into ``NotJSON``): ValueErrors with a message fit for the sender.
"""

from __future__ import annotations

import json
from typing import Any

#: Deeper than any notebook, Jupyter message or request body needs (a notebook's outputs sit 6 levels down).
DEFAULT_MAX_DEPTH = 64


class UnsafeJSON(ValueError):
    """Untrusted JSON refused; ``str(error)`` says why, in words fit for the sender."""


class NotJSON(UnsafeJSON):
    """Not JSON at all (or not UTF-8); the message is the decoder's."""


class TooDeep(UnsafeJSON):
    """JSON, but arrays and objects nested past the limit."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"nested more than {max_depth} levels deep (arrays and objects)")
        self.max_depth = max_depth


def loads(data: str | bytes | bytearray, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """The decoded value of ``data``; raises NotJSON if it is not JSON (UTF-8 when bytes), TooDeep if arrays and
    objects are nested more than ``max_depth`` levels deep (a scalar is depth 0, ``[1]`` depth 1)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise TooDeep(max_depth) from None
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        raise NotJSON(str(error)) from None
    if nesting_depth(value, stop_after=max_depth) > max_depth:
        raise TooDeep(max_depth)
    return value


def nesting_depth(value: Any, *, stop_after: int | None = None) -> int:
    """How many levels of arrays and objects ``value`` has, found without recursion; once past ``stop_after``
    the walk stops and returns ``stop_after + 1``."""
    limit = stop_after if stop_after is not None else float("inf")
    deepest = 0
    level = [value] if isinstance(value, (dict, list)) else []
    while level:  # one pass per level, breadth first
        deepest += 1
        if deepest > limit:
            return deepest
        below = []
        for container in level:
            for child in container.values() if isinstance(container, dict) else container:
                if isinstance(child, (dict, list)):
                    below.append(child)
        level = below
    return deepest
