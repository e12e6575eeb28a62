"""API keys configured by the operator, and the caller a request was authenticated as.

A key is an ``id:secret`` entry (``id:secret:admin`` for an admin key). The id names the key in logs, in the
audit log and as the owner of kernels; the secret is only ever compared, in constant time, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_KEY_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_SECRET_LENGTH = 16


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: a key id (None when the API is open) and whether that key is an admin key."""

    key_id: str | None
    admin: bool = False

    @property
    def sees_everything(self) -> bool:
        return self.admin or self.key_id is None

    def owns(self, owner: str | None) -> bool:
        """May this caller reach a kernel started by ``owner``?"""
        return self.sees_everything or owner == self.key_id


ANONYMOUS = Caller(key_id=None)


@dataclass(frozen=True)
class ApiKey:
    id: str
    digest: bytes = field(repr=False)  # SHA-256 of the secret; the secret itself is not kept
    admin: bool = False


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def parse_keys(text: str, source: str) -> list[ApiKey]:
    """Parse ``id:secret[:admin]`` entries separated by commas or new lines (``#`` starts a comment).

    Raises ValueError naming the entry (by position and id, never by secret) that is malformed.
    """
    keys = []
    entries = [e.strip() for line in text.splitlines() for e in line.split("#", 1)[0].split(",")]
    for number, entry in enumerate((e for e in entries if e), start=1):
        parts = entry.split(":")
        admin = len(parts) == 3 and parts[2] == "admin"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not admin):
            raise ValueError(f"{source}: entry {number} is not `id:secret` or `id:secret:admin`")
        key_id, secret = parts[0], parts[1]
        if not _KEY_ID.match(key_id):
            raise ValueError(f"{source}: entry {number}: key id must be 1-64 of A-Z a-z 0-9 _ . @ -")
        if len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"{source}: key {key_id!r}: secret too short (at least {MIN_SECRET_LENGTH} characters; "
                "e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
            )
        keys.append(ApiKey(key_id, _digest(secret), admin))
    return keys


class KeyRing:
    """The configured keys. Empty means the API is open (no authentication)."""

    def __init__(self, keys: list[ApiKey]) -> None:
        ids = [k.id for k in keys]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"API key ids must be unique; repeated: {', '.join(duplicates)}")
        if len({k.digest for k in keys}) != len(keys):
            raise ValueError("two API keys have the same secret")
        self._keys = tuple(keys)

    @classmethod
    def load(cls, inline: str | None, path: Path | None) -> KeyRing:
        """Keys from the setting's text and from a file (blocking: call at start-up)."""
        keys = parse_keys(inline, "JUPYCELL_API_KEYS") if inline else []
        if path is not None:
            try:
                mode = path.stat().st_mode
                text = path.read_text()
            except OSError as error:
                raise ValueError(f"JUPYCELL_API_KEYS_FILE {path}: {error.strerror}") from None
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                log.warning("API key file %s is readable by other users (mode %o); chmod 600 it", path, mode & 0o777)
            keys += parse_keys(text, str(path))
        return cls(keys)

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    @property
    def ids(self) -> list[str]:
        return [k.id for k in self._keys]

    def authenticate(self, secret: str) -> Caller | None:
        """The caller holding ``secret``, or None. Compares against every key in constant time."""
        presented = _digest(secret)
        found: ApiKey | None = None
        for key in self._keys:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(presented, key.digest):
                found = key
        return Caller(found.id, found.admin) if found else None


def secret_from_header(value: str | None) -> str | None:
    """The key in ``Authorization: Bearer <key>`` or ``Authorization: token <key>`` (Jupyter's form)."""
    if not value:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.lower() in ("bearer", "token") and credentials.strip():
        return credentials.strip()
    return None
