"""Read-only links to one kernel's live view: tokens that open ``GET /kernels/{id}/view`` and its event stream,
and nothing else (no run, no edit, no other kernel, no other route).

A token is ``secrets.token_urlsafe(32)``, sent as ``Authorization: Bearer <token>``, never in a URL the server
sees (a link carries it in its fragment, ``/kernels/{id}/view#token=...``, which the page reads and sends as that
header), so no access log or proxy records it. Only its SHA-256 is kept, in memory: tokens end with their expiry,
their revocation, their kernel, or a restart of the gateway (fail closed).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.types import Scope

from gateway.errors import JupyCellError
from gateway.security.keys import Caller, secret_from_header

#: The only requests a view token opens (the page itself, ``/kernels/{id}/view``, is public: it holds no data).
VIEW_PATHS = re.compile(r"^/kernels/(\d{1,16})/events$")


class ViewTokenNotFound(JupyCellError):
    def __init__(self, kernel_id: int, token_id: str) -> None:
        super().__init__(f"Kernel {kernel_id} has no view token {token_id!r}.")


class ViewTokenTooLong(JupyCellError):
    def __init__(self, asked: int, limit: int) -> None:
        super().__init__(f"expires_in must be at most {limit} s (view_token_max_seconds); got {asked}.")


@dataclass(frozen=True)
class Viewer(Caller):
    """A caller holding a view token: may watch ``kernel_id``, owns nothing (every other route answers 404)."""

    kernel_id: int = 0
    token_id: str = ""

    @property
    def sees_everything(self) -> bool:
        return False

    def owns(self, owner: str | None) -> bool:
        return False


@dataclass
class ViewToken:
    id: str
    kernel_id: int
    created_by: str | None
    created: float
    expires: float
    digest: bytes = field(repr=False)

    def public(self) -> dict[str, object]:
        return {
            "token_id": self.id,
            "kernel_id": self.kernel_id,
            "created_by": self.created_by,
            "created": self.created,
            "expires": self.expires,
        }


def bearer(scope: Scope) -> str | None:
    """The credentials of the request's ``Authorization: Bearer`` header."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return secret_from_header(value.decode("latin-1"))
    return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class ViewTokens:
    """The live tokens of this gateway."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._by_digest: dict[bytes, ViewToken] = {}
        self._clock = clock

    def issue(self, kernel_id: int, created_by: str | None, lifetime: float) -> tuple[ViewToken, str]:
        """A new token for ``kernel_id`` valid for ``lifetime`` seconds: its record and its secret (shown once)."""
        self._drop_expired()
        secret = secrets.token_urlsafe(32)
        now = self._clock()
        token = ViewToken(secrets.token_hex(8), kernel_id, created_by, now, now + lifetime, _digest(secret))
        self._by_digest[token.digest] = token
        return token, secret

    def list(self, kernel_id: int) -> list[ViewToken]:
        self._drop_expired()
        return [t for t in self._by_digest.values() if t.kernel_id == kernel_id]

    def revoke(self, kernel_id: int, token_id: str) -> bool:
        for digest, token in list(self._by_digest.items()):
            if token.id == token_id and token.kernel_id == kernel_id:
                del self._by_digest[digest]
                return True
        return False

    def forget_kernel(self, kernel_id: int) -> None:
        for digest, token in list(self._by_digest.items()):
            if token.kernel_id == kernel_id:
                del self._by_digest[digest]

    def alive(self, token_id: str) -> bool:
        """Is this token (by id) still valid: not expired, not revoked? (Open streams ask it as they go.)"""
        now = self._clock()
        return any(t.id == token_id and t.expires > now for t in self._by_digest.values())

    def check(self, secret: str, kernel_id: int) -> ViewToken | None:
        """The token if ``secret`` is a live token for ``kernel_id`` (lookup by digest: no timing on the secret)."""
        token = self._by_digest.get(_digest(secret))
        if token is None or token.kernel_id != kernel_id:
            return None
        if token.expires <= self._clock():
            del self._by_digest[token.digest]
            return None
        return token

    def authenticate(self, scope: Scope) -> Caller | None:
        """For the security middleware: a Viewer for a GET of a kernel's events with its token as bearer."""
        if scope["type"] != "http" or scope.get("method") not in ("GET", "HEAD"):
            return None
        match = VIEW_PATHS.match(scope["path"])
        if match is None:
            return None
        secret = bearer(scope)
        if secret is None or len(secret) > 128:
            return None
        token = self.check(secret, int(match.group(1)))
        if token is None:
            return None
        return Viewer(key_id=f"view:{token.id}", kernel_id=token.kernel_id, token_id=token.id)

    def _drop_expired(self) -> None:
        now = self._clock()
        for digest, token in list(self._by_digest.items()):
            if token.expires <= now:
                del self._by_digest[digest]


class MetricsToken:
    """``JUPYCELL_METRICS_TOKEN``: opens ``GET /metrics`` alone."""

    def __init__(self, token: str) -> None:
        self._digest = _digest(token)

    def authenticate(self, scope: Scope) -> Caller | None:
        if scope["type"] != "http" or scope["path"] != "/metrics":
            return None
        secret = bearer(scope)
        if secret is None or not secrets.compare_digest(_digest(secret), self._digest):
            return None
        return Viewer(key_id="metrics-token")
