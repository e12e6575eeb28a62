"""Custom sandbox images for tests (issue 13's ``JUPYCELL_ALLOWED_IMAGES``)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import docker

#: Code printing the marker of an image made by ``marked_image`` ("-" in any other image).
READ_MARKER = (
    "import os\nprint(open('/opt/jupycell/marker').read().strip() if os.path.exists('/opt/jupycell/marker') else '-')"
)


@contextmanager
def marked_image(base: str) -> Iterator[str]:
    """A new tag of ``base`` plus the file /opt/jupycell/marker saying ``custom-image`` (one small layer built here,
    no network); removed afterwards."""
    tag = f"jupycell-sandbox-test:custom-{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {base}\nUSER 0\nRUN echo custom-image > /opt/jupycell/marker\nUSER 1000:1000\n"
    client = docker.from_env()
    try:
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True, forcerm=True)
        yield tag
    finally:
        try:
            client.images.remove(tag, force=True)
        finally:
            client.close()
